//! Identifier newtypes. Ids are chosen by the caller (uuid v7 in practice).

use std::fmt;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Name of the stream that holds this entity's events.
            pub fn stream(&self) -> String {
                format!(concat!($prefix, "-{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// One account (= one login identity).
    AccountId,
    "account"
);
id_type!(
    /// One application (case).
    ApplicationId,
    "application"
);
id_type!(
    /// One registration or password-recovery flow.
    FlowId,
    "flow"
);
id_type!(
    /// One login session of an account (not the secret token).
    SessionId,
    "session"
);

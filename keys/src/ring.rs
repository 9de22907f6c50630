//! The data keys that seal personal data (crypto-shredding): one per data
//! subject, AES-256-GCM, kept in the store's key table wrapped under a key
//! derived from the server secret, cached here. Keys made before AES-256-GCM
//! are XChaCha20-Poly1305 keys; they keep opening what they sealed.
//!
//! A field is sealed under its subject's key with the event's id as
//! associated data and a nonce derived from that id (each event id seals
//! once per key). Destroying a subject's keys ([`KeyRing::destroy`]) leaves
//! its sealed fields unreadable for good; the events still decode, with
//! those fields erased.
//!
//! A wrapped key in the key table is either 72 bytes (the first form: a
//! 24-byte nonce and the XChaCha20-Poly1305 wrapping of an XChaCha20-Poly1305
//! key) or 61 bytes (the form byte [`AES_FORM`], a 12-byte nonce and the
//! AES-256-GCM wrapping of an AES-256-GCM key); both bind the key's id and
//! subject as associated data.

use std::collections::HashMap;
use std::sync::RwLock;

use aes_gcm::Aes256Gcm;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use migrations::sealed::{Opened, Opener, Sealer, Subject};
use sha2::{Digest, Sha256};
use store::{EventStore, RecordedEvent, StoreError, StoredKey};
use uuid::Uuid;

use crate::Keyer;

/// Keys a page of [`KeyRing::load_all`] reads at a time.
const PAGE: usize = 1024;

/// First byte of a key wrapped in the AES-256-GCM form.
const AES_FORM: u8 = 2;
/// Length of a key wrapped in the first (XChaCha20-Poly1305) form.
const XCHACHA_FORM_LEN: usize = 24 + 32 + 16;
/// Length of a key wrapped in the AES-256-GCM form.
const AES_FORM_LEN: usize = 1 + 12 + 32 + 16;

/// The data keys of one store, for sealing and opening.
pub struct KeyRing {
    keyer: Keyer,
    /// Unwraps keys of the first form.
    wrapping_xchacha: XChaCha20Poly1305,
    /// Wraps new keys and unwraps keys of the AES-256-GCM form.
    wrapping: Aes256Gcm,
    state: RwLock<Ring>,
}

/// A data key held in memory: 33 bytes, its cipher set up when used (a
/// node may hold every key of the store).
#[derive(Clone, Copy)]
enum DataKey {
    /// A key made before AES-256-GCM.
    XChaCha([u8; 32]),
    /// Every key made now.
    Aes([u8; 32]),
}

impl DataKey {
    fn seal(&self, event_id: Uuid, plaintext: &[u8]) -> Result<Vec<u8>, aes_gcm::Error> {
        let payload = Payload {
            msg: plaintext,
            aad: event_id.as_bytes(),
        };
        match self {
            DataKey::XChaCha(key) => {
                XChaCha20Poly1305::new(key.into()).encrypt(&xchacha_field_nonce(event_id), payload)
            }
            DataKey::Aes(key) => {
                Aes256Gcm::new(key.into()).encrypt(&aes_field_nonce(event_id), payload)
            }
        }
    }

    fn open(&self, event_id: Uuid, ciphertext: &[u8]) -> Result<Vec<u8>, aes_gcm::Error> {
        let payload = Payload {
            msg: ciphertext,
            aad: event_id.as_bytes(),
        };
        match self {
            DataKey::XChaCha(key) => {
                XChaCha20Poly1305::new(key.into()).decrypt(&xchacha_field_nonce(event_id), payload)
            }
            DataKey::Aes(key) => {
                Aes256Gcm::new(key.into()).decrypt(&aes_field_nonce(event_id), payload)
            }
        }
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing(***)")
    }
}

#[derive(Default)]
struct Ring {
    /// Key id -> (subject, key); `None`: destroyed.
    keys: HashMap<Uuid, (String, Option<DataKey>)>,
    /// Subject -> the key new seals use.
    current: HashMap<String, Uuid>,
    /// Keys made here and not yet known to be in the store.
    pending: Vec<StoredKey>,
    /// Whether every key of the store is held (a key not held is destroyed).
    complete: bool,
}

impl KeyRing {
    /// An empty ring under the server secret behind `keyer`.
    pub fn new(keyer: Keyer) -> KeyRing {
        let wrapping_xchacha = XChaCha20Poly1305::new(&keyer.wrapping_key().into());
        let wrapping = Aes256Gcm::new(&keyer.aes_wrapping_key().into());
        KeyRing {
            keyer,
            wrapping_xchacha,
            wrapping,
            state: RwLock::new(Ring::default()),
        }
    }

    /// The name of `subject` in the key table: a keyed digest, never the
    /// personal data itself.
    pub fn subject_name(&self, subject: Subject<'_>) -> String {
        match subject {
            Subject::Email(email) => format!("email-{}", hex::encode(self.keyer.email_key(email))),
            Subject::IdPorten(digest) => format!("idporten-{}", hex::encode(digest)),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Ring> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// `key` wrapped in the AES-256-GCM form, bound to its id and subject.
    fn wrap(&self, id: Uuid, subject: &str, key: &[u8; 32]) -> Vec<u8> {
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .wrapping
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: key,
                    aad: &wrap_aad(id, subject),
                },
            )
            .unwrap_or_default();
        let mut wrapped = Vec::with_capacity(AES_FORM_LEN);
        wrapped.push(AES_FORM);
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&sealed);
        wrapped
    }

    fn unwrap_key(&self, stored: &StoredKey) -> Result<DataKey, StoreError> {
        let fail = || {
            StoreError::Backend(format!(
                "data key {} does not unwrap under this server secret",
                stored.id
            ))
        };
        let aad = wrap_aad(stored.id, &stored.subject);
        let wrapped = &stored.wrapped;
        let key = if wrapped.len() == AES_FORM_LEN && wrapped[0] == AES_FORM {
            let (nonce, sealed) = wrapped[1..].split_at(12);
            let key = self.wrapping.decrypt(
                nonce.into(),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            );
            DataKey::Aes(key.ok().and_then(|k| k.try_into().ok()).ok_or_else(fail)?)
        } else if wrapped.len() == XCHACHA_FORM_LEN {
            let (nonce, sealed) = wrapped.split_at(24);
            let key = self.wrapping_xchacha.decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            );
            DataKey::XChaCha(key.ok().and_then(|k| k.try_into().ok()).ok_or_else(fail)?)
        } else {
            return Err(fail());
        };
        Ok(key)
    }

    /// Before sealing `subjects`: forget a cached key of theirs that was
    /// destroyed meanwhile (by a purge in another process), so that a new
    /// one is made rather than a destroyed one used.
    pub async fn prepare_seal(
        &self,
        store: &dyn EventStore,
        subjects: &[String],
    ) -> Result<(), StoreError> {
        for subject in subjects {
            let cached = {
                let ring = self.read();
                ring.current
                    .get(subject)
                    .copied()
                    .filter(|id| !ring.pending.iter().any(|k| k.id == *id))
            };
            let Some(id) = cached else { continue };
            if store.read_key(id).await?.is_none() {
                let mut ring = self.write();
                ring.current.remove(subject);
                if let Some(entry) = ring.keys.get_mut(&id) {
                    entry.1 = None;
                }
            }
        }
        Ok(())
    }

    /// Keep the keys made since the last call in the store. Call before
    /// appending what was sealed under them.
    pub async fn commit(&self, store: &dyn EventStore) -> Result<(), StoreError> {
        let pending = self.read().pending.clone();
        for key in &pending {
            store.put_key(key).await?;
        }
        self.stored(&pending);
        Ok(())
    }

    /// The keys among `used` that are not known to be in the store yet:
    /// to be stored with the events sealed under them
    /// ([`EventStore::append_with_keys`]), then passed to
    /// [`KeyRing::stored`].
    pub fn unstored(&self, used: &[Uuid]) -> Vec<StoredKey> {
        if used.is_empty() {
            return Vec::new();
        }
        let ring = self.read();
        ring.pending
            .iter()
            .filter(|key| used.contains(&key.id))
            .cloned()
            .collect()
    }

    /// `keys` are in the store now.
    pub fn stored(&self, keys: &[StoredKey]) {
        if !keys.is_empty() {
            self.write()
                .pending
                .retain(|key| !keys.iter().any(|done| done.id == key.id));
        }
    }

    /// Load the keys `events` are sealed under that this ring has not seen.
    pub async fn load_for(
        &self,
        store: &dyn EventStore,
        events: &[&RecordedEvent],
    ) -> Result<(), StoreError> {
        for event in events {
            let Some(id) = migrations::sealed::sealed_key(event.schema_version, &event.payload)
            else {
                continue;
            };
            if self.read().keys.contains_key(&id) {
                continue;
            }
            self.load_one(store, id).await?;
        }
        Ok(())
    }

    async fn load_one(&self, store: &dyn EventStore, id: Uuid) -> Result<(), StoreError> {
        let entry = match store.read_key(id).await? {
            Some(stored) => {
                let key = self.unwrap_key(&stored)?;
                (stored.subject, Some(key))
            }
            // Written before any event that uses it: gone means destroyed.
            None => (String::new(), None),
        };
        self.write().keys.entry(id).or_insert(entry);
        Ok(())
    }

    /// Load every key of the store (an audit's replay of the whole log).
    pub async fn load_all(&self, store: &dyn EventStore) -> Result<usize, StoreError> {
        let mut after = None;
        let mut count = 0;
        loop {
            let page = store.read_keys(after, PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(count);
            };
            after = Some(last.id);
            count += page.len();
            self.hold(&page)?;
        }
    }

    /// Hold `keys` as read from a key table (an audit's tool reading a
    /// store file directly).
    pub fn hold(&self, keys: &[StoredKey]) -> Result<(), StoreError> {
        let mut loaded = Vec::with_capacity(keys.len());
        for stored in keys {
            loaded.push((stored.id, stored.subject.clone(), self.unwrap_key(stored)?));
        }
        let mut ring = self.write();
        for (id, subject, key) in loaded {
            ring.keys.insert(id, (subject, Some(key)));
        }
        Ok(())
    }

    /// Count every key id not held as destroyed: for a reader that holds
    /// the whole key table, a sealed event under any other key is erased.
    pub fn treat_missing_as_destroyed(&self) {
        self.write().complete = true;
    }

    /// Destroy every data key of `subject` in the store and here; returns
    /// how many the store held.
    pub async fn destroy(
        &self,
        store: &dyn EventStore,
        subject: Subject<'_>,
    ) -> Result<u64, StoreError> {
        let name = self.subject_name(subject);
        let destroyed = store.destroy_keys(&name).await?;
        let mut ring = self.write();
        ring.current.remove(&name);
        for (key_subject, key) in ring.keys.values_mut() {
            if *key_subject == name {
                *key = None;
            }
        }
        ring.pending.retain(|key| key.subject != name);
        Ok(destroyed)
    }
}

fn wrap_aad(id: Uuid, subject: &str) -> Vec<u8> {
    let mut aad = b"caseledger data key v1".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad.extend_from_slice(subject.as_bytes());
    aad
}

/// The nonce of the fields sealed for `event_id` under a key of the first
/// form: each event id seals once under a key, so nonces never repeat
/// under one key.
fn xchacha_field_nonce(event_id: Uuid) -> XNonce {
    let digest = Sha256::new()
        .chain_update(b"caseledger sealed fields v1")
        .chain_update(event_id.as_bytes())
        .finalize();
    *XNonce::from_slice(&digest[..24])
}

/// The 96-bit nonce of the fields sealed for `event_id` under an
/// AES-256-GCM key. Each event id seals once under a key, and a key seals
/// only the few events of one person, so two nonces of one key meet with a
/// chance of about n² / 2⁹⁷.
fn aes_field_nonce(event_id: Uuid) -> aes_gcm::Nonce<aes_gcm::aead::consts::U12> {
    let digest = Sha256::new()
        .chain_update(b"caseledger sealed fields aes-256-gcm")
        .chain_update(event_id.as_bytes())
        .finalize();
    let nonce: [u8; 12] = digest[..12].try_into().expect("12 of 32 bytes");
    nonce.into()
}

impl Sealer for KeyRing {
    fn seal(
        &self,
        subject: Subject<'_>,
        event_id: Uuid,
        plaintext: &[u8],
    ) -> Result<(Uuid, Vec<u8>), String> {
        let name = self.subject_name(subject);
        let current = |ring: &Ring| {
            let id = ring.current.get(&name)?;
            Some((*id, ring.keys.get(id)?.1?))
        };
        let found = current(&self.read());
        let (id, key) = match found {
            Some(found) => found,
            None => {
                let mut ring = self.write();
                // Another task may have made one meanwhile.
                match current(&ring) {
                    Some(found) => found,
                    None => {
                        let id = Uuid::now_v7();
                        let bytes: [u8; 32] = rand::random();
                        let wrapped = self.wrap(id, &name, &bytes);
                        ring.pending.push(StoredKey {
                            id,
                            subject: name.clone(),
                            wrapped,
                        });
                        let key = DataKey::Aes(bytes);
                        ring.keys.insert(id, (name.clone(), Some(key)));
                        ring.current.insert(name, id);
                        (id, key)
                    }
                }
            }
        };
        let sealed = key
            .seal(event_id, plaintext)
            .map_err(|_| "sealing failed".to_owned())?;
        Ok((id, sealed))
    }
}

impl Opener for KeyRing {
    fn open(&self, key: Uuid, event_id: Uuid, ciphertext: &[u8]) -> Opened {
        let key = {
            let ring = self.read();
            match ring.keys.get(&key) {
                None if ring.complete => return Opened::Destroyed,
                None => return Opened::Unknown,
                Some((_, None)) => return Opened::Destroyed,
                Some((_, Some(key))) => *key,
            }
        };
        match key.open(event_id, ciphertext) {
            Ok(plaintext) => Opened::Clear(plaintext),
            Err(_) => Opened::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Email;
    use migrations::DomainEvent;
    use migrations::sealed::{decode_opened, encode_sealed};
    use store::memory::MemoryStore;

    fn registration(email: &str, name: &str) -> DomainEvent {
        DomainEvent::Account(domain::account::Event::PasswordAccountRegistered {
            email: Email::parse(email).unwrap(),
            name: name.to_owned(),
            password_phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
                .into(),
            at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        })
    }

    #[tokio::test]
    async fn a_destroyed_subject_reads_as_erased_everywhere_and_others_stay() {
        let store = MemoryStore::new();
        let ring = KeyRing::new(Keyer::new([7; 32]));
        let (kari, ola) = (
            registration("kari@example.no", "Kari"),
            registration("ola@example.no", "Ola"),
        );
        let (id_kari, id_ola) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed_kari = encode_sealed(&kari, id_kari, &ring).unwrap();
        let sealed_ola = encode_sealed(&ola, id_ola, &ring).unwrap();
        ring.commit(&store).await.unwrap();
        assert_eq!(store.read_keys(None, 10).await.unwrap().len(), 2);
        let open = |ring: &KeyRing, e: &migrations::Encoded, id| {
            decode_opened(
                e.type_name,
                e.schema_version,
                &e.payload,
                id,
                Some(ring as &dyn Opener),
            )
        };
        assert_eq!(open(&ring, &sealed_kari, id_kari).unwrap(), kari);
        // Bound to the event: the same bytes under another id do not open.
        assert!(open(&ring, &sealed_kari, id_ola).is_err());

        // A reader elsewhere (the auditors' tool) loads the keys it needs.
        let auditor = KeyRing::new(Keyer::new([7; 32]));
        assert!(matches!(
            open(&auditor, &sealed_kari, id_kari),
            Err(migrations::CodecError::KeyNotLoaded(_))
        ));
        assert_eq!(auditor.load_all(&store).await.unwrap(), 2);
        assert_eq!(open(&auditor, &sealed_kari, id_kari).unwrap(), kari);

        let subject = Email::parse("kari@example.no").unwrap();
        assert_eq!(
            ring.destroy(&store, Subject::Email(&subject))
                .await
                .unwrap(),
            1
        );
        let erased = open(&ring, &sealed_kari, id_kari).unwrap();
        let DomainEvent::Account(domain::account::Event::PasswordAccountRegistered {
            email,
            name,
            ..
        }) = &erased
        else {
            panic!("{erased:?}")
        };
        assert!(email.is_erased());
        assert_eq!(name, domain::ERASED);
        assert_eq!(open(&ring, &sealed_ola, id_ola).unwrap(), ola);

        // A fresh reader finds the key gone: erased, not an error.
        let later = KeyRing::new(Keyer::new([7; 32]));
        later
            .load_for(&store, &[&recorded(&sealed_kari, id_kari)])
            .await
            .unwrap();
        assert_eq!(open(&later, &sealed_kari, id_kari).unwrap(), erased);

        // The same person registering again gets a new key.
        let again = Uuid::now_v7();
        ring.prepare_seal(&store, &[ring.subject_name(Subject::Email(&subject))])
            .await
            .unwrap();
        let sealed_again = encode_sealed(&kari, again, &ring).unwrap();
        ring.commit(&store).await.unwrap();
        later
            .load_for(&store, &[&recorded(&sealed_again, again)])
            .await
            .unwrap();
        assert_eq!(open(&later, &sealed_again, again).unwrap(), kari);
        assert_eq!(
            open(&later, &sealed_kari, id_kari).unwrap(),
            erased,
            "the old one stays erased"
        );
    }

    #[tokio::test]
    async fn a_key_destroyed_by_another_process_is_not_used_again() {
        let store = MemoryStore::new();
        let server = KeyRing::new(Keyer::new([7; 32]));
        let job = KeyRing::new(Keyer::new([7; 32]));
        let kari = registration("kari@example.no", "Kari");
        let first = Uuid::now_v7();
        let sealed = encode_sealed(&kari, first, &server).unwrap();
        server.commit(&store).await.unwrap();
        let subject = Email::parse("kari@example.no").unwrap();
        job.destroy(&store, Subject::Email(&subject)).await.unwrap();
        let name = server.subject_name(Subject::Email(&subject));
        server.prepare_seal(&store, &[name]).await.unwrap();
        let second = Uuid::now_v7();
        let resealed = encode_sealed(&kari, second, &server).unwrap();
        server.commit(&store).await.unwrap();
        assert_ne!(
            migrations::sealed::sealed_key(sealed.schema_version, &sealed.payload),
            migrations::sealed::sealed_key(resealed.schema_version, &resealed.payload)
        );
        assert_eq!(store.read_keys(None, 10).await.unwrap().len(), 1);
    }

    #[test]
    fn another_secret_does_not_unwrap_the_keys() {
        let ring = KeyRing::new(Keyer::new([7; 32]));
        let stored = StoredKey {
            id: Uuid::now_v7(),
            subject: "email-00".into(),
            wrapped: ring.wrap(Uuid::nil(), "email-00", &[1; 32]),
        };
        assert!(ring.unwrap_key(&stored).is_err(), "bound to its id");
        let other = KeyRing::new(Keyer::new([8; 32]));
        let good = StoredKey {
            wrapped: ring.wrap(stored.id, "email-00", &[1; 32]),
            ..stored
        };
        assert!(ring.unwrap_key(&good).is_ok());
        assert!(other.unwrap_key(&good).is_err());
    }

    /// A key and an event sealed by the first form (XChaCha20-Poly1305),
    /// under the secret `[7; 32]`, as a store written then holds them.
    const FIRST_FORM_KEY: &str = "45c3e02115d1b517de02f1d331c77b93e3e52271d20e3f30cce3ce0368d5691362a9e2eb6c10fde63d160b856ef2e91c52c42b991d747b91f12db3145c106b306772a1ab4453cb3f";
    const FIRST_FORM_PAYLOAD: &str = "01a24f2de42370d6a781d465aace91e42f000000ac1fbfb6362094d098f76c414510cf8c09ffe250796b238ab81ee0361335fbfba85cb035447a6b070ae74131fe7218083c6572617365643e083c6572617365643e41246172676f6e32696424763d3139246d3d31393435362c743d322c703d31246332467364484e68624851246147467a614768686332686f59584e6f6147467a61418080f28183898506";

    #[test]
    fn keys_and_fields_of_the_first_form_still_open() {
        let ring = KeyRing::new(Keyer::new([7; 32]));
        let event_id = Uuid::parse_str("0190c0de-0000-7000-8000-0000000000aa").unwrap();
        let stored = StoredKey {
            id: Uuid::parse_str("01a24f2d-e423-70d6-a781-d465aace91e4").unwrap(),
            subject: "email-224d8d61c7b030520de0d694d841083d138e01ae63589f2c056961fd5502c689"
                .into(),
            wrapped: hex::decode(FIRST_FORM_KEY).unwrap(),
        };
        ring.hold(std::slice::from_ref(&stored)).unwrap();
        let payload = hex::decode(FIRST_FORM_PAYLOAD).unwrap();
        let opened = decode_opened(
            "PasswordAccountRegistered",
            32769,
            &payload,
            event_id,
            Some(&ring as &dyn Opener),
        )
        .unwrap();
        let DomainEvent::Account(domain::account::Event::PasswordAccountRegistered {
            email,
            name,
            ..
        }) = &opened
        else {
            panic!("{opened:?}")
        };
        assert_eq!(
            (email.as_str(), name.as_str()),
            ("kari@example.no", "Kari Nordmann")
        );
        // Bound to the event, and a changed wrapped key does not unwrap.
        assert!(
            decode_opened(
                "PasswordAccountRegistered",
                32769,
                &payload,
                Uuid::nil(),
                Some(&ring as &dyn Opener)
            )
            .is_err()
        );
        let mut altered = stored.clone();
        altered.wrapped[30] ^= 1;
        assert!(ring.unwrap_key(&altered).is_err());

        // New keys of the same ring are of the AES-256-GCM form.
        let again = Uuid::now_v7();
        let fresh = KeyRing::new(Keyer::new([7; 32]));
        let sealed = encode_sealed(&registration("ola@example.no", "Ola"), again, &fresh).unwrap();
        let made = fresh.read().pending[0].clone();
        assert_eq!(
            (made.wrapped.len(), made.wrapped[0]),
            (AES_FORM_LEN, AES_FORM)
        );
        ring.hold(&[made]).unwrap();
        assert_eq!(
            decode_opened(
                sealed.type_name,
                sealed.schema_version,
                &sealed.payload,
                again,
                Some(&ring as &dyn Opener)
            )
            .unwrap(),
            registration("ola@example.no", "Ola")
        );
    }

    fn recorded(encoded: &migrations::Encoded, id: Uuid) -> RecordedEvent {
        RecordedEvent {
            position: 1,
            stream: "s".into(),
            revision: 0,
            id,
            type_name: encoded.type_name.into(),
            schema_version: encoded.schema_version,
            recorded_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            metadata: store::EventMetadata {
                actor: "system".into(),
                correlation_id: Uuid::nil(),
                causation_id: None,
                occurred_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            },
            payload: encoded.payload.clone().into(),
        }
    }
}

//! The data keys that seal personal data (crypto-shredding): one per data
//! subject, XChaCha20-Poly1305, kept in the store's key table wrapped under
//! a key derived from the server secret, cached here.
//!
//! A field is sealed under its subject's key with the event's id as
//! associated data and a nonce derived from that id (each event id seals
//! once per key). Destroying a subject's keys ([`KeyRing::destroy`]) leaves
//! its sealed fields unreadable for good; the events still decode, with
//! those fields erased.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use migrations::sealed::{Opened, Opener, Sealer, Subject};
use sha2::{Digest, Sha256};
use store::{EventStore, RecordedEvent, StoreError, StoredKey};
use uuid::Uuid;

use crate::Keyer;

/// Keys a page of [`KeyRing::load_all`] reads at a time.
const PAGE: usize = 1024;

/// The data keys of one store, for sealing and opening.
pub struct KeyRing {
    keyer: Keyer,
    wrapping: XChaCha20Poly1305,
    state: RwLock<Ring>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing(***)")
    }
}

#[derive(Default)]
struct Ring {
    /// Key id -> (subject, cipher); `None`: destroyed.
    keys: HashMap<Uuid, (String, Option<Arc<XChaCha20Poly1305>>)>,
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
        let wrapping = XChaCha20Poly1305::new(&keyer.wrapping_key().into());
        KeyRing {
            keyer,
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

    fn wrap(&self, id: Uuid, subject: &str, key: &[u8; 32]) -> Vec<u8> {
        let nonce: [u8; 24] = rand::random();
        let mut wrapped = nonce.to_vec();
        let sealed = self
            .wrapping
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: &wrap_aad(id, subject),
                },
            )
            .unwrap_or_default();
        wrapped.extend_from_slice(&sealed);
        wrapped
    }

    fn unwrap_key(&self, stored: &StoredKey) -> Result<XChaCha20Poly1305, StoreError> {
        let fail = || {
            StoreError::Backend(format!(
                "data key {} does not unwrap under this server secret",
                stored.id
            ))
        };
        let (nonce, sealed) = stored.wrapped.split_at_checked(24).ok_or_else(fail)?;
        let key = self
            .wrapping
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &wrap_aad(stored.id, &stored.subject),
                },
            )
            .map_err(|_| fail())?;
        XChaCha20Poly1305::new_from_slice(&key).map_err(|_| fail())
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
        self.commit_pending(store, |_| true).await
    }

    /// [`KeyRing::commit`] of the keys among `used` that are not stored
    /// yet: what events about to be appended were sealed under (others'
    /// new keys are theirs to store).
    pub async fn commit_used(
        &self,
        store: &dyn EventStore,
        used: &[Uuid],
    ) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        self.commit_pending(store, |key| used.contains(&key.id))
            .await
    }

    async fn commit_pending(
        &self,
        store: &dyn EventStore,
        wanted: impl Fn(&StoredKey) -> bool,
    ) -> Result<(), StoreError> {
        let pending: Vec<StoredKey> = self
            .read()
            .pending
            .iter()
            .filter(|key| wanted(key))
            .cloned()
            .collect();
        for key in &pending {
            store.put_key(key).await?;
        }
        if !pending.is_empty() {
            self.write()
                .pending
                .retain(|key| !pending.iter().any(|done| done.id == key.id));
        }
        Ok(())
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
                let cipher = self.unwrap_key(&stored)?;
                (stored.subject, Some(Arc::new(cipher)))
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
        for (id, subject, cipher) in loaded {
            ring.keys.insert(id, (subject, Some(Arc::new(cipher))));
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
        for (key_subject, cipher) in ring.keys.values_mut() {
            if *key_subject == name {
                *cipher = None;
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

/// The nonce of the fields sealed for `event_id`: each event id seals once
/// under a key, so nonces never repeat under one key.
fn field_nonce(event_id: Uuid) -> XNonce {
    let digest = Sha256::new()
        .chain_update(b"caseledger sealed fields v1")
        .chain_update(event_id.as_bytes())
        .finalize();
    *XNonce::from_slice(&digest[..24])
}

impl Sealer for KeyRing {
    fn seal(
        &self,
        subject: Subject<'_>,
        event_id: Uuid,
        plaintext: &[u8],
    ) -> Result<(Uuid, Vec<u8>), String> {
        let name = self.subject_name(subject);
        let current = {
            let ring = self.read();
            ring.current.get(&name).and_then(|id| {
                let cipher = ring.keys.get(id)?.1.clone()?;
                Some((*id, cipher))
            })
        };
        let (id, cipher) = match current {
            Some(current) => current,
            None => {
                let mut ring = self.write();
                // Another task may have made one meanwhile.
                match ring
                    .current
                    .get(&name)
                    .and_then(|id| Some((*id, ring.keys.get(id)?.1.clone()?)))
                {
                    Some(current) => current,
                    None => {
                        let id = Uuid::now_v7();
                        let key: [u8; 32] = rand::random();
                        let cipher = Arc::new(XChaCha20Poly1305::new(&key.into()));
                        let wrapped = self.wrap(id, &name, &key);
                        ring.pending.push(StoredKey {
                            id,
                            subject: name.clone(),
                            wrapped,
                        });
                        ring.keys
                            .insert(id, (name.clone(), Some(Arc::clone(&cipher))));
                        ring.current.insert(name, id);
                        (id, cipher)
                    }
                }
            }
        };
        let sealed = cipher
            .encrypt(
                &field_nonce(event_id),
                Payload {
                    msg: plaintext,
                    aad: event_id.as_bytes(),
                },
            )
            .map_err(|_| "sealing failed".to_owned())?;
        Ok((id, sealed))
    }
}

impl Opener for KeyRing {
    fn open(&self, key: Uuid, event_id: Uuid, ciphertext: &[u8]) -> Opened {
        let cipher = {
            let ring = self.read();
            match ring.keys.get(&key) {
                None if ring.complete => return Opened::Destroyed,
                None => return Opened::Unknown,
                Some((_, None)) => return Opened::Destroyed,
                Some((_, Some(cipher))) => Arc::clone(cipher),
            }
        };
        match cipher.decrypt(
            &field_nonce(event_id),
            Payload {
                msg: ciphertext,
                aad: event_id.as_bytes(),
            },
        ) {
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

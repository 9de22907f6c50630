//! A small key-value table beside the log, for what every node of a
//! cluster must share and that is no event: the server's key material, a
//! consumer's progress. Values are bytes; keys live in namespaces.

use store::StoreError;

use crate::PostgresStore;
use crate::error::{from_pool, from_postgres};

impl PostgresStore {
    async fn kv_client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.reader
            .pool
            .get()
            .await
            .map_err(|error| from_pool(&self.reader.endpoint, error))
    }

    /// The value under `namespace`/`key`, if any.
    pub async fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.kv_client().await?;
        let statement = client
            .prepare_cached("SELECT value FROM caseledger_kv WHERE namespace = $1 AND key = $2")
            .await
            .map_err(from_postgres)?;
        let row = client
            .query_opt(&statement, &[&namespace, &key])
            .await
            .map_err(from_postgres)?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Set `namespace`/`key` to `value`, whatever it held.
    pub async fn kv_put(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let client = self.kv_client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO caseledger_kv (namespace, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = now()",
            )
            .await
            .map_err(from_postgres)?;
        client
            .execute(&statement, &[&namespace, &key, &value])
            .await
            .map_err(from_postgres)?;
        Ok(())
    }

    /// Store `value` unless the key has one; returns the value the key holds
    /// afterwards (this one, or the one stored first). Several nodes that
    /// start at once with fresh key material all end up with one.
    pub async fn kv_insert_if_absent(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let client = self.kv_client().await?;
        let statement = client
            .prepare_cached(
                "WITH inserted AS (INSERT INTO caseledger_kv (namespace, key, value) \
                 VALUES ($1, $2, $3) ON CONFLICT (namespace, key) DO NOTHING RETURNING value) \
                 SELECT value FROM inserted UNION ALL \
                 SELECT value FROM caseledger_kv WHERE namespace = $1 AND key = $2 LIMIT 1",
            )
            .await
            .map_err(from_postgres)?;
        let row = client
            .query_opt(&statement, &[&namespace, &key, &value])
            .await
            .map_err(from_postgres)?;
        match row {
            Some(row) => Ok(row.get(0)),
            // Another node's insert committed after this statement's
            // snapshot was taken: read it now.
            None => self.kv_get(namespace, key).await?.ok_or_else(|| {
                StoreError::Backend(format!("the value of {namespace}/{key} vanished"))
            }),
        }
    }

    /// Set the key to `new` only if it holds `expected` (`None`: only if it
    /// has no value). Returns whether it was set: one of several nodes
    /// moving a shared progress forward wins, the others see `false`.
    pub async fn kv_compare_and_set(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let client = self.kv_client().await?;
        let changed = match expected {
            None => {
                let statement = client
                    .prepare_cached(
                        "INSERT INTO caseledger_kv (namespace, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (namespace, key) DO NOTHING",
                    )
                    .await
                    .map_err(from_postgres)?;
                client
                    .execute(&statement, &[&namespace, &key, &new])
                    .await
                    .map_err(from_postgres)?
            }
            Some(expected) => {
                let statement = client
                    .prepare_cached(
                        "UPDATE caseledger_kv SET value = $4, updated_at = now() \
                         WHERE namespace = $1 AND key = $2 AND value = $3",
                    )
                    .await
                    .map_err(from_postgres)?;
                client
                    .execute(&statement, &[&namespace, &key, &expected, &new])
                    .await
                    .map_err(from_postgres)?
            }
        };
        Ok(changed == 1)
    }

    /// [`store::EventStore::put_key`].
    pub(crate) async fn key_put(&self, key: &store::StoredKey) -> Result<(), StoreError> {
        let mut client = self.kv_client().await?;
        let transaction = client.transaction().await.map_err(from_postgres)?;
        // The commit need not wait for the WAL flush: every event sealed
        // under the key is appended after it, and that commit's flush makes
        // the WAL durable up to there, the key's record included.
        transaction
            .batch_execute("SET LOCAL synchronous_commit TO OFF")
            .await
            .map_err(from_postgres)?;
        let statement = transaction
            .prepare_cached(
                "WITH inserted AS (INSERT INTO caseledger_keys (id, subject, wrapped) \
                 VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING subject, wrapped) \
                 SELECT subject, wrapped FROM inserted UNION ALL \
                 SELECT subject, wrapped FROM caseledger_keys WHERE id = $1 LIMIT 1",
            )
            .await
            .map_err(from_postgres)?;
        let row = transaction
            .query_opt(&statement, &[&key.id, &key.subject, &key.wrapped])
            .await
            .map_err(from_postgres)?;
        let row = match row {
            Some(row) => Some(row),
            // Another transaction inserted the id while this statement ran:
            // its conflict waited for that commit, but the statement's
            // snapshot (taken before it) cannot see the row. A new
            // statement can.
            None => transaction
                .query_opt(
                    "SELECT subject, wrapped FROM caseledger_keys WHERE id = $1",
                    &[&key.id],
                )
                .await
                .map_err(from_postgres)?,
        };
        transaction.commit().await.map_err(from_postgres)?;
        match row {
            Some(row)
                if row.get::<_, String>(0) == key.subject
                    && row.get::<_, Vec<u8>>(1) == key.wrapped =>
            {
                Ok(())
            }
            Some(_) => Err(store::rules::key_mismatch(key.id)),
            // Destroyed since it was inserted: the id was taken, and is
            // gone for good.
            None => Err(store::rules::key_mismatch(key.id)),
        }
    }

    /// [`store::EventStore::read_keys`] (and `read_key` with `only`).
    pub(crate) async fn key_read(
        &self,
        after: Option<uuid::Uuid>,
        only: Option<uuid::Uuid>,
        limit: usize,
    ) -> Result<Vec<store::StoredKey>, StoreError> {
        let client = self.kv_client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, subject, wrapped FROM caseledger_keys \
                 WHERE ($1::uuid IS NULL OR id > $1) AND ($2::uuid IS NULL OR id = $2) \
                 ORDER BY id LIMIT $3",
            )
            .await
            .map_err(from_postgres)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&after, &only, &limit])
            .await
            .map_err(from_postgres)?;
        Ok(rows
            .into_iter()
            .map(|row| store::StoredKey {
                id: row.get(0),
                subject: row.get(1),
                wrapped: row.get(2),
            })
            .collect())
    }

    /// [`store::EventStore::destroy_keys`].
    pub(crate) async fn key_destroy(&self, subject: &str) -> Result<u64, StoreError> {
        let client = self.kv_client().await?;
        let statement = client
            .prepare_cached("DELETE FROM caseledger_keys WHERE subject = $1")
            .await
            .map_err(from_postgres)?;
        client
            .execute(&statement, &[&subject])
            .await
            .map_err(from_postgres)
    }
}

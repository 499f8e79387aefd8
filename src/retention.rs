//! Retention: what the service no longer needs is deleted by age, in batches, on a timer.
//!
//! - Published outbox rows after `OUTBOX_RETENTION_SECONDS` (7 days): Kafka has the events; the
//!   rows are kept that long for investigations. An unpublished row is never deleted.
//! - Idempotency keys after `IDEMPOTENCY_KEY_RETENTION_SECONDS` (1 day): until then a retry with
//!   the same key replays the first answer; after it, the key is free again. Clients must not
//!   retry a request with the same key later than that.
//!
//! Each batch is one short statement (at most `BATCH` rows), so the pass never holds many locks
//! or a long transaction; it runs on the background pool.

use std::time::Duration;

use chrono::Utc;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::RunQueryDsl;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::Database;
use crate::error::{AppError, AppResult};
use crate::metrics as m;

/// Rows one statement deletes at most.
const BATCH: i64 = 5_000;

const DELETE_OUTBOX: &str = "DELETE FROM outbox WHERE id IN (\
     SELECT id FROM outbox WHERE created_at < $1 AND published_at IS NOT NULL \
     ORDER BY created_at LIMIT $2)";

const DELETE_KEYS: &str = "DELETE FROM idempotency_keys WHERE (user_id, key) IN (\
     SELECT user_id, key FROM idempotency_keys WHERE created_at < $1 \
     ORDER BY created_at LIMIT $2)";

/// Rows one pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub outbox: usize,
    pub idempotency_keys: usize,
}

/// What the retention pass uses: the (background) database pool, the two ages and its period.
#[derive(Clone)]
pub struct Retention {
    db: Database,
    outbox_age: Duration,
    key_age: Duration,
    period: Duration,
}

impl Retention {
    pub fn new(db: Database, config: &Config) -> Self {
        Self {
            db,
            outbox_age: Duration::from_secs(config.outbox_retention_seconds),
            key_age: Duration::from_secs(config.idempotency_key_retention_seconds),
            period: Duration::from_secs(config.retention_interval_seconds.max(1)),
        }
    }

    /// Prunes every RETENTION_INTERVAL_SECONDS until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.period) => {}
            }
            if let Err(err) = self.prune_once().await {
                tracing::warn!(error = %err, "retention pass failed");
            }
        }
    }

    /// Deletes everything past its age, batch after batch.
    pub async fn prune_once(&self) -> AppResult<Pruned> {
        Ok(Pruned {
            outbox: self.prune(DELETE_OUTBOX, self.outbox_age, "outbox").await?,
            idempotency_keys: self
                .prune(DELETE_KEYS, self.key_age, "idempotency_keys")
                .await?,
        })
    }

    async fn prune(&self, sql: &str, age: Duration, table: &'static str) -> AppResult<usize> {
        let age = chrono::Duration::from_std(age).map_err(|_| {
            AppError::internal(anyhow::anyhow!("retention age of {table} out of range"))
        })?;
        let cutoff = Utc::now() - age;
        let mut deleted = 0;
        loop {
            let mut conn = self.db.conn().await?;
            let batch = diesel::sql_query(sql)
                .bind::<Timestamptz, _>(cutoff)
                .bind::<BigInt, _>(BATCH)
                .execute(&mut conn)
                .await?;
            deleted += batch;
            metrics::counter!(m::RETENTION_DELETED_TOTAL, "table" => table).increment(batch as u64);
            if (batch as i64) < BATCH {
                return Ok(deleted);
            }
        }
    }
}

//! The seat map of each schedule, served from a short-lived Redis cache that every hold, payment
//! and cancellation invalidates, and the seat changes pushed to `seatChanges` subscribers on
//! every instance (one Redis channel, fanned out in process).
//!
//! Free-seat counts (`availableSeats`, shown for every schedule of a concert page) are cached in
//! process for the same TTL and dropped by the same changes, this instance's and (through the
//! channel) every other's.
//!
//! A reader that loaded the map just before a change may write it back just after the
//! invalidation; the short TTL bounds how long such a stale map or count can be served, as it does
//! for a hold that runs out (no event until the sweeper). The hold path never trusts either: it
//! locks the rows.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::catalogue::Seat;
use crate::db::enums::SeatStatus;
use crate::ids::{ScheduleId, SeatId};
use crate::redis_store::RedisStore;

/// Seats of one schedule that changed status together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatChange {
    pub schedule_id: ScheduleId,
    pub seat_ids: Vec<SeatId>,
    pub status: SeatStatus,
}

#[derive(Clone)]
pub struct SeatMap {
    redis: RedisStore,
    ttl_seconds: u64,
    changes: broadcast::Sender<Arc<SeatChange>>,
    /// Free seats per schedule, for `ttl_seconds`.
    counts: moka::sync::Cache<ScheduleId, i64>,
}

impl SeatMap {
    pub fn new(redis: RedisStore, ttl_seconds: u64) -> Self {
        Self {
            redis,
            ttl_seconds,
            changes: broadcast::channel(1_024).0,
            counts: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(ttl_seconds.max(1)))
                .build(),
        }
    }

    /// The cached free-seat counts among `schedules`.
    pub fn cached_counts(&self, schedules: &[ScheduleId]) -> HashMap<ScheduleId, i64> {
        let mut found = HashMap::new();
        if self.ttl_seconds == 0 {
            return found;
        }
        for &id in schedules {
            if let Some(count) = self.counts.get(&id) {
                found.insert(id, count);
            }
        }
        found
    }

    /// Caches freshly counted free seats.
    pub fn store_counts(&self, counts: &HashMap<ScheduleId, i64>) {
        if self.ttl_seconds == 0 {
            return;
        }
        for (&id, &count) in counts {
            self.counts.insert(id, count);
        }
    }

    fn key(&self, schedule: ScheduleId) -> String {
        self.redis.key(&format!("seatmap:{schedule}"))
    }

    /// The pub/sub channel seat changes travel on between instances.
    pub fn channel(&self) -> String {
        self.redis.key("seats:changes")
    }

    /// The cached maps among `schedules`. The cache is an optimisation: when Redis fails, this
    /// answers nothing and the caller reads PostgreSQL.
    pub async fn cached(&self, schedules: &[ScheduleId]) -> HashMap<ScheduleId, Vec<Seat>> {
        if self.ttl_seconds == 0 || schedules.is_empty() {
            return HashMap::new();
        }
        let keys: Vec<String> = schedules.iter().map(|&id| self.key(id)).collect();
        let found: redis::RedisResult<Vec<Option<Vec<u8>>>> = async {
            let mut conn =
                self.redis.conn().await.map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::Io, "no connection"))
                })?;
            redis::cmd("MGET").arg(&keys).query_async(&mut *conn).await
        }
        .await;
        match found {
            Ok(values) => schedules
                .iter()
                .zip(values)
                .filter_map(|(&id, value)| Some((id, serde_json::from_slice(&value?).ok()?)))
                .collect(),
            Err(err) => {
                tracing::warn!(error = %err, "seat map cache unreadable; reading PostgreSQL");
                HashMap::new()
            }
        }
    }

    /// Caches freshly loaded maps for `SEAT_MAP_CACHE_TTL_SECONDS`.
    pub async fn store(&self, maps: &HashMap<ScheduleId, Vec<Seat>>) {
        if self.ttl_seconds == 0 || maps.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (&id, seats) in maps {
            if let Ok(json) = serde_json::to_vec(seats) {
                pipe.set_ex(self.key(id), json, self.ttl_seconds).ignore();
            }
        }
        if let Ok(mut conn) = self.redis.conn().await
            && let Err(err) = pipe.query_async::<()>(&mut *conn).await
        {
            tracing::warn!(error = %err, "could not cache seat maps");
        }
    }

    /// After a committed change: drops the cached map and tells every instance's subscribers.
    pub async fn changed(&self, change: SeatChange) {
        self.counts.invalidate(&change.schedule_id);
        let payload = serde_json::to_string(&change).expect("a seat change always serializes");
        let mut pipe = redis::pipe();
        pipe.del(self.key(change.schedule_id))
            .ignore()
            .publish(self.channel(), payload)
            .ignore();
        let result = match self.redis.conn().await {
            Ok(mut conn) => pipe
                .query_async::<()>(&mut *conn)
                .await
                .map_err(anyhow::Error::from),
            Err(err) => Err(anyhow::Error::from(err)),
        };
        if let Err(err) = result {
            // The TTL still bounds staleness; subscribers miss this one change.
            tracing::warn!(error = %err, schedule = %change.schedule_id, "could not invalidate the seat map");
        }
    }

    /// Handles one message of the seat-change channel.
    pub fn receive(&self, payload: &[u8]) {
        match serde_json::from_slice::<SeatChange>(payload) {
            Ok(change) => {
                self.counts.invalidate(&change.schedule_id);
                let _ = self.changes.send(Arc::new(change)); // no subscriber is fine
            }
            Err(err) => tracing::warn!(error = %err, "ignoring a malformed seat change"),
        }
    }

    /// Every seat change seen by this instance from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<SeatChange>> {
        self.changes.subscribe()
    }
}

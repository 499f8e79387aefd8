//! The seat map of each schedule, served from a short-lived Redis cache that every hold, payment
//! and cancellation invalidates, and the seat changes pushed to `seatChanges` subscribers on
//! every instance (one Redis channel, fanned out in process).
//!
//! A reader that loaded the map just before a change may write it back just after the
//! invalidation; the short TTL bounds how long such a stale map can be served. The hold path never
//! trusts the map: it locks the rows.

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
}

impl SeatMap {
    pub fn new(redis: RedisStore, ttl_seconds: u64) -> Self {
        Self {
            redis,
            ttl_seconds,
            changes: broadcast::channel(1_024).0,
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

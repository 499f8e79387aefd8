//! The seat maps of schedules, cached in Redis for `SEAT_MAP_CACHE_TTL_SECONDS` (shared by every
//! instance). The cache is an optimisation: when Redis fails, reads answer nothing and the caller
//! reads PostgreSQL; writes and invalidations are dropped.

use std::collections::HashMap;

use crate::catalogue::Seat;
use crate::ids::ScheduleId;
use crate::redis_store::RedisStore;

#[derive(Clone)]
pub struct MapCache {
    redis: RedisStore,
    ttl_seconds: u64,
}

impl MapCache {
    pub fn new(redis: RedisStore, ttl_seconds: u64) -> Self {
        Self { redis, ttl_seconds }
    }

    pub(super) fn key(&self, schedule: ScheduleId) -> String {
        self.redis.key(&format!("seatmap:{schedule}"))
    }

    /// The cached maps among `schedules`.
    pub async fn get(&self, schedules: &[ScheduleId]) -> HashMap<ScheduleId, Vec<Seat>> {
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

    /// Caches freshly loaded maps.
    pub async fn put(&self, maps: &HashMap<ScheduleId, Vec<Seat>>) {
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
}

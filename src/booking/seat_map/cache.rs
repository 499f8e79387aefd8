//! The seat maps of schedules, cached for `SEAT_MAP_CACHE_TTL_SECONDS` at two levels:
//! - in process (each instance's own copy, read with no round trip and nothing to decode: a
//!   cached seat map costs its GraphQL execution only), dropped by every change this instance
//!   makes or hears of on the change feed;
//! - in Redis, shared by every instance, so a map is read from PostgreSQL about once per TTL for
//!   all of them.
//!
//! A map can be stale only when a change was missed (a lost feed message, or the race in
//! `seat_map`'s notes): for at most the TTL in process plus the TTL in Redis. The cache is an
//! optimisation: when Redis fails, reads answer nothing and the caller reads PostgreSQL; writes
//! and invalidations are dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::catalogue::Seat;
use crate::ids::ScheduleId;
use crate::redis_store::RedisStore;

#[derive(Clone)]
pub struct MapCache {
    redis: RedisStore,
    ttl_seconds: u64,
    local: moka::sync::Cache<ScheduleId, Arc<Vec<Seat>>>,
}

impl MapCache {
    pub fn new(redis: RedisStore, ttl_seconds: u64) -> Self {
        Self {
            redis,
            ttl_seconds,
            local: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(ttl_seconds.max(1)))
                .build(),
        }
    }

    /// Drops this instance's copy of a schedule's map (after a change it made or heard of).
    pub fn invalidate(&self, schedule: ScheduleId) {
        self.local.invalidate(&schedule);
    }

    pub(super) fn key(&self, schedule: ScheduleId) -> String {
        self.redis.key(&format!("seatmap:{schedule}"))
    }

    /// The cached maps among `schedules`: this instance's copies, then Redis for the rest.
    pub async fn get(&self, schedules: &[ScheduleId]) -> HashMap<ScheduleId, Vec<Seat>> {
        if self.ttl_seconds == 0 || schedules.is_empty() {
            return HashMap::new();
        }
        let mut maps = HashMap::with_capacity(schedules.len());
        let mut elsewhere = Vec::new();
        for &id in schedules {
            match self.local.get(&id) {
                Some(seats) => {
                    maps.insert(id, seats.as_ref().clone());
                }
                None => elsewhere.push(id),
            }
        }
        if !elsewhere.is_empty() {
            let shared = self.shared(&elsewhere).await;
            for (&id, seats) in &shared {
                self.local.insert(id, Arc::new(seats.clone()));
            }
            maps.extend(shared);
        }
        maps
    }

    /// The maps among `schedules` cached in Redis.
    async fn shared(&self, schedules: &[ScheduleId]) -> HashMap<ScheduleId, Vec<Seat>> {
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
            self.local.insert(id, Arc::new(seats.clone()));
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

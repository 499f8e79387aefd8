//! The seat map of each schedule as fans see it, kept fresh across instances:
//! - [`cache`]: the maps, cached in process and in Redis for a short TTL;
//! - [`counts`]: free-seat counts, cached in process for the same TTL;
//! - [`feed`]: the seat changes pushed to `seatChanges` subscribers on every instance.
//!
//! After every committed hold, payment, cancellation or release, [`SeatMap::changed`] drops the
//! cached map and count and publishes the change, in one Redis round trip. A reader that loaded the
//! map just before a change may write it back just after the invalidation; the short TTL bounds
//! how long such a stale map or count can be served, as it does for a hold that runs out (no event
//! until the sweeper). The hold path never trusts either: it locks the rows.

pub mod cache;
pub mod counts;
pub mod feed;

use crate::ids::ScheduleId;
use crate::redis_store::RedisStore;
use cache::MapCache;
use counts::CountCache;
use feed::ChangeFeed;

pub use feed::SeatChange;

#[derive(Clone)]
pub struct SeatMap {
    redis: RedisStore,
    pub maps: MapCache,
    pub counts: CountCache,
    pub feed: ChangeFeed,
}

impl SeatMap {
    pub fn new(redis: RedisStore, ttl_seconds: u64) -> Self {
        Self {
            maps: MapCache::new(redis.clone(), ttl_seconds),
            counts: CountCache::new(ttl_seconds),
            feed: ChangeFeed::new(redis.key("seats:changes")),
            redis,
        }
    }

    /// After a committed change: drops the cached map and count, and tells every instance's
    /// subscribers.
    pub async fn changed(&self, change: SeatChange) {
        let payload = serde_json::to_string(&change).expect("a seat change always serializes");
        let mut pipe = redis::pipe();
        pipe.del(self.maps.key(change.schedule_id))
            .ignore()
            .publish(self.feed.channel(), payload)
            .ignore();
        self.forget(change.schedule_id, &pipe).await;
    }

    /// After a schedule's seats were laid out or repriced (no seat changed status): drops the
    /// cached map and count here and in Redis. Other instances' own copies run out within the
    /// TTL.
    pub async fn dropped(&self, schedule: ScheduleId) {
        let mut pipe = redis::pipe();
        pipe.del(self.maps.key(schedule)).ignore();
        self.forget(schedule, &pipe).await;
    }

    /// Drops this instance's map and count of `schedule`, then runs `pipe` (which drops the
    /// shared map, and may tell the other instances) in one round trip. A Redis failure is only
    /// logged: the TTL still bounds staleness, and subscribers miss this one change.
    async fn forget(&self, schedule: ScheduleId, pipe: &redis::Pipeline) {
        self.counts.invalidate(schedule);
        self.maps.invalidate(schedule);
        let result = match self.redis.conn().await {
            Ok(mut conn) => pipe
                .query_async::<()>(&mut *conn)
                .await
                .map_err(anyhow::Error::from),
            Err(err) => Err(anyhow::Error::from(err)),
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, schedule = %schedule, "could not invalidate the seat map");
        }
    }

    /// Handles one message of the seat-change channel (from any instance, this one included).
    pub fn receive(&self, payload: &[u8]) {
        match serde_json::from_slice::<SeatChange>(payload) {
            Ok(change) => {
                self.counts.invalidate(change.schedule_id);
                self.maps.invalidate(change.schedule_id);
                self.feed.deliver(change);
            }
            Err(err) => tracing::warn!(error = %err, "ignoring a malformed seat change"),
        }
    }
}

//! The booking path's load, shared by every instance through Redis, for adaptive admission.
//!
//! Each instance adds what its booking limit measured ([`Load`]) to a per-second bucket
//! (`q:load:<unix second>`, a hash kept for a minute) once a second. The admitter of a concert,
//! on whichever instance holds its lease, reads the last few whole seconds, summed over every
//! instance: the booking path is one database shared by all of them, so its health is judged as
//! a whole. Redis rather than the lease holder's own view, because one instance alone sees only
//! its share of the traffic (and none of it when a load balancer sends it none).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::AppResult;
use crate::limit::{BookingLimit, Load};
use crate::queue::{Queue, now_ms, unavailable};

/// How many whole seconds the admitter looks back over.
pub const WINDOW_SECONDS: i64 = 2;
/// How long a bucket is kept.
const BUCKET_TTL_SECONDS: i64 = 60;

impl Queue {
    fn load_key(&self, second: i64) -> String {
        self.redis.key(&format!("q:load:{second}"))
    }

    /// Adds `load` to the current second's bucket.
    pub async fn publish_load(&self, load: Load) -> AppResult<()> {
        if load == Load::default() {
            return Ok(());
        }
        let key = self.load_key(now_ms() / 1000);
        let mut conn = self.conn().await?;
        let _: () = redis::pipe()
            .atomic()
            .hincr(&key, "completed", load.completed)
            .ignore()
            .hincr(&key, "slow", load.slow)
            .ignore()
            .hincr(&key, "refused", load.refused)
            .ignore()
            .expire(&key, BUCKET_TTL_SECONDS)
            .ignore()
            .query_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The load of the last [`WINDOW_SECONDS`] whole seconds, over every instance.
    pub async fn recent_load(&self) -> AppResult<Load> {
        let now = now_ms() / 1000;
        let mut pipe = redis::pipe();
        for second in now - WINDOW_SECONDS..now {
            pipe.cmd("HMGET")
                .arg(self.load_key(second))
                .arg(&["completed", "slow", "refused"]);
        }
        let mut conn = self.conn().await?;
        let buckets: Vec<(Option<u64>, Option<u64>, Option<u64>)> =
            pipe.query_async(&mut *conn).await.map_err(unavailable)?;
        let mut total = Load::default();
        for (completed, slow, refused) in buckets {
            total.add(Load {
                completed: completed.unwrap_or(0),
                slow: slow.unwrap_or(0),
                refused: refused.unwrap_or(0),
            });
        }
        Ok(total)
    }
}

/// Publishes this instance's booking load once a second until cancelled. A failed publish keeps
/// its load for the next one.
pub async fn run_publisher(queue: Queue, limit: BookingLimit, cancel: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = Load::default();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        pending.add(limit.take_load());
        match queue.publish_load(pending).await {
            Ok(()) => pending = Load::default(),
            Err(err) => tracing::debug!(error = %err, "booking load not published"),
        }
    }
}

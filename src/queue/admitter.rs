//! The admitter: every tick, for each concert with a queue, the instance holding that concert's
//! lease runs the tick script (expire, drop the absent, admit up to the rate and cap) and
//! broadcasts the outcome. Any number of instances may run it; the lease, checked inside the
//! script, makes one of them the only one that admits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::AppResult;
use crate::ids::ConcertId;
use crate::metrics as m;
use crate::queue::broadcast::Tick;
use crate::queue::{Keys, Queue, now_ms, unavailable};

pub struct Admitter {
    queue: Queue,
    instance: String,
    /// Per concert: when its budget was last computed, and the fraction of an admission carried
    /// over, so the rate holds over time whatever the tick jitter.
    pace: Mutex<HashMap<ConcertId, Pace>>,
}

struct Pace {
    last: Instant,
    credit: f64,
}

impl Admitter {
    pub fn new(queue: Queue) -> Self {
        Self {
            queue,
            instance: uuid::Uuid::new_v4().to_string(),
            pace: Mutex::default(),
        }
    }

    /// Ticks every QUEUE_TICK_MS until cancelled. Redis failures are logged and retried on the
    /// next tick, so admission resumes by itself when Redis returns.
    pub async fn run(self, cancel: CancellationToken) {
        let mut interval =
            tokio::time::interval(Duration::from_millis(self.queue.settings.tick_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = interval.tick() => {}
            }
            if let Err(err) = self.tick_all().await {
                metrics::counter!(m::QUEUE_TICK_FAILURES_TOTAL).increment(1);
                let cause = std::error::Error::source(&err).map(ToString::to_string);
                tracing::warn!(error = %err, cause, "queue admission tick failed");
            }
        }
    }

    /// One tick over every concert that has a queue.
    pub async fn tick_all(&self) -> AppResult<()> {
        let concerts: Vec<i64> = {
            let mut conn = self.queue.conn().await?;
            redis::cmd("SMEMBERS")
                .arg(self.queue.concerts_key())
                .query_async(&mut *conn)
                .await
                .map_err(unavailable)?
        };
        for concert in concerts.into_iter().map(ConcertId) {
            let budget = self.budget(concert);
            match self.tick(concert, budget).await {
                Ok(Some(_)) => {}
                // Another instance leads this concert: start afresh if the lease comes back.
                Ok(None) => {
                    self.pace
                        .lock()
                        .expect("pace map is never poisoned")
                        .remove(&concert);
                }
                Err(err) => {
                    self.refund(concert, budget);
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Admissions allowed now: the configured rate times the time since this concert's last
    /// budget (so a late tick makes up for its delay, up to three periods), plus the fraction
    /// carried over.
    fn budget(&self, concert: ConcertId) -> u32 {
        let settings = self.queue.settings();
        let period = Duration::from_millis(settings.tick_ms.max(1));
        let now = Instant::now();
        let mut pace = self.pace.lock().expect("pace map is never poisoned");
        let pace = pace.entry(concert).or_insert(Pace {
            last: now - period,
            credit: 0.0,
        });
        let elapsed = now.duration_since(pace.last).min(period * 3);
        pace.last = now;
        let total = pace.credit + settings.admit_per_second * elapsed.as_secs_f64();
        let whole = total.floor();
        pace.credit = total - whole;
        whole as u32
    }

    /// Gives back the budget of a tick that failed, so the next one makes up for it.
    fn refund(&self, concert: ConcertId, budget: u32) {
        if let Some(pace) = self
            .pace
            .lock()
            .expect("pace map is never poisoned")
            .get_mut(&concert)
        {
            pace.credit += f64::from(budget);
        }
    }

    /// Runs one tick of `concert`, admitting at most `admit_max`. `None` when another instance
    /// holds the concert's lease.
    pub async fn tick(&self, concert: ConcertId, admit_max: u32) -> AppResult<Option<Tick>> {
        let settings = self.queue.settings();
        let keys = Keys::new(&self.queue.redis, concert);
        let lease_ms = (settings.tick_ms * 3).max(2_000);
        let mut conn = self.queue.conn().await?;
        let leader: i64 = self
            .queue
            .scripts
            .lease
            .key(keys.named("lease"))
            .arg(&self.instance)
            .arg(lease_ms)
            .invoke_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        if leader != 1 {
            return Ok(None);
        }
        let now = now_ms();
        type Reply = (u64, u64, u64, u64, u64, u64, String, Vec<u64>, Vec<i64>);
        let reply: Option<Reply> = self
            .queue
            .scripts
            .tick
            .key(keys.named("waiting"))
            .key(keys.named("active"))
            .key(keys.named("seen"))
            .key(keys.named("gone"))
            .key(keys.named("meta"))
            .key(keys.named("lease"))
            .key(self.queue.concerts_key())
            .arg(&self.instance)
            .arg(now)
            .arg(admit_max)
            .arg(settings.active_cap)
            .arg(settings.active_ttl_ms)
            .arg(settings.waiting_grace_ms)
            .arg(keys.token_prefix())
            .arg(keys.user_prefix())
            .arg(settings.record_ttl_seconds)
            .arg(concert.0)
            .invoke_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        let Some((head, waiting, active, admitted, expired, abandoned, rate, gone, waits)) = reply
        else {
            return Ok(None);
        };
        let tick = Tick {
            concert_id: concert,
            head,
            gone,
            waiting,
            active,
            admitted,
            expired,
            abandoned,
            rate: rate.parse().unwrap_or(0.0),
            at_ms: now,
        };
        record_metrics(&tick, &waits);
        let message = serde_json::to_string(&tick).expect("a tick always serializes");
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.queue.ticks_channel())
            .arg(message)
            .query_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(Some(tick))
    }
}

fn record_metrics(tick: &Tick, waits_ms: &[i64]) {
    let concert = tick.concert_id.to_string();
    metrics::gauge!(m::QUEUE_WAITING, "concert" => concert.clone()).set(tick.waiting as f64);
    metrics::gauge!(m::QUEUE_ACTIVE, "concert" => concert.clone()).set(tick.active as f64);
    metrics::gauge!(m::QUEUE_ADMISSION_RATE, "concert" => concert.clone()).set(tick.rate);
    metrics::counter!(m::QUEUE_ADMISSIONS_TOTAL, "concert" => concert.clone())
        .increment(tick.admitted);
    metrics::counter!(m::QUEUE_EXPIRED_TOTAL, "concert" => concert.clone()).increment(tick.expired);
    metrics::counter!(m::QUEUE_ABANDONED_TOTAL, "concert" => concert.clone())
        .increment(tick.abandoned);
    let wait = metrics::histogram!(m::QUEUE_WAIT_SECONDS, "concert" => concert);
    for ms in waits_ms {
        wait.record(*ms as f64 / 1000.0);
    }
}

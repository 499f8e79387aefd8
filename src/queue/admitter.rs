//! The admitter: every tick, for each concert with a queue, the instance holding that concert's
//! lease runs the tick script (expire, free idle slots, drop the absent, admit up to the rate and
//! cap unless sold out) and broadcasts the outcome. Any number of instances may run it; the
//! lease, checked inside the script, makes one of them the only one that admits.
//!
//! Each tick also reads, in one checkout of the database, every queued concert's [`settings`]
//! (so a change applies on the next tick), which of them still have a seat to sell, and their
//! sale times: before a concert's opening nobody is admitted, and at the opening its pre-queue is
//! shuffled into the line ([`opening`]). Once a second it adapts each concert's rate to the
//! booking path's load ([`admission`]).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::catalogue::opening::QueueOpening;
use crate::catalogue::{Concert, Schedule};
use crate::db::Database;
use crate::error::AppResult;
use crate::ids::ConcertId;
use crate::limit::Load;
use crate::metrics as m;
use crate::queue::broadcast::Tick;
use crate::queue::settings::{self, ConcertQueue};
use crate::queue::{Keys, Queue, admission, now_ms, opening, unavailable};

pub struct Admitter {
    queue: Queue,
    db: Database,
    instance: String,
    /// The tick period the budget is computed for (QUEUE_TICK_MS).
    period: Duration,
    /// Per concert: when its budget was last computed, the fraction of an admission carried
    /// over (so the rate holds over time whatever the tick jitter), and its adaptive rate.
    pace: Mutex<HashMap<ConcertId, Pace>>,
    /// The last plan read from the database, used while the database cannot be read.
    last_plan: Mutex<Plan>,
    /// When the rates were last adapted.
    last_control: Mutex<Option<Instant>>,
}

struct Pace {
    last: Instant,
    credit: f64,
    /// The adaptive admission rate (the concert's maximum when adaptation is off).
    rate: f64,
    /// Fans waiting at the last tick: only a backlog is a reason to raise the rate.
    waiting: u64,
    /// Fans in the pre-queue at the last tick: an opening is owed once the sale opens.
    prequeued: u64,
}

/// What the database says about the queued concerts.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub settings: HashMap<ConcertId, ConcertQueue>,
    /// The concerts with a seat left to sell (the others are sold out).
    pub on_sale: HashSet<ConcertId>,
    /// Each concert's schedules, for its sale times.
    pub schedules: HashMap<ConcertId, Vec<Schedule>>,
}

impl Plan {
    /// The settings of `concert`: its own, or the defaults if the database never answered.
    fn settings_of(&self, queue: &Queue, concert: ConcertId) -> ConcertQueue {
        self.settings
            .get(&concert)
            .cloned()
            .unwrap_or_else(|| settings::defaults(queue.settings(), concert))
    }

    /// Sold out only when the database said so: an unknown concert is on sale.
    fn sold_out(&self, concert: ConcertId) -> bool {
        self.settings.contains_key(&concert) && !self.on_sale.contains(&concert)
    }

    /// Where the concert's sale stands at `now`; None when the database never said (then no
    /// pre-queue is opened: it could be early).
    fn opening(&self, concert: ConcertId, now: DateTime<Utc>) -> Option<QueueOpening> {
        self.settings.contains_key(&concert).then(|| {
            QueueOpening::of(
                self.schedules.get(&concert).map_or(&[][..], Vec::as_slice),
                now,
            )
        })
    }
}

impl Admitter {
    /// An admitter over `queue`, reading settings and seats through `db`.
    pub fn new(queue: Queue, db: Database) -> Self {
        let period = Duration::from_millis(queue.settings().tick_ms.max(1));
        Self {
            queue,
            db,
            period,
            instance: uuid::Uuid::new_v4().to_string(),
            pace: Mutex::default(),
            last_plan: Mutex::default(),
            last_control: Mutex::default(),
        }
    }

    /// The same admitter, budgeting as if it ticked every `period` (tests tick by hand).
    pub fn with_period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// The adaptive admission rate of `concert`, once this admitter has budgeted for it.
    pub fn rate_of(&self, concert: ConcertId) -> Option<f64> {
        self.pace
            .lock()
            .expect("pace map is never poisoned")
            .get(&concert)
            .map(|pace| pace.rate)
    }

    /// Ticks every QUEUE_TICK_MS until cancelled. Redis failures are logged and retried on the
    /// next tick, so admission resumes by itself when Redis returns.
    pub async fn run(self, cancel: CancellationToken) {
        let mut interval = tokio::time::interval(self.period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let failing = metrics::gauge!(m::QUEUE_ADMITTER_FAILING);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = interval.tick() => {}
            }
            match self.tick_all().await {
                Ok(()) => failing.set(0.0),
                Err(err) => {
                    failing.set(1.0);
                    metrics::counter!(m::QUEUE_TICK_FAILURES_TOTAL).increment(1);
                    let cause = std::error::Error::source(&err).map(ToString::to_string);
                    tracing::warn!(error = %err, cause, "queue admission tick failed");
                }
            }
        }
    }

    /// One tick over every concert that has a queue.
    pub async fn tick_all(&self) -> AppResult<()> {
        let concerts: Vec<ConcertId> = {
            let mut conn = self.queue.conn().await?;
            let ids: Vec<i64> = redis::cmd("SMEMBERS")
                .arg(self.queue.concerts_key())
                .query_async(&mut *conn)
                .await
                .map_err(unavailable)?;
            ids.into_iter().map(ConcertId).collect()
        };
        if concerts.is_empty() {
            return Ok(());
        }
        let plan = self.plan(&concerts).await;
        let load = self.load_if_due().await;
        for concert in concerts {
            let settings = plan.settings_of(&self.queue, concert);
            let sold_out = plan.sold_out(concert);
            let opening = plan.opening(concert, Utc::now());
            let opens_at = opening.and_then(|opening| opening.opens_at());
            if let Some(QueueOpening::Open { since }) = opening {
                self.open_if_owed(concert, since).await;
            }
            let budget = self.budget(&settings, load.as_ref(), sold_out || opens_at.is_some());
            match self
                .tick_with(concert, budget, &settings, sold_out, opens_at)
                .await
            {
                Ok(Some(tick)) => {
                    if let Some(pace) = self.pace.lock().expect("never poisoned").get_mut(&concert)
                    {
                        pace.waiting = tick.waiting;
                        pace.prequeued = tick.prequeued;
                    }
                }
                // Another instance leads this concert: start afresh if the lease comes back, and
                // export zeros for its line rather than this instance's last values.
                Ok(None) => {
                    self.pace
                        .lock()
                        .expect("pace map is never poisoned")
                        .remove(&concert);
                    clear_metrics(concert);
                }
                Err(err) => {
                    self.refund(concert, budget);
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// The opening of `concert`'s pre-queue, if the last tick saw fans in it (the sale has opened:
    /// `since`, or now when the sale has no opening time any more). A failure is logged and the
    /// opening tried again on the next tick; the other concerts tick meanwhile.
    async fn open_if_owed(&self, concert: ConcertId, since: Option<DateTime<Utc>>) {
        let owed = self
            .pace
            .lock()
            .expect("pace map is never poisoned")
            .get(&concert)
            .is_some_and(|pace| pace.prequeued > 0);
        if !owed {
            return;
        }
        let at = since.unwrap_or_else(Utc::now);
        let opened = match self.lease(concert).await {
            Ok(true) => opening::open(&self.queue, &self.db, &self.instance, concert, at)
                .await
                .map(|_| ()),
            Ok(false) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = opened {
            metrics::counter!(m::QUEUE_TICK_FAILURES_TOTAL).increment(1);
            tracing::warn!(error = %err, %concert, "queue opening failed; retried next tick");
        }
    }

    /// The queued concerts' settings, which of them are on sale, and their sale times: one
    /// checkout, three reads. If
    /// the database cannot answer, the last plan (admission must not stop because the catalogue
    /// is briefly unreachable).
    pub async fn plan(&self, concerts: &[ConcertId]) -> Plan {
        let read = async {
            let mut conn = self.db.conn().await?;
            let settings = settings::load(&mut conn, self.queue.settings(), concerts).await?;
            let on_sale = Concert::with_free_seats(&mut conn, concerts).await?;
            let schedules = Schedule::for_concerts(&mut conn, concerts).await?;
            AppResult::Ok(Plan {
                settings,
                on_sale: on_sale.into_iter().collect(),
                schedules,
            })
        };
        let mut last = self
            .last_plan
            .lock()
            .expect("plan is never poisoned")
            .clone();
        match read.await {
            Ok(plan) => {
                last = plan.clone();
                *self.last_plan.lock().expect("plan is never poisoned") = plan;
            }
            Err(err) => {
                tracing::warn!(error = %err, "queue settings not read; using the last ones")
            }
        }
        last
    }

    /// The booking path's load, once a second (None between): when the rates adapt.
    async fn load_if_due(&self) -> Option<Load> {
        if !self.queue.settings().adaptive {
            return None;
        }
        {
            let mut last = self.last_control.lock().expect("never poisoned");
            if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
                return None;
            }
            *last = Some(Instant::now());
        }
        match self.queue.recent_load().await {
            Ok(load) => Some(load),
            Err(err) => {
                tracing::debug!(error = %err, "booking load not read");
                None
            }
        }
    }

    /// Admissions allowed now: the concert's rate (adapted to `load` when there is one) times
    /// the time since its last budget (so a late tick makes up for its delay, up to three
    /// periods), plus the fraction carried over. None while paused, sold out or not open yet
    /// (`stopped`).
    fn budget(&self, settings: &ConcertQueue, load: Option<&Load>, stopped: bool) -> u32 {
        let period = self.period;
        let now = Instant::now();
        let mut pace = self.pace.lock().expect("pace map is never poisoned");
        let pace = pace.entry(settings.concert_id).or_insert(Pace {
            last: now - period,
            credit: 0.0,
            rate: settings.admit_per_second,
            waiting: 0,
            prequeued: 0,
        });
        let backlog = pace.waiting > 0 && !stopped && !settings.paused;
        pace.rate = match load {
            Some(load) => admission::next_rate(pace.rate, settings.admit_per_second, load, backlog),
            None if self.queue.settings().adaptive => pace.rate.min(settings.admit_per_second),
            None => settings.admit_per_second,
        };
        metrics::gauge!(m::QUEUE_ADMISSION_TARGET_RATE, "concert" => settings.concert_id.to_string())
            .set(pace.rate);
        let elapsed = now.duration_since(pace.last).min(period * 3);
        pace.last = now;
        if settings.paused || stopped {
            pace.credit = 0.0;
            return 0;
        }
        let total = pace.credit + pace.rate * elapsed.as_secs_f64();
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

    /// How long a lease lasts: three ticks, at least 2 s.
    fn lease_ms(&self) -> u64 {
        (self.queue.settings().tick_ms * 3).max(2_000)
    }

    /// Takes or renews `concert`'s lease; false when another instance holds it.
    async fn lease(&self, concert: ConcertId) -> AppResult<bool> {
        let keys = Keys::new(&self.queue.redis, concert);
        let mut conn = self.queue.conn().await?;
        let leader: i64 = self
            .queue
            .scripts
            .lease
            .key(keys.named("lease"))
            .arg(&self.instance)
            .arg(self.lease_ms())
            .invoke_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(leader == 1)
    }

    /// Runs one tick of `concert` with the default settings, on sale, admitting at most
    /// `admit_max`. `None` when another instance holds the concert's lease.
    pub async fn tick(&self, concert: ConcertId, admit_max: u32) -> AppResult<Option<Tick>> {
        let defaults = settings::defaults(self.queue.settings(), concert);
        self.tick_with(concert, admit_max, &defaults, false, None)
            .await
    }

    /// Runs one tick of `concert` under `concert_settings`, admitting at most `admit_max` (none
    /// when `sold_out`, or before `opens_at`). `None` when another instance holds the concert's
    /// lease.
    pub async fn tick_with(
        &self,
        concert: ConcertId,
        admit_max: u32,
        concert_settings: &ConcertQueue,
        sold_out: bool,
        opens_at: Option<DateTime<Utc>>,
    ) -> AppResult<Option<Tick>> {
        let settings = self.queue.settings();
        let keys = Keys::new(&self.queue.redis, concert);
        let lease_ms = self.lease_ms();
        if !self.lease(concert).await? {
            return Ok(None);
        }
        let mut conn = self.queue.conn().await?;
        let now = now_ms();
        type Reply = (
            u64,
            u64,
            u64,
            u64,
            u64,
            u64,
            String,
            Vec<u64>,
            Vec<i64>,
            u64,
            u8,
            u64,
        );
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
            .key(keys.named("idle"))
            .key(keys.named("pre"))
            .key(keys.named("late"))
            .arg(&self.instance)
            .arg(now)
            .arg(admit_max)
            .arg(concert_settings.active_cap)
            .arg(concert_settings.active_ttl_seconds * 1000)
            .arg(settings.waiting_grace_ms)
            .arg(keys.token_prefix())
            .arg(keys.user_prefix())
            .arg(settings.record_ttl_seconds)
            .arg(concert.0)
            .arg(u8::from(sold_out))
            .arg(settings.active_idle_ms)
            .arg(lease_ms)
            .arg(opens_at.map_or(0, |at| at.timestamp_millis()))
            .invoke_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        let Some((
            head,
            waiting,
            active,
            admitted,
            expired,
            abandoned,
            rate,
            gone,
            waits,
            idled,
            sold_out,
            prequeued,
        )) = reply
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
            idled,
            sold_out: sold_out == 1,
            prequeued,
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

/// The gauges of a concert's line, zeroed on every tick another instance leads it (the lease
/// holder exports the real values; the dashboards take the maximum over instances, so a last
/// value left here by a former holder would hide the line emptying).
fn clear_metrics(concert: ConcertId) {
    let concert = concert.to_string();
    for name in [
        m::QUEUE_WAITING,
        m::QUEUE_ACTIVE,
        m::QUEUE_ADMISSION_RATE,
        m::QUEUE_ADMISSION_TARGET_RATE,
        m::QUEUE_SOLD_OUT,
        m::QUEUE_PREQUEUE,
    ] {
        metrics::gauge!(name, "concert" => concert.clone()).set(0.0);
    }
}

fn record_metrics(tick: &Tick, waits_ms: &[i64]) {
    let concert = tick.concert_id.to_string();
    metrics::gauge!(m::QUEUE_WAITING, "concert" => concert.clone()).set(tick.waiting as f64);
    metrics::gauge!(m::QUEUE_ACTIVE, "concert" => concert.clone()).set(tick.active as f64);
    metrics::gauge!(m::QUEUE_PREQUEUE, "concert" => concert.clone()).set(tick.prequeued as f64);
    metrics::gauge!(m::QUEUE_ADMISSION_RATE, "concert" => concert.clone()).set(tick.rate);
    metrics::counter!(m::QUEUE_ADMISSIONS_TOTAL, "concert" => concert.clone())
        .increment(tick.admitted);
    metrics::counter!(m::QUEUE_EXPIRED_TOTAL, "concert" => concert.clone()).increment(tick.expired);
    metrics::counter!(m::QUEUE_ABANDONED_TOTAL, "concert" => concert.clone())
        .increment(tick.abandoned);
    metrics::counter!(m::QUEUE_IDLED_TOTAL, "concert" => concert.clone()).increment(tick.idled);
    metrics::gauge!(m::QUEUE_SOLD_OUT, "concert" => concert.clone())
        .set(f64::from(u8::from(tick.sold_out)));
    let wait = metrics::histogram!(m::QUEUE_WAIT_SECONDS, "concert" => concert);
    for ms in waits_ms {
        wait.record(*ms as f64 / 1000.0);
    }
}

//! The expiry sweeper: every EXPIRY_SWEEP_INTERVAL_MS it expires past-due holds in batches (their
//! `seats.expired` events go out through the outbox), and as a backstop frees seats whose hold ran
//! out more than EXPIRY_BACKSTOP_SECONDS ago that no consumer released, and ends the queue tokens
//! of the fans who held them (the consumer does both when it handles the event).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use diesel_async::AsyncConnection;
use tokio_util::sync::CancellationToken;

use crate::booking::expiry;
use crate::booking::seat_map::{SeatChange, SeatMap};
use crate::config::Config;
use crate::db::Database;
use crate::db::enums::SeatStatus;
use crate::error::AppResult;
use crate::metrics as m;
use crate::queue::Queue;

/// What the sweeper uses: the database, the seat map to tell about freed seats, the queue whose
/// slots the backstop frees, its pace.
#[derive(Clone)]
pub struct Sweeper {
    db: Database,
    seat_map: SeatMap,
    queue: Queue,
    batch: i64,
    backstop: Duration,
    period: Duration,
}

impl Sweeper {
    pub fn new(db: Database, seat_map: SeatMap, queue: Queue, config: &Config) -> Self {
        Self {
            db,
            seat_map,
            queue,
            batch: config.expiry_sweep_batch,
            backstop: Duration::from_secs(config.expiry_backstop_seconds),
            period: Duration::from_millis(config.expiry_sweep_interval_ms),
        }
    }

    /// Sweeps every EXPIRY_SWEEP_INTERVAL_MS until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            if let Err(err) = self.sweep_once().await {
                tracing::warn!(error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "expiry sweep failed");
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.period) => {}
            }
        }
    }

    /// Expires what is due (batch after batch) and runs the backstop. Returns (expired, freed).
    pub async fn sweep_once(&self) -> AppResult<(usize, usize)> {
        let expired = self.expire_due().await?;
        let freed = self.run_backstop().await?;
        Ok((expired, freed))
    }

    async fn expire_due(&self) -> AppResult<usize> {
        let mut expired = 0;
        loop {
            let mut conn = self.db.conn().await?;
            let swept = conn
                .transaction(async |tx| expiry::sweep(tx, self.batch).await)
                .await?;
            expired += swept;
            metrics::counter!(m::HOLDS_EXPIRED_TOTAL).increment(swept as u64);
            if (swept as i64) < self.batch {
                return Ok(expired);
            }
        }
    }

    async fn run_backstop(&self) -> AppResult<usize> {
        let mut conn = self.db.conn().await?;
        let freed = expiry::backstop(&mut conn, self.backstop).await?;
        if freed.is_empty() {
            return Ok(0);
        }
        tracing::warn!(
            seats = freed.len(),
            "backstop freed seats no consumer released"
        );
        metrics::counter!(m::SEATS_RELEASED_TOTAL, "by" => "backstop")
            .increment(freed.len() as u64);
        let mut by_schedule: BTreeMap<_, Vec<_>> = BTreeMap::new();
        let mut holders = BTreeSet::new();
        for seat in &freed {
            by_schedule
                .entry(seat.schedule_id)
                .or_default()
                .push(seat.seat_id);
            if let Some(holder) = seat.holder {
                holders.insert((seat.concert_id, holder));
            }
        }
        for (concert, holder) in holders {
            if let Err(err) = self.queue.finish_for(concert, holder).await {
                tracing::warn!(error = %err, "the queue slot of a hold the backstop freed was not freed");
            }
        }
        for (schedule_id, seat_ids) in by_schedule {
            self.seat_map
                .changed(SeatChange {
                    schedule_id,
                    seat_ids,
                    status: SeatStatus::Available,
                })
                .await;
        }
        Ok(freed.len())
    }
}

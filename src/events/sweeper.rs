//! The expiry sweeper: every EXPIRY_SWEEP_INTERVAL_MS it expires past-due holds in batches (their
//! `seats.expired` events go out through the outbox), and as a backstop frees seats whose hold ran
//! out more than EXPIRY_BACKSTOP_SECONDS ago that no consumer released.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel_async::AsyncConnection;
use tokio_util::sync::CancellationToken;

use crate::booking::expiry;
use crate::booking::seat_map::SeatChange;
use crate::db::enums::SeatStatus;
use crate::error::AppResult;
use crate::metrics as m;
use crate::startup::Services;

pub async fn run(services: Services, cancel: CancellationToken) {
    let period = Duration::from_millis(services.config.expiry_sweep_interval_ms);
    loop {
        if let Err(err) = sweep_once(&services).await {
            tracing::warn!(error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "expiry sweep failed");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
    }
}

/// Expires what is due (batch after batch) and runs the backstop. Returns (expired, freed).
pub async fn sweep_once(services: &Services) -> AppResult<(usize, usize)> {
    let batch = services.config.expiry_sweep_batch;
    let mut expired = 0;
    loop {
        let mut conn = services.db.conn().await?;
        let holds = conn
            .transaction(async |tx| expiry::sweep(tx, batch).await)
            .await?;
        expired += holds.len();
        metrics::counter!(m::HOLDS_EXPIRED_TOTAL).increment(holds.len() as u64);
        if (holds.len() as i64) < batch {
            break;
        }
    }
    let backstop = Duration::from_secs(services.config.expiry_backstop_seconds);
    let mut conn = services.db.conn().await?;
    let freed = expiry::backstop(&mut conn, backstop).await?;
    if !freed.is_empty() {
        tracing::warn!(
            seats = freed.len(),
            "backstop freed seats no consumer released"
        );
        metrics::counter!(m::SEATS_RELEASED_TOTAL, "by" => "backstop")
            .increment(freed.len() as u64);
        let mut by_schedule: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for (schedule, seat) in &freed {
            by_schedule.entry(*schedule).or_default().push(*seat);
        }
        for (schedule_id, seat_ids) in by_schedule {
            services
                .seat_map
                .changed(SeatChange {
                    schedule_id,
                    seat_ids,
                    status: SeatStatus::Available,
                })
                .await;
        }
    }
    Ok((expired, freed.len()))
}

//! Seat holds. A hold locks the wanted seats with `FOR UPDATE SKIP LOCKED` in one transaction:
//! under a stampede nobody waits behind another fan's lock — each request either gets every seat
//! it asked for at once, or is told at once that they are gone, and holds nothing.

pub mod cancel;
pub mod expiry;
pub mod reservation;
pub mod seat_map;

use std::time::{Duration, Instant};

use diesel_async::AsyncPgConnection;

use crate::auth::Viewer;
use crate::catalogue::Seat;
use crate::catalogue::directory::ConcertDirectory;
use crate::config::Config;
use crate::db::Database;
use crate::db::enums::SeatStatus;
use crate::db::error::{raised, violates_unique};
use crate::error::{AppError, AppResult};
use crate::ids::{ReservationId, ScheduleId, SeatId, UserId};
use crate::limit::BookingLimit;
use crate::metrics as m;
use crate::queue::Queue;

pub use reservation::Reservation;
use seat_map::{SeatChange, SeatMap};

/// What holds and cancellations use: the database, the schedule → concert directory, the queue
/// that guards holds, the seat map they change, the booking limit and the hold settings.
#[derive(Clone)]
pub struct Booking {
    db: Database,
    concerts: ConcertDirectory,
    queue: Queue,
    seat_map: SeatMap,
    limit: BookingLimit,
    hold_ttl: Duration,
    hold_max_seats: u32,
    /// Paid bookings are refundable until this many hours before their performance.
    refund_deadline_hours: u64,
    /// Most seats of a performance per fan (None: no limit).
    max_tickets_per_fan: Option<u32>,
}

impl Booking {
    pub fn new(
        db: Database,
        concerts: ConcertDirectory,
        queue: Queue,
        seat_map: SeatMap,
        limit: BookingLimit,
        config: &Config,
    ) -> Self {
        Self {
            db,
            concerts,
            queue,
            seat_map,
            limit,
            hold_ttl: Duration::from_secs(config.hold_ttl_seconds),
            hold_max_seats: config.hold_max_seats,
            refund_deadline_hours: config.refund_deadline_hours,
            max_tickets_per_fan: (config.max_tickets_per_fan > 0)
                .then_some(config.max_tickets_per_fan),
        }
    }
}

/// Which seats a hold wants.
#[derive(Debug, Clone)]
pub enum SeatChoice {
    /// These seats, all or nothing.
    Chosen(Vec<SeatId>),
    /// `n` free seats: adjacent in one row when a row has them, else the best seats split.
    BestAvailable(u32),
}

impl SeatChoice {
    fn count(&self) -> usize {
        match self {
            Self::Chosen(ids) => ids.len(),
            Self::BestAvailable(n) => *n as usize,
        }
    }

    fn outcome_label(&self) -> &'static str {
        match self {
            Self::Chosen(_) => "chosen",
            Self::BestAvailable(_) => "best_available",
        }
    }
}

impl Booking {
    /// Holds seats of `schedule` for the viewer, who needs an ACTIVE queue token for its concert.
    pub async fn hold(
        &self,
        viewer: Viewer,
        queue_token: Option<&str>,
        schedule_id: ScheduleId,
        choice: SeatChoice,
    ) -> AppResult<Held> {
        validate(&choice, self.hold_max_seats)?;
        let schedule = self
            .concerts
            .schedule(&self.db, schedule_id)
            .await?
            .ok_or(AppError::NotFound("schedule"))?;
        schedule.check_on_sale(chrono::Utc::now())?;
        let concert = schedule.concert_id;
        let token = self
            .queue
            .require_active(viewer, concert, queue_token)
            .await?;
        if token.sold_out {
            // Told without touching the database: no seat of this concert is free right now.
            metrics::counter!(m::HOLDS_TOTAL, "kind" => choice.outcome_label(), "outcome" => "SOLD_OUT")
                .increment(1);
            return Err(AppError::SoldOut);
        }
        let slot = self.limit.enter()?;
        let mut conn = self.db.conn().await?;

        let started = Instant::now();
        let result = crate::retry_statement!(
            hold_once(
                &mut conn,
                viewer.user_id,
                schedule_id,
                &choice,
                self.hold_ttl,
                self.max_tickets_per_fan
            )
            .await
        );
        let outcome = match &result {
            Ok(_) => "held",
            Err(err) => err.code(),
        };
        metrics::counter!(m::HOLDS_TOTAL, "kind" => choice.outcome_label(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(m::HOLD_DURATION_SECONDS, "kind" => choice.outcome_label())
            .record(started.elapsed().as_secs_f64());
        drop(slot);
        let held = result?;
        // The fan holds seats: their ACTIVE slot is theirs until the hold ends (then idle time).
        if let Err(err) = self
            .queue
            .holding(concert, viewer.user_id, held.reservation.expires_at)
            .await
        {
            tracing::warn!(error = %err, "a hold's idle deadline was not moved");
        }
        let seat_ids = held.seats.iter().map(|seat| seat.id).collect();
        self.seat_map
            .changed(SeatChange {
                schedule_id,
                seat_ids,
                status: SeatStatus::Held,
            })
            .await;
        Ok(held)
    }
}

fn validate(choice: &SeatChoice, max_seats: u32) -> AppResult<()> {
    let count = choice.count();
    if count == 0 || count > max_seats as usize {
        return Err(AppError::InvalidInput(format!(
            "a hold takes 1 to {max_seats} seats"
        )));
    }
    if let SeatChoice::Chosen(ids) = choice {
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != ids.len() {
            return Err(AppError::InvalidInput("a seat is listed twice".into()));
        }
    }
    Ok(())
}

diesel::define_sql_function! {
    /// The hold, inside PostgreSQL (migrations `hold_in_one_statement`, `tickets_per_fan`): one
    /// statement, planned once per connection.
    fn hold_seats(
        user_id: diesel::sql_types::BigInt,
        schedule_id: diesel::sql_types::BigInt,
        seat_ids: diesel::sql_types::Nullable<diesel::sql_types::Array<diesel::sql_types::BigInt>>,
        best_count: diesel::sql_types::Integer,
        ttl_ms: diesel::sql_types::BigInt,
        max_per_fan: diesel::sql_types::Nullable<diesel::sql_types::Integer>,
    ) -> diesel::sql_types::Jsonb;
}

/// What `hold_seats` returns: the new reservation and its seats, so the answer to the client
/// needs no second read.
#[derive(Debug, serde::Deserialize)]
pub struct Held {
    pub reservation: Reservation,
    pub seats: Vec<Seat>,
}

/// One hold, one statement. A refusal raised by the function rolls it back whole.
async fn hold_once(
    conn: &mut AsyncPgConnection,
    user: UserId,
    schedule: ScheduleId,
    choice: &SeatChoice,
    ttl: Duration,
    max_per_fan: Option<u32>,
) -> AppResult<Held> {
    let (seat_ids, best_count) = match choice {
        SeatChoice::Chosen(ids) => (Some(ids.iter().map(|id| id.0).collect::<Vec<_>>()), 0),
        SeatChoice::BestAvailable(count) => (None, i32::try_from(*count).unwrap_or(i32::MAX)),
    };
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let limit = max_per_fan.map(|max| i32::try_from(max).unwrap_or(i32::MAX));
    let hold = diesel::select(hold_seats(
        user.0, schedule.0, seat_ids, best_count, ttl_ms, limit,
    ));
    let held: serde_json::Value = crate::db::one(hold, conn)
        .await
        .map_err(|err| refusal(err, max_per_fan))?;
    serde_json::from_value(held).map_err(AppError::internal)
}

/// The client's error for a refused hold: the function's own refusals, or the one-live-hold
/// constraint.
fn refusal(err: diesel::result::Error, max_per_fan: Option<u32>) -> AppError {
    if violates_unique(&err, "reservations_one_hold_per_user_schedule") {
        return AppError::HoldAlreadyExists;
    }
    match raised(&err) {
        Some("SEAT_UNAVAILABLE") => {
            metrics::counter!(m::SKIP_LOCKED_MISSES_TOTAL).increment(1);
            AppError::SeatUnavailable("the requested seats are no longer available".into())
        }
        Some("SEAT_NOT_IN_SCHEDULE") => {
            AppError::InvalidInput("a requested seat does not belong to this schedule".into())
        }
        Some("TICKET_LIMIT") => AppError::TicketLimit {
            max: max_per_fan.unwrap_or_default(),
        },
        _ => err.into(),
    }
}

diesel::define_sql_function! {
    /// The SQL function of that name (migration `pay_in_one_statement`): see [`set_seats_of`].
    #[sql_name = "set_seats_of"]
    fn set_seats_of_sql(
        reservation_id: diesel::sql_types::BigInt,
        new_status: crate::db::schema::sql_types::SeatStatus,
    ) -> diesel::sql_types::Array<diesel::sql_types::BigInt>;
}

/// Moves every seat of `reservation` to `status` (SOLD on payment, AVAILABLE on cancellation),
/// clearing its hold expiry. Returns the seats changed.
pub(crate) async fn set_seats_of(
    conn: &mut AsyncPgConnection,
    reservation: ReservationId,
    status: SeatStatus,
) -> AppResult<Vec<SeatId>> {
    let changed: Vec<i64> = crate::db::one(
        diesel::select(set_seats_of_sql(reservation.0, status)),
        conn,
    )
    .await?;
    Ok(changed.into_iter().map(SeatId).collect())
}

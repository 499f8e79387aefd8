//! Seat holds. A hold locks the wanted seats with `FOR UPDATE SKIP LOCKED` in one transaction:
//! under a stampede nobody waits behind another fan's lock — each request either gets every seat
//! it asked for at once, or is told at once that they are gone, and holds nothing.

mod cancel;
pub mod expiry;
pub mod reservation;
pub mod seat_map;

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::auth::Viewer;
use crate::catalogue::directory::ConcertDirectory;
use crate::catalogue::{Seat, seat_is_free};
use crate::config::Config;
use crate::db::Database;
use crate::db::enums::{ReservationStatus, SeatStatus};
use crate::db::error::violates_unique;
use crate::db::schema::{reservation_seats, reservations, seats};
use crate::error::{AppError, AppResult};
use crate::events::outbox::{self, Event, SeatsHeld};
use crate::ids::{ReservationId, ScheduleId, SeatId, UserId};
use crate::metrics as m;
use crate::queue::Queue;

pub use reservation::Reservation;
use seat_map::{SeatChange, SeatMap};

/// What holds and cancellations use: the database, the schedule → concert directory, the queue
/// that guards holds, the seat map they change, and the hold settings.
#[derive(Clone)]
pub struct Booking {
    db: Database,
    concerts: ConcertDirectory,
    queue: Queue,
    seat_map: SeatMap,
    hold_ttl: Duration,
    hold_max_seats: u32,
}

impl Booking {
    pub fn new(
        db: Database,
        concerts: ConcertDirectory,
        queue: Queue,
        seat_map: SeatMap,
        config: &Config,
    ) -> Self {
        Self {
            db,
            concerts,
            queue,
            seat_map,
            hold_ttl: Duration::from_secs(config.hold_ttl_seconds),
            hold_max_seats: config.hold_max_seats,
        }
    }
}

/// Which seats a hold wants.
#[derive(Debug, Clone)]
pub enum SeatChoice {
    /// These seats, all or nothing.
    Chosen(Vec<SeatId>),
    /// Any `n` free seats, best grade then lowest number first.
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
    ) -> AppResult<Reservation> {
        validate(&choice, self.hold_max_seats)?;
        let concert = self
            .concerts
            .concert_of(&self.db, schedule_id)
            .await?
            .ok_or(AppError::NotFound("schedule"))?;
        self.queue
            .require_active(viewer, concert, queue_token)
            .await?;
        let mut conn = self.db.conn().await?;

        let started = Instant::now();
        let ttl = self.hold_ttl;
        let result = crate::retry_transaction!(&mut conn, async |tx| hold_in_transaction(
            tx,
            viewer.user_id,
            schedule_id,
            &choice,
            ttl
        )
        .await);
        let outcome = match &result {
            Ok(_) => "held",
            Err(err) => err.code(),
        };
        metrics::counter!(m::HOLDS_TOTAL, "kind" => choice.outcome_label(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(m::HOLD_DURATION_SECONDS, "kind" => choice.outcome_label())
            .record(started.elapsed().as_secs_f64());
        let (reservation, seat_ids) = result?;
        self.seat_map
            .changed(SeatChange {
                schedule_id,
                seat_ids,
                status: SeatStatus::Held,
            })
            .await;
        Ok(reservation)
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

async fn hold_in_transaction(
    conn: &mut AsyncPgConnection,
    user: UserId,
    schedule: ScheduleId,
    choice: &SeatChoice,
    ttl: Duration,
) -> AppResult<(Reservation, Vec<SeatId>)> {
    // The caller's own hold on this schedule that ran out no longer counts as their one live hold.
    let own: Vec<ReservationId> = reservations::table
        .filter(reservations::user_id.eq(user))
        .filter(reservations::schedule_id.eq(schedule))
        .filter(reservations::status.eq(ReservationStatus::Held))
        .filter(reservations::expires_at.le(diesel::dsl::now))
        .select(reservations::id)
        .load(conn)
        .await?;
    expiry::expire(conn, &own).await?;

    // Lock what is free, in a fixed order, skipping rows another transaction is locking now.
    let locked: Vec<Seat> = match choice {
        SeatChoice::Chosen(ids) => {
            seats::table
                .filter(seats::id.eq_any(ids))
                .filter(seats::schedule_id.eq(schedule))
                .filter(seat_is_free())
                .order(seats::id)
                .select(Seat::as_select())
                .for_update()
                .skip_locked()
                .load(conn)
                .await?
        }
        SeatChoice::BestAvailable(count) => {
            seats::table
                .filter(seats::schedule_id.eq(schedule))
                .filter(seat_is_free())
                .order((seats::grade, seats::number))
                .limit(i64::from(*count))
                .select(Seat::as_select())
                .for_update()
                .skip_locked()
                .load(conn)
                .await?
        }
    };
    if locked.len() < choice.count() {
        metrics::counter!(m::SKIP_LOCKED_MISSES_TOTAL).increment(1);
        return Err(unavailable(conn, schedule, choice).await);
    }
    let seat_ids: Vec<SeatId> = locked.iter().map(|seat| seat.id).collect();

    // Seats whose hold ran out: end that hold first, so the seat can join this one.
    let past_due: Vec<SeatId> = locked
        .iter()
        .filter(|seat| seat.status == SeatStatus::Held)
        .map(|seat| seat.id)
        .collect();
    if !past_due.is_empty() {
        let holders: Vec<ReservationId> = reservation_seats::table
            .filter(reservation_seats::seat_id.eq_any(&past_due))
            .filter(reservation_seats::status.eq(ReservationStatus::Held))
            .select(reservation_seats::reservation_id)
            .load(conn)
            .await?;
        expiry::expire(conn, &holders).await?;
    }

    let expires_at = Utc::now() + ttl;
    let reservation: Reservation = diesel::insert_into(reservations::table)
        .values(reservation::NewReservation {
            user_id: user,
            schedule_id: schedule,
            status: ReservationStatus::Held,
            total_price: locked.iter().map(|seat| seat.price).sum(),
            expires_at,
        })
        .returning(Reservation::as_returning())
        .get_result(conn)
        .await
        .map_err(|err| {
            if violates_unique(&err, "reservations_one_hold_per_user_schedule") {
                AppError::HoldAlreadyExists
            } else {
                err.into()
            }
        })?;
    let rows: Vec<reservation::NewReservationSeat> = seat_ids
        .iter()
        .map(|&seat_id| reservation::NewReservationSeat {
            reservation_id: reservation.id,
            seat_id,
            status: ReservationStatus::Held,
        })
        .collect();
    diesel::insert_into(reservation_seats::table)
        .values(&rows)
        .execute(conn)
        .await?;
    diesel::update(seats::table.filter(seats::id.eq_any(&seat_ids)))
        .set((
            seats::status.eq(SeatStatus::Held),
            seats::held_until.eq(Some(expires_at)),
            seats::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    let held = Event::SeatsHeld(SeatsHeld {
        reservation_id: reservation.id,
        schedule_id: schedule,
        user_id: user,
        seat_ids: seat_ids.clone(),
        expires_at,
    });
    outbox::append(conn, schedule, &held).await?;
    Ok((reservation, seat_ids))
}

/// Why the seats could not all be locked: a seat of another schedule is bad input; anything else
/// means they are taken.
async fn unavailable(
    conn: &mut AsyncPgConnection,
    schedule: ScheduleId,
    choice: &SeatChoice,
) -> AppError {
    if let SeatChoice::Chosen(ids) = choice {
        let in_schedule: Result<i64, _> = seats::table
            .filter(seats::id.eq_any(ids))
            .filter(seats::schedule_id.eq(schedule))
            .count()
            .get_result(conn)
            .await;
        match in_schedule {
            Ok(found) if found < ids.len() as i64 => {
                return AppError::InvalidInput(
                    "a requested seat does not belong to this schedule".into(),
                );
            }
            Ok(_) => {}
            Err(err) => return err.into(),
        }
    }
    AppError::SeatUnavailable("the requested seats are no longer available".into())
}

/// Moves every seat of `reservation` to `status` (SOLD on payment, AVAILABLE on cancellation),
/// clearing its hold expiry. Returns the seats changed.
pub(crate) async fn set_seats_of(
    conn: &mut AsyncPgConnection,
    reservation: ReservationId,
    status: SeatStatus,
) -> AppResult<Vec<SeatId>> {
    let seat_ids = reservation_seats::table
        .filter(reservation_seats::reservation_id.eq(reservation))
        .select(reservation_seats::seat_id);
    let changed = diesel::update(seats::table.filter(seats::id.eq_any(seat_ids)))
        .set((
            seats::status.eq(status),
            seats::held_until.eq(None::<chrono::DateTime<Utc>>),
            seats::updated_at.eq(diesel::dsl::now),
        ))
        .returning(seats::id)
        .get_results(conn)
        .await?;
    Ok(changed)
}

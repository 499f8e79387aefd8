//! Paying a hold is one transaction: lock the hold, deduct the balance (never below zero: the
//! row's CHECK and the `points >= price` guard), append the ledger, record the payment (one per
//! reservation: a unique constraint), mark the seats SOLD and the reservation CONFIRMED, write the
//! outbox event. After commit the fan's queue token ends. Idempotent per key.

use std::time::Instant;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::account;
use crate::auth::Viewer;
use crate::booking::seat_map::SeatChange;
use crate::booking::{Reservation, set_seats_of};
use crate::catalogue::directory::ConcertDirectory;
use crate::db::enums::{LedgerReason, ReservationStatus, SeatStatus};
use crate::db::schema::{payments, reservations, users};
use crate::error::{AppError, AppResult};
use crate::events::outbox::{self, Event, PaymentCompleted};
use crate::ids::{ConcertId, ReservationId, ScheduleId, SeatId, UserId};
use crate::metrics as m;
use crate::payment::{Payments, idempotency};

/// What a successful payment returns, and what a retry with the same key replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub payment_id: i64,
    pub reservation_id: ReservationId,
    pub amount: i64,
    pub balance_after: i64,
    pub paid_at: DateTime<Utc>,
}

impl Payments {
    /// Pays the viewer's hold `reservation` with points.
    pub async fn pay(
        &self,
        viewer: Viewer,
        queue_token: Option<&str>,
        reservation: ReservationId,
        key: &str,
    ) -> AppResult<Receipt> {
        let started = Instant::now();
        let result = self.pay_once(viewer, queue_token, reservation, key).await;
        let outcome = match &result {
            Ok(_) => "paid",
            Err(err) => err.code(),
        };
        metrics::counter!(m::PAYMENTS_TOTAL, "outcome" => outcome).increment(1);
        metrics::histogram!(m::PAYMENT_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
        result
    }

    async fn pay_once(
        &self,
        viewer: Viewer,
        queue_token: Option<&str>,
        reservation_id: ReservationId,
        key: &str,
    ) -> AppResult<Receipt> {
        idempotency::validate_key(key)?;
        let user = viewer.user_id;
        let request = format!("pay reservation={reservation_id}");
        // The queue token names its concert, so the guard needs no query; the transaction then
        // checks that the reservation belongs to that concert. A retry of a payment that went
        // through replays its receipt even though its token has ended since.
        let concert = match self.queue.require_active_token(viewer, queue_token).await {
            Ok(concert) => concert,
            Err(refused) => {
                let mut conn = self.db.conn().await?;
                return match idempotency::replay(&mut conn, user, key, &request).await? {
                    Some(receipt) => Ok(receipt),
                    None => Err(refused),
                };
            }
        };

        let mut conn = self.db.conn().await?;
        let outcome = crate::retry_transaction!(&mut conn, async |tx| pay_in_transaction(
            tx,
            &self.concerts,
            user,
            concert,
            reservation_id,
            key,
            &request
        )
        .await);
        let receipt = match outcome? {
            Some((receipt, schedule_id, seat_ids)) => {
                self.seat_map
                    .changed(SeatChange {
                        schedule_id,
                        seat_ids,
                        status: SeatStatus::Sold,
                    })
                    .await;
                receipt
            }
            // A concurrent request with this key committed first: replay what it stored.
            None => idempotency::replay(&mut conn, user, key, &request)
                .await?
                .ok_or_else(|| {
                    AppError::internal(anyhow::anyhow!(
                        "idempotency key {key} claimed but not stored"
                    ))
                })?,
        };
        if let Some(token) = queue_token
            && let Err(err) = self.queue.finish(token).await
        {
            // The payment stands; the token will expire on its own.
            tracing::warn!(error = %err, "could not end the queue token after payment");
        }
        Ok(receipt)
    }
}

/// `None` when another request already claimed this idempotency key.
async fn pay_in_transaction(
    conn: &mut AsyncPgConnection,
    concerts: &ConcertDirectory,
    user: UserId,
    concert: ConcertId,
    reservation_id: ReservationId,
    key: &str,
    request: &str,
) -> AppResult<Option<(Receipt, ScheduleId, Vec<SeatId>)>> {
    if !idempotency::claim(conn, user, key, "pay", request).await? {
        return Ok(None);
    }
    let reservation = Reservation::lock_own(conn, reservation_id, user).await?;
    // The token is ACTIVE for `concert`; it does not admit to another concert's seats.
    if concerts
        .concert_of_on(conn, reservation.schedule_id)
        .await?
        != Some(concert)
    {
        return Err(AppError::QueueTokenInvalid);
    }
    match reservation.status {
        ReservationStatus::Held if reservation.expires_at > Utc::now() => {}
        ReservationStatus::Held | ReservationStatus::Expired => return Err(AppError::HoldExpired),
        ReservationStatus::Cancelled => return Err(AppError::HoldCancelled),
        ReservationStatus::Confirmed => return Err(AppError::AlreadyPaid),
    }
    let price = reservation.total_price;
    let balance_after = account::record(
        conn,
        user,
        -price,
        LedgerReason::Payment,
        Some(reservation_id),
    )
    .await?;
    let Some(balance_after) = balance_after else {
        let balance: i64 = users::table
            .find(user)
            .select(users::points)
            .first(conn)
            .await
            .optional()?
            .unwrap_or(0);
        return Err(AppError::InsufficientPoints { price, balance });
    };
    let (payment_id, paid_at): (i64, DateTime<Utc>) = diesel::insert_into(payments::table)
        .values((
            payments::reservation_id.eq(reservation_id),
            payments::user_id.eq(user),
            payments::amount.eq(price),
            payments::idempotency_key.eq(key),
        ))
        .returning((payments::id, payments::created_at))
        .get_result(conn)
        .await?;
    let sold = set_seats_of(conn, reservation_id, SeatStatus::Sold).await?;
    diesel::update(reservations::table.find(reservation_id))
        .set((
            reservations::status.eq(ReservationStatus::Confirmed),
            reservations::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    let receipt = Receipt {
        payment_id,
        reservation_id,
        amount: price,
        balance_after,
        paid_at,
    };
    let completed = Event::PaymentCompleted(PaymentCompleted {
        payment_id,
        reservation_id,
        amount: price,
        balance_after,
        paid_at,
    });
    outbox::append(conn, reservation.schedule_id, &completed).await?;
    idempotency::store(conn, user, key, &receipt).await?;
    Ok(Some((receipt, reservation.schedule_id, sold)))
}

//! Payments and points. Paying a hold is one transaction: lock the hold, deduct the balance (never
//! below zero: the row's CHECK and the `points >= price` guard), append the ledger, record the
//! payment (one per reservation: a unique constraint), mark the seats SOLD and the reservation
//! CONFIRMED, write the outbox event. After commit the fan's queue token ends. Every mutation is
//! idempotent per key.

pub mod idempotency;

use std::time::Instant;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::account::NewLedgerEntry;
use crate::auth::Viewer;
use crate::booking::seat_map::SeatChange;
use crate::booking::{Reservation, set_seats_of, write_event};
use crate::db::enums::{LedgerReason, ReservationStatus, SeatStatus};
use crate::db::schema::{payments, point_ledger, reservations, users};
use crate::error::{AppError, AppResult};
use crate::ids::{ConcertId, ReservationId, ScheduleId, SeatId, UserId};
use crate::metrics as m;
use crate::startup::Services;

/// What a successful payment returns, and what a retry with the same key replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub payment_id: i64,
    pub reservation_id: ReservationId,
    pub amount: i64,
    pub balance_after: i64,
    pub paid_at: DateTime<Utc>,
}

/// What a points charge returns, and replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeReceipt {
    pub amount: i64,
    pub balance_after: i64,
}

/// Pays the viewer's hold `reservation` with points.
pub async fn pay(
    services: &Services,
    viewer: Viewer,
    queue_token: Option<&str>,
    reservation: ReservationId,
    key: &str,
) -> AppResult<Receipt> {
    let started = Instant::now();
    let result = pay_once(services, viewer, queue_token, reservation, key).await;
    let outcome = match &result {
        Ok(_) => "paid",
        Err(err) => err.code(),
    };
    metrics::counter!(m::PAYMENTS_TOTAL, "outcome" => outcome).increment(1);
    metrics::histogram!(m::PAYMENT_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
    result
}

async fn pay_once(
    services: &Services,
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
    let concert = match services
        .queue
        .require_active_token(viewer, queue_token)
        .await
    {
        Ok(concert) => concert,
        Err(refused) => {
            let mut conn = services.db.conn().await?;
            return match idempotency::replay(&mut conn, user, key, &request).await? {
                Some(receipt) => Ok(receipt),
                None => Err(refused),
            };
        }
    };

    let mut conn = services.db.conn().await?;
    let outcome = crate::retry_transaction!(&mut conn, async |tx| pay_in_transaction(
        tx,
        services,
        user,
        concert,
        reservation_id,
        key,
        &request
    )
    .await);
    let receipt = match outcome? {
        Some((receipt, schedule_id, seat_ids)) => {
            services
                .seat_map
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
        && let Err(err) = services.queue.finish(token).await
    {
        // The payment stands; the token will expire on its own.
        tracing::warn!(error = %err, "could not end the queue token after payment");
    }
    Ok(receipt)
}

/// `None` when another request already claimed this idempotency key.
async fn pay_in_transaction(
    conn: &mut AsyncPgConnection,
    services: &Services,
    user: UserId,
    concert: ConcertId,
    reservation_id: ReservationId,
    key: &str,
    request: &str,
) -> AppResult<Option<(Receipt, ScheduleId, Vec<SeatId>)>> {
    if !idempotency::claim(conn, user, key, "pay", request).await? {
        return Ok(None);
    }
    let reservation: Reservation = reservations::table
        .find(reservation_id)
        .select(Reservation::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("reservation"))?;
    if reservation.user_id != user {
        return Err(AppError::NotOwner);
    }
    // The token is ACTIVE for `concert`; it does not admit to another concert's seats.
    if services
        .concerts
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
    let balance_after: Option<i64> =
        diesel::update(users::table.find(user).filter(users::points.ge(price)))
            .set(users::points.eq(users::points - price))
            .returning(users::points)
            .get_result(conn)
            .await
            .optional()?;
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
    if price > 0 {
        diesel::insert_into(point_ledger::table)
            .values(NewLedgerEntry {
                user_id: user,
                delta: -price,
                reason: LedgerReason::Payment,
                reservation_id: Some(reservation_id),
                balance_after,
            })
            .execute(conn)
            .await?;
    }
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
    write_event(
        conn,
        "payment.completed",
        reservation.schedule_id,
        serde_json::to_value(&receipt).map_err(AppError::internal)?,
    )
    .await?;
    idempotency::store(conn, user, key, &receipt).await?;
    Ok(Some((receipt, reservation.schedule_id, sold)))
}

/// Adds `amount` points to the viewer's balance, once per idempotency key.
pub async fn charge_points(
    services: &Services,
    viewer: Viewer,
    amount: i64,
    key: &str,
) -> AppResult<ChargeReceipt> {
    let max = services.config.max_charge_points;
    if !(1..=max).contains(&amount) {
        return Err(AppError::InvalidInput(format!(
            "a charge is 1 to {max} points"
        )));
    }
    idempotency::validate_key(key)?;
    let user = viewer.user_id;
    let request = format!("charge amount={amount}");
    let mut conn = services.db.conn().await?;
    if let Some(receipt) = idempotency::replay(&mut conn, user, key, &request).await? {
        return Ok(receipt);
    }
    let outcome = crate::retry_transaction!(&mut conn, async |tx| {
        if !idempotency::claim(tx, user, key, "charge", &request).await? {
            return Ok(None);
        }
        let balance_after: i64 = diesel::update(users::table.find(user))
            .set(users::points.eq(users::points + amount))
            .returning(users::points)
            .get_result(tx)
            .await
            .optional()?
            .ok_or(AppError::NotFound("user"))?;
        diesel::insert_into(point_ledger::table)
            .values(NewLedgerEntry {
                user_id: user,
                delta: amount,
                reason: LedgerReason::Charge,
                reservation_id: None,
                balance_after,
            })
            .execute(tx)
            .await?;
        let receipt = ChargeReceipt {
            amount,
            balance_after,
        };
        idempotency::store(tx, user, key, &receipt).await?;
        Ok(Some(receipt))
    });
    match outcome? {
        Some(receipt) => {
            metrics::counter!(m::POINT_CHARGES_TOTAL).increment(1);
            Ok(receipt)
        }
        None => idempotency::replay(&mut conn, user, key, &request)
            .await?
            .ok_or_else(|| {
                AppError::internal(anyhow::anyhow!(
                    "idempotency key {key} claimed but not stored"
                ))
            }),
    }
}

/// Cancels the viewer's reservation and frees its seats. A paid one is refunded to the balance.
pub async fn cancel(
    services: &Services,
    viewer: Viewer,
    reservation_id: ReservationId,
) -> AppResult<Reservation> {
    let user = viewer.user_id;
    let mut conn = services.db.conn().await?;
    let result = crate::retry_transaction!(&mut conn, async |tx| {
        let reservation: Reservation = reservations::table
            .find(reservation_id)
            .select(Reservation::as_select())
            .for_update()
            .first(tx)
            .await
            .optional()?
            .ok_or(AppError::NotFound("reservation"))?;
        if reservation.user_id != user {
            return Err(AppError::NotOwner);
        }
        match reservation.status {
            ReservationStatus::Held if reservation.expires_at > Utc::now() => {}
            ReservationStatus::Confirmed => {
                let balance_after: i64 = diesel::update(users::table.find(user))
                    .set(users::points.eq(users::points + reservation.total_price))
                    .returning(users::points)
                    .get_result(tx)
                    .await?;
                if reservation.total_price > 0 {
                    diesel::insert_into(point_ledger::table)
                        .values(NewLedgerEntry {
                            user_id: user,
                            delta: reservation.total_price,
                            reason: LedgerReason::Refund,
                            reservation_id: Some(reservation_id),
                            balance_after,
                        })
                        .execute(tx)
                        .await?;
                }
            }
            ReservationStatus::Held | ReservationStatus::Expired => {
                return Err(AppError::HoldExpired);
            }
            ReservationStatus::Cancelled => return Err(AppError::HoldCancelled),
        }
        let freed = set_seats_of(tx, reservation_id, SeatStatus::Available).await?;
        let cancelled: Reservation = diesel::update(reservations::table.find(reservation_id))
            .set((
                reservations::status.eq(ReservationStatus::Cancelled),
                reservations::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Reservation::as_returning())
            .get_result(tx)
            .await?;
        write_event(
            tx,
            "reservation.cancelled",
            reservation.schedule_id,
            serde_json::json!({ "reservation_id": reservation_id, "schedule_id": reservation.schedule_id, "refunded": reservation.status == ReservationStatus::Confirmed }),
        )
        .await?;
        Ok((cancelled, freed))
    });
    let outcome = match &result {
        Ok(_) => "cancelled",
        Err(err) => err.code(),
    };
    metrics::counter!(m::CANCELLATIONS_TOTAL, "outcome" => outcome).increment(1);
    let (cancelled, freed) = result?;
    let change = SeatChange {
        schedule_id: cancelled.schedule_id,
        seat_ids: freed,
        status: SeatStatus::Available,
    };
    services.seat_map.changed(change).await;
    Ok(cancelled)
}

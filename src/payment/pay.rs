//! Paying a hold is one statement, the `pay_reservation` SQL function (migration
//! `pay_in_one_statement`): claim the idempotency key, lock the hold, deduct the balance (never
//! below zero: the row's CHECK and the `points >= price` guard), append the ledger, record the
//! payment (one per reservation: a unique constraint), mark the seats SOLD and the reservation
//! CONFIRMED, write the `payment.completed` event, store the receipt. After commit the fan's
//! queue token ends. Idempotent per key.

use std::time::Instant;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};

use crate::auth::Viewer;
use crate::booking::seat_map::SeatChange;
use crate::db::enums::SeatStatus;
use crate::db::error::raised;
use crate::error::{AppError, AppResult};
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
        let _slot = self.limit.enter()?;
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
        let outcome = crate::retry_statement!(
            pay_once_in_db(&mut conn, user, concert, reservation_id, key, &request).await
        );
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

diesel::define_sql_function! {
    /// The payment, inside PostgreSQL (migration `pay_in_one_statement`).
    fn pay_reservation(
        user_id: diesel::sql_types::BigInt,
        concert_id: diesel::sql_types::BigInt,
        reservation_id: diesel::sql_types::BigInt,
        key: diesel::sql_types::Text,
        request: diesel::sql_types::Text,
    ) -> diesel::sql_types::Jsonb;
}

/// What `pay_reservation` answers when it claimed the key.
#[derive(Deserialize)]
struct Paid {
    receipt: Receipt,
    schedule_id: ScheduleId,
    seat_ids: Vec<SeatId>,
}

/// One payment, one statement. `None` when another request already claimed this idempotency
/// key. A refusal raised by the function rolls it back whole.
async fn pay_once_in_db(
    conn: &mut AsyncPgConnection,
    user: UserId,
    concert: ConcertId,
    reservation_id: ReservationId,
    key: &str,
    request: &str,
) -> AppResult<Option<(Receipt, ScheduleId, Vec<SeatId>)>> {
    let pay = diesel::select(pay_reservation(
        user.0,
        concert.0,
        reservation_id.0,
        key,
        request,
    ));
    let answer: serde_json::Value = crate::db::one(pay, conn).await.map_err(refusal)?;
    if answer.get("claimed") == Some(&serde_json::Value::Bool(false)) {
        return Ok(None);
    }
    let paid: Paid = serde_json::from_value(answer).map_err(AppError::internal)?;
    Ok(Some((paid.receipt, paid.schedule_id, paid.seat_ids)))
}

/// The client's error for a payment the function refused.
fn refusal(err: diesel::result::Error) -> AppError {
    let insufficient = |err: &diesel::result::Error| -> Option<AppError> {
        let diesel::result::Error::DatabaseError(_, info) = err else {
            return None;
        };
        let (price, balance) = info.details()?.split_once(' ')?;
        Some(AppError::InsufficientPoints {
            price: price.parse().ok()?,
            balance: balance.parse().ok()?,
        })
    };
    match raised(&err) {
        Some("NOT_FOUND") => AppError::NotFound("reservation"),
        Some("NOT_OWNER") => AppError::NotOwner,
        Some("QUEUE_TOKEN_INVALID") => AppError::QueueTokenInvalid,
        Some("HOLD_EXPIRED") => AppError::HoldExpired,
        Some("HOLD_CANCELLED") => AppError::HoldCancelled,
        Some("ALREADY_PAID") => AppError::AlreadyPaid,
        Some("INSUFFICIENT_POINTS") => insufficient(&err).unwrap_or_else(|| err.into()),
        _ => err.into(),
    }
}

//! Seat holds. Both mutations need an ACTIVE queue token of the caller for the schedule's concert
//! in the `Queue-Token` header.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, Subscription};
use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::broadcast;

use crate::booking::models::Payment;
use crate::booking::seat_map::SeatChange;
use crate::booking::{self, Reservation, SeatChoice};
use crate::db::enums::{ReservationStatus, SeatStatus};
use crate::error::AppError;
use crate::graphql::catalogue::{ScheduleObject, SeatObject};
use crate::graphql::{QueueTokenHeader, loaders, services, viewer};
use crate::ids::{ReservationId, ScheduleId, SeatId};
use crate::payment::{self, Receipt};

#[derive(Default)]
pub struct BookingMutation;

#[Object]
impl BookingMutation {
    /// Holds exactly these seats for a few minutes, or nothing: `SEAT_UNAVAILABLE` at once when any
    /// of them is taken. One live hold per fan and schedule.
    async fn hold_seats(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        seat_ids: Vec<ID>,
    ) -> Result<ReservationObject> {
        let schedule_id = ScheduleId::parse(&schedule_id)?;
        let seat_ids = seat_ids
            .iter()
            .map(SeatId::parse)
            .collect::<Result<Vec<_>, _>>()?;
        hold(ctx, schedule_id, SeatChoice::Chosen(seat_ids)).await
    }

    /// Holds any `count` free seats, best grade and lowest number first.
    async fn hold_best_available(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        count: i32,
    ) -> Result<ReservationObject> {
        let schedule_id = ScheduleId::parse(&schedule_id)?;
        let count = u32::try_from(count).unwrap_or(0);
        hold(ctx, schedule_id, SeatChoice::BestAvailable(count)).await
    }
}

#[derive(Default)]
pub struct BookingSubscription;

#[Subscription]
impl BookingSubscription {
    /// Seat status changes of one schedule as they commit (holds, payments, cancellations). A
    /// listener that falls too far behind skips to the newest changes: refetch the seat map then.
    async fn seat_changes(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
    ) -> Result<impl Stream<Item = SeatChangeObject>> {
        let schedule_id = ScheduleId::parse(&schedule_id)?;
        let mut changes = services(ctx).seat_map.subscribe();
        Ok(async_stream::stream! {
            loop {
                match changes.recv().await {
                    Ok(change) if change.schedule_id == schedule_id => yield SeatChangeObject(change),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}

/// Seats of a schedule that changed status together.
pub struct SeatChangeObject(Arc<SeatChange>);

#[Object(name = "SeatChange")]
impl SeatChangeObject {
    async fn schedule_id(&self) -> ID {
        self.0.schedule_id.into()
    }

    async fn seat_ids(&self) -> Vec<ID> {
        self.0.seat_ids.iter().map(|&id| id.into()).collect()
    }

    /// Their new status.
    async fn status(&self) -> SeatStatus {
        self.0.status
    }
}

#[derive(Default)]
pub struct PaymentMutation;

#[Object]
impl PaymentMutation {
    /// Pays your hold with points, in one transaction; ends your queue token. Needs the ACTIVE
    /// `Queue-Token`. Retrying with the same `idempotencyKey` replays the first result and never
    /// charges twice; the same key for another request is `IDEMPOTENCY_KEY_REUSED`.
    async fn pay(
        &self,
        ctx: &Context<'_>,
        reservation_id: ID,
        idempotency_key: String,
    ) -> Result<PaymentReceiptObject> {
        let viewer = viewer(ctx)?;
        let reservation_id = ReservationId::parse(&reservation_id)?;
        let queue_token = ctx
            .data_opt::<QueueTokenHeader>()
            .and_then(|header| header.0.as_deref());
        let receipt = payment::pay(
            services(ctx),
            viewer,
            queue_token,
            reservation_id,
            &idempotency_key,
        )
        .await?;
        Ok(PaymentReceiptObject(receipt))
    }

    /// Adds points to your balance (1 to MAX_CHARGE_POINTS), once per `idempotencyKey`.
    async fn charge_points(
        &self,
        ctx: &Context<'_>,
        amount: i64,
        idempotency_key: String,
    ) -> Result<PointCharge> {
        let viewer = viewer(ctx)?;
        let receipt =
            payment::charge_points(services(ctx), viewer, amount, &idempotency_key).await?;
        Ok(PointCharge {
            amount: receipt.amount,
            balance: receipt.balance_after,
        })
    }

    /// Cancels your reservation and frees its seats; a paid one is refunded to your balance.
    async fn cancel_reservation(
        &self,
        ctx: &Context<'_>,
        reservation_id: ID,
    ) -> Result<ReservationObject> {
        let viewer = viewer(ctx)?;
        let reservation_id = ReservationId::parse(&reservation_id)?;
        Ok(ReservationObject(
            payment::cancel(services(ctx), viewer, reservation_id).await?,
        ))
    }
}

/// The result of `chargePoints`.
#[derive(async_graphql::SimpleObject)]
pub struct PointCharge {
    pub amount: i64,
    /// Your balance after the charge.
    pub balance: i64,
}

/// The result of `pay`.
pub struct PaymentReceiptObject(pub Receipt);

#[Object(name = "PaymentReceipt")]
impl PaymentReceiptObject {
    async fn payment_id(&self) -> ID {
        self.0.payment_id.into()
    }

    async fn reservation_id(&self) -> ID {
        self.0.reservation_id.into()
    }

    /// Points charged.
    async fn amount(&self) -> i64 {
        self.0.amount
    }

    async fn balance_after(&self) -> i64 {
        self.0.balance_after
    }

    async fn paid_at(&self) -> DateTime<Utc> {
        self.0.paid_at
    }

    /// The booking, now CONFIRMED.
    async fn reservation(&self, ctx: &Context<'_>) -> Result<Option<ReservationObject>> {
        let mut conn = services(ctx).db.conn().await?;
        Ok(Reservation::find(&mut conn, self.0.reservation_id)
            .await
            .map_err(AppError::from)?
            .map(ReservationObject))
    }
}

async fn hold(
    ctx: &Context<'_>,
    schedule_id: ScheduleId,
    choice: SeatChoice,
) -> Result<ReservationObject> {
    let viewer = viewer(ctx)?;
    let queue_token = ctx
        .data_opt::<QueueTokenHeader>()
        .and_then(|header| header.0.as_deref());
    let reservation =
        booking::hold(services(ctx), viewer, queue_token, schedule_id, choice).await?;
    Ok(ReservationObject(reservation))
}

/// A hold, and the booking it becomes once paid.
pub struct ReservationObject(pub Reservation);

#[Object(name = "Reservation")]
impl ReservationObject {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    /// A HELD reservation whose time ran out reads EXPIRED, even before the expiry sweep.
    async fn status(&self) -> ReservationStatus {
        match self.0.status {
            ReservationStatus::Held if self.0.expires_at <= Utc::now() => {
                ReservationStatus::Expired
            }
            status => status,
        }
    }

    /// Sum of the seats' prices, in points.
    async fn total_price(&self) -> i64 {
        self.0.total_price
    }

    /// When an unpaid hold ends.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn schedule(&self, ctx: &Context<'_>) -> Result<Option<ScheduleObject>> {
        Ok(loaders(ctx)
            .schedules
            .load_one(self.0.schedule_id)
            .await?
            .map(ScheduleObject))
    }

    async fn seats(&self, ctx: &Context<'_>) -> Result<Vec<SeatObject>> {
        let seats = loaders(ctx)
            .seats_by_reservation
            .load_one(self.0.id)
            .await?;
        Ok(seats
            .unwrap_or_default()
            .into_iter()
            .map(SeatObject)
            .collect())
    }

    /// The payment, once paid.
    async fn payment(&self, ctx: &Context<'_>) -> Result<Option<PaymentObject>> {
        Ok(loaders(ctx)
            .payment_by_reservation
            .load_one(self.0.id)
            .await?
            .map(PaymentObject))
    }
}

/// A payment of a reservation.
pub struct PaymentObject(pub Payment);

#[Object(name = "Payment")]
impl PaymentObject {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    async fn amount(&self) -> i64 {
        self.0.amount
    }

    async fn paid_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

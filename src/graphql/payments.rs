//! Payments: `pay` pays a hold with points, and its receipt.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use crate::booking::Reservation;
use crate::error::AppError;
use crate::graphql::context::{app, queue_token, viewer};
use crate::graphql::reservations::ReservationObject;
use crate::ids::ReservationId;
use crate::payment::pay::Receipt;

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
        let receipt = app(ctx)
            .payments
            .pay(viewer, queue_token(ctx), reservation_id, &idempotency_key)
            .await?;
        Ok(PaymentReceiptObject(receipt))
    }
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
        let mut conn = app(ctx).db.conn().await?;
        Ok(Reservation::find(&mut conn, self.0.reservation_id)
            .await
            .map_err(AppError::from)?
            .map(ReservationObject))
    }
}

//! Points: `chargePoints` tops up the caller's balance.

use async_graphql::{Context, Object, Result};

use crate::graphql::context::{app, viewer};

#[derive(Default)]
pub struct PointsMutation;

#[Object]
impl PointsMutation {
    /// Adds points to your balance (1 to MAX_CHARGE_POINTS), once per `idempotencyKey`.
    async fn charge_points(
        &self,
        ctx: &Context<'_>,
        amount: i64,
        idempotency_key: String,
    ) -> Result<PointCharge> {
        let viewer = viewer(ctx)?;
        let receipt = app(ctx)
            .payments
            .charge_points(viewer, amount, &idempotency_key)
            .await?;
        Ok(PointCharge {
            amount: receipt.amount,
            balance: receipt.balance_after,
        })
    }
}

/// The result of `chargePoints`.
#[derive(async_graphql::SimpleObject)]
pub struct PointCharge {
    pub amount: i64,
    /// Your balance after the charge.
    pub balance: i64,
}

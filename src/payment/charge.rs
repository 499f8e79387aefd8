//! Topping up a balance with points (`chargePoints`), once per idempotency key.

use serde::{Deserialize, Serialize};

use crate::account;
use crate::auth::Viewer;
use crate::db::enums::LedgerReason;
use crate::error::{AppError, AppResult};
use crate::metrics as m;
use crate::payment::{Payments, idempotency};

/// What a points charge returns, and replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeReceipt {
    pub amount: i64,
    pub balance_after: i64,
}

impl Payments {
    /// Adds `amount` points to the viewer's balance, once per idempotency key.
    pub async fn charge_points(
        &self,
        viewer: Viewer,
        amount: i64,
        key: &str,
    ) -> AppResult<ChargeReceipt> {
        let max = self.max_charge_points;
        if !(1..=max).contains(&amount) {
            return Err(AppError::InvalidInput(format!(
                "a charge is 1 to {max} points"
            )));
        }
        idempotency::validate_key(key)?;
        let user = viewer.user_id;
        let request = format!("charge amount={amount}");
        let _slot = self.limit.enter()?;
        let mut conn = self.db.conn().await?;
        if let Some(receipt) = idempotency::replay(&mut conn, user, key, &request).await? {
            return Ok(receipt);
        }
        let outcome = crate::retry_transaction!(&mut conn, async |tx| {
            if !idempotency::claim(tx, user, key, "charge", &request).await? {
                return Ok(None);
            }
            let balance_after = account::record(tx, user, amount, LedgerReason::Charge, None)
                .await?
                .ok_or(AppError::NotFound("user"))?;
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
}

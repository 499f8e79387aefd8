//! The signed-in fan's own account: balance, ledger and bookings.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use crate::account::{LedgerEntry, User};
use crate::booking::Reservation;
use crate::db::enums::LedgerReason;
use crate::error::AppError;
use crate::graphql::context::{app, viewer};
use crate::graphql::reservations::ReservationObject;

const MAX_PAGE: i32 = 100;

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// You: balance, point ledger and reservations.
    async fn me(&self, ctx: &Context<'_>) -> Result<AccountObject> {
        let viewer = viewer(ctx)?;
        let mut conn = app(ctx).db.conn().await?;
        let user = User::find(&mut conn, viewer.user_id)
            .await
            .map_err(AppError::from)?
            .ok_or(AppError::NotFound("user"))?;
        Ok(AccountObject(user))
    }
}

pub struct AccountObject(User);

fn page(limit: i32) -> Result<i64, AppError> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit.into())
    } else {
        Err(AppError::InvalidInput(format!(
            "limit must be 1 to {MAX_PAGE}"
        )))
    }
}

#[Object(name = "Account")]
impl AccountObject {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Your balance in points; always the sum of your ledger.
    async fn points(&self) -> i64 {
        self.0.points
    }

    /// Every change to your balance, newest first.
    #[graphql(complexity = "super::cost::page(limit, MAX_PAGE) * child_complexity")]
    async fn ledger(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] limit: i32,
    ) -> Result<Vec<LedgerEntryObject>> {
        let mut conn = app(ctx).db.conn().await?;
        let entries = User::ledger(&mut conn, self.0.id, page(limit)?)
            .await
            .map_err(AppError::from)?;
        Ok(entries.into_iter().map(LedgerEntryObject).collect())
    }

    /// Your holds and bookings, newest first.
    #[graphql(complexity = "super::cost::page(limit, MAX_PAGE) * child_complexity")]
    async fn reservations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] limit: i32,
    ) -> Result<Vec<ReservationObject>> {
        let mut conn = app(ctx).db.conn().await?;
        let reservations = Reservation::of_user(&mut conn, self.0.id, page(limit)?)
            .await
            .map_err(AppError::from)?;
        Ok(reservations
            .into_iter()
            .map(ReservationObject::from)
            .collect())
    }
}

pub struct LedgerEntryObject(LedgerEntry);

#[Object(name = "LedgerEntry")]
impl LedgerEntryObject {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    /// Points added (positive) or taken (negative).
    async fn delta(&self) -> i64 {
        self.0.delta
    }

    async fn reason(&self) -> LedgerReason {
        self.0.reason
    }

    async fn reservation_id(&self) -> Option<ID> {
        self.0.reservation_id.map(Into::into)
    }

    async fn balance_after(&self) -> i64 {
        self.0.balance_after
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

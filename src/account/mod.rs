//! Fans' accounts: the point balance and the ledger every balance change is written to.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::enums::LedgerReason;
use crate::db::schema::{point_ledger, users};
use crate::ids::{ReservationId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub points: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub name: String,
    pub points: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = point_ledger)]
pub struct NewLedgerEntry {
    pub user_id: UserId,
    pub delta: i64,
    pub reason: LedgerReason,
    pub reservation_id: Option<ReservationId>,
    pub balance_after: i64,
}

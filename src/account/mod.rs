//! Fans' accounts: the point balance and the ledger every balance change is written to.

use chrono::{DateTime, Utc};
use diesel::prelude::{Identifiable, Insertable, Queryable, Selectable};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, QueryResult, SelectableHelper};

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

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = point_ledger, check_for_backend(diesel::pg::Pg))]
pub struct LedgerEntry {
    pub id: i64,
    pub delta: i64,
    pub reason: LedgerReason,
    pub reservation_id: Option<ReservationId>,
    pub balance_after: i64,
    pub created_at: DateTime<Utc>,
}

impl User {
    pub async fn find(
        conn: &mut diesel_async::AsyncPgConnection,
        id: UserId,
    ) -> QueryResult<Option<User>> {
        use diesel_async::RunQueryDsl;
        users::table
            .find(id)
            .select(User::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// The newest `limit` ledger entries, newest first.
    pub async fn ledger(
        conn: &mut diesel_async::AsyncPgConnection,
        id: UserId,
        limit: i64,
    ) -> QueryResult<Vec<LedgerEntry>> {
        use diesel_async::RunQueryDsl;
        point_ledger::table
            .filter(point_ledger::user_id.eq(id))
            .order(point_ledger::id.desc())
            .limit(limit)
            .select(LedgerEntry::as_select())
            .load(conn)
            .await
    }

    /// The newest `limit` reservations, newest first.
    pub async fn reservations(
        conn: &mut diesel_async::AsyncPgConnection,
        id: UserId,
        limit: i64,
    ) -> QueryResult<Vec<crate::booking::Reservation>> {
        use crate::db::schema::reservations;
        use diesel_async::RunQueryDsl;
        reservations::table
            .filter(reservations::user_id.eq(id))
            .order(reservations::id.desc())
            .limit(limit)
            .select(crate::booking::Reservation::as_select())
            .load(conn)
            .await
    }
}

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
        crate::db::one(users::table.find(id).select(User::as_select()), conn)
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
}

diesel::define_sql_function! {
    /// The SQL function of that name (migration `pay_in_one_statement`): see [`record`].
    fn record_points(
        user_id: diesel::sql_types::BigInt,
        delta: diesel::sql_types::BigInt,
        reason: crate::db::schema::sql_types::LedgerReason,
        reservation_id: diesel::sql_types::Nullable<diesel::sql_types::BigInt>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::BigInt>;
}

/// Adds `delta` points (negative: takes them) to a balance and writes the ledger entry, on the
/// caller's connection, in one statement. Returns the balance after, or `None` when the user does
/// not exist or, for a debit, has fewer points than it takes (the balance never goes below
/// zero). Payments, top-ups and refunds all go through it.
pub async fn record(
    conn: &mut diesel_async::AsyncPgConnection,
    user: UserId,
    delta: i64,
    reason: LedgerReason,
    reservation_id: Option<ReservationId>,
) -> QueryResult<Option<i64>> {
    let record = diesel::select(record_points(
        user.0,
        delta,
        reason,
        reservation_id.map(|id| id.0),
    ));
    crate::db::one(record, conn).await
}

/// Refunds every reservation of `reservations` its `total_price`, to its fan, each with its
/// ledger entry, in one statement (the function of [`record`], once per row). Returns the
/// points refunded in all.
pub async fn refund_all(
    conn: &mut diesel_async::AsyncPgConnection,
    reservations: &[ReservationId],
) -> QueryResult<i64> {
    use crate::db::schema::reservations as r;
    use diesel::NullableExpressionMethods;
    use diesel_async::RunQueryDsl;
    if reservations.is_empty() {
        return Ok(0);
    }
    let refunds: Vec<(i64, Option<i64>)> = r::table
        .filter(r::id.eq_any(reservations))
        .select((
            r::total_price,
            record_points(
                r::user_id,
                r::total_price,
                LedgerReason::Refund,
                r::id.nullable(),
            ),
        ))
        .load(conn)
        .await?;
    Ok(refunds.iter().map(|(price, _)| price).sum())
}

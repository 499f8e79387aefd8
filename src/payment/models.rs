//! The payment row: one per paid reservation.

use chrono::{DateTime, Utc};
use diesel::prelude::{Queryable, Selectable};
use diesel::{ExpressionMethods, QueryDsl, QueryResult, SelectableHelper};

use crate::ids::ReservationId;

/// A payment row: one per paid reservation.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crate::db::schema::payments, check_for_backend(diesel::pg::Pg))]
pub struct Payment {
    pub id: i64,
    pub reservation_id: ReservationId,
    pub amount: i64,
    pub created_at: DateTime<Utc>,
}

impl Payment {
    pub async fn for_reservations(
        conn: &mut diesel_async::AsyncPgConnection,
        ids: &[ReservationId],
    ) -> QueryResult<std::collections::HashMap<ReservationId, Payment>> {
        use crate::db::schema::payments;
        use diesel_async::RunQueryDsl;
        let rows: Vec<Payment> = payments::table
            .filter(payments::reservation_id.eq_any(ids))
            .select(Payment::as_select())
            .load(conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.reservation_id, row))
            .collect())
    }
}

//! Reservations (a hold, and the booking it becomes once paid) and their seats: the rows and
//! the queries on them.

use chrono::{DateTime, Utc};
use diesel::prelude::{Identifiable, Queryable, Selectable};
use diesel::{ExpressionMethods, QueryDsl, QueryResult, SelectableHelper};

use crate::db::enums::ReservationStatus;
use crate::db::schema::{reservation_seats, reservations};
use crate::ids::{ReservationId, ScheduleId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, serde::Deserialize)]
#[diesel(table_name = reservations, check_for_backend(diesel::pg::Pg))]
pub struct Reservation {
    pub id: ReservationId,
    pub user_id: UserId,
    pub schedule_id: ScheduleId,
    pub status: ReservationStatus,
    pub total_price: i64,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Reservation {
    /// Locks the reservation `id` (`FOR UPDATE`, in the caller's transaction) and checks that it
    /// belongs to `user`: `NOT_FOUND`, `NOT_OWNER` otherwise. Every change to a reservation
    /// starts here.
    pub async fn lock_own(
        conn: &mut diesel_async::AsyncPgConnection,
        id: ReservationId,
        user: UserId,
    ) -> crate::error::AppResult<Reservation> {
        use crate::error::AppError;
        use diesel::OptionalExtension;
        let locked = reservations::table
            .find(id)
            .select(Reservation::as_select())
            .for_update();
        let reservation: Reservation = crate::db::one(locked, conn)
            .await
            .optional()?
            .ok_or(AppError::NotFound("reservation"))?;
        if reservation.user_id != user {
            return Err(AppError::NotOwner);
        }
        Ok(reservation)
    }

    /// The newest `limit` reservations of a user, newest first.
    pub async fn of_user(
        conn: &mut diesel_async::AsyncPgConnection,
        user: UserId,
        limit: i64,
    ) -> QueryResult<Vec<Reservation>> {
        use diesel_async::RunQueryDsl;
        reservations::table
            .filter(reservations::user_id.eq(user))
            .order(reservations::id.desc())
            .limit(limit)
            .select(Reservation::as_select())
            .load(conn)
            .await
    }

    pub async fn find(
        conn: &mut diesel_async::AsyncPgConnection,
        id: ReservationId,
    ) -> QueryResult<Option<Reservation>> {
        use diesel::OptionalExtension;
        let query = reservations::table
            .find(id)
            .select(Reservation::as_select());
        crate::db::one(query, conn).await.optional()
    }

    /// The seats of each reservation, by seat number.
    pub async fn seats_of(
        conn: &mut diesel_async::AsyncPgConnection,
        ids: &[ReservationId],
    ) -> QueryResult<std::collections::HashMap<ReservationId, Vec<crate::catalogue::Seat>>> {
        use crate::db::schema::seats;
        use diesel_async::RunQueryDsl;
        use itertools::Itertools;
        let rows: Vec<(ReservationId, crate::catalogue::Seat)> = reservation_seats::table
            .inner_join(seats::table)
            .filter(reservation_seats::reservation_id.eq_any(ids))
            .order((reservation_seats::reservation_id, seats::number))
            .select((
                reservation_seats::reservation_id,
                crate::catalogue::Seat::as_select(),
            ))
            .load(conn)
            .await?;
        Ok(rows.into_iter().into_group_map())
    }
}

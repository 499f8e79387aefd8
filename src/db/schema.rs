// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "ledger_reason"))]
    pub struct LedgerReason;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "reservation_status"))]
    pub struct ReservationStatus;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "seat_grade"))]
    pub struct SeatGrade;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "seat_status"))]
    pub struct SeatStatus;
}

diesel::table! {
    concerts (id) {
        id -> Int8,
        title -> Text,
        artist -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (user_id, key) {
        user_id -> Int8,
        key -> Text,
        operation -> Text,
        request_hash -> Text,
        response -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        event_type -> Text,
        partition_key -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    payments (id) {
        id -> Int8,
        reservation_id -> Int8,
        user_id -> Int8,
        amount -> Int8,
        idempotency_key -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::LedgerReason;

    point_ledger (id) {
        id -> Int8,
        user_id -> Int8,
        delta -> Int8,
        reason -> LedgerReason,
        reservation_id -> Nullable<Int8>,
        balance_after -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    queue_openings (concert_id, sales_open_at) {
        concert_id -> Int8,
        sales_open_at -> Timestamptz,
        seed -> Int8,
        arrivals -> Array<Int8>,
        opened_at -> Nullable<Timestamptz>,
        fans_shuffled -> Nullable<Int4>,
        fans_after_opening -> Nullable<Int4>,
    }
}

diesel::table! {
    queue_settings (concert_id) {
        concert_id -> Int8,
        admit_per_second -> Nullable<Float8>,
        active_cap -> Nullable<Int4>,
        active_ttl_seconds -> Nullable<Int4>,
        paused -> Bool,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::ReservationStatus;

    reservation_seats (reservation_id, seat_id) {
        reservation_id -> Int8,
        seat_id -> Int8,
        status -> ReservationStatus,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::ReservationStatus;

    reservations (id) {
        id -> Int8,
        user_id -> Int8,
        schedule_id -> Int8,
        status -> ReservationStatus,
        total_price -> Int8,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    schedules (id) {
        id -> Int8,
        concert_id -> Int8,
        starts_at -> Timestamptz,
        venue -> Text,
        prequeue_opens_at -> Nullable<Timestamptz>,
        sales_open_at -> Nullable<Timestamptz>,
        sales_close_at -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::SeatGrade;
    use super::sql_types::SeatStatus;

    seats (id) {
        id -> Int8,
        schedule_id -> Int8,
        number -> Int4,
        grade -> SeatGrade,
        price -> Int8,
        status -> SeatStatus,
        updated_at -> Timestamptz,
        held_until -> Nullable<Timestamptz>,
        section -> Text,
        row_label -> Text,
        seat_in_row -> Int4,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        name -> Text,
        points -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(idempotency_keys -> users (user_id));
diesel::joinable!(payments -> reservations (reservation_id));
diesel::joinable!(payments -> users (user_id));
diesel::joinable!(point_ledger -> reservations (reservation_id));
diesel::joinable!(point_ledger -> users (user_id));
diesel::joinable!(queue_openings -> concerts (concert_id));
diesel::joinable!(queue_settings -> concerts (concert_id));
diesel::joinable!(reservation_seats -> seats (seat_id));
diesel::joinable!(reservations -> schedules (schedule_id));
diesel::joinable!(reservations -> users (user_id));
diesel::joinable!(schedules -> concerts (concert_id));
diesel::joinable!(seats -> schedules (schedule_id));

diesel::allow_tables_to_appear_in_same_query!(
    concerts,
    idempotency_keys,
    outbox,
    payments,
    point_ledger,
    queue_openings,
    queue_settings,
    reservation_seats,
    reservations,
    schedules,
    seats,
    users,
);

//! PostgreSQL enum types, mapped once for diesel, for GraphQL and for JSON (all three spell the
//! values as PostgreSQL does: `AVAILABLE`, `VIP`, ...).

use diesel_derive_enum::DbEnum;

/// Where a seat is in its sale.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    DbEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[ExistingTypePath = "crate::db::schema::sql_types::SeatStatus"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatStatus {
    Available,
    Held,
    Sold,
    /// Off sale for good: its performance was cancelled.
    Withdrawn,
}

/// Seat grades, best first (the database enum sorts in this order).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    DbEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[ExistingTypePath = "crate::db::schema::sql_types::SeatGrade"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatGrade {
    Vip,
    R,
    S,
    A,
}

/// Life of a reservation: HELD, then CONFIRMED by payment, or CANCELLED / EXPIRED.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    DbEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[ExistingTypePath = "crate::db::schema::sql_types::ReservationStatus"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    Held,
    Confirmed,
    Cancelled,
    Expired,
}

/// Why a balance changed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    DbEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[ExistingTypePath = "crate::db::schema::sql_types::LedgerReason"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LedgerReason {
    Charge,
    Payment,
    Refund,
}

//! Typed ids: a `SeatId` cannot be passed where a `ScheduleId` is meant. In GraphQL they are `ID`
//! strings holding the decimal number (`ID` converts from any `Display`).

use crate::error::AppError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            diesel_derive_newtype::DieselNewType, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// Parses a GraphQL `ID` argument; anything but a positive integer is `INVALID_INPUT`.
            pub fn parse(id: &async_graphql::ID) -> Result<Self, AppError> {
                match id.parse::<i64>() {
                    Ok(n) if n > 0 => Ok(Self(n)),
                    _ => Err(AppError::InvalidInput(format!(
                        concat!("\"{}\" is not a valid ", $what, " id"),
                        id.as_str()
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(/** A concert. */ ConcertId, "concert");
id_type!(/** One performance of a concert. */ ScheduleId, "schedule");
id_type!(/** A seat of one schedule. */ SeatId, "seat");
id_type!(/** A fan. */ UserId, "user");
id_type!(/** A hold, and the booking it becomes once paid. */ ReservationId, "reservation");

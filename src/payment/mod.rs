//! Payments in points. Paying a hold ([`pay`]) is one transaction; topping up a balance
//! ([`charge`]) is another. Both are idempotent per key ([`idempotency`]).

pub mod charge;
pub mod idempotency;
pub mod models;
pub mod pay;

use crate::booking::seat_map::SeatMap;
use crate::config::Config;
use crate::db::Database;
use crate::limit::BookingLimit;
use crate::queue::Queue;

/// What payments and top-ups use: the database, the queue whose token a payment ends, the seat
/// map it changes, the booking limit, and the largest top-up.
#[derive(Clone)]
pub struct Payments {
    db: Database,
    queue: Queue,
    seat_map: SeatMap,
    limit: BookingLimit,
    max_charge_points: i64,
}

impl Payments {
    pub fn new(
        db: Database,
        queue: Queue,
        seat_map: SeatMap,
        limit: BookingLimit,
        config: &Config,
    ) -> Self {
        Self {
            db,
            queue,
            seat_map,
            limit,
            max_charge_points: config.max_charge_points,
        }
    }
}

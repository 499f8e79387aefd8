//! Payments in points. Paying a hold ([`pay`]) is one transaction; topping up a balance
//! ([`charge`]) is another. Both are idempotent per key ([`idempotency`]).

pub mod charge;
pub mod idempotency;
pub mod models;
pub mod pay;

use crate::booking::seat_map::SeatMap;
use crate::catalogue::directory::ConcertDirectory;
use crate::config::Config;
use crate::db::Database;
use crate::queue::Queue;

/// What payments and top-ups use: the database, the schedule → concert directory (a token only
/// pays for its own concert), the queue whose token a payment ends, the seat map it changes, and
/// the largest top-up.
#[derive(Clone)]
pub struct Payments {
    db: Database,
    concerts: ConcertDirectory,
    queue: Queue,
    seat_map: SeatMap,
    max_charge_points: i64,
}

impl Payments {
    pub fn new(
        db: Database,
        concerts: ConcertDirectory,
        queue: Queue,
        seat_map: SeatMap,
        config: &Config,
    ) -> Self {
        Self {
            db,
            concerts,
            queue,
            seat_map,
            max_charge_points: config.max_charge_points,
        }
    }
}

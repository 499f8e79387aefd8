//! What a query may cost, counted before it runs (`GRAPHQL_MAX_COMPLEXITY` bounds the total;
//! `QUERY_TOO_COMPLEX` refuses more). Each field costs 1; a list field costs what one of its items
//! costs times how many it can return: its `limit` argument where it has one, otherwise the
//! bound below. The total therefore grows with the size of the answer and bounds it before
//! anything runs: sixty aliases of the whole catalogue with its seat maps (3.8 kB of query) count
//! about twelve million, and are refused.

/// Schedules of one concert counted for `Concert.schedules` (a tour's dates; the demo has 3).
pub const SCHEDULES_PER_CONCERT: usize = 10;

/// Seats of one schedule counted for `Schedule.seats`: a seat map is the largest list we serve,
/// and its real length is only known once it is read (the demo venues have 50 seats, a stadium
/// tens of thousands).
pub const SEATS_PER_SCHEDULE: usize = 100;

/// Seats of one reservation counted for `Reservation.seats` (`HOLD_MAX_SEATS`' default).
pub const SEATS_PER_RESERVATION: usize = 4;

/// The items a `limit` argument asks for. An out-of-range limit is refused by its resolver with
/// `INVALID_INPUT`; here it counts as the largest page.
pub fn page(limit: i32, max: i32) -> usize {
    usize::try_from(if (1..=max).contains(&limit) {
        limit
    } else {
        max
    })
    .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_counts_its_limit_and_an_invalid_one_counts_the_most() {
        assert_eq!(page(20, 100), 20);
        assert_eq!(page(0, 100), 100);
        assert_eq!(page(-5, 100), 100);
        assert_eq!(page(1_000, 100), 100);
    }
}

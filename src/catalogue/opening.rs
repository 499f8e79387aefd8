//! When a concert's waiting queue opens. The queue is per concert and the sale times are per
//! schedule (performance), so the queue follows the concert's next sale: among the performances
//! whose sale has not closed, the earliest opening decides.
//!
//! - A performance on sale now (its opening passed, or it has none): the queue is open.
//! - Otherwise the earliest opening is the queue's, and fans may enter its pre-queue from the
//!   earliest pre-queue time of those performances (a performance without one: its opening).
//! - No performance left whose sale has not closed (or that was not cancelled): the queue is
//!   closed. A concert without any
//!   performance yet has nothing to restrict, and is open.
//!
//! At the opening the admitter shuffles the pre-queue once ([`crate::queue::opening`]). Holds
//! are still refused per performance outside its own sale ([`Schedule::check_on_sale`]).

use chrono::{DateTime, Utc};

use crate::catalogue::Schedule;
use crate::error::AppError;

/// What the queue of a concert lets a fan do at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOpening {
    /// Fans join the line at once. `since`: the opening that passed (the time of the shuffle
    /// still owed to a pre-queue, if there is one), None when a performance on sale has none.
    Open { since: Option<DateTime<Utc>> },
    /// Fans may enter the pre-queue; the sale opens at `opens_at`.
    Prequeue { opens_at: DateTime<Utc> },
    /// Too early even for the pre-queue.
    NotYet {
        prequeue_opens_at: DateTime<Utc>,
        opens_at: DateTime<Utc>,
    },
    /// Every performance's sale has closed.
    Closed,
}

impl QueueOpening {
    /// The queue of a concert with `schedules`, at `now`.
    pub fn of(schedules: &[Schedule], now: DateTime<Utc>) -> Self {
        if schedules.is_empty() {
            return Self::Open { since: None };
        }
        let live: Vec<&Schedule> = schedules
            .iter()
            .filter(|schedule| schedule.sells_at(now))
            .collect();
        if live.is_empty() {
            return Self::Closed;
        }
        if live.iter().any(|schedule| schedule.sales_open_at.is_none()) {
            return Self::Open { since: None };
        }
        let opens_at = live
            .iter()
            .filter_map(|schedule| schedule.sales_open_at)
            .min()
            .expect("every live schedule has an opening");
        if opens_at <= now {
            return Self::Open {
                since: Some(opens_at),
            };
        }
        let prequeue_opens_at = live
            .iter()
            .filter_map(|schedule| schedule.prequeue_opens_at.or(schedule.sales_open_at))
            .min()
            .unwrap_or(opens_at);
        if now < prequeue_opens_at {
            Self::NotYet {
                prequeue_opens_at,
                opens_at,
            }
        } else {
            Self::Prequeue { opens_at }
        }
    }

    /// Whether a fan may enter now: `SALE_NOT_OPEN` (with both times) before the pre-queue,
    /// `SALE_CLOSED` after every sale.
    pub fn check_enter(&self) -> Result<(), AppError> {
        match *self {
            Self::NotYet {
                prequeue_opens_at,
                opens_at,
            } => Err(AppError::SaleNotOpen {
                opens_at,
                prequeue_opens_at: Some(prequeue_opens_at),
            }),
            Self::Closed => Err(AppError::SaleClosed),
            Self::Open { .. } | Self::Prequeue { .. } => Ok(()),
        }
    }

    /// The future opening fans wait for in the pre-queue, if the queue is not open yet.
    pub fn opens_at(&self) -> Option<DateTime<Utc>> {
        match *self {
            Self::Prequeue { opens_at } | Self::NotYet { opens_at, .. } => Some(opens_at),
            Self::Open { .. } | Self::Closed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::ids::{ConcertId, ScheduleId};

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 0).unwrap() + Duration::minutes(minute)
    }

    fn schedule(prequeue: Option<i64>, open: Option<i64>, close: Option<i64>) -> Schedule {
        Schedule {
            id: ScheduleId(1),
            concert_id: ConcertId(1),
            starts_at: at(1_000),
            venue: "Hall".into(),
            prequeue_opens_at: prequeue.map(at),
            sales_open_at: open.map(at),
            sales_close_at: close.map(at),
            cancelled_at: None,
        }
    }

    #[test]
    fn a_concert_without_sale_times_or_performances_is_open() {
        assert_eq!(
            QueueOpening::of(&[], at(0)),
            QueueOpening::Open { since: None }
        );
        let open_now = schedule(None, None, None);
        assert_eq!(
            QueueOpening::of(&[open_now], at(0)),
            QueueOpening::Open { since: None }
        );
    }

    #[test]
    fn the_queue_goes_from_closed_doors_to_pre_queue_to_open_to_closed() {
        let sale = [schedule(Some(10), Some(20), Some(30))];
        let not_yet = QueueOpening::of(&sale, at(5));
        assert_eq!(
            not_yet,
            QueueOpening::NotYet {
                prequeue_opens_at: at(10),
                opens_at: at(20)
            }
        );
        assert_eq!(not_yet.check_enter().unwrap_err().code(), "SALE_NOT_OPEN");
        let pre = QueueOpening::of(&sale, at(10));
        assert_eq!(pre, QueueOpening::Prequeue { opens_at: at(20) });
        assert!(pre.check_enter().is_ok());
        assert_eq!(pre.opens_at(), Some(at(20)));
        assert_eq!(
            QueueOpening::of(&sale, at(20)),
            QueueOpening::Open {
                since: Some(at(20))
            }
        );
        let closed = QueueOpening::of(&sale, at(30));
        assert_eq!(closed, QueueOpening::Closed);
        assert_eq!(closed.check_enter().unwrap_err().code(), "SALE_CLOSED");
    }

    #[test]
    fn without_a_pre_queue_time_fans_enter_at_the_opening() {
        let sale = [schedule(None, Some(20), None)];
        assert!(matches!(
            QueueOpening::of(&sale, at(19)),
            QueueOpening::NotYet { prequeue_opens_at, .. } if prequeue_opens_at == at(20)
        ));
        assert_eq!(
            QueueOpening::of(&sale, at(20)),
            QueueOpening::Open {
                since: Some(at(20))
            }
        );
    }

    #[test]
    fn the_next_sale_decides_and_a_sale_on_now_opens_the_queue() {
        let first = schedule(Some(10), Some(20), Some(30));
        let second = schedule(Some(40), Some(50), None);
        // While the first sale is on, the queue is open; after it closes, the second sale's
        // pre-queue and opening apply.
        let both = [first, second.clone()];
        assert_eq!(
            QueueOpening::of(&both, at(25)),
            QueueOpening::Open {
                since: Some(at(20))
            }
        );
        assert!(matches!(
            QueueOpening::of(&both, at(35)),
            QueueOpening::NotYet { opens_at, .. } if opens_at == at(50)
        ));
        assert_eq!(
            QueueOpening::of(&both, at(45)),
            QueueOpening::Prequeue { opens_at: at(50) }
        );
        // A performance without an opening is on sale now, whatever the others say.
        let always = schedule(None, None, None);
        assert_eq!(
            QueueOpening::of(&[second, always], at(0)),
            QueueOpening::Open { since: None }
        );
    }
}

//! Refusing early instead of late: a limit on how many database-bound mutations (holds, payments,
//! cancellations, charges) run at once in this instance, sized from the pool. A request that finds
//! the limit full is answered `BUSY` with a retry hint at once, instead of waiting seconds for a
//! pooled connection and then timing out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{AppError, AppResult};
use crate::metrics as m;

/// The limit, shared by every domain handle that writes to the database.
#[derive(Clone)]
pub struct BookingLimit {
    slots: Arc<Semaphore>,
    retry_after: Duration,
}

impl BookingLimit {
    /// At most `slots` mutations at once (0 turns the limit off); a refusal tells the client to
    /// retry after about `retry_after`.
    pub fn new(slots: usize, retry_after: Duration) -> Self {
        let slots = if slots == 0 {
            Semaphore::MAX_PERMITS
        } else {
            slots
        };
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            retry_after,
        }
    }

    /// A slot for one mutation, held until the permit is dropped; `BUSY` with a retry hint when
    /// none is free. Never waits.
    pub fn enter(&self) -> AppResult<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!(m::BOOKING_LIMIT_REFUSALS_TOTAL).increment(1);
            AppError::Overloaded {
                retry_after_ms: jittered(self.retry_after),
            }
        })
    }
}

/// `base` spread over ±50 %, so refused clients do not all come back in the same instant.
fn jittered(base: Duration) -> u64 {
    let base = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
    let spread = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * base / 255;
    base / 2 + spread
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_limit_refuses_at_once_with_a_hint_and_frees_its_slots() {
        let limit = BookingLimit::new(2, Duration::from_millis(200));
        let first = limit.enter().expect("a free slot");
        let _second = limit.enter().expect("a free slot");
        match limit.enter() {
            Err(AppError::Overloaded { retry_after_ms }) => {
                assert!((100..=300).contains(&retry_after_ms), "{retry_after_ms}");
            }
            other => panic!("expected BUSY with a hint, got {:?}", other.map(|_| ())),
        }
        drop(first);
        assert!(limit.enter().is_ok(), "a finished mutation frees its slot");
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limit = BookingLimit::new(0, Duration::from_millis(200));
        let permits: Vec<_> = (0..1_000)
            .map(|_| limit.enter().expect("no limit"))
            .collect();
        assert_eq!(permits.len(), 1_000);
    }
}

//! Refusing early instead of late: a limit on how many database-bound mutations (holds, payments,
//! cancellations, charges) run at once in this instance, sized from the pool. A request that finds
//! the limit full is answered `BUSY` with a retry hint at once, instead of waiting seconds for a
//! pooled connection and then timing out.
//!
//! The waiting room has a limit of its own ([`LobbyLimit`]): in a stampede, tens of thousands of
//! fans enter and poll at once, and without a bound their Redis round trips would queue behind
//! each other (and in front of the booking path's) until the pool's checkout timed out. The
//! lobby refuses what it cannot serve now with `BUSY` and a retry hint, at once, and leaves the
//! rest of the Redis pool to admitted fans.
//!
//! The booking limit also measures the booking path for adaptive admission: how many mutations finished,
//! how many took longer than the latency target, how many were refused ([`Load`]). The queue's
//! admitter slows admission when that load says the path is degraded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{AppError, AppResult};
use crate::metrics as m;

/// The limit, shared by every domain handle that writes to the database.
#[derive(Clone)]
pub struct BookingLimit {
    slots: Arc<Semaphore>,
    retry_after: Duration,
    meter: Arc<Meter>,
}

/// What the booking path did over some time: the signal adaptive admission follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Mutations that ran (whatever their answer).
    pub completed: u64,
    /// Of those, how many took longer than the latency target.
    pub slow: u64,
    /// Mutations refused `BUSY` because the limit was full.
    pub refused: u64,
}

impl Load {
    pub fn add(&mut self, other: Load) {
        self.completed += other.completed;
        self.slow += other.slow;
        self.refused += other.refused;
    }
}

/// The counters behind [`Load`], and the latency target a mutation is judged slow against.
struct Meter {
    target: Duration,
    completed: AtomicU64,
    slow: AtomicU64,
    refused: AtomicU64,
}

/// One mutation's slot: frees it, and records how long the mutation took, when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    started: Instant,
    meter: Arc<Meter>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.meter.completed.fetch_add(1, Ordering::Relaxed);
        if self.started.elapsed() > self.meter.target {
            self.meter.slow.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl BookingLimit {
    /// At most `slots` mutations at once (0 turns the limit off); a refusal tells the client to
    /// retry after about `retry_after`. A mutation longer than `latency_target` counts as slow.
    pub fn new(slots: usize, retry_after: Duration, latency_target: Duration) -> Self {
        Self {
            slots: semaphore(slots),
            retry_after,
            meter: Arc::new(Meter {
                target: latency_target,
                completed: AtomicU64::new(0),
                slow: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// A slot for one mutation, held until the permit is dropped; `BUSY` with a retry hint when
    /// none is free. Never waits.
    pub fn enter(&self) -> AppResult<Slot> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Ok(Slot {
                _permit: permit,
                started: Instant::now(),
                meter: self.meter.clone(),
            }),
            Err(_) => {
                self.meter.refused.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(m::BOOKING_LIMIT_REFUSALS_TOTAL).increment(1);
                Err(AppError::Overloaded {
                    retry_after_ms: jittered(self.retry_after),
                })
            }
        }
    }

    /// The load since the last call (the counters start again from zero).
    pub fn take_load(&self) -> Load {
        Load {
            completed: self.meter.completed.swap(0, Ordering::Relaxed),
            slow: self.meter.slow.swap(0, Ordering::Relaxed),
            refused: self.meter.refused.swap(0, Ordering::Relaxed),
        }
    }
}

/// How many waiting-room operations (`enterQueue`, `queueStatus`) one instance runs at once. Each
/// holds one Redis connection for one script call; the limit is below the Redis pool's size, so
/// holds and payments (whose queue-token check also reads Redis) always find a connection.
#[derive(Clone)]
pub struct LobbyLimit {
    slots: Arc<Semaphore>,
    retry_after: Duration,
}

impl LobbyLimit {
    /// At most `slots` operations at once (0 turns the limit off); a refusal tells the fan to
    /// come back after about `retry_after`.
    pub fn new(slots: usize, retry_after: Duration) -> Self {
        Self {
            slots: semaphore(slots),
            retry_after,
        }
    }

    /// A slot for one operation, freed when dropped; `BUSY` with a retry hint when none is
    /// free. Never waits.
    pub fn enter(&self) -> AppResult<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!(m::QUEUE_LIMIT_REFUSALS_TOTAL).increment(1);
            AppError::Overloaded {
                retry_after_ms: jittered(self.retry_after),
            }
        })
    }
}

/// A semaphore of `slots` permits; 0 means no limit.
fn semaphore(slots: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(if slots == 0 {
        Semaphore::MAX_PERMITS
    } else {
        slots
    }))
}

/// `base` spread over ±50 %, so refused clients do not all come back in the same instant.
pub(crate) fn jittered(base: Duration) -> u64 {
    let base = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
    let spread = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * base / 255;
    base / 2 + spread
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_limit_refuses_at_once_with_a_hint_and_frees_its_slots() {
        let limit = BookingLimit::new(2, Duration::from_millis(200), Duration::from_secs(1));
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
        let load = limit.take_load();
        assert_eq!((load.completed, load.refused), (2, 1), "{load:?}");
        assert_eq!(
            limit.take_load(),
            Load::default(),
            "taking the load resets it"
        );
    }

    #[test]
    fn a_mutation_longer_than_the_target_counts_as_slow() {
        let limit = BookingLimit::new(4, Duration::from_millis(200), Duration::from_millis(5));
        drop(limit.enter().expect("a free slot"));
        let slow = limit.enter().expect("a free slot");
        std::thread::sleep(Duration::from_millis(10));
        drop(slow);
        let load = limit.take_load();
        assert_eq!((load.completed, load.slow), (2, 1), "{load:?}");
    }

    #[test]
    fn a_full_lobby_refuses_at_once_with_a_hint() {
        let lobby = LobbyLimit::new(1, Duration::from_millis(1_000));
        let first = lobby.enter().expect("a free slot");
        match lobby.enter() {
            Err(AppError::Overloaded { retry_after_ms }) => {
                assert!((500..=1_500).contains(&retry_after_ms), "{retry_after_ms}");
            }
            other => panic!("expected BUSY with a hint, got {:?}", other.map(|_| ())),
        }
        drop(first);
        assert!(lobby.enter().is_ok(), "a finished operation frees its slot");
        let open = LobbyLimit::new(0, Duration::from_millis(1_000));
        let permits: Vec<_> = (0..1_000)
            .map(|_| open.enter().expect("no limit"))
            .collect();
        assert_eq!(permits.len(), 1_000);
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limit = BookingLimit::new(0, Duration::from_millis(200), Duration::from_secs(1));
        let permits: Vec<_> = (0..1_000)
            .map(|_| limit.enter().expect("no limit"))
            .collect();
        assert_eq!(permits.len(), 1_000);
    }
}

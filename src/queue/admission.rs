//! Adaptive admission: the admission rate follows what the booking path can take right now, by
//! AIMD (additive increase, multiplicative decrease — TCP's congestion control law).
//!
//! Once a second the admitter looks at the booking path's [`Load`] over the last seconds (summed
//! over every instance, through Redis: see [`super::pressure`]):
//! - **degraded** — any mutation refused `BUSY` by the booking limit, or more than
//!   [`SLOW_SHARE`] of them slower than BOOKING_LATENCY_TARGET_MS (their P95 is over the target):
//!   the rate is multiplied by [`DECREASE`], but never below [`FLOOR_SHARE`] of the maximum;
//! - **headroom** — otherwise, while fans are waiting: the rate grows by [`INCREASE_SHARE`] of
//!   the maximum, up to the maximum (the concert's `admit_per_second`).
//!
//! A new concert starts at its maximum: a quiet booking path takes the configured rate, and the
//! first degraded second halves it. With the constants below, a collapse from the maximum to the
//! floor takes 6 seconds of continuous trouble, and the climb back 10 seconds of headroom.

use crate::limit::Load;

/// Multiplicative decrease per degraded second.
pub const DECREASE: f64 = 0.5;
/// Additive increase per second of headroom, as a share of the maximum rate.
pub const INCREASE_SHARE: f64 = 0.1;
/// The lowest rate, as a share of the maximum: admission never stops for load alone (a trickle
/// of fans keeps measuring the path; a pause is an organiser's decision).
pub const FLOOR_SHARE: f64 = 0.02;
/// More than this share of slow mutations means the booking path's P95 is over the target.
pub const SLOW_SHARE: f64 = 0.05;
/// Fewer mutations than this in the window say nothing about latency (refusals still count).
pub const MIN_SAMPLE: u64 = 20;

/// Whether the booking path is degraded under `load`.
pub fn degraded(load: &Load) -> bool {
    load.refused > 0
        || (load.completed >= MIN_SAMPLE && load.slow as f64 > SLOW_SHARE * load.completed as f64)
}

/// The next rate, from the current one, the concert's maximum, the booking path's load, and
/// whether fans are waiting (only a backlog is a reason to raise it).
pub fn next_rate(current: f64, max: f64, load: &Load, backlog: bool) -> f64 {
    let floor = max * FLOOR_SHARE;
    let next = if degraded(load) {
        current * DECREASE
    } else if backlog {
        current + max * INCREASE_SHARE
    } else {
        current
    };
    next.clamp(floor, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(completed: u64, slow: u64, refused: u64) -> Load {
        Load {
            completed,
            slow,
            refused,
        }
    }

    #[test]
    fn a_refusal_or_a_slow_p95_halves_the_rate() {
        assert_eq!(next_rate(40.0, 50.0, &load(100, 0, 1), true), 20.0);
        assert_eq!(next_rate(40.0, 50.0, &load(100, 6, 0), true), 20.0);
        // 5 slow of 100 is a P95 at the target, not over it.
        assert_eq!(next_rate(40.0, 50.0, &load(100, 5, 0), true), 45.0);
    }

    #[test]
    fn a_few_slow_mutations_in_a_quiet_second_say_nothing() {
        assert_eq!(next_rate(40.0, 50.0, &load(10, 5, 0), true), 45.0);
    }

    #[test]
    fn headroom_raises_the_rate_only_while_fans_wait_and_never_past_the_maximum() {
        assert_eq!(next_rate(40.0, 50.0, &load(0, 0, 0), false), 40.0);
        assert_eq!(next_rate(48.0, 50.0, &load(0, 0, 0), true), 50.0);
    }

    #[test]
    fn trouble_never_takes_the_rate_below_the_floor() {
        let mut rate = 50.0;
        for _ in 0..20 {
            rate = next_rate(rate, 50.0, &load(0, 0, 3), true);
        }
        assert_eq!(rate, 1.0);
        for _ in 0..10 {
            rate = next_rate(rate, 50.0, &load(30, 0, 0), true);
        }
        assert_eq!(
            rate, 50.0,
            "ten seconds of headroom climb back to the maximum"
        );
    }

    #[test]
    fn a_lower_maximum_applies_at_once() {
        assert_eq!(next_rate(50.0, 10.0, &load(0, 0, 0), false), 10.0);
    }
}

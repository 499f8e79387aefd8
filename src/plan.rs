//! The capacity planner: from what an organiser knows before a sale (seats, expected fans, how
//! long a fan takes to buy, how many admitted fans buy, what the booking path can take), the
//! queue settings to use and what fans will see. Arithmetic only, from two rules:
//! - admitted fans each try to hold once, so the admission rate is the load on the booking path:
//!   it is kept at `HEADROOM` of the booking capacity;
//! - Little's law: fans ACTIVE at once = admission rate × the mean time an admitted fan takes;
//! - the last seat goes when the last fan needed has been admitted and the slow buyers have
//!   bought: a completion time, so it adds a high percentile of the time to buy, not its mean
//!   (the first measured opening, docs/results/opening.md, missed by 30 % with the mean).
//!
//! Used by `concert-reservation plan` and the organisers' `capacityPlan` query.

use crate::error::{AppError, AppResult};

/// The share of the booking capacity admission may use: the rest absorbs retries and bursts.
pub const HEADROOM: f64 = 0.8;
/// The active cap leaves this much room above the expected ACTIVE fans.
pub const CAP_MARGIN: f64 = 1.2;

/// What the organiser knows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs {
    /// Seats on sale.
    pub seats: u64,
    /// Fans expected in the queue at the opening.
    pub fans: u64,
    /// Seconds an admitted fan takes from admission to payment (or giving up), on average.
    pub seconds_to_buy: f64,
    /// Seconds within which nearly every buying fan has bought (a high percentile of the same
    /// time, e.g. its P95); at least the mean.
    pub slowest_seconds_to_buy: f64,
    /// Seats each buying fan takes, on average.
    pub seats_per_purchase: f64,
    /// Share of admitted fans who buy (0 to 1].
    pub conversion: f64,
    /// Holds per second the booking path sustains (from the ceiling report).
    pub booking_capacity: f64,
}

/// What to set, and what will happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Fans to admit per second (`queue set --admit-per-second`).
    pub admit_per_second: f64,
    /// Most ACTIVE fans at once (`queue set --active-cap`).
    pub active_cap: u64,
    /// Fans admitted before the last seat is sold.
    pub fans_admitted: u64,
    /// Seconds from the opening until the last seat is sold (None: the fans do not fill the
    /// venue).
    pub sold_out_after_seconds: Option<f64>,
    /// Fans who will be told SOLD_OUT while waiting.
    pub fans_told_sold_out: u64,
    /// The expected wait in line at some positions: (position, seconds).
    pub wait_by_position: Vec<(u64, f64)>,
}

/// The plan as `concert-reservation plan` prints it.
impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "admit_per_second {:.1}", self.admit_per_second)?;
        writeln!(f, "active_cap {}", self.active_cap)?;
        writeln!(f, "fans_admitted {}", self.fans_admitted)?;
        match self.sold_out_after_seconds {
            Some(seconds) => writeln!(f, "sold_out_after_seconds {seconds:.1}")?,
            None => writeln!(
                f,
                "sold_out_after_seconds never (the fans do not fill the venue)"
            )?,
        }
        writeln!(f, "fans_told_sold_out {}", self.fans_told_sold_out)?;
        for (position, seconds) in &self.wait_by_position {
            writeln!(f, "wait_at_position {position} {seconds:.1} s")?;
        }
        Ok(())
    }
}

impl Inputs {
    fn check(&self) -> AppResult<()> {
        let fail = |what: &str| -> AppResult<()> { Err(AppError::InvalidInput(what.to_owned())) };
        if self.seats == 0 {
            return fail("there must be at least one seat on sale");
        }
        if !(self.conversion > 0.0 && self.conversion <= 1.0) {
            return fail("the conversion must be above 0 and at most 1");
        }
        if !(self.seconds_to_buy.is_finite() && self.seconds_to_buy > 0.0) {
            return fail("the time to buy must be a positive number of seconds");
        }
        if !(self.slowest_seconds_to_buy.is_finite()
            && self.slowest_seconds_to_buy >= self.seconds_to_buy)
        {
            return fail("the slowest time to buy must be a number of seconds, at least the mean");
        }
        if !(self.seats_per_purchase.is_finite() && self.seats_per_purchase >= 1.0) {
            return fail("the seats per purchase must be at least 1");
        }
        if !(self.booking_capacity.is_finite() && self.booking_capacity > 0.0) {
            return fail("the booking capacity must be a positive number of holds per second");
        }
        Ok(())
    }
}

/// The plan for `inputs`.
pub fn plan(inputs: &Inputs) -> AppResult<Plan> {
    inputs.check()?;
    let rate = inputs.booking_capacity * HEADROOM;
    let active_cap = (rate * inputs.seconds_to_buy * CAP_MARGIN).ceil().max(1.0) as u64;
    // Fans needed to sell every seat: each admitted fan buys with probability `conversion`.
    let buyers_needed = inputs.seats as f64 / inputs.seats_per_purchase;
    let fans_to_sell_out = (buyers_needed / inputs.conversion).ceil() as u64;
    let (fans_admitted, sold_out_after_seconds) = if inputs.fans >= fans_to_sell_out {
        // The last seat goes when the last of those fans, admitted at `rate`, and the slow
        // buyers before them have bought.
        let last_admitted = fans_to_sell_out as f64 / rate;
        (
            fans_to_sell_out,
            Some(last_admitted + inputs.slowest_seconds_to_buy),
        )
    } else {
        (inputs.fans, None)
    };
    let fans_told_sold_out = inputs.fans.saturating_sub(fans_admitted);
    let wait_by_position = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&position| position <= fans_admitted.max(1))
        .map(|position| (position, (position - 1) as f64 / rate))
        .collect();
    Ok(Plan {
        admit_per_second: rate,
        active_cap,
        fans_admitted,
        sold_out_after_seconds,
        fans_told_sold_out,
        wait_by_position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stampede() -> Inputs {
        Inputs {
            seats: 50,
            fans: 10_000,
            seconds_to_buy: 30.0,
            slowest_seconds_to_buy: 45.0,
            seats_per_purchase: 1.0,
            conversion: 0.5,
            booking_capacity: 100.0,
        }
    }

    #[test]
    fn admission_stays_inside_the_booking_capacity_and_the_cap_follows_littles_law() {
        let plan = plan(&stampede()).unwrap();
        assert_eq!(plan.admit_per_second, 80.0);
        assert_eq!(plan.active_cap, 2_880, "80/s x 30 s x 1.2");
    }

    #[test]
    fn a_small_venue_sells_out_and_the_rest_are_told_so() {
        let plan = plan(&stampede()).unwrap();
        // 50 seats at one seat per buyer and half of the admitted buying: 100 fans admitted.
        assert_eq!(plan.fans_admitted, 100);
        assert_eq!(plan.fans_told_sold_out, 9_900);
        let sold_out = plan.sold_out_after_seconds.unwrap();
        assert!(
            (sold_out - (100.0 / 80.0 + 45.0)).abs() < 1e-9,
            "the last admission plus the slowest time to buy: {sold_out}"
        );
        assert_eq!(
            plan.active_cap, 2_880,
            "the cap follows the mean, not the tail"
        );
        assert_eq!(
            plan.wait_by_position,
            [(1, 0.0), (10, 9.0 / 80.0), (100, 99.0 / 80.0)]
        );
    }

    #[test]
    fn a_venue_the_fans_cannot_fill_never_sells_out() {
        let inputs = Inputs {
            seats: 50_000,
            ..stampede()
        };
        let plan = plan(&inputs).unwrap();
        assert_eq!(plan.sold_out_after_seconds, None);
        assert_eq!((plan.fans_admitted, plan.fans_told_sold_out), (10_000, 0));
    }

    #[test]
    fn impossible_inputs_are_refused() {
        for inputs in [
            Inputs {
                seats: 0,
                ..stampede()
            },
            Inputs {
                conversion: 0.0,
                ..stampede()
            },
            Inputs {
                conversion: 1.5,
                ..stampede()
            },
            Inputs {
                seconds_to_buy: f64::NAN,
                ..stampede()
            },
            Inputs {
                seats_per_purchase: 0.5,
                ..stampede()
            },
            Inputs {
                slowest_seconds_to_buy: 20.0,
                ..stampede()
            },
            Inputs {
                booking_capacity: -1.0,
                ..stampede()
            },
        ] {
            assert_eq!(
                plan(&inputs).unwrap_err().code(),
                "INVALID_INPUT",
                "{inputs:?}"
            );
        }
    }
}

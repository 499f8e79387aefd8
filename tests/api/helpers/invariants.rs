//! The promises of the data model are stated once, as the named checks of `verify`
//! (src/verify.rs); tests assert on those checks instead of restating their SQL.

use concert_reservation::verify::{self, Report, VerifyOptions};

use super::TestApp;

/// The checks that speak about seats and holds.
pub const SEATS: &[&str] = &[
    "seats_not_double_booked",
    "seat_status_matches_reservations",
    "one_hold_per_fan_and_schedule",
];

/// The checks that speak about payments, balances and the point ledger.
pub const BOOKS: &[&str] = &[
    "seat_status_matches_reservations",
    "confirmed_reservations_paid_once",
    "payments_match_seat_prices",
    "balances_match_ledger",
    "ledger_matches_payments",
];

impl TestApp {
    /// `verify` on this test's database, with `options`.
    pub async fn verify_with(&self, options: &VerifyOptions) -> Report {
        verify::verify(&mut self.db().await, options)
            .await
            .expect("the checks run")
    }

    /// `verify` on this test's database, with the default options.
    pub async fn verify(&self) -> Report {
        self.verify_with(&VerifyOptions::default()).await
    }

    /// Asserts that each of the `verify` checks called `names` exists and passes.
    pub async fn assert_checks_pass(&self, names: &[&str]) {
        let report = self.verify().await;
        for name in names {
            let check = report
                .check(name)
                .unwrap_or_else(|| panic!("verify has no check called {name}:\n{report}"));
            assert!(check.passed, "{name} failed:\n{report}");
        }
    }
}

//! The hold and pay operations called in-process, as their resolvers call them, for the stampede
//! tests only. Hundreds of simultaneous HTTP requests on a 2-core machine mostly measure the HTTP
//! and GraphQL layers' CPU, and the queue guard then fails closed (`QUEUE_UNAVAILABLE` after 2 s
//! without a Redis connection), which is not what those tests are about: they check the domain
//! under contention. Every other test goes through [`super::api`].

use concert_reservation::auth::Viewer;
use concert_reservation::booking::SeatChoice;
use concert_reservation::ids::{ReservationId, ScheduleId, SeatId, UserId};

use super::{Fan, Outcome, SCHEDULE, TestApp};

impl TestApp {
    /// What `holdSeats` runs; answers the reservation's id.
    pub async fn hold_seats_in_process(&self, fan: &Fan, seats: &[i64]) -> Outcome<i64> {
        let choice = SeatChoice::Chosen(seats.iter().copied().map(SeatId).collect());
        self.hold_in_process(fan, choice).await
    }

    /// What `holdBestAvailable` runs; answers the reservation's id.
    pub async fn hold_best_available_in_process(&self, fan: &Fan, count: u32) -> Outcome<i64> {
        self.hold_in_process(fan, SeatChoice::BestAvailable(count))
            .await
    }

    /// What `pay` runs; answers the payment's id.
    pub async fn pay_in_process(&self, fan: &Fan, reservation: i64, key: &str) -> Outcome<i64> {
        self.context
            .payments
            .pay(
                viewer(fan),
                fan.queue_token.as_deref(),
                ReservationId(reservation),
                key,
            )
            .await
            .map(|receipt| receipt.payment_id)
            .map_err(|err| err.code().to_owned())
    }

    async fn hold_in_process(&self, fan: &Fan, choice: SeatChoice) -> Outcome<i64> {
        self.context
            .booking
            .hold(
                viewer(fan),
                fan.queue_token.as_deref(),
                ScheduleId(SCHEDULE),
                choice,
            )
            .await
            .map(|held| held.reservation.id.0)
            .map_err(|err| err.code().to_owned())
    }
}

fn viewer(fan: &Fan) -> Viewer {
    Viewer::fan(UserId(fan.id))
}

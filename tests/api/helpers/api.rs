//! The API's operations, one method each, named as in `schema.graphql` and sent as real GraphQL
//! over HTTP. A method answers the operation's `data` or the `extensions.code` of its first error.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Fan, SCHEDULE, TestApp};

/// What an operation answered: its result, or the code of its first error.
pub type Outcome<T> = Result<T, String>;

/// A `Reservation` as the hold, pay and cancel operations return it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    #[serde(deserialize_with = "id")]
    pub id: i64,
    pub status: String,
    pub total_price: i64,
    pub expires_at: DateTime<Utc>,
    pub seats: Vec<Seat>,
}

/// A seat of a reservation or of the seat map.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Seat {
    #[serde(deserialize_with = "id")]
    pub id: i64,
    pub number: i64,
    pub status: String,
}

/// The answer to `pay`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    #[serde(deserialize_with = "id")]
    pub payment_id: i64,
    #[serde(deserialize_with = "id")]
    pub reservation_id: i64,
    pub amount: i64,
    pub balance_after: i64,
    pub paid_at: DateTime<Utc>,
}

/// The answer to `chargePoints`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PointCharge {
    pub amount: i64,
    pub balance: i64,
}

/// GraphQL ids are strings; these tests compare them as numbers.
fn id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

const RESERVATION: &str = "id status totalPrice expiresAt seats { id number status }";

impl TestApp {
    /// `enterQueue` as `user`; the fan it returns carries the queue token it got.
    pub async fn enter_queue(&self, user: i64, concert: i64) -> Outcome<Fan> {
        let status: Value = self
            .operation(
                &Fan::without_queue_token(user),
                "mutation($c: ID!) { enterQueue(concertId: $c) { token } }",
                json!({ "c": concert.to_string() }),
                "enterQueue",
            )
            .await?;
        let token = status["token"].as_str().expect("a queue token").to_owned();
        Ok(Fan::with_queue_token(user, token))
    }

    /// `holdSeats` on the staged schedule.
    pub async fn hold_seats(&self, fan: &Fan, seats: &[i64]) -> Outcome<Reservation> {
        let seats: Vec<String> = seats.iter().map(i64::to_string).collect();
        self.operation(
            fan,
            &format!(
                "mutation($s: ID!, $seats: [ID!]!) {{ holdSeats(scheduleId: $s, seatIds: $seats) {{ {RESERVATION} }} }}"
            ),
            json!({ "s": SCHEDULE.to_string(), "seats": seats }),
            "holdSeats",
        )
        .await
    }

    /// `holdBestAvailable` on the staged schedule.
    pub async fn hold_best_available(&self, fan: &Fan, count: i64) -> Outcome<Reservation> {
        self.operation(
            fan,
            &format!(
                "mutation($s: ID!, $n: Int!) {{ holdBestAvailable(scheduleId: $s, count: $n) {{ {RESERVATION} }} }}"
            ),
            json!({ "s": SCHEDULE.to_string(), "n": count }),
            "holdBestAvailable",
        )
        .await
    }

    /// `pay` for `reservation` with idempotency key `key`.
    pub async fn pay(&self, fan: &Fan, reservation: i64, key: &str) -> Outcome<Receipt> {
        self.operation(
            fan,
            "mutation($r: ID!, $k: String!) { pay(reservationId: $r, idempotencyKey: $k) { paymentId reservationId amount balanceAfter paidAt } }",
            json!({ "r": reservation.to_string(), "k": key }),
            "pay",
        )
        .await
    }

    /// `chargePoints` with idempotency key `key`.
    pub async fn charge_points(&self, fan: &Fan, amount: i64, key: &str) -> Outcome<PointCharge> {
        self.operation(
            fan,
            "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { amount balance } }",
            json!({ "a": amount, "k": key }),
            "chargePoints",
        )
        .await
    }

    /// `cancelReservation`.
    pub async fn cancel_reservation(&self, fan: &Fan, reservation: i64) -> Outcome<Reservation> {
        self.operation(
            fan,
            &format!(
                "mutation($r: ID!) {{ cancelReservation(reservationId: $r) {{ {RESERVATION} }} }}"
            ),
            json!({ "r": reservation.to_string() }),
            "cancelReservation",
        )
        .await
    }

    /// The seat map of `schedule` (`schedule { seats }`), anonymously.
    pub async fn seat_map(&self, schedule: i64) -> Vec<Seat> {
        let body = self
            .graphql_with(
                "query($s: ID!) { schedule(id: $s) { seats { id number status } } }",
                json!({ "s": schedule.to_string() }),
            )
            .await;
        assert!(body.get("errors").is_none(), "{body}");
        serde_json::from_value(body["data"]["schedule"]["seats"].clone())
            .unwrap_or_else(|err| panic!("a seat map ({err}): {body}"))
    }

    /// The GraphQL headers a fan sends: an access token, and its queue token if it has one.
    pub fn headers_of(&self, fan: &Fan) -> Vec<(&'static str, String)> {
        let mut headers = vec![(
            "authorization",
            format!("Bearer {}", self.token_for(fan.id)),
        )];
        if let Some(token) = &fan.queue_token {
            headers.push(("queue-token", token.clone()));
        }
        headers
    }

    /// Runs `query` as `fan` and reads `data.<field>` as `T`, or the first error's code.
    async fn operation<T: DeserializeOwned>(
        &self,
        fan: &Fan,
        query: &str,
        variables: Value,
        field: &str,
    ) -> Outcome<T> {
        let body = self
            .graphql_with_headers(query, variables, &self.headers_of(fan))
            .await;
        if let Some(error) = body["errors"].get(0) {
            return Err(error["extensions"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("an error without a code: {body}"))
                .to_owned());
        }
        Ok(serde_json::from_value(body["data"][field].clone())
            .unwrap_or_else(|err| panic!("`{field}` does not read ({err}): {body}")))
    }
}

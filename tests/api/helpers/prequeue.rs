//! The pre-queue and its opening, reached in process: the audit record, a token's place, and
//! entries without the HTTP round trip (for tests that need hundreds of queues).

use chrono::{DateTime, Utc};
use concert_reservation::ids::ConcertId;
use concert_reservation::queue::QueueToken;
use concert_reservation::queue::opening::OpeningRecord;

use crate::helpers::{TestApp, viewer};

impl TestApp {
    /// The latest opening recorded for `concert`.
    pub async fn opening_record(&self, concert: i64) -> Option<OpeningRecord> {
        let mut conn = self.db().await;
        OpeningRecord::latest(&mut conn, ConcertId(concert))
            .await
            .expect("reading queue_openings")
    }

    /// The sequence number (place in line) of `token`; None before the opening placed it.
    pub async fn sequence_of(&self, token: &str) -> Option<u64> {
        let token = QueueToken::parse(token).expect("a token");
        self.queue()
            .sequence(&token)
            .await
            .expect("reading a token")
    }

    /// `user` enters `concert`'s queue in process, as the API does when the sale opens at
    /// `opens_at`; returns the token.
    pub async fn enter_in_process(
        &self,
        user: i64,
        concert: i64,
        opens_at: Option<DateTime<Utc>>,
    ) -> String {
        self.queue()
            .enter(viewer(user), ConcertId(concert), opens_at)
            .await
            .expect("entering")
            .token
    }
}

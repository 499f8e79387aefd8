//! The one staging helper: a concert on sale with fans ready to buy.

use concert_reservation::config::Config;
use concert_reservation::seed::SeedOptions;
use futures::{StreamExt, TryStreamExt};

use super::TestApp;

/// The staged concert.
pub const CONCERT: i64 = 1;
/// The staged concert's one schedule, where the hold operations hold seats.
pub const SCHEDULE: i64 = 1;

/// A fan as the API sees them: a user (signed in with an access token) and, once they entered
/// the queue, a queue token sent as `Queue-Token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fan {
    pub id: i64,
    pub queue_token: Option<String>,
}

impl Fan {
    pub fn with_queue_token(id: i64, token: String) -> Self {
        Self {
            id,
            queue_token: Some(token),
        }
    }

    /// A signed-in user who sends no queue token.
    pub fn without_queue_token(id: i64) -> Self {
        Self {
            id,
            queue_token: None,
        }
    }

    /// This user, sending `other`'s queue token.
    pub fn with_token_of(&self, other: &Fan) -> Self {
        Self {
            id: self.id,
            queue_token: other.queue_token.clone(),
        }
    }
}

impl TestApp {
    /// A server with the concert (`CONCERT`, one `SCHEDULE` of `seats` seats) and fans
    /// 1..=`fans` with `points` each, every one ACTIVE in the queue (`fans[i]` is user `i + 1`).
    /// `customize` may change the configuration first.
    pub async fn staged(
        seats: usize,
        fans: usize,
        points: i64,
        customize: impl FnOnce(&mut Config),
    ) -> (Self, Vec<Fan>) {
        let app = Self::spawn_with(|config| {
            config.database_pool_size = 16;
            config.queue_active_cap = 100_000;
            customize(config);
        })
        .await;
        let fans = app.stage_concert(seats, fans, points).await;
        (app, fans)
    }

    /// A catalogue of `concerts` concerts with `schedules` schedules of `seats` seats each, and one
    /// fan; nobody in any queue.
    pub async fn seed_catalogue(&self, concerts: usize, schedules: usize, seats: usize) {
        self.seed(catalogue(concerts, schedules, seats)).await;
    }

    /// Seeds the concert and `fans` fans with `points` each, who enter its queue (over the API)
    /// and are all admitted. The queue's active cap must let them all in.
    pub async fn stage_concert(&self, seats: usize, fans: usize, points: i64) -> Vec<Fan> {
        self.seed(SeedOptions {
            concerts: 1,
            schedules_per_concert: 1,
            seats_per_schedule: seats,
            users: fans,
            points,
            reset: false,
        })
        .await;
        let fans: Vec<Fan> = futures::stream::iter(1..=fans as i64)
            .map(|user| self.enter_queue(user, CONCERT))
            .buffered(16)
            .try_collect()
            .await
            .unwrap_or_else(|code| panic!("entering the queue: {code}"));
        self.admit(CONCERT, fans.len() as u32).await;
        fans
    }
}

/// The seed of [`TestApp::seed_catalogue`], for tests of seeding itself.
pub fn catalogue(concerts: usize, schedules: usize, seats: usize) -> SeedOptions {
    SeedOptions {
        concerts,
        schedules_per_concert: schedules,
        seats_per_schedule: seats,
        users: 1,
        ..SeedOptions::default()
    }
}

//! Which concerts exist and which concert each schedule belongs to, remembered in process:
//! entering a queue and guarding a hold are the hottest paths of an on-sale and must not hit
//! PostgreSQL each time.

use diesel_async::AsyncPgConnection;

use crate::catalogue::{Concert, Schedule};
use crate::db::Database;
use crate::error::{AppError, AppResult};
use crate::ids::{ConcertId, ScheduleId};

/// Whether concerts exist, remembered for a short while: entering a queue is the hottest write of
/// an on-sale and must not hit PostgreSQL each time. A concert created after a miss for its id
/// is known within `CONCERT_CACHE_TTL`.
///
/// It also remembers which concert a schedule belongs to (that never changes), so the guard of
/// holds and payments needs no query to find the queue a request must be ACTIVE in.
#[derive(Clone)]
pub struct ConcertDirectory {
    known: moka::future::Cache<ConcertId, bool>,
    concert_of: moka::future::Cache<ScheduleId, Option<ConcertId>>,
}

const CONCERT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for ConcertDirectory {
    fn default() -> Self {
        Self {
            known: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CONCERT_CACHE_TTL)
                .build(),
            // A miss (no such schedule) is forgotten after the TTL, like an unknown concert.
            concert_of: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CONCERT_CACHE_TTL)
                .build(),
        }
    }
}

impl ConcertDirectory {
    /// True when the concert exists. Concurrent misses for one id share a single query.
    pub async fn exists(&self, db: &Database, id: ConcertId) -> AppResult<bool> {
        self.known
            .try_get_with(id, async {
                let mut conn = db.conn().await?;
                let found = Concert::by_ids(&mut conn, &[id]).await?;
                Ok::<_, AppError>(found.contains_key(&id))
            })
            .await
            .map_err(shared_error)
    }

    /// The concert of a schedule (`None`: no such schedule). Concurrent misses share a query.
    pub async fn concert_of(
        &self,
        db: &Database,
        schedule: ScheduleId,
    ) -> AppResult<Option<ConcertId>> {
        self.concert_of
            .try_get_with(schedule, async {
                let mut conn = db.conn().await?;
                Ok::<_, AppError>(Schedule::concert_of(&mut conn, schedule).await?)
            })
            .await
            .map_err(shared_error)
    }

    /// [`ConcertDirectory::concert_of`] for a caller inside a transaction: a miss is read on the
    /// caller's own connection. Holding a pooled connection while waiting for a second one would
    /// let a cold cache starve the pool (every transaction waiting for the one that loads).
    pub async fn concert_of_on(
        &self,
        conn: &mut AsyncPgConnection,
        schedule: ScheduleId,
    ) -> AppResult<Option<ConcertId>> {
        self.concert_of
            .try_get_with(schedule, async {
                Ok::<_, AppError>(Schedule::concert_of(conn, schedule).await?)
            })
            .await
            .map_err(shared_error)
    }
}

/// The error of a cache load that several callers waited for, for each of them.
fn shared_error(err: std::sync::Arc<AppError>) -> AppError {
    match &*err {
        AppError::Unavailable(_) => AppError::Unavailable(anyhow::anyhow!("{err}")),
        _ => AppError::Internal(anyhow::anyhow!("{err}")),
    }
}

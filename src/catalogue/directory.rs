//! Which concerts exist, and the schedules (which concert each belongs to, where and when),
//! remembered in process: entering a queue, guarding a hold and showing a seat map are the
//! hottest paths of an on-sale and must not hit PostgreSQL each time.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;

use crate::catalogue::opening::QueueOpening;
use crate::catalogue::{Concert, Schedule};
use crate::db::Database;
use crate::error::{AppError, AppResult};
use crate::ids::{ConcertId, ScheduleId};

/// Whether concerts exist, remembered for a short while: entering a queue is the hottest write of
/// an on-sale and must not hit PostgreSQL each time. A concert created after a miss for its id
/// is known within `CONCERT_CACHE_TTL`.
///
/// With each concert it remembers its schedules' sale times, so entering a queue needs no query
/// to learn whether the queue is open, in its pre-queue, or not open yet ([`QueueOpening`]).
///
/// It also remembers each schedule (its concert, which never changes, and its sale times), so the
/// guard of holds needs no query to find the queue a request must be ACTIVE in, or whether the
/// sale is open.
///
/// Schedule rows are remembered for the same TTL, in the same cache: a seat map request reads
/// its schedule from here, so a cached seat map costs no SQL at all.
#[derive(Clone)]
pub struct ConcertDirectory {
    /// A concert's schedules (None: no such concert).
    concerts: moka::future::Cache<ConcertId, Option<Arc<Vec<Schedule>>>>,
    schedule_of: moka::future::Cache<ScheduleId, Option<Schedule>>,
}

const CONCERT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for ConcertDirectory {
    fn default() -> Self {
        Self {
            concerts: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CONCERT_CACHE_TTL)
                .build(),
            // A miss (no such schedule) is forgotten after the TTL, like an unknown concert.
            schedule_of: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CONCERT_CACHE_TTL)
                .build(),
        }
    }
}

impl ConcertDirectory {
    /// The schedules among `ids` that exist: cached rows, and the rest (a remembered miss
    /// included) read in one query.
    pub async fn schedules(
        &self,
        db: &Database,
        ids: &[ScheduleId],
    ) -> AppResult<HashMap<ScheduleId, Schedule>> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for &id in ids {
            match self.schedule_of.get(&id).await {
                Some(Some(schedule)) => {
                    found.insert(id, schedule);
                }
                _ => missing.push(id),
            }
        }
        if !missing.is_empty() {
            let mut conn = db.conn().await?;
            let loaded = Schedule::by_ids(&mut conn, &missing).await?;
            for (&id, schedule) in &loaded {
                self.schedule_of.insert(id, Some(schedule.clone())).await;
            }
            found.extend(loaded);
        }
        Ok(found)
    }

    /// True when the concert exists. Concurrent misses for one id share a single query.
    pub async fn exists(&self, db: &Database, id: ConcertId) -> AppResult<bool> {
        Ok(self.schedules_of(db, id).await?.is_some())
    }

    /// Where the concert's queue stands now (None: no such concert).
    pub async fn opening(&self, db: &Database, id: ConcertId) -> AppResult<Option<QueueOpening>> {
        Ok(self
            .schedules_of(db, id)
            .await?
            .map(|schedules| QueueOpening::of(&schedules, Utc::now())))
    }

    /// A concert's schedules (None: no such concert); concurrent misses share one checkout.
    async fn schedules_of(
        &self,
        db: &Database,
        id: ConcertId,
    ) -> AppResult<Option<Arc<Vec<Schedule>>>> {
        self.concerts
            .try_get_with(id, async {
                let mut conn = db.conn().await?;
                if !Concert::by_ids(&mut conn, &[id]).await?.contains_key(&id) {
                    return Ok::<_, AppError>(None);
                }
                let mut schedules = Schedule::for_concerts(&mut conn, &[id]).await?;
                Ok(Some(Arc::new(schedules.remove(&id).unwrap_or_default())))
            })
            .await
            .map_err(shared_error)
    }

    /// A schedule (`None`: no such schedule): its concert and its sale times, for the guard of
    /// every hold. Concurrent misses share a query.
    pub async fn schedule(&self, db: &Database, id: ScheduleId) -> AppResult<Option<Schedule>> {
        self.schedule_of
            .try_get_with(id, async {
                let mut conn = db.conn().await?;
                Ok::<_, AppError>(Schedule::by_ids(&mut conn, &[id]).await?.remove(&id))
            })
            .await
            .map_err(shared_error)
    }

    /// The concert of a schedule (`None`: no such schedule).
    pub async fn concert_of(
        &self,
        db: &Database,
        schedule: ScheduleId,
    ) -> AppResult<Option<ConcertId>> {
        Ok(self.schedule(db, schedule).await?.map(|s| s.concert_id))
    }
}

impl ConcertDirectory {
    /// A concert this instance just created: known at once here (other instances learn it
    /// within `CONCERT_CACHE_TTL` of a miss for its id).
    pub async fn remember_concert(&self, id: ConcertId) {
        self.concerts.insert(id, Some(Arc::default())).await;
    }

    /// A schedule this instance just created, likewise (its concert's sale times are read again).
    pub async fn remember_schedule(&self, schedule: &Schedule) {
        self.concerts.invalidate(&schedule.concert_id).await;
        self.schedule_of
            .insert(schedule.id, Some(schedule.clone()))
            .await;
    }
}

impl ConcertDirectory {
    /// A schedule this instance just changed (cancelled): read again here at the next use, with
    /// its concert's sale times (other instances within `CONCERT_CACHE_TTL`).
    pub async fn forget_schedule(&self, id: ScheduleId) {
        if let Some(Some(schedule)) = self.schedule_of.get(&id).await {
            self.concerts.invalidate(&schedule.concert_id).await;
        }
        self.schedule_of.invalidate(&id).await;
    }
}

/// The error of a cache load that several callers waited for, for each of them.
fn shared_error(err: std::sync::Arc<AppError>) -> AppError {
    match &*err {
        AppError::Unavailable(_) => AppError::Unavailable(anyhow::anyhow!("{err}")),
        _ => AppError::Internal(anyhow::anyhow!("{err}")),
    }
}

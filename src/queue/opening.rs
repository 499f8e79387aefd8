//! The scheduled opening of a concert's queue: fans who enter before the sale opens wait in a
//! pre-queue without a place ([`crate::catalogue::opening`] says when that is). At the opening
//! the admitter holding the concert's lease shuffles all of them once, uniformly at random, and
//! gives them the first places in line; fans who came after the opening time but before the
//! shuffle ran follow in arrival order, then everyone after. Arriving a second early, or by
//! script, is worth nothing.
//!
//! The shuffle is auditable: the first admitter to reach the opening records, in
//! `queue_openings`, the pre-queue's user ids in arrival order and a random seed, and shuffles
//! with [`shuffle`] from that seed. Anyone can recompute the line from the record. A second
//! admitter (or a retry after a failure) reuses the recorded seed, and the opening script places
//! only fans still in the pre-queue, so there is exactly one shuffle.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::db::Database;
use crate::db::schema::queue_openings;
use crate::error::AppResult;
use crate::ids::{ConcertId, UserId};
use crate::metrics as m;
use crate::queue::{Keys, Queue, unavailable};

/// Shuffles `items` uniformly at random (Fisher–Yates, `rand`'s `SliceRandom::shuffle`) from
/// `seed` (a ChaCha8 generator): the same seed and the same number of items give the same
/// permutation, whatever the items are, so the recorded arrivals and seed reproduce the line.
pub fn shuffle<T>(items: &mut [T], seed: i64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed as u64);
    items.shuffle(&mut rng);
}

/// The audit record of one opening.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = queue_openings, check_for_backend(diesel::pg::Pg))]
pub struct OpeningRecord {
    pub concert_id: ConcertId,
    pub sales_open_at: DateTime<Utc>,
    pub seed: i64,
    /// The pre-queue's user ids in arrival order: the shuffle's input.
    pub arrivals: Vec<i64>,
    /// None while the opening is under way (or failed, to be retried on the next tick).
    pub opened_at: Option<DateTime<Utc>>,
    pub fans_shuffled: Option<i32>,
    pub fans_after_opening: Option<i32>,
}

impl OpeningRecord {
    /// The line the record stands for: its arrivals shuffled with its seed.
    pub fn line(&self) -> Vec<UserId> {
        let mut line: Vec<UserId> = self.arrivals.iter().copied().map(UserId).collect();
        shuffle(&mut line, self.seed);
        line
    }

    /// The latest opening of `concert`, if it had one.
    pub async fn latest(
        conn: &mut AsyncPgConnection,
        concert: ConcertId,
    ) -> QueryResult<Option<Self>> {
        let latest = queue_openings::table
            .filter(queue_openings::concert_id.eq(concert))
            .order(queue_openings::sales_open_at.desc())
            .limit(1)
            .select(Self::as_select());
        crate::db::one(latest, conn).await.optional()
    }
}

/// What an opening did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub seed: i64,
    /// Fans placed by the shuffle.
    pub shuffled: u64,
    /// Fans placed behind them in arrival order.
    pub after: u64,
}

/// Opens `concert`'s queue for its sale opening at `sales_open_at`, as the admitter `instance`
/// (which must hold the concert's lease): records the arrivals and the seed (or reuses the seed
/// already recorded), shuffles, places everyone. `None` when the lease is another's.
pub async fn open(
    queue: &Queue,
    db: &Database,
    instance: &str,
    concert: ConcertId,
    sales_open_at: DateTime<Utc>,
) -> AppResult<Option<Opened>> {
    let mut prequeue = queue.prequeue(concert).await?;
    let arrivals: Vec<i64> = prequeue.iter().map(|(_, user)| user.0).collect();
    let seed = {
        let mut conn = db.conn().await?;
        claim_seed(&mut conn, concert, sales_open_at, rand::random(), &arrivals).await?
    };
    shuffle(&mut prequeue, seed);
    let order: Vec<String> = prequeue.into_iter().map(|(token, _)| token).collect();
    let Some((shuffled, after)) = queue.place(concert, instance, seed, &order).await? else {
        return Ok(None);
    };
    {
        let mut conn = db.conn().await?;
        diesel::update(queue_openings::table.find((concert, sales_open_at)))
            .set((
                queue_openings::opened_at.eq(diesel::dsl::now),
                queue_openings::fans_shuffled.eq(i32::try_from(shuffled).unwrap_or(i32::MAX)),
                queue_openings::fans_after_opening.eq(i32::try_from(after).unwrap_or(i32::MAX)),
            ))
            .execute(&mut conn)
            .await?;
    }
    metrics::counter!(m::QUEUE_OPENINGS_TOTAL, "concert" => concert.to_string()).increment(1);
    tracing::info!(%concert, %sales_open_at, seed, shuffled, after, "queue opened: pre-queue shuffled into the line");
    Ok(Some(Opened {
        seed,
        shuffled,
        after,
    }))
}

/// Records the opening with `candidate` as its seed, or returns the seed an earlier attempt
/// recorded (the arrivals are those of the latest attempt, the ones it shuffles). One statement.
async fn claim_seed(
    conn: &mut AsyncPgConnection,
    concert: ConcertId,
    sales_open_at: DateTime<Utc>,
    candidate: i64,
    arrivals: &[i64],
) -> QueryResult<i64> {
    let claim = diesel::insert_into(queue_openings::table)
        .values((
            queue_openings::concert_id.eq(concert),
            queue_openings::sales_open_at.eq(sales_open_at),
            queue_openings::seed.eq(candidate),
            queue_openings::arrivals.eq(arrivals),
        ))
        .on_conflict((queue_openings::concert_id, queue_openings::sales_open_at))
        .do_update()
        .set(queue_openings::arrivals.eq(excluded(queue_openings::arrivals)))
        .returning(queue_openings::seed);
    crate::db::one(claim, conn).await
}

impl Queue {
    /// The pre-queue of `concert` in arrival order: each token and its fan.
    pub async fn prequeue(&self, concert: ConcertId) -> AppResult<Vec<(String, UserId)>> {
        let keys = Keys::new(&self.redis, concert);
        let mut conn = self.conn().await?;
        let flat: Vec<(String, i64)> = self
            .scripts
            .prequeue
            .key(keys.named("pre"))
            .arg(keys.token_prefix())
            .invoke_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(flat
            .into_iter()
            .map(|(token, user)| (token, UserId(user)))
            .collect())
    }

    /// Gives the pre-queue its places: `order` first, then anyone else waiting for the opening
    /// in arrival order. `None` when `instance` does not hold the concert's lease.
    pub async fn place(
        &self,
        concert: ConcertId,
        instance: &str,
        seed: i64,
        order: &[String],
    ) -> AppResult<Option<(u64, u64)>> {
        let keys = Keys::new(&self.redis, concert);
        let mut conn = self.conn().await?;
        let mut script = self.scripts.open.prepare_invoke();
        script
            .key(keys.named("pre"))
            .key(keys.named("late"))
            .key(keys.named("waiting"))
            .key(keys.named("seen"))
            .key(keys.named("seq"))
            .key(keys.named("meta"))
            .key(keys.named("lease"))
            .arg(instance)
            .arg(crate::queue::now_ms())
            .arg(keys.token_prefix())
            .arg(self.settings.record_ttl_seconds)
            .arg(seed);
        for token in order {
            script.arg(token);
        }
        script.invoke_async(&mut *conn).await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::shuffle;

    #[test]
    fn the_same_seed_gives_the_same_line_and_another_seed_another() {
        let arrivals: Vec<u32> = (0..1_000).collect();
        let mut first = arrivals.clone();
        let mut again = arrivals.clone();
        let mut other = arrivals.clone();
        shuffle(&mut first, 42);
        shuffle(&mut again, 42);
        shuffle(&mut other, 43);
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert_ne!(first, arrivals);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted, arrivals,
            "a shuffle neither loses nor repeats anyone"
        );
    }

    /// Every order of four fans is equally likely: over 48,000 seeds each of the 24 orders
    /// comes about 2,000 times, and the chi-square statistic (23 degrees of freedom) stays under
    /// 49.7, its 0.1 % critical value. A biased shuffle (e.g. one that favours arrival order or
    /// never moves the first fan) fails it by far.
    #[test]
    fn every_order_of_the_pre_queue_is_equally_likely() {
        let runs = 48_000u64;
        let mut counts: HashMap<[u8; 4], u64> = HashMap::new();
        for run in 0..runs {
            let mut line = [0u8, 1, 2, 3];
            shuffle(&mut line, run as i64 * 7_919 - 1_000_003);
            *counts.entry(line).or_default() += 1;
        }
        assert_eq!(counts.len(), 24, "every order occurs");
        let expected = runs as f64 / 24.0;
        let chi_square: f64 = counts
            .values()
            .map(|&seen| (seen as f64 - expected).powi(2) / expected)
            .sum();
        assert!(
            chi_square < 49.7,
            "chi-square {chi_square:.1} over 24 orders"
        );
    }
}

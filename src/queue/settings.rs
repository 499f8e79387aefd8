//! Per-concert queue settings, changed live: the admission rate (the most adaptive admission may
//! reach), the cap on ACTIVE fans, how long an admission lasts, and a pause. A concert without a
//! value of its own uses the instance's default (QUEUE_ADMIT_PER_SECOND, QUEUE_ACTIVE_CAP,
//! QUEUE_ACTIVE_TTL_SECONDS). The admitter reads them every tick, so a change needs no restart.
//!
//! Changed by `concert-reservation queue set|pause|resume`; every value is checked before
//! anything is written, and the change is one statement, so nothing is ever half-applied.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::catalogue::Concert;
use crate::db::schema::queue_settings;
use crate::error::{AppError, AppResult};
use crate::ids::ConcertId;
use crate::queue::QueueSettings;

/// The accepted ranges (the table's CHECK constraints say the same).
pub const ADMIT_PER_SECOND: RangeInclusive<f64> = 0.01..=10_000.0;
pub const ACTIVE_CAP: RangeInclusive<u32> = 1..=1_000_000;
pub const ACTIVE_TTL_SECONDS: RangeInclusive<u64> = 10..=86_400;

/// One concert's settings as the admitter applies them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcertQueue {
    pub concert_id: ConcertId,
    /// The highest admission rate; adaptive admission stays at or below it.
    pub admit_per_second: f64,
    pub active_cap: u32,
    pub active_ttl_seconds: u64,
    /// A paused queue admits nobody; fans keep their place, ACTIVE fans keep their slot.
    pub paused: bool,
    /// Which of the three values are the concert's own (the others are the defaults).
    pub own: Own,
}

/// Which values a concert set itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Own {
    pub admit_per_second: bool,
    pub active_cap: bool,
    pub active_ttl_seconds: bool,
}

/// One `name value (own|default)` line per setting, as `concert-reservation queue` prints them.
impl std::fmt::Display for ConcertQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = |own: bool| if own { "own" } else { "default" };
        writeln!(f, "concert {}", self.concert_id)?;
        writeln!(
            f,
            "admit_per_second {} ({})",
            self.admit_per_second,
            whose(self.own.admit_per_second)
        )?;
        writeln!(
            f,
            "active_cap {} ({})",
            self.active_cap,
            whose(self.own.active_cap)
        )?;
        writeln!(
            f,
            "active_ttl_seconds {} ({})",
            self.active_ttl_seconds,
            whose(self.own.active_ttl_seconds)
        )?;
        writeln!(f, "paused {}", self.paused)
    }
}

/// A change of settings: `None` leaves a value as it is.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub admit_per_second: Option<f64>,
    pub active_cap: Option<u32>,
    pub active_ttl_seconds: Option<u64>,
    pub paused: Option<bool>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = queue_settings, check_for_backend(diesel::pg::Pg))]
struct Row {
    concert_id: ConcertId,
    admit_per_second: Option<f64>,
    active_cap: Option<i32>,
    active_ttl_seconds: Option<i32>,
    paused: bool,
}

impl Row {
    fn empty(concert_id: ConcertId) -> Self {
        Self {
            concert_id,
            admit_per_second: None,
            active_cap: None,
            active_ttl_seconds: None,
            paused: false,
        }
    }

    fn apply(&self, defaults: &QueueSettings) -> ConcertQueue {
        ConcertQueue {
            concert_id: self.concert_id,
            admit_per_second: self.admit_per_second.unwrap_or(defaults.admit_per_second),
            active_cap: self
                .active_cap
                .and_then(|cap| u32::try_from(cap).ok())
                .unwrap_or(defaults.active_cap),
            active_ttl_seconds: self
                .active_ttl_seconds
                .and_then(|ttl| u64::try_from(ttl).ok())
                .unwrap_or(defaults.active_ttl_ms / 1000),
            paused: self.paused,
            own: Own {
                admit_per_second: self.admit_per_second.is_some(),
                active_cap: self.active_cap.is_some(),
                active_ttl_seconds: self.active_ttl_seconds.is_some(),
            },
        }
    }
}

impl Change {
    /// Refuses a value out of its range, naming it and the range.
    pub fn validate(&self) -> AppResult<()> {
        if let Some(rate) = self.admit_per_second
            && !(rate.is_finite() && ADMIT_PER_SECOND.contains(&rate))
        {
            return Err(out_of_range(
                "the admission rate",
                ADMIT_PER_SECOND,
                "per second",
            ));
        }
        if let Some(cap) = self.active_cap
            && !ACTIVE_CAP.contains(&cap)
        {
            return Err(out_of_range("the active cap", ACTIVE_CAP, "fans"));
        }
        if let Some(ttl) = self.active_ttl_seconds
            && !ACTIVE_TTL_SECONDS.contains(&ttl)
        {
            return Err(out_of_range(
                "the active TTL",
                ACTIVE_TTL_SECONDS,
                "seconds",
            ));
        }
        Ok(())
    }

    fn onto(&self, mut row: Row) -> Row {
        if let Some(rate) = self.admit_per_second {
            row.admit_per_second = Some(rate);
        }
        if let Some(cap) = self.active_cap {
            row.active_cap = i32::try_from(cap).ok();
        }
        if let Some(ttl) = self.active_ttl_seconds {
            row.active_ttl_seconds = i32::try_from(ttl).ok();
        }
        if let Some(paused) = self.paused {
            row.paused = paused;
        }
        row
    }
}

fn out_of_range<T: std::fmt::Display>(
    what: &str,
    range: RangeInclusive<T>,
    unit: &str,
) -> AppError {
    AppError::InvalidInput(format!(
        "{what} must be between {} and {} {unit}",
        range.start(),
        range.end()
    ))
}

/// The settings of a concert that set none of its own: the instance's defaults.
pub fn defaults(defaults: &QueueSettings, concert: ConcertId) -> ConcertQueue {
    Row::empty(concert).apply(defaults)
}

/// The settings of each of `concerts` (the defaults for a concert without a row).
pub async fn load(
    conn: &mut AsyncPgConnection,
    defaults: &QueueSettings,
    concerts: &[ConcertId],
) -> AppResult<HashMap<ConcertId, ConcertQueue>> {
    let rows: Vec<Row> = queue_settings::table
        .filter(queue_settings::concert_id.eq_any(concerts))
        .select(Row::as_select())
        .load(conn)
        .await?;
    let mut rows: HashMap<ConcertId, Row> =
        rows.into_iter().map(|row| (row.concert_id, row)).collect();
    Ok(concerts
        .iter()
        .map(|&id| {
            let row = rows.remove(&id).unwrap_or_else(|| Row::empty(id));
            (id, row.apply(defaults))
        })
        .collect())
}

/// One concert's settings; `NOT_FOUND` for an unknown concert.
pub async fn show(
    conn: &mut AsyncPgConnection,
    defaults: &QueueSettings,
    concert: ConcertId,
) -> AppResult<ConcertQueue> {
    require_concert(conn, concert).await?;
    let mut all = load(conn, defaults, &[concert]).await?;
    Ok(all
        .remove(&concert)
        .expect("load answers every concert asked"))
}

/// Applies `change` to `concert`'s settings and returns them as they now are. Checked first;
/// written in one statement.
pub async fn change(
    conn: &mut AsyncPgConnection,
    defaults: &QueueSettings,
    concert: ConcertId,
    change: &Change,
) -> AppResult<ConcertQueue> {
    change.validate()?;
    require_concert(conn, concert).await?;
    let current: Option<Row> = crate::db::one(
        queue_settings::table.find(concert).select(Row::as_select()),
        conn,
    )
    .await
    .optional()?;
    let row = change.onto(current.unwrap_or_else(|| Row::empty(concert)));
    diesel::insert_into(queue_settings::table)
        .values(&row)
        .on_conflict(queue_settings::concert_id)
        .do_update()
        .set((
            queue_settings::admit_per_second.eq(excluded(queue_settings::admit_per_second)),
            queue_settings::active_cap.eq(excluded(queue_settings::active_cap)),
            queue_settings::active_ttl_seconds.eq(excluded(queue_settings::active_ttl_seconds)),
            queue_settings::paused.eq(excluded(queue_settings::paused)),
            queue_settings::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(row.apply(defaults))
}

async fn require_concert(conn: &mut AsyncPgConnection, concert: ConcertId) -> AppResult<()> {
    let found = Concert::by_ids(conn, &[concert]).await?;
    found
        .contains_key(&concert)
        .then_some(())
        .ok_or(AppError::NotFound("concert"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_out_of_range_are_refused_by_name() {
        let cases = [
            (
                Change {
                    admit_per_second: Some(0.0),
                    ..Change::default()
                },
                "admission rate",
            ),
            (
                Change {
                    admit_per_second: Some(f64::NAN),
                    ..Change::default()
                },
                "admission rate",
            ),
            (
                Change {
                    active_cap: Some(0),
                    ..Change::default()
                },
                "active cap",
            ),
            (
                Change {
                    active_ttl_seconds: Some(5),
                    ..Change::default()
                },
                "active TTL",
            ),
        ];
        for (change, name) in cases {
            match change.validate() {
                Err(AppError::InvalidInput(message)) => {
                    assert!(message.contains(name), "{message}")
                }
                other => panic!("{change:?} should be refused, got {other:?}"),
            }
        }
        let fine = Change {
            admit_per_second: Some(12.5),
            active_cap: Some(300),
            active_ttl_seconds: Some(120),
            paused: Some(true),
        };
        assert!(fine.validate().is_ok());
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name() {
        let row = Row {
            active_cap: Some(40),
            ..Row::empty(ConcertId(1))
        };
        let changed = Change {
            paused: Some(true),
            ..Change::default()
        }
        .onto(row);
        assert_eq!(changed.active_cap, Some(40));
        assert!(changed.paused);
        assert_eq!(changed.admit_per_second, None);
    }
}

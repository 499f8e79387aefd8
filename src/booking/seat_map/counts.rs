//! Free-seat counts (`availableSeats`, shown for every schedule of a concert page), cached in
//! process for the seat map's TTL and dropped by every change, this instance's and (through the
//! change feed) every other's.

use std::collections::HashMap;

use crate::ids::ScheduleId;

#[derive(Clone)]
pub struct CountCache {
    enabled: bool,
    counts: moka::sync::Cache<ScheduleId, i64>,
}

impl CountCache {
    pub fn new(ttl_seconds: u64) -> Self {
        Self {
            enabled: ttl_seconds > 0,
            counts: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(ttl_seconds.max(1)))
                .build(),
        }
    }

    /// The cached free-seat counts among `schedules`.
    pub fn get(&self, schedules: &[ScheduleId]) -> HashMap<ScheduleId, i64> {
        if !self.enabled {
            return HashMap::new();
        }
        schedules
            .iter()
            .filter_map(|&id| Some((id, self.counts.get(&id)?)))
            .collect()
    }

    /// Caches freshly counted free seats.
    pub fn put(&self, counts: &HashMap<ScheduleId, i64>) {
        if !self.enabled {
            return;
        }
        for (&id, &count) in counts {
            self.counts.insert(id, count);
        }
    }

    pub fn invalidate(&self, schedule: ScheduleId) {
        self.counts.invalidate(&schedule);
    }
}

//! Dataloaders: each turns the many lookups of one GraphQL request into one SQL statement.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_graphql::dataloader::{DataLoader, Loader};

use crate::booking::Reservation;
use crate::booking::seat_map::SeatMap;
use crate::catalogue::directory::ConcertDirectory;
use crate::catalogue::{Concert, Schedule, Seat};
use crate::db::Database;
use crate::error::AppError;
use crate::ids::{ConcertId, ReservationId, ScheduleId};
use crate::payment::models::Payment;

/// A loader's failure, shared by every field that waited for the batch.
#[derive(Clone)]
pub struct LoadError(Arc<AppError>);

impl From<AppError> for LoadError {
    fn from(err: AppError) -> Self {
        Self(Arc::new(err))
    }
}

impl From<LoadError> for async_graphql::Error {
    fn from(err: LoadError) -> Self {
        err.0.to_graphql()
    }
}

/// Ids per batch: large enough that a realistic request is one batch per level.
const MAX_BATCH: usize = 10_000;

/// How long a loader waits for more keys before it queries.
const BATCH_DELAY: std::time::Duration = std::time::Duration::ZERO;

/// The loaders of one request (or one websocket connection), added to its GraphQL data. Each is
/// made the first time a resolver asks for it: most operations use one or two of them, or none
/// (`queueStatus`, a hold, a payment), and the seven made for every request showed in profiles.
#[derive(Clone)]
pub struct Loaders(Arc<Lazy>);

struct Lazy {
    db: Database,
    seat_map: SeatMap,
    directory: ConcertDirectory,
    concerts: OnceLock<DataLoader<ConcertsById>>,
    schedules: OnceLock<DataLoader<SchedulesById>>,
    schedules_by_concert: OnceLock<DataLoader<SchedulesByConcert>>,
    seats_by_schedule: OnceLock<DataLoader<SeatsBySchedule>>,
    available_by_schedule: OnceLock<DataLoader<AvailableBySchedule>>,
    seats_by_reservation: OnceLock<DataLoader<SeatsByReservation>>,
    payment_by_reservation: OnceLock<DataLoader<PaymentByReservation>>,
}

fn loader<T: Send + Sync + 'static>(inner: T) -> DataLoader<T> {
    DataLoader::new(inner, tokio::spawn)
        .max_batch_size(MAX_BATCH)
        .delay(BATCH_DELAY)
}

impl Loaders {
    pub fn new(db: &Database, seat_map: &SeatMap, directory: &ConcertDirectory) -> Self {
        Self(Arc::new(Lazy {
            db: db.clone(),
            seat_map: seat_map.clone(),
            directory: directory.clone(),
            concerts: OnceLock::new(),
            schedules: OnceLock::new(),
            schedules_by_concert: OnceLock::new(),
            seats_by_schedule: OnceLock::new(),
            available_by_schedule: OnceLock::new(),
            seats_by_reservation: OnceLock::new(),
            payment_by_reservation: OnceLock::new(),
        }))
    }

    pub fn concerts(&self) -> &DataLoader<ConcertsById> {
        let lazy = &self.0;
        lazy.concerts
            .get_or_init(|| loader(ConcertsById(lazy.db.clone())))
    }

    pub fn schedules(&self) -> &DataLoader<SchedulesById> {
        let lazy = &self.0;
        lazy.schedules
            .get_or_init(|| loader(SchedulesById(lazy.db.clone(), lazy.directory.clone())))
    }

    pub fn schedules_by_concert(&self) -> &DataLoader<SchedulesByConcert> {
        let lazy = &self.0;
        lazy.schedules_by_concert
            .get_or_init(|| loader(SchedulesByConcert(lazy.db.clone())))
    }

    pub fn seats_by_schedule(&self) -> &DataLoader<SeatsBySchedule> {
        let lazy = &self.0;
        lazy.seats_by_schedule
            .get_or_init(|| loader(SeatsBySchedule(lazy.db.clone(), lazy.seat_map.clone())))
    }

    pub fn available_by_schedule(&self) -> &DataLoader<AvailableBySchedule> {
        let lazy = &self.0;
        lazy.available_by_schedule
            .get_or_init(|| loader(AvailableBySchedule(lazy.db.clone(), lazy.seat_map.clone())))
    }

    pub fn seats_by_reservation(&self) -> &DataLoader<SeatsByReservation> {
        let lazy = &self.0;
        lazy.seats_by_reservation
            .get_or_init(|| loader(SeatsByReservation(lazy.db.clone())))
    }

    pub fn payment_by_reservation(&self) -> &DataLoader<PaymentByReservation> {
        let lazy = &self.0;
        lazy.payment_by_reservation
            .get_or_init(|| loader(PaymentByReservation(lazy.db.clone())))
    }
}

pub struct ConcertsById(Database);
/// Schedules from the in-process concert directory; misses are read in one statement.
pub struct SchedulesById(Database, ConcertDirectory);
pub struct SchedulesByConcert(Database);
/// Seat maps come from the short-lived Redis cache; misses are read in one statement and cached.
pub struct SeatsBySchedule(Database, SeatMap);
/// Free-seat counts from the in-process cache; misses are one grouped COUNT, then cached.
pub struct AvailableBySchedule(Database, SeatMap);
pub struct SeatsByReservation(Database);
pub struct PaymentByReservation(Database);

impl Loader<ConcertId> for ConcertsById {
    type Value = Concert;
    type Error = LoadError;

    async fn load(&self, ids: &[ConcertId]) -> Result<HashMap<ConcertId, Concert>, Self::Error> {
        let mut conn = self.0.conn().await?;
        Ok(Concert::by_ids(&mut conn, ids)
            .await
            .map_err(AppError::from)?)
    }
}

impl Loader<ScheduleId> for SchedulesById {
    type Value = Schedule;
    type Error = LoadError;

    async fn load(&self, ids: &[ScheduleId]) -> Result<HashMap<ScheduleId, Schedule>, Self::Error> {
        Ok(self.1.schedules(&self.0, ids).await?)
    }
}

impl Loader<ConcertId> for SchedulesByConcert {
    type Value = Vec<Schedule>;
    type Error = LoadError;

    async fn load(
        &self,
        ids: &[ConcertId],
    ) -> Result<HashMap<ConcertId, Vec<Schedule>>, Self::Error> {
        let mut conn = self.0.conn().await?;
        Ok(Schedule::for_concerts(&mut conn, ids)
            .await
            .map_err(AppError::from)?)
    }
}

impl Loader<ScheduleId> for SeatsBySchedule {
    type Value = Vec<Seat>;
    type Error = LoadError;

    async fn load(
        &self,
        ids: &[ScheduleId],
    ) -> Result<HashMap<ScheduleId, Vec<Seat>>, Self::Error> {
        let mut maps = self.1.maps.get(ids).await;
        let missing: Vec<ScheduleId> = ids
            .iter()
            .filter(|id| !maps.contains_key(id))
            .copied()
            .collect();
        if !missing.is_empty() {
            let mut conn = self.0.conn().await?;
            let mut loaded = Seat::for_schedules(&mut conn, &missing)
                .await
                .map_err(AppError::from)?;
            // A schedule without seats is cached as empty too.
            for id in &missing {
                loaded.entry(*id).or_default();
            }
            self.1.maps.put(&loaded).await;
            maps.extend(loaded);
        }
        Ok(maps)
    }
}

impl Loader<ScheduleId> for AvailableBySchedule {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, ids: &[ScheduleId]) -> Result<HashMap<ScheduleId, i64>, Self::Error> {
        let mut counts = self.1.counts.get(ids);
        let missing: Vec<ScheduleId> = ids
            .iter()
            .filter(|id| !counts.contains_key(id))
            .copied()
            .collect();
        if !missing.is_empty() {
            let mut conn = self.0.conn().await?;
            let mut loaded = Seat::available_counts(&mut conn, &missing)
                .await
                .map_err(AppError::from)?;
            // No row: no free seat left.
            for id in &missing {
                loaded.entry(*id).or_insert(0);
            }
            self.1.counts.put(&loaded);
            counts.extend(loaded);
        }
        Ok(counts)
    }
}

impl Loader<ReservationId> for SeatsByReservation {
    type Value = Vec<Seat>;
    type Error = LoadError;

    async fn load(
        &self,
        ids: &[ReservationId],
    ) -> Result<HashMap<ReservationId, Vec<Seat>>, Self::Error> {
        let mut conn = self.0.conn().await?;
        Ok(Reservation::seats_of(&mut conn, ids)
            .await
            .map_err(AppError::from)?)
    }
}

impl Loader<ReservationId> for PaymentByReservation {
    type Value = Payment;
    type Error = LoadError;

    async fn load(
        &self,
        ids: &[ReservationId],
    ) -> Result<HashMap<ReservationId, Payment>, Self::Error> {
        let mut conn = self.0.conn().await?;
        Ok(Payment::for_reservations(&mut conn, ids)
            .await
            .map_err(AppError::from)?)
    }
}

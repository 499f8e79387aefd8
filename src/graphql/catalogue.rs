//! Catalogue queries: concerts, their schedules and seats. Nested lists resolve through the
//! request's dataloaders, so a query over every concert × schedule × seat is three statements.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use crate::catalogue::{Concert, Schedule, Seat};
use crate::db::enums::{SeatGrade, SeatStatus};
use crate::error::AppError;
use crate::graphql::context::{app, loaders};
use crate::ids::{ConcertId, ScheduleId};

/// Largest page of `concerts`.
const MAX_PAGE: i32 = 100;

#[derive(Default)]
pub struct CatalogueQuery;

#[Object]
impl CatalogueQuery {
    /// Concerts on sale, oldest first, one page at a time.
    #[graphql(complexity = "super::cost::page(limit, MAX_PAGE) * child_complexity")]
    async fn concerts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, desc = "Page size, 1 to 100.")] limit: i32,
        #[graphql(default = 0, desc = "Concerts to skip.")] offset: i32,
    ) -> Result<Vec<ConcertObject>> {
        if !(1..=MAX_PAGE).contains(&limit) || offset < 0 {
            return Err(AppError::InvalidInput(format!(
                "limit must be 1 to {MAX_PAGE} and offset at least 0"
            ))
            .into());
        }
        let mut conn = app(ctx).db.conn().await?;
        let concerts = Concert::list(&mut conn, limit.into(), offset.into())
            .await
            .map_err(AppError::from)?;
        Ok(concerts.into_iter().map(ConcertObject).collect())
    }

    /// One concert, or null when there is none with this id.
    async fn concert(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ConcertObject>> {
        let id = ConcertId::parse(&id)?;
        Ok(loaders(ctx)
            .concerts()
            .load_one(id)
            .await?
            .map(ConcertObject))
    }

    /// One schedule (performance), or null when there is none with this id.
    async fn schedule(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ScheduleObject>> {
        let id = ScheduleId::parse(&id)?;
        Ok(loaders(ctx)
            .schedules()
            .load_one(id)
            .await?
            .map(ScheduleObject))
    }
}

/// A concert: one show that may be performed several times (its schedules).
pub struct ConcertObject(pub Concert);

#[Object(name = "Concert")]
impl ConcertObject {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn artist(&self) -> &str {
        &self.0.artist
    }

    /// Performances of this concert, earliest first.
    #[graphql(complexity = "super::cost::SCHEDULES_PER_CONCERT * child_complexity")]
    async fn schedules(&self, ctx: &Context<'_>) -> Result<Vec<ScheduleObject>> {
        let schedules = loaders(ctx)
            .schedules_by_concert()
            .load_one(self.0.id)
            .await?;
        Ok(schedules
            .unwrap_or_default()
            .into_iter()
            .map(ScheduleObject)
            .collect())
    }
}

/// One performance of a concert, at a time and a venue, with its own seats.
pub struct ScheduleObject(pub Schedule);

#[Object(name = "Schedule")]
impl ScheduleObject {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    async fn starts_at(&self) -> DateTime<Utc> {
        self.0.starts_at
    }

    async fn venue(&self) -> &str {
        &self.0.venue
    }

    /// Fans may enter the queue from then; null: when the sale opens.
    async fn prequeue_opens_at(&self) -> Option<DateTime<Utc>> {
        self.0.prequeue_opens_at
    }

    /// The sale opens then; null: it is open.
    async fn sales_open_at(&self) -> Option<DateTime<Utc>> {
        self.0.sales_open_at
    }

    /// The sale closes then; null: when the performance starts.
    async fn sales_close_at(&self) -> Option<DateTime<Utc>> {
        self.0.sales_close_at
    }

    /// When the organiser cancelled the performance (its holds cancelled, its bookings refunded,
    /// its seats WITHDRAWN); null: it was not.
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }

    async fn concert(&self, ctx: &Context<'_>) -> Result<ConcertObject> {
        let concert = loaders(ctx).concerts().load_one(self.0.concert_id).await?;
        let concert = concert.ok_or_else(|| {
            AppError::internal(anyhow::anyhow!("schedule {} has no concert", self.0.id))
        })?;
        Ok(ConcertObject(concert))
    }

    /// Every seat of this performance, by number.
    #[graphql(complexity = "super::cost::SEATS_PER_SCHEDULE * child_complexity")]
    async fn seats(&self, ctx: &Context<'_>) -> Result<Vec<SeatObject>> {
        let seats = loaders(ctx).seats_by_schedule().load_one(self.0.id).await?;
        Ok(seats
            .unwrap_or_default()
            .into_iter()
            .map(SeatObject)
            .collect())
    }

    /// How many seats are AVAILABLE right now.
    async fn available_seats(&self, ctx: &Context<'_>) -> Result<i32> {
        let available = loaders(ctx)
            .available_by_schedule()
            .load_one(self.0.id)
            .await?
            .unwrap_or(0); // no row: no free seat
        Ok(i32::try_from(available).unwrap_or(i32::MAX))
    }
}

/// A seat of one performance.
pub struct SeatObject(pub Seat);

#[Object(name = "Seat")]
impl SeatObject {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    /// Seat number, unique within its schedule.
    async fn number(&self) -> i32 {
        self.0.number
    }

    async fn grade(&self) -> SeatGrade {
        self.0.grade
    }

    /// Price in points.
    async fn price(&self) -> i64 {
        self.0.price
    }

    async fn status(&self) -> SeatStatus {
        self.0.effective_status(Utc::now())
    }
}

//! What organisers do through the API: create concerts and their performances, lay out seat
//! maps, set prices before the sale, and run a concert's waiting queue. Every operation needs an
//! access token with `"role": "organiser"` (`FORBIDDEN` otherwise).

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::auth::Viewer;
use crate::booking::cancel::CancelledSchedule;
use crate::catalogue::organise::{self, LaidOut, SaleTimes};
use crate::db::enums::SeatGrade;
use crate::error::AppError;
use crate::graphql::catalogue::{ConcertObject, ScheduleObject};
use crate::graphql::context::{app, viewer};
use crate::ids::{ConcertId, ScheduleId};
use crate::plan;
use crate::queue::opening::OpeningRecord;
use crate::queue::settings::{self, Change, ConcertQueue};

/// The caller, if an organiser.
fn organiser(ctx: &Context<'_>) -> Result<Viewer, AppError> {
    viewer(ctx)?.organiser()
}

/// A GraphQL `Int` that counts something, as an unsigned number; `INVALID_INPUT` naming `what`
/// when it is negative.
fn not_negative<T: TryFrom<i32>>(what: &str, value: i32) -> Result<T, AppError> {
    T::try_from(value).map_err(|_| AppError::InvalidInput(format!("{what} must not be negative")))
}

#[derive(Default)]
pub struct OrganiserQuery;

/// What the capacity planner needs to know about a sale.
#[derive(InputObject)]
pub struct CapacityPlanInput {
    /// Seats on sale.
    pub seats: i32,
    /// Fans expected in the queue at the opening.
    pub fans: i32,
    /// Seconds an admitted fan takes to buy (or give up), on average.
    #[graphql(default = 60.0)]
    pub seconds_to_buy: f64,
    /// Seconds within which nearly every buyer has bought (e.g. the P95 of the time to buy);
    /// when the last seat goes depends on it. Null: `secondsToBuy`.
    pub slowest_seconds_to_buy: Option<f64>,
    /// Seats each buying fan takes, on average.
    #[graphql(default = 1.0)]
    pub seats_per_purchase: f64,
    /// Share of admitted fans who buy, above 0 and at most 1.
    #[graphql(default = 0.5)]
    pub conversion: f64,
    /// Holds per second the booking path sustains (the ceiling report's holds/s).
    pub booking_capacity: f64,
}

#[Object]
impl OrganiserQuery {
    /// The queue settings to use for a sale and what fans will see: the admission rate (80 % of
    /// the booking capacity), the active cap (Little's law), when the last seat goes, how many
    /// fans are told SOLD_OUT and the wait at some positions (organisers only).
    async fn capacity_plan(
        &self,
        ctx: &Context<'_>,
        input: CapacityPlanInput,
    ) -> Result<CapacityPlanObject> {
        organiser(ctx)?;
        let inputs = plan::Inputs {
            seats: not_negative("the seats", input.seats)?,
            fans: not_negative("the fans", input.fans)?,
            seconds_to_buy: input.seconds_to_buy,
            slowest_seconds_to_buy: input.slowest_seconds_to_buy.unwrap_or(input.seconds_to_buy),
            seats_per_purchase: input.seats_per_purchase,
            conversion: input.conversion,
            booking_capacity: input.booking_capacity,
        };
        Ok(CapacityPlanObject(plan::plan(&inputs)?))
    }

    /// A concert's waiting-queue settings, as its admitter applies them (organisers only).
    async fn queue_settings(
        &self,
        ctx: &Context<'_>,
        concert_id: ID,
    ) -> Result<QueueSettingsObject> {
        organiser(ctx)?;
        let concert = ConcertId::parse(&concert_id)?;
        let app = app(ctx);
        let mut conn = app.db.conn().await?;
        let shown = settings::show(&mut conn, app.queue.settings(), concert).await?;
        Ok(QueueSettingsObject(shown))
    }

    /// The latest scheduled opening of a concert's queue, for audit (organisers only): null
    /// until a pre-queue has been shuffled into the line.
    async fn queue_opening(
        &self,
        ctx: &Context<'_>,
        concert_id: ID,
    ) -> Result<Option<QueueOpeningObject>> {
        organiser(ctx)?;
        let concert = ConcertId::parse(&concert_id)?;
        let mut conn = app(ctx).db.conn().await?;
        let record = OpeningRecord::latest(&mut conn, concert)
            .await
            .map_err(AppError::from)?;
        Ok(record.map(QueueOpeningObject))
    }
}

/// What cancelling a performance did.
pub struct CancelledScheduleObject(CancelledSchedule);

#[Object(name = "CancelledSchedule")]
impl CancelledScheduleObject {
    async fn schedule_id(&self) -> ID {
        self.0.schedule_id.into()
    }

    async fn cancelled_at(&self) -> DateTime<Utc> {
        self.0.cancelled_at
    }

    /// True when this call cancelled it; false when it had been cancelled before.
    async fn now(&self) -> bool {
        self.0.now
    }

    async fn holds_cancelled(&self) -> usize {
        self.0.holds_cancelled
    }

    async fn bookings_refunded(&self) -> usize {
        self.0.bookings_refunded
    }

    async fn points_refunded(&self) -> i64 {
        self.0.points_refunded
    }

    async fn seats_withdrawn(&self) -> usize {
        self.0.seats_withdrawn
    }
}

/// A scheduled opening: the pre-queue's fans, in arrival order, shuffled with `seed` (ChaCha8,
/// Fisher–Yates; see the queue's opening module) give the line's first places.
pub struct QueueOpeningObject(OpeningRecord);

#[Object(name = "QueueOpening")]
impl QueueOpeningObject {
    async fn concert_id(&self) -> ID {
        self.0.concert_id.into()
    }

    /// The sale opening the shuffle was for.
    async fn sales_open_at(&self) -> DateTime<Utc> {
        self.0.sales_open_at
    }

    /// When the line was in place; null while the opening is under way.
    async fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.0.opened_at
    }

    /// The shuffle's seed (a 64-bit integer, as a string).
    async fn seed(&self) -> String {
        self.0.seed.to_string()
    }

    /// Fans in the pre-queue when the admitter read it.
    async fn fans_in_prequeue(&self) -> usize {
        self.0.arrivals.len()
    }

    /// Fans placed by the shuffle.
    async fn fans_shuffled(&self) -> Option<i32> {
        self.0.fans_shuffled
    }

    /// Fans who came after the opening time, before the shuffle ran: placed behind, in arrival
    /// order.
    async fn fans_after_opening(&self) -> Option<i32> {
        self.0.fans_after_opening
    }
}

/// A new performance and its sale (times in RFC 3339).
#[derive(InputObject)]
pub struct NewScheduleInput {
    pub concert_id: ID,
    pub venue: String,
    pub starts_at: DateTime<Utc>,
    /// Fans may enter the queue from then; null: when the sale opens.
    pub prequeue_opens_at: Option<DateTime<Utc>>,
    /// The sale opens then; null: at once.
    pub sales_open_at: Option<DateTime<Utc>>,
    /// The sale closes then; null: when the performance starts.
    pub sales_close_at: Option<DateTime<Utc>>,
}

/// A section of a seat map: its rows, front first.
#[derive(InputObject)]
pub struct SectionInput {
    pub name: String,
    pub rows: Vec<RowInput>,
}

/// A row of seats numbered 1.. in the row, all of one grade and price.
#[derive(InputObject)]
pub struct RowInput {
    pub label: String,
    /// How many seats, 1 to 1,000.
    pub seats: i32,
    pub grade: SeatGrade,
    /// Price in points, 0 to 100,000,000.
    pub price: i64,
}

#[derive(Default)]
pub struct OrganiserMutation;

#[Object]
impl OrganiserMutation {
    /// Creates a concert (organisers only).
    async fn create_concert(
        &self,
        ctx: &Context<'_>,
        title: String,
        artist: String,
    ) -> Result<ConcertObject> {
        organiser(ctx)?;
        let app = app(ctx);
        let mut conn = app.db.conn().await?;
        let concert = organise::create_concert(&mut conn, &title, &artist).await?;
        app.concerts.remember_concert(concert.id).await;
        Ok(ConcertObject(concert))
    }

    /// Changes a concert's title or artist; an argument left out stays as it is (organisers
    /// only).
    async fn update_concert(
        &self,
        ctx: &Context<'_>,
        concert_id: ID,
        title: Option<String>,
        artist: Option<String>,
    ) -> Result<ConcertObject> {
        organiser(ctx)?;
        let id = ConcertId::parse(&concert_id)?;
        let mut conn = app(ctx).db.conn().await?;
        let concert =
            organise::update_concert(&mut conn, id, title.as_deref(), artist.as_deref()).await?;
        Ok(ConcertObject(concert))
    }

    /// Creates a performance of a concert, with its sale times: pre-queue ≤ opening < closing ≤
    /// start (organisers only).
    async fn create_schedule(
        &self,
        ctx: &Context<'_>,
        input: NewScheduleInput,
    ) -> Result<ScheduleObject> {
        organiser(ctx)?;
        let concert = ConcertId::parse(&input.concert_id)?;
        let times = SaleTimes {
            starts_at: input.starts_at,
            prequeue_opens_at: input.prequeue_opens_at,
            sales_open_at: input.sales_open_at,
            sales_close_at: input.sales_close_at,
        };
        let app = app(ctx);
        let mut conn = app.db.conn().await?;
        let schedule = organise::create_schedule(&mut conn, concert, &input.venue, times).await?;
        app.concerts.remember_schedule(&schedule).await;
        Ok(ScheduleObject(schedule))
    }

    /// Lays out a performance's seats in one call: sections, their rows, and each row's size,
    /// grade and price. Seats are numbered across the performance in the order given. Checked
    /// as a whole (no section or row twice, sizes, prices, at most 100,000 seats) and written in
    /// one transaction. The same map again is a no-op (`created: false`); another map on a
    /// performance that has seats is `SEAT_MAP_EXISTS` (organisers only).
    async fn lay_out_seats(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        sections: Vec<SectionInput>,
    ) -> Result<SeatMapLayout> {
        organiser(ctx)?;
        let schedule = ScheduleId::parse(&schedule_id)?;
        let map = seat_map(sections)?;
        let app = app(ctx);
        let mut conn = app.db.conn().await?;
        let laid_out = organise::lay_out(&mut conn, schedule, &map).await?;
        if laid_out.created {
            app.seat_map.dropped(schedule).await;
        }
        Ok(laid_out.into())
    }

    /// Sets the price of every seat of a grade of a performance, before its sale: `SALE_STARTED`
    /// once the sale opened or a seat was held. Returns how many seats changed (organisers only).
    async fn set_seat_price(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        grade: SeatGrade,
        price: i64,
    ) -> Result<i64> {
        organiser(ctx)?;
        let schedule = ScheduleId::parse(&schedule_id)?;
        let app = app(ctx);
        let mut conn = app.db.conn().await?;
        let changed = organise::set_price(&mut conn, schedule, grade, price).await?;
        app.seat_map.dropped(schedule).await;
        Ok(changed)
    }

    /// Cancels a performance (organisers only): its sale closes for good, every hold on it is
    /// cancelled, every paid booking refunded in full (whatever the refund deadline) with a ledger
    /// entry, and its seats become WITHDRAWN. Fans see their bookings CANCELLED and their points
    /// back, `seatChanges` pushes the withdrawn seats, and a `reservation.cancelled` event per
    /// booking goes out. One transaction; cancelling again changes nothing (`now: false`).
    async fn cancel_schedule(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
    ) -> Result<CancelledScheduleObject> {
        let organiser = viewer(ctx)?;
        let schedule = ScheduleId::parse(&schedule_id)?;
        Ok(CancelledScheduleObject(
            app(ctx)
                .booking
                .cancel_schedule(organiser, schedule)
                .await?,
        ))
    }

    /// Changes a concert's waiting-queue settings: the most fans admitted per second (adaptive
    /// admission stays at or below it), the most ACTIVE at once, how long an admission lasts
    /// (seconds), and a pause (nobody admitted; fans keep their place). An argument left out
    /// stays as it is; the admitters apply the change at their next tick (organisers only).
    async fn set_queue_settings(
        &self,
        ctx: &Context<'_>,
        concert_id: ID,
        admit_per_second: Option<f64>,
        active_cap: Option<i32>,
        active_ttl_seconds: Option<i32>,
        paused: Option<bool>,
    ) -> Result<QueueSettingsObject> {
        organiser(ctx)?;
        let concert = ConcertId::parse(&concert_id)?;
        let change = Change {
            admit_per_second,
            active_cap: active_cap
                .map(|cap| not_negative("the active cap", cap))
                .transpose()?,
            active_ttl_seconds: active_ttl_seconds
                .map(|ttl| not_negative("the active TTL", ttl))
                .transpose()?,
            paused,
        };
        let app = app(ctx);
        let mut conn = app.db.conn().await?;
        let changed = settings::change(&mut conn, app.queue.settings(), concert, &change).await?;
        Ok(QueueSettingsObject(changed))
    }
}

/// The seat map of the input, with row sizes out of range refused (the rest is checked by
/// `organise`).
fn seat_map(sections: Vec<SectionInput>) -> Result<organise::SeatMap, AppError> {
    let sections = sections
        .into_iter()
        .map(|section| {
            let rows = section
                .rows
                .into_iter()
                .map(|row| {
                    let seats = u32::try_from(row.seats).map_err(|_| {
                        AppError::InvalidInput(format!(
                            "row {:?} of section {:?} must have 1 to {} seats",
                            row.label,
                            section.name,
                            organise::MAX_SEATS_PER_ROW
                        ))
                    })?;
                    Ok(organise::Row {
                        label: row.label,
                        seats,
                        grade: row.grade,
                        price: row.price,
                    })
                })
                .collect::<Result<Vec<_>, AppError>>()?;
            Ok(organise::Section {
                name: section.name,
                rows,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    Ok(organise::SeatMap { sections })
}

/// What `layOutSeats` did.
#[derive(SimpleObject)]
#[graphql(name = "SeatMapLayout")]
pub struct SeatMapLayout {
    pub schedule_id: ID,
    /// Seats the performance has.
    pub seats: i64,
    /// False when the performance already had exactly this map (a retry).
    pub created: bool,
}

impl From<LaidOut> for SeatMapLayout {
    fn from(laid_out: LaidOut) -> Self {
        Self {
            schedule_id: laid_out.schedule_id.into(),
            seats: laid_out.seats,
            created: laid_out.created,
        }
    }
}

/// A concert's waiting-queue settings.
pub struct QueueSettingsObject(ConcertQueue);

#[Object(name = "QueueSettings")]
impl QueueSettingsObject {
    async fn concert_id(&self) -> ID {
        self.0.concert_id.into()
    }

    /// The most fans admitted per second.
    async fn admit_per_second(&self) -> f64 {
        self.0.admit_per_second
    }

    /// The most ACTIVE fans at once.
    async fn active_cap(&self) -> u32 {
        self.0.active_cap
    }

    /// How long an admission lasts, in seconds.
    async fn active_ttl_seconds(&self) -> u64 {
        self.0.active_ttl_seconds
    }

    async fn paused(&self) -> bool {
        self.0.paused
    }
}

/// A sale's plan (`capacityPlan`).
pub struct CapacityPlanObject(plan::Plan);

#[Object(name = "CapacityPlan")]
impl CapacityPlanObject {
    /// Fans to admit per second (`setQueueSettings(admitPerSecond)`).
    async fn admit_per_second(&self) -> f64 {
        self.0.admit_per_second
    }

    /// Most ACTIVE fans at once (`setQueueSettings(activeCap)`).
    async fn active_cap(&self) -> u64 {
        self.0.active_cap
    }

    /// Fans admitted before the last seat is sold.
    async fn fans_admitted(&self) -> u64 {
        self.0.fans_admitted
    }

    /// Seconds from the opening until the last seat is sold; null: the fans do not fill the
    /// venue.
    async fn sold_out_after_seconds(&self) -> Option<f64> {
        self.0.sold_out_after_seconds
    }

    /// Fans told SOLD_OUT while waiting.
    async fn fans_told_sold_out(&self) -> u64 {
        self.0.fans_told_sold_out
    }

    /// The expected wait in line at some positions.
    async fn wait_by_position(&self) -> Vec<QueueWait> {
        self.0
            .wait_by_position
            .iter()
            .map(|&(position, seconds)| QueueWait { position, seconds })
            .collect()
    }
}

/// The expected wait at a place in line.
#[derive(SimpleObject)]
pub struct QueueWait {
    pub position: u64,
    pub seconds: f64,
}

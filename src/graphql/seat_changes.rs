//! The `seatChanges` subscription: seat status changes of one schedule as they commit.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, Subscription};
use futures::Stream;
use tokio::sync::broadcast;

use crate::booking::seat_map::SeatChange;
use crate::db::enums::SeatStatus;
use crate::graphql::context::app;
use crate::ids::ScheduleId;

#[derive(Default)]
pub struct SeatChangeSubscription;

#[Subscription]
impl SeatChangeSubscription {
    /// Seat status changes of one schedule as they commit (holds, payments, cancellations). A
    /// listener that falls too far behind skips to the newest changes: refetch the seat map then.
    async fn seat_changes(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
    ) -> Result<impl Stream<Item = SeatChangeObject>> {
        let schedule_id = ScheduleId::parse(&schedule_id)?;
        let mut changes = app(ctx).seat_map.feed.subscribe();
        Ok(async_stream::stream! {
            loop {
                match changes.recv().await {
                    Ok(change) if change.schedule_id == schedule_id => yield SeatChangeObject(change),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}

/// Seats of a schedule that changed status together.
pub struct SeatChangeObject(Arc<SeatChange>);

#[Object(name = "SeatChange")]
impl SeatChangeObject {
    async fn schedule_id(&self) -> ID {
        self.0.schedule_id.into()
    }

    async fn seat_ids(&self) -> Vec<ID> {
        self.0.seat_ids.iter().map(|&id| id.into()).collect()
    }

    /// Their new status.
    async fn status(&self) -> SeatStatus {
        self.0.status
    }
}

//! The waiting queue: enter, poll, or subscribe to your place in line.

use async_graphql::{Context, ID, Object, Result, Subscription};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};

use crate::error::AppError;
use crate::graphql::context::{app, viewer};
use crate::ids::ConcertId;
use crate::queue::{QueueState, QueueStatus, watch::watch_status};

#[derive(Default)]
pub struct QueueQuery;

#[Object]
impl QueueQuery {
    /// Your place in a concert's queue. Polling also tells the queue you are still there.
    async fn queue_status(&self, ctx: &Context<'_>, token: String) -> Result<QueueStatusObject> {
        let viewer = viewer(ctx)?;
        Ok(QueueStatusObject(
            app(ctx).queue.status(viewer, &token).await?,
        ))
    }
}

#[derive(Default)]
pub struct QueueMutation;

#[Object]
impl QueueMutation {
    /// Enters the concert's waiting queue and returns your token. Entering again returns the same
    /// token and keeps your place. A sold-out concert answers `SOLD_OUT` (no token).
    ///
    /// Before a scheduled opening you enter its pre-queue (status `PREQUEUE`, with `opensAt`):
    /// at the opening everyone in it is shuffled into the line at random, so entering early gives
    /// no advantage. Before the pre-queue opens: `SALE_NOT_OPEN` with `extensions.opensAt` and
    /// `extensions.prequeueOpensAt`; after every sale of the concert has closed: `SALE_CLOSED`.
    async fn enter_queue(&self, ctx: &Context<'_>, concert_id: ID) -> Result<QueueStatusObject> {
        let viewer = viewer(ctx)?;
        let concert_id = ConcertId::parse(&concert_id)?;
        let app = app(ctx);
        let opening = app
            .concerts
            .opening(&app.db, concert_id)
            .await?
            .ok_or(AppError::NotFound("concert"))?;
        opening.check_enter()?;
        Ok(QueueStatusObject(
            app.queue
                .enter(viewer, concert_id, opening.opens_at())
                .await?,
        ))
    }
}

#[derive(Default)]
pub struct QueueSubscription;

#[Subscription]
impl QueueSubscription {
    /// Your place in line, pushed whenever it changes (PREQUEUE until the opening, then position,
    /// ETA, SOLD_OUT and back, then ACTIVE, then EXPIRED).
    /// Authenticate with `Authorization: Bearer <token>` in the `connection_init` payload.
    async fn queue_status(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> Result<impl Stream<Item = Result<QueueStatusObject>>> {
        let viewer = viewer(ctx)?;
        let app = app(ctx);
        let stream = watch_status(
            app.queue.clone(),
            app.queue_broadcast.clone(),
            viewer,
            token,
        );
        Ok(stream.map(|status| status.map(QueueStatusObject).map_err(Into::into)))
    }
}

/// A queue token and where it stands.
pub struct QueueStatusObject(pub QueueStatus);

#[Object(name = "QueueStatus")]
impl QueueStatusObject {
    /// The token: send it as the `Queue-Token` header of holds and payments once ACTIVE.
    async fn token(&self) -> &str {
        &self.0.token
    }

    async fn concert_id(&self) -> ID {
        self.0.concert_id.into()
    }

    async fn status(&self) -> QueueState {
        self.0.state
    }

    /// 1-based place among those waiting; null unless WAITING.
    async fn position(&self) -> Option<u64> {
        self.0.position
    }

    /// How many are ahead of you; null unless WAITING.
    async fn ahead(&self) -> Option<u64> {
        self.0.position.map(|position| position - 1)
    }

    /// Estimated seconds until ACTIVE, from the observed admission rate; null unless WAITING.
    async fn estimated_wait_seconds(&self) -> Option<u64> {
        self.0.estimated_wait_seconds
    }

    /// When the sale opens and the pre-queue is shuffled into the line; null unless PREQUEUE.
    async fn opens_at(&self) -> Option<DateTime<Utc>> {
        self.0.opens_at
    }

    /// Until when an ACTIVE token lets you hold and pay; null unless ACTIVE.
    async fn active_until(&self) -> Option<DateTime<Utc>> {
        self.0.active_until
    }

    /// When to ask again, in seconds, if you poll rather than subscribe: 1 near the front of the
    /// line, longer further back, longer still when SOLD_OUT, at the opening when PREQUEUE (at
    /// most 60 s); null when there is nothing to wait for (ACTIVE or EXPIRED).
    async fn poll_after_seconds(&self) -> Option<u64> {
        self.0.poll_after_seconds
    }
}

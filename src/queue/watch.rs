//! The status stream behind the `queueStatus` subscription: one Redis read at the start, then
//! positions computed from broadcast ticks (SOLD_OUT while a tick says so), one more read only
//! when the token leaves the line. A PREQUEUE token reads again once a tick says the pre-queue
//! is empty (the opening gave it a place).

use std::sync::Arc;

use futures::Stream;

use crate::auth::Viewer;
use crate::error::AppResult;
use crate::queue::broadcast::QueueBroadcast;
use crate::queue::{Queue, QueueState, QueueStatus, QueueToken};

/// Yields the token's status now and again whenever it changes; ends once the token expired.
pub fn watch_status(
    queue: Queue,
    broadcast: Arc<QueueBroadcast>,
    viewer: Viewer,
    token: String,
) -> impl Stream<Item = AppResult<QueueStatus>> {
    async_stream::stream! {
        let mut last = match queue.status(viewer, &token).await {
            Ok(status) => status,
            Err(err) => {
                yield Err(err);
                return;
            }
        };
        let parsed = QueueToken::parse(&token).expect("a token with a status parses");
        let _presence = broadcast.present(&parsed);
        let mut ticks = broadcast.subscribe(parsed.concert_id);
        let mut seq = match queue.sequence(&parsed).await {
            Ok(Some(seq)) => seq,
            Ok(None) => 0,
            Err(err) => {
                yield Err(err);
                return;
            }
        };
        yield Ok(last.clone());
        loop {
            let next = match last.state {
                QueueState::Expired => return,
                QueueState::Prequeue => {
                    if ticks.changed().await.is_err() {
                        return;
                    }
                    let opened = ticks.borrow_and_update().as_ref().is_some_and(|tick| tick.prequeued == 0);
                    if !opened {
                        continue;
                    }
                    let status = match queue.status(viewer, &token).await {
                        Ok(status) => status,
                        Err(err) => {
                            yield Err(err);
                            return;
                        }
                    };
                    match queue.sequence(&parsed).await {
                        Ok(placed) => seq = placed.unwrap_or(0),
                        Err(err) => {
                            yield Err(err);
                            return;
                        }
                    }
                    status
                }
                QueueState::Waiting | QueueState::SoldOut => {
                    if ticks.changed().await.is_err() {
                        return;
                    }
                    let tick = ticks.borrow_and_update().clone();
                    match tick.and_then(|tick| tick.position_of(seq).map(|position| (position, tick))) {
                        Some((position, tick)) if tick.sold_out => queue.sold_out_status(&parsed, position),
                        Some((position, tick)) => queue.waiting_status(&parsed, position, tick.rate),
                        // Admitted or dropped: one read tells which.
                        None => match queue.status(viewer, &token).await {
                            Ok(status) => status,
                            Err(err) => {
                                yield Err(err);
                                return;
                            }
                        },
                    }
                }
                QueueState::Active => {
                    let until = last.active_until.unwrap_or_else(chrono::Utc::now);
                    let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                    match queue.status(viewer, &token).await {
                        Ok(status) => status,
                        Err(err) => {
                            yield Err(err);
                            return;
                        }
                    }
                }
            };
            if next != last {
                yield Ok(next.clone());
                last = next;
            }
        }
    }
}

//! Redis pub/sub fan-out between instances: one subscription per instance, each message handed
//! to its in-process listener (queue ticks to the queue broadcast, seat changes to the seat map's
//! subscribers).

use std::sync::Arc;
use std::time::Duration;

use redis::RedisError;
use tokio_util::sync::CancellationToken;

use crate::booking::seat_map::SeatMap;
use crate::queue::Queue;
use crate::queue::broadcast::QueueBroadcast;

/// Routes the queue-tick and seat-change channels to their listeners until cancelled.
pub async fn route(
    redis_url: String,
    queue: &Queue,
    broadcast: Arc<QueueBroadcast>,
    seat_map: SeatMap,
    cancel: CancellationToken,
) {
    let (ticks, seat_changes) = (queue.ticks_channel(), seat_map.feed.channel().to_string());
    let channels = vec![ticks.clone(), seat_changes.clone()];
    let dispatch = move |channel: &str, payload: &[u8]| {
        if channel == ticks {
            broadcast.receive(payload);
        } else if channel == seat_changes {
            seat_map.receive(payload);
        }
    };
    listen(redis_url, channels, dispatch, cancel).await;
}

/// Listens to Redis pub/sub `channels` until cancelled, handing every message to `handle`
/// (channel, payload). Reconnects a second after Redis fails, so fan-out recovers by itself.
pub async fn listen(
    redis_url: String,
    channels: Vec<String>,
    handle: impl Fn(&str, &[u8]) + Send + Sync + 'static,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            result = listen_once(&redis_url, &channels, &handle) => {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "Redis pub/sub listener lost Redis; reconnecting");
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn listen_once(
    redis_url: &str,
    channels: &[String],
    handle: &(impl Fn(&str, &[u8]) + Sync),
) -> redis::RedisResult<()> {
    use futures::StreamExt;
    let client = redis::Client::open(redis_url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    for channel in channels {
        pubsub.subscribe(channel).await?;
    }
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        handle(message.get_channel_name(), message.get_payload_bytes());
    }
    Err(RedisError::from((
        redis::ErrorKind::Io,
        "pub/sub connection closed",
    )))
}

//! Fan-out of admission ticks to this instance's subscribers. The admitter publishes one message
//! per concert per tick on a Redis channel; every instance listens once and hands the latest tick
//! to all its subscribers of that concert through a `watch` channel. Subscribers compute their own
//! position from their sequence number: no per-subscriber Redis reads while waiting.
//!
//! Presence goes the other way: subscribers register their token here, and one batched `ZADD` per
//! concert every few seconds tells the admitter they are still there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ids::ConcertId;
use crate::metrics as m;
use crate::queue::{Queue, QueueToken};

/// The outcome of one admission tick of one concert, as broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    pub concert_id: ConcertId,
    /// Highest sequence number ever admitted; every WAITING token is above it.
    pub head: u64,
    /// Sequence numbers above `head` that left the line early, ascending.
    pub gone: Vec<u64>,
    pub waiting: u64,
    pub active: u64,
    pub admitted: u64,
    pub expired: u64,
    pub abandoned: u64,
    /// ACTIVE tokens that lost their slot for holding nothing.
    #[serde(default)]
    pub idled: u64,
    /// The concert has no seat left to sell: nobody is admitted, WAITING fans read SOLD_OUT.
    #[serde(default)]
    pub sold_out: bool,
    /// Fans in the pre-queue, waiting for the opening's shuffle (0 once it ran).
    #[serde(default)]
    pub prequeued: u64,
    /// Smoothed admissions per second.
    pub rate: f64,
    pub at_ms: i64,
}

impl Tick {
    /// The 1-based position of the token with sequence `seq`, or `None` once it has left the line
    /// (admitted, or dropped).
    pub fn position_of(&self, seq: u64) -> Option<u64> {
        if seq <= self.head || self.gone.binary_search(&seq).is_ok() {
            return None;
        }
        let gone_ahead = self.gone.partition_point(|&gone| gone < seq) as u64;
        Some(seq - self.head - gone_ahead)
    }
}

type Latest = Option<Arc<Tick>>;

/// This instance's tick channels and the tokens its subscribers hold.
#[derive(Default)]
pub struct QueueBroadcast {
    channels: Mutex<HashMap<ConcertId, watch::Sender<Latest>>>,
    present: Mutex<HashMap<ConcertId, HashMap<String, usize>>>,
}

impl QueueBroadcast {
    /// The latest tick of `concert` and every one after it.
    pub fn subscribe(&self, concert: ConcertId) -> watch::Receiver<Latest> {
        let mut channels = self.channels.lock().expect("channel map is never poisoned");
        channels
            .entry(concert)
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// Hands a tick to this instance's subscribers of its concert.
    pub fn deliver(&self, tick: Tick) {
        let mut channels = self.channels.lock().expect("channel map is never poisoned");
        let sender = channels
            .entry(tick.concert_id)
            .or_insert_with(|| watch::channel(None).0);
        sender.send_replace(Some(Arc::new(tick)));
    }

    /// Registers a live subscriber of `token` until the guard drops.
    pub fn present(self: &Arc<Self>, token: &QueueToken) -> PresenceGuard {
        let mut present = self.present.lock().expect("presence map is never poisoned");
        *present
            .entry(token.concert_id)
            .or_default()
            .entry(token.as_str().to_owned())
            .or_default() += 1;
        metrics::gauge!(m::QUEUE_SUBSCRIBERS).increment(1.0);
        PresenceGuard {
            broadcast: self.clone(),
            token: token.clone(),
        }
    }

    fn present_tokens(&self) -> Vec<(ConcertId, Vec<String>)> {
        let present = self.present.lock().expect("presence map is never poisoned");
        present
            .iter()
            .map(|(concert, tokens)| (*concert, tokens.keys().cloned().collect()))
            .collect()
    }

    /// Handles one message of the tick channel.
    pub fn receive(&self, payload: &[u8]) {
        match serde_json::from_slice::<Tick>(payload) {
            Ok(tick) => self.deliver(tick),
            Err(err) => tracing::warn!(error = %err, "ignoring a malformed queue tick"),
        }
    }

    /// Every `period`, marks the tokens of live subscribers as seen (one command per concert).
    pub async fn run_presence(
        self: Arc<Self>,
        queue: Queue,
        period: Duration,
        cancel: CancellationToken,
    ) {
        let mut interval = tokio::time::interval(period);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = interval.tick() => {}
            }
            for (concert, tokens) in self.present_tokens() {
                if let Err(err) = queue.touch(concert, &tokens).await {
                    tracing::warn!(error = %err, %concert, "could not refresh queue presence");
                }
            }
        }
    }
}

/// Keeps a subscriber's token counted as present.
pub struct PresenceGuard {
    broadcast: Arc<QueueBroadcast>,
    token: QueueToken,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let mut present = self
            .broadcast
            .present
            .lock()
            .expect("presence map is never poisoned");
        if let Some(tokens) = present.get_mut(&self.token.concert_id) {
            if let Some(count) = tokens.get_mut(self.token.as_str()) {
                *count -= 1;
                if *count == 0 {
                    tokens.remove(self.token.as_str());
                }
            }
            if tokens.is_empty() {
                present.remove(&self.token.concert_id);
            }
        }
        metrics::gauge!(m::QUEUE_SUBSCRIBERS).decrement(1.0);
    }
}

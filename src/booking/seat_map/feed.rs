//! The seat change feed: every committed seat change, sent to every instance over one Redis
//! channel and fanned out in process to `seatChanges` subscribers.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::db::enums::SeatStatus;
use crate::ids::{ScheduleId, SeatId};

/// Seats of one schedule that changed status together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatChange {
    pub schedule_id: ScheduleId,
    pub seat_ids: Vec<SeatId>,
    pub status: SeatStatus,
}

#[derive(Clone)]
pub struct ChangeFeed {
    channel: String,
    changes: broadcast::Sender<Arc<SeatChange>>,
}

impl ChangeFeed {
    pub fn new(channel: String) -> Self {
        Self {
            channel,
            changes: broadcast::channel(1_024).0,
        }
    }

    /// The pub/sub channel seat changes travel on between instances.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Hands a change received from the channel to this instance's subscribers.
    pub fn deliver(&self, change: SeatChange) {
        let _ = self.changes.send(Arc::new(change)); // no subscriber is fine
    }

    /// Every seat change seen by this instance from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<SeatChange>> {
        self.changes.subscribe()
    }
}

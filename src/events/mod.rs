//! Domain events: every event and its payload, the transactional outbox they are written to, the
//! Kafka clients, and the relay that publishes the outbox to Kafka. Business transactions never
//! publish directly; they append to the outbox.

pub mod kafka;
pub mod outbox;
pub mod relay;

pub use kafka::Kafka;
pub use outbox::{Event, ExpiredHold, Topics};

//! The application context of one instance: its configuration and a handle on every service,
//! created once and shared by the HTTP layer, GraphQL and the background work. Domain code never
//! sees it: each domain function takes the handle it uses ([`Booking`], [`Payments`], [`Queue`],
//! ...), so its signature says what it touches.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;
use crate::booking::Booking;
use crate::booking::seat_map::SeatMap;
use crate::catalogue::directory::ConcertDirectory;
use crate::config::Config;
use crate::db::Database;
use crate::events::Kafka;
use crate::limit::BookingLimit;
use crate::payment::Payments;
use crate::queue::broadcast::QueueBroadcast;
use crate::queue::{Queue, QueueSettings};
use crate::redis_store::RedisStore;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub db: Database,
    pub redis: RedisStore,
    pub kafka: Kafka,
    pub auth: Authenticator,
    pub queue: Queue,
    pub queue_broadcast: Arc<QueueBroadcast>,
    pub concerts: ConcertDirectory,
    pub seat_map: SeatMap,
    pub booking: Booking,
    pub payments: Payments,
    /// The booking path's limit, whose load adaptive admission follows.
    pub booking_limit: BookingLimit,
}

impl App {
    /// Creates the pools, the producer and the domain handles. None of them needs its service to
    /// be up yet.
    pub fn connect(config: Config) -> anyhow::Result<Self> {
        let redis = RedisStore::connect(&config)?;
        let db = Database::connect(&config);
        let queue = Queue::new(redis.clone(), QueueSettings::from_config(&config));
        let concerts = ConcertDirectory::default();
        let seat_map = SeatMap::new(redis.clone(), config.seat_map_cache_ttl_seconds);
        let limit = BookingLimit::new(
            config.booking_slots(),
            Duration::from_millis(config.busy_retry_after_ms),
            Duration::from_millis(config.booking_latency_target_ms),
        );
        let booking = Booking::new(
            db.clone(),
            concerts.clone(),
            queue.clone(),
            seat_map.clone(),
            limit.clone(),
            &config,
        );
        let payments = Payments::new(
            db.clone(),
            queue.clone(),
            seat_map.clone(),
            limit.clone(),
            &config,
        );
        Ok(Self {
            kafka: Kafka::connect(&config)?,
            auth: Authenticator::new(&config),
            queue_broadcast: Arc::default(),
            redis,
            db,
            queue,
            concerts,
            seat_map,
            booking,
            payments,
            booking_limit: limit,
            config: Arc::new(config),
        })
    }
}

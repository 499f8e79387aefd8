//! The Kafka clients of one instance: the shared idempotent producer, topic creation and the
//! broker readiness check.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Config;

/// How long a readiness or admin call may wait for the broker.
const BROKER_TIMEOUT: Duration = Duration::from_secs(3);

/// The Kafka clients of one instance, created once and shared.
#[derive(Clone)]
pub struct Kafka {
    /// Replaced as a whole when it is stuck (see [`Kafka::reset_producer`]).
    producer: Arc<RwLock<FutureProducer>>,
    brokers: String,
    topics: Vec<String>,
    partitions: i32,
}

impl Kafka {
    /// Creates the producer: idempotent, `acks=all`, so a retried send never duplicates or
    /// reorders within a partition. Creating it does not need the broker to be up.
    pub fn connect(config: &Config) -> anyhow::Result<Self> {
        let producer = new_producer(&config.kafka_brokers)?;
        Ok(Self {
            producer: Arc::new(RwLock::new(producer)),
            brokers: config.kafka_brokers.clone(),
            topics: crate::events::outbox::Topics::from_config(config).all(),
            partitions: config.kafka_topic_partitions,
        })
    }

    /// The current producer (cheap to clone).
    pub fn producer(&self) -> FutureProducer {
        self.producer
            .read()
            .expect("producer lock is never poisoned")
            .clone()
    }

    /// Replaces the producer with a new one. Needed when a broker lost its state (an empty
    /// restart, a new cluster behind the same address): the idempotent producer's id and
    /// sequence numbers no longer match and every send times out or fails fatally.
    pub fn reset_producer(&self) -> anyhow::Result<()> {
        let fresh = new_producer(&self.brokers)?;
        let stale = std::mem::replace(
            &mut *self
                .producer
                .write()
                .expect("producer lock is never poisoned"),
            fresh,
        );
        // Dropping a producer waits for its queued messages (up to message.timeout.ms): not
        // on a runtime thread.
        std::thread::spawn(move || drop(stale));
        Ok(())
    }

    /// The producer's fatal error, if librdkafka raised one (it cannot send any more).
    pub fn producer_fatal_error(&self) -> Option<String> {
        use rdkafka::producer::Producer;
        self.producer()
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code}: {reason}"))
    }

    /// Creates the configured topics that do not exist yet (brokers here do not auto-create).
    pub async fn ensure_topics(&self) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()?;
        let new_topics: Vec<NewTopic<'_>> = self
            .topics
            .iter()
            .map(|name| NewTopic::new(name, self.partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(BROKER_TIMEOUT))
            .request_timeout(Some(BROKER_TIMEOUT));
        for result in admin.create_topics(&new_topics, &options).await? {
            match result {
                Ok(topic) => tracing::info!(topic, "created Kafka topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("creating Kafka topic {topic} failed: {code}"),
            }
        }
        Ok(())
    }

    /// Asks the broker for cluster metadata: the readiness check.
    pub async fn ping(&self) -> anyhow::Result<()> {
        use rdkafka::producer::Producer;
        let producer = self.producer();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, BROKER_TIMEOUT)
                .map(|_| ())
        })
        .await??;
        Ok(())
    }
}

/// The idempotent producer: `acks=all`, so a retried send never duplicates or reorders within a
/// partition. Creating it does not need the broker to be up.
fn new_producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        // The relay holds its claim transaction while it waits for deliveries: fail fast
        // (and retry on the next pass) rather than outlive the idle-in-transaction timeout.
        .set("message.timeout.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .create()?)
}

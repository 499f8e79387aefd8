//! The integration tests, in one binary (one link instead of one per file). Each test spawns its
//! own [`helpers::TestApp`]: a real server on a free port with its own database, Redis key prefix
//! and Kafka topics, so tests run in parallel and in any order.

mod helpers;

mod admission;
mod cancel_schedule;
mod catalogue;
mod clients;
mod cost;
mod dashboards;
mod drift;
mod events;
mod expiry;
mod hardening;
mod holds;
mod hostile;
mod http;
mod organiser;
mod overload;
mod payments;
mod prequeue;
mod queue;
mod queue_subscription;
mod retention;
mod schema_file;
mod seat_map;
mod verify;

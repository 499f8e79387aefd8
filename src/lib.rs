//! concert-reservation: a ticketing backend that survives an on-sale stampede.
//!
//! `main` and the integration tests share this library: [`startup::Application`] builds a server
//! from a [`config::Config`].

pub mod account;
pub mod app;
#[cfg(test)]
mod architecture_tests;
pub mod auth;
pub mod booking;
pub mod catalogue;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod limit;
pub mod metrics;
pub mod payment;
pub mod plan;
pub mod pubsub;
pub mod queue;
pub mod redis_store;
pub mod retention;
pub mod seed;
pub mod startup;
pub mod telemetry;
pub mod verify;

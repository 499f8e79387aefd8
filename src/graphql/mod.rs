//! The GraphQL API: schema assembly, limits, and the per-request data resolvers rely on.
//! Resolvers stay thin: parse arguments, call one service function, convert the result.

mod account;
mod api;
pub(crate) mod catalogue;
pub mod context;
mod cost;
mod documents;
mod field_order;
mod holds;
mod limits;
pub mod loaders;
mod observe;
mod organiser;
mod payments;
pub mod persisted;
mod points;
mod queue;
mod reservations;
mod seat_changes;

use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::app::App;

pub use api::{Prepared, PreparedBatch};
pub use context::QueueTokenHeader;
pub use loaders::Loaders;

/// Read operations. Each area of the API contributes its own query object.
#[derive(MergedObject, Default)]
pub struct Query(
    catalogue::CatalogueQuery,
    queue::QueueQuery,
    account::AccountQuery,
    organiser::OrganiserQuery,
);

/// Write operations.
#[derive(MergedObject, Default)]
pub struct Mutation(
    queue::QueueMutation,
    holds::HoldMutation,
    payments::PaymentMutation,
    points::PointsMutation,
    reservations::ReservationMutation,
    organiser::OrganiserMutation,
);

/// Pushed updates, over the websocket at `/graphql/ws`.
#[derive(MergedSubscription, Default)]
pub struct Subscription(
    queue::QueueSubscription,
    seat_changes::SeatChangeSubscription,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The API this server serves (see `api`).
pub type AppApi = api::Api<Query, Mutation, Subscription>;

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
}

/// The API served by this instance: the schema with the configured limits, and the steps around
/// each operation (`api`). Fails when the allow-list of `GRAPHQL_ALLOWED_OPERATIONS` cannot be
/// read.
pub fn build_api(app: App) -> anyhow::Result<AppApi> {
    let config = app.config.clone();
    let mut builder = builder();
    if !config.graphql_introspection {
        builder = builder.disable_introspection();
    }
    // Registered operations only, or automatic persisted queries (see `persisted`).
    let persisted = match &config.graphql_allowed_operations {
        Some(path) => persisted::Persisted::AllowList(
            persisted::AllowList::load(path)
                .map_err(|err| anyhow::anyhow!("GRAPHQL_ALLOWED_OPERATIONS: {err}"))?,
        ),
        None => persisted::Persisted::automatic(config.persisted_query_cache),
    };
    let limits = limits::DocumentLimits {
        max_depth: config.graphql_max_depth,
        introspection: config.graphql_introspection,
        max_aliases: config.graphql_max_aliases,
    };
    // No `.extension(...)`: see `api` for why.
    let schema = builder
        .limit_complexity(config.graphql_max_complexity)
        .limit_directives(config.graphql_max_directives)
        .data(app)
        .finish();
    Ok(AppApi::new(schema, persisted, limits))
}

/// The schema in SDL, as committed in `schema.graphql`. Limits do not change the schema, so no
/// configuration is read.
pub fn sdl() -> String {
    builder().finish().sdl()
}

//! The GraphQL API: schema assembly, limits, and the per-request data resolvers rely on.
//! Resolvers stay thin: parse arguments, call one service function, convert the result.

mod account;
pub(crate) mod catalogue;
mod extension;
mod holds;
pub mod loaders;
mod payments;
mod points;
mod queue;
mod reservations;
mod seat_changes;

use async_graphql::{Context, MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::app::App;
use crate::auth::{Identity, Viewer};
use crate::config::Config;
use crate::error::AppError;

pub use loaders::Loaders;

/// Read operations. Each area of the API contributes its own query object.
#[derive(MergedObject, Default)]
pub struct Query(
    catalogue::CatalogueQuery,
    queue::QueueQuery,
    account::AccountQuery,
);

/// Write operations.
#[derive(MergedObject, Default)]
pub struct Mutation(
    queue::QueueMutation,
    holds::HoldMutation,
    payments::PaymentMutation,
    points::PointsMutation,
    reservations::ReservationMutation,
);

/// Pushed updates, over the websocket at `/graphql/ws`.
#[derive(MergedSubscription, Default)]
pub struct Subscription(
    queue::QueueSubscription,
    seat_changes::SeatChangeSubscription,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

fn builder(config: &Config) -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(config.graphql_max_depth)
    .limit_complexity(config.graphql_max_complexity)
    .limit_directives(config.graphql_max_directives)
    .extension(extension::Observability)
}

/// The schema served by this instance.
pub fn build_schema(app: App) -> AppSchema {
    let config = app.config.clone();
    builder(&config).data(app).finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    let config = Config::from_env().expect("default configuration always parses");
    builder(&config).finish().sdl()
}

fn app<'a>(ctx: &Context<'a>) -> &'a App {
    ctx.data_unchecked::<App>()
}

/// The `Queue-Token` header of an HTTP request, for operations that need an ACTIVE token.
#[derive(Debug, Clone)]
pub struct QueueTokenHeader(pub Option<String>);

/// The request's queue token, if it sent one.
fn queue_token<'a>(ctx: &Context<'a>) -> Option<&'a str> {
    ctx.data_opt::<QueueTokenHeader>()
        .and_then(|header| header.0.as_deref())
}

/// The authenticated caller, or `UNAUTHENTICATED`.
fn viewer(ctx: &Context<'_>) -> Result<Viewer, AppError> {
    ctx.data_opt::<Identity>()
        .unwrap_or(&Identity::Anonymous)
        .viewer()
}

fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}

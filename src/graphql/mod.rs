//! The GraphQL API: schema assembly, limits, and the per-request data resolvers rely on.
//! Resolvers stay thin: parse arguments, call one service function, convert the result.

mod account;
mod booking;
pub(crate) mod catalogue;
mod extension;
pub mod loaders;
mod queue;

use async_graphql::{Context, MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::auth::{Identity, Viewer};
use crate::config::Config;
use crate::error::AppError;
use crate::startup::Services;

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
    booking::BookingMutation,
    booking::PaymentMutation,
);

/// Pushed updates, over the websocket at `/graphql/ws`.
#[derive(MergedSubscription, Default)]
pub struct Subscription(queue::QueueSubscription, booking::BookingSubscription);

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
pub fn build_schema(services: Services) -> AppSchema {
    let config = services.config.clone();
    builder(&config).data(services).finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    let config = Config::from_env().expect("default configuration always parses");
    builder(&config).finish().sdl()
}

fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

/// The `Queue-Token` header of an HTTP request, for operations that need an ACTIVE token.
#[derive(Debug, Clone)]
pub struct QueueTokenHeader(pub Option<String>);

/// The authenticated caller, or `UNAUTHENTICATED`.
fn viewer(ctx: &Context<'_>) -> Result<Viewer, AppError> {
    ctx.data_opt::<Identity>()
        .unwrap_or(&Identity::Anonymous)
        .viewer()
}

fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}

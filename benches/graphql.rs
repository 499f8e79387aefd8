//! What the server spends on the hot read operations, without HTTP and without a load client on
//! the same cores: each is run through the API as the HTTP handler runs it (`AppApi::prepare`, then `run`,
//! with the request's loaders, caller and queue token), against the project's PostgreSQL and
//! Redis (`scripts/services start`). A database of its own (`concert_reservation_bench`) is
//! migrated and seeded with one concert, one schedule of 50 seats and 10 fans.
//!
//!   cargo bench --bench graphql              # criterion's full runs
//!   cargo bench --bench graphql -- --quick   # a short run (what scripts/test does)
//!
//! - `typename`: `{ __typename }`, the engine's fixed cost per operation.
//! - `seat_map`: the cached seat map of the 50-seat schedule (the `SEAT_MAP` document of
//!   `k6-graphql/lib/operations.js`): no SQL, no Redis.
//! - `queue_status`: `queueStatus` of a waiting fan's token: one Redis round trip.
//!
//! Each iteration runs a batch of requests at once on a single-threaded runtime, and criterion
//! reports the time per request (`Throughput::Elements`): about the CPU one request costs on one
//! core. One request at a time would measure waiting instead: a dataloader waits for its batch
//! with a tokio timer, which on an idle runtime fires at the next millisecond tick (a lone seat
//! map, two loader levels, took 2.7 ms that way). The batches stay under the queue's own
//! concurrency limit (`QUEUE_CONCURRENCY`).

use std::time::Duration;

use async_graphql::{Request, Variables};
use concert_reservation::app::App;
use concert_reservation::auth::Identity;
use concert_reservation::config::Config;
use concert_reservation::graphql::{AppApi, Loaders, QueueTokenHeader, build_api};
use concert_reservation::ids::{ConcertId, UserId};
use concert_reservation::seed::{SeedOptions, seed};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::future::join_all;

const DATABASE: &str = "concert_reservation_bench";

const SEAT_MAP: &str = "query schedule($id: ID!) {
  schedule(id: $id) { id availableSeats seats { id number grade price status } }
}";

const STATUS: &str = "query queueStatus($t: String!) {
  queueStatus(token: $t) { status position estimatedWaitSeconds activeUntil pollAfterSeconds }
}";

/// The server's configuration from the environment, pointed at the bench's own database and
/// Redis prefix.
async fn prepared_app() -> App {
    let mut config = Config::from_env().expect("the configuration parses");
    let admin = with_database(&config.database_url, "postgres");
    let mut conn = AsyncPgConnection::establish(&admin)
        .await
        .expect("PostgreSQL answers (scripts/services start)");
    let _ = diesel::sql_query(format!("CREATE DATABASE {DATABASE}"))
        .execute(&mut conn)
        .await; // already there
    config.database_url = with_database(&config.database_url, DATABASE);
    config.redis_key_prefix = "bench:".into();
    concert_reservation::db::run_migrations(&config.database_url)
        .await
        .expect("migrations run");
    let mut conn = AsyncPgConnection::establish(&config.database_url)
        .await
        .expect("the bench database answers");
    let options = SeedOptions {
        concerts: 1,
        schedules_per_concert: 1,
        seats_per_schedule: 50,
        users: 10,
        reset: true,
        ..SeedOptions::default()
    };
    seed(&mut conn, &options).await.expect("seeded");
    App::connect(config).expect("the application connects")
}

fn with_database(url: &str, database: &str) -> String {
    let mut url = url::Url::parse(url).expect("DATABASE_URL is a URL");
    url.set_path(database);
    url.to_string()
}

/// A request as the HTTP handler builds it: loaders, the caller and the queue token header.
fn request(app: &App, query: &str, variables: serde_json::Value, caller: Identity) -> Request {
    Request::new(query)
        .variables(Variables::from_json(variables))
        .data(Loaders::new(&app.db, &app.seat_map, &app.concerts))
        .data(caller)
        .data(QueueTokenHeader(None))
}

async fn run(api: &AppApi, request: Request) {
    let response = api.run(api.prepare(request).await).await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
}

/// Runs `batch` requests made by `make` at once.
async fn run_batch(api: &AppApi, batch: usize, make: impl Fn() -> Request) {
    join_all((0..batch).map(|_| run(api, make()))).await;
}

fn hot_reads(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (app, api, token) = runtime.block_on(async {
        let app = prepared_app().await;
        let api = build_api(app.clone()).expect("the API builds");
        let fan = concert_reservation::auth::Viewer::fan(UserId(1));
        let status = app
            .queue
            .enter(fan, ConcertId(1), None)
            .await
            .expect("the fan enters the queue");
        // Warm: the schedule into the directory, the seat map into the cache.
        let map = request(
            &app,
            SEAT_MAP,
            serde_json::json!({ "id": "1" }),
            Identity::Anonymous,
        );
        run(&api, map).await;
        (app, api, status.token)
    });
    let fan = || Identity::Authenticated(concert_reservation::auth::Viewer::fan(UserId(1)));

    let mut group = c.benchmark_group("graphql");
    group.measurement_time(Duration::from_secs(5));
    let mut bench = |name: &str, batch: usize, make: &dyn Fn() -> Request| {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| run_batch(&api, batch, make));
        });
    };
    bench("typename", 256, &|| {
        request(
            &app,
            "{ __typename }",
            serde_json::json!({}),
            Identity::Anonymous,
        )
    });
    bench("seat_map", 128, &|| {
        request(
            &app,
            SEAT_MAP,
            serde_json::json!({ "id": "1" }),
            Identity::Anonymous,
        )
    });
    bench("queue_status", 32, &|| {
        request(&app, STATUS, serde_json::json!({ "t": token }), fan())
    });
    group.finish();
}

criterion_group!(benches, hot_reads);
criterion_main!(benches);

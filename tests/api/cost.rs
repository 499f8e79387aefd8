//! What a hold and a payment cost the database, from the server's own counters: one statement on
//! one pooled connection each. A change that adds a round trip to the booking path fails here.

use diesel::sql_types::{BigInt, Bool};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::json;

use crate::helpers::{Scalar, TestApp, scalar};

/// Statements and checkouts the server spent on `work`.
async fn cost_of<T>(app: &TestApp, work: impl Future<Output = T>) -> (u64, u64, T) {
    let (statements, checkouts) = (app.statements_run(), app.checkouts());
    let out = work.await;
    (
        app.statements_run() - statements,
        app.checkouts() - checkouts,
        out,
    )
}

#[tokio::test]
async fn a_hold_is_one_statement_on_one_connection() {
    let (app, fans) = TestApp::staged(10, 3, 1_000_000, |_| {}).await;
    // The first hold of a schedule also loads its concert into the directory.
    app.hold_best_available(&fans[0], 1)
        .await
        .expect("warm-up hold");

    let (statements, checkouts, held) = cost_of(&app, app.hold_best_available(&fans[1], 2)).await;
    let held = held.expect("the hold succeeds");
    assert_eq!(held.seats.len(), 2, "the answer carries the held seats");
    assert_eq!(
        (statements, checkouts),
        (1, 1),
        "holdBestAvailable with its seats"
    );

    let (statements, checkouts, chosen) = cost_of(&app, app.hold_seats(&fans[2], &[9, 10])).await;
    chosen.expect("the hold succeeds");
    assert_eq!((statements, checkouts), (1, 1), "holdSeats with its seats");
}

#[tokio::test]
async fn a_refused_hold_is_one_statement_and_writes_nothing() {
    let (app, fans) = TestApp::staged(2, 2, 1_000_000, |_| {}).await;
    app.hold_seats(&fans[0], &[1]).await.expect("warm-up hold");
    let outbox = scalar(&app, "SELECT count(*) AS n FROM outbox").await;

    let (statements, checkouts, refused) = cost_of(&app, app.hold_seats(&fans[1], &[1, 2])).await;
    assert_eq!(refused.unwrap_err(), "SEAT_UNAVAILABLE");
    assert_eq!((statements, checkouts), (1, 1));
    // All or nothing: seat 2 was free and is still free; no event was written.
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) AS n FROM seats WHERE status = 'AVAILABLE'"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(&app, "SELECT count(*) AS n FROM outbox").await,
        outbox
    );
}

#[tokio::test]
async fn a_payment_is_one_statement_on_one_connection() {
    let (app, fans) = TestApp::staged(10, 1, 1_000_000, |_| {}).await;
    let held = app.hold_best_available(&fans[0], 2).await.expect("a hold");
    let pay = "mutation($r: ID!, $k: String!) { pay(reservationId: $r, idempotencyKey: $k) { \
               paymentId amount balanceAfter paidAt } }";
    let variables = json!({ "r": held.id.to_string(), "k": "cost-1" });
    let (statements, checkouts, answer) = cost_of(
        &app,
        app.graphql_with_headers(pay, variables.clone(), &app.headers_of(&fans[0])),
    )
    .await;
    assert_eq!(
        answer["data"]["pay"]["amount"], held.total_price,
        "{answer}"
    );
    assert_eq!((statements, checkouts), (1, 1), "pay");

    // A retry replays the stored receipt: one more read, nothing written.
    let (statements, _, replay) = cost_of(
        &app,
        app.graphql_with_headers(pay, variables, &app.headers_of(&fans[0])),
    )
    .await;
    assert_eq!(replay["data"]["pay"], answer["data"]["pay"], "{replay}");
    assert!(statements <= 2, "a replay costs {statements} statements");
}

/// A hold that runs out at exactly now no longer keeps its seat: "is this seat free" answers yes
/// at `held_until = now` in every place that asks (the SQL rule, the free-seat count, the hold).
#[tokio::test]
async fn a_hold_ending_exactly_now_frees_its_seat_everywhere() {
    let app = TestApp::spawn().await;
    app.seed_catalogue(1, 1, 3).await;
    let mut conn = app.db().await;
    conn.transaction::<(), diesel::result::Error, _>(async |tx| {
        // now() is the transaction's start, the same instant for every statement below.
        diesel::sql_query("UPDATE seats SET status = 'HELD', held_until = now() WHERE id = 1")
            .execute(tx)
            .await?;
        diesel::sql_query(
            "UPDATE seats SET status = 'HELD', held_until = now() + interval '1 microsecond' \
             WHERE id = 2",
        )
        .execute(tx)
        .await?;
        let free: Vec<FreeRow> = diesel::sql_query(
            "SELECT id, seat_is_free(status, held_until) AS free FROM seats ORDER BY id",
        )
        .load(tx)
        .await?;
        let free: Vec<(i64, bool)> = free.into_iter().map(|row| (row.id, row.free)).collect();
        assert_eq!(free, vec![(1, true), (2, false), (3, true)]);

        let counts = concert_reservation::catalogue::Seat::available_counts(
            tx,
            &[concert_reservation::ids::ScheduleId(1)],
        )
        .await?;
        assert_eq!(counts[&concert_reservation::ids::ScheduleId(1)], 2);

        let held: Scalar = diesel::sql_query(
            "SELECT (hold_seats(1, 1, ARRAY[1]::bigint[], 0, 60000, NULL)->'reservation'->>'id')::bigint AS n",
        )
        .get_result(tx)
        .await?;
        assert!(held.n > 0, "seat 1 was free to hold");
        Err(diesel::result::Error::RollbackTransaction)
    })
    .await
    .unwrap_err();
}

#[derive(diesel::QueryableByName)]
struct FreeRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Bool)]
    free: bool,
}

#[tokio::test]
async fn a_cached_seat_map_reads_no_sql() {
    let (app, _) = TestApp::staged(50, 1, 0, |_| {}).await;
    let seat_map = "query schedule($id: ID!) { schedule(id: $id) { id availableSeats \
                    seats { id number grade price status } } }";
    let variables = json!({ "id": "1" });
    let first = app.graphql_with(seat_map, variables.clone()).await;
    assert_eq!(
        first["data"]["schedule"]["seats"].as_array().map(Vec::len),
        Some(50),
        "{first}"
    );
    let (statements, checkouts, again) = cost_of(&app, app.graphql_with(seat_map, variables)).await;
    assert_eq!(again, first);
    assert_eq!((statements, checkouts), (0, 0), "a cached seat map");
}

/// Every PL/pgSQL function of the schema plans its statements once per connection, and never as
/// a sequential scan: without `plan_cache_mode = force_generic_plan` the plan cache re-plans a
/// statement for every call whenever a custom plan looks cheaper (it did for every statement of
/// the hold: a third of PostgreSQL's CPU per hold went to the planner), and a generic plan made
/// while a table was small reads it whole for as long as the connection lives
/// (`enable_seqscan = off`). A new function without both settings fails here.
#[tokio::test]
async fn the_booking_functions_plan_their_statements_once_per_connection() {
    let app = TestApp::spawn().await;
    let rows: Vec<Named> = diesel::sql_query(
        "SELECT p.proname AS name, \
                coalesce(p.proconfig @> ARRAY['plan_cache_mode=force_generic_plan', \
                                              'enable_seqscan=off'], false) AS generic \
           FROM pg_proc p \
           JOIN pg_namespace n ON n.oid = p.pronamespace \
           JOIN pg_language l ON l.oid = p.prolang \
          WHERE n.nspname = 'public' AND l.lanname = 'plpgsql' \
          ORDER BY p.proname",
    )
    .load(&mut app.db().await)
    .await
    .expect("the catalogue answers");
    let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
    for function in [
        "expire_holds",
        "hold_seats",
        "pay_reservation",
        "record_points",
        "set_seats_of",
    ] {
        assert!(
            names.contains(&function),
            "{function} is a PL/pgSQL function of the schema"
        );
    }
    let replanned: Vec<&str> = rows
        .iter()
        .filter(|row| !row.generic)
        .map(|row| row.name.as_str())
        .collect();
    assert!(
        replanned.is_empty(),
        "without generic plans and index scans only: {replanned:?}"
    );
}

#[derive(diesel::QueryableByName)]
struct Named {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    generic: bool,
}

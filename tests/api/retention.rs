//! Retention: published outbox rows and idempotency keys are deleted once past their age (7 days
//! and 1 day by default); an unpublished event and a younger key never are.

use concert_reservation::retention::Pruned;
use diesel::sql_types::BigInt;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

use crate::helpers::{TestApp, scalar};

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

async fn outbox_ids(app: &TestApp) -> Vec<i64> {
    diesel::sql_query("SELECT id FROM outbox ORDER BY id")
        .load::<Id>(&mut app.db().await)
        .await
        .expect("the outbox is readable")
        .into_iter()
        .map(|row| row.id)
        .collect()
}

#[tokio::test]
async fn old_published_events_and_old_keys_are_deleted_and_nothing_else() {
    let (app, fans) = TestApp::staged(4, 3, 1_000, |_| {}).await;
    for (i, fan) in fans.iter().enumerate() {
        app.charge_points(fan, 10, &format!("key-{i}"))
            .await
            .expect("a charge");
        app.hold_best_available(fan, 1).await.expect("a hold");
    }
    app.relay_outbox().await;
    let events = outbox_ids(&app).await;
    assert!(events.len() >= 3, "one seats.held event per hold");
    let (old_unpublished, old_published) = (events[0], events[1]);

    // Two events older than the outbox's retention, one of them not published (the relay is
    // behind); two keys older than the keys' retention.
    app.db()
        .await
        .batch_execute(&format!(
            "UPDATE outbox SET created_at = now() - interval '8 days' \
              WHERE id IN ({old_unpublished}, {old_published}); \
             UPDATE outbox SET published_at = NULL WHERE id = {old_unpublished}; \
             UPDATE idempotency_keys SET created_at = now() - interval '2 days' \
              WHERE key IN ('key-0', 'key-1');"
        ))
        .await
        .expect("ageing rows");

    let pruned = app.prune_retention().await;
    assert_eq!(
        pruned,
        Pruned {
            outbox: 1,
            idempotency_keys: 2
        }
    );
    let kept: Vec<i64> = events
        .iter()
        .copied()
        .filter(|id| *id != old_published)
        .collect();
    assert_eq!(
        outbox_ids(&app).await,
        kept,
        "only the old published event went"
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) AS n FROM idempotency_keys WHERE key = 'key-2'"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(&app, "SELECT count(*) AS n FROM idempotency_keys").await,
        1
    );

    // The key still kept replays its first answer: no second charge.
    let balance = format!("SELECT points AS n FROM users WHERE id = {}", fans[2].id);
    let before = scalar(&app, &balance).await;
    app.charge_points(&fans[2], 10, "key-2")
        .await
        .expect("a replay");
    assert_eq!(scalar(&app, &balance).await, before);

    // A second pass finds nothing more.
    assert_eq!(app.prune_retention().await, Pruned::default());
}

DROP INDEX idempotency_keys_created_at_idx;
DROP INDEX outbox_created_at_idx;

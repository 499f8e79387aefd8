-- Retention (src/retention.rs): published outbox rows and old idempotency keys are deleted in
-- batches, oldest first. These indexes find the oldest rows without reading the tables; rows are
-- inserted with created_at = now(), so both grow at their right-hand end.
CREATE INDEX outbox_created_at_idx ON outbox (created_at);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

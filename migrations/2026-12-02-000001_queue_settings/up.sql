-- Per-concert waiting-queue settings, changed live (`concert-reservation queue set|pause|resume`).
-- A NULL column means "the instance's default" (QUEUE_ADMIT_PER_SECOND, QUEUE_ACTIVE_CAP,
-- QUEUE_ACTIVE_TTL_SECONDS), so changing a default in the environment still reaches every
-- concert that did not set its own value. The ranges are checked by the application first (with
-- a clear message); the CHECKs keep any other writer inside them too.
CREATE TABLE queue_settings (
    concert_id         BIGINT PRIMARY KEY REFERENCES concerts (id) ON DELETE CASCADE,
    admit_per_second   DOUBLE PRECISION CHECK (admit_per_second > 0 AND admit_per_second <= 10000),
    active_cap         INTEGER CHECK (active_cap BETWEEN 1 AND 1000000),
    active_ttl_seconds INTEGER CHECK (active_ttl_seconds BETWEEN 10 AND 86400),
    paused             BOOLEAN NOT NULL DEFAULT false,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The admitter asks every tick whether a concert still has a seat to sell (the sold-out rule):
-- this index keeps that question cheap when almost every seat of a large venue is SOLD.
CREATE INDEX seats_unsold_idx ON seats (schedule_id) WHERE status <> 'SOLD';

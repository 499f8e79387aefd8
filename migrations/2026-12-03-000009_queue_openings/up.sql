-- The audit record of each scheduled opening of a concert's queue (issue 15): at `sales_open_at`
-- the admitter shuffles every fan who entered the pre-queue before it, once, uniformly at random.
-- `arrivals` is the shuffle's input (the user ids in the order they entered the pre-queue) and
-- `seed` its randomness: anyone can recompute the line from the two (src/queue/opening.rs says
-- how). The first admitter to insert the row fixes the seed; one opening per concert and time.
CREATE TABLE queue_openings (
    concert_id         BIGINT NOT NULL REFERENCES concerts (id) ON DELETE CASCADE,
    sales_open_at      TIMESTAMPTZ NOT NULL,
    seed               BIGINT NOT NULL,
    arrivals           BIGINT[] NOT NULL,
    -- Set once the line is in place (NULL: the opening is under way or failed and will be retried).
    opened_at          TIMESTAMPTZ,
    fans_shuffled      INTEGER CHECK (fans_shuffled >= 0),
    -- Fans who entered after the opening time but before the shuffle ran: behind the shuffled
    -- ones, in arrival order.
    fans_after_opening INTEGER CHECK (fans_after_opening >= 0),
    PRIMARY KEY (concert_id, sales_open_at)
);

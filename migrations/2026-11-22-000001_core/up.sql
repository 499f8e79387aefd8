-- The core model. The database itself guards the invariants the product promises:
--   * a seat is in at most one live (HELD or CONFIRMED) reservation
--     (reservation_seats_one_live_per_seat, kept in step with the reservation by a cascading FK);
--   * a balance never goes negative (users_points_non_negative);
--   * a reservation is paid at most once (payments_reservation_id_key).

CREATE TYPE seat_status AS ENUM ('AVAILABLE', 'HELD', 'SOLD');
CREATE TYPE seat_grade AS ENUM ('VIP', 'R', 'S', 'A'); -- declared best first: ORDER BY grade = best first
CREATE TYPE reservation_status AS ENUM ('HELD', 'CONFIRMED', 'CANCELLED', 'EXPIRED');
CREATE TYPE ledger_reason AS ENUM ('CHARGE', 'PAYMENT', 'REFUND');

CREATE TABLE users (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    points     BIGINT NOT NULL DEFAULT 0 CONSTRAINT users_points_non_negative CHECK (points >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every change to a balance is one ledger row; a balance always equals the sum of its ledger.
CREATE TABLE point_ledger (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        BIGINT NOT NULL REFERENCES users (id),
    delta          BIGINT NOT NULL CHECK (delta <> 0),
    reason         ledger_reason NOT NULL,
    reservation_id BIGINT,
    balance_after  BIGINT NOT NULL CHECK (balance_after >= 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX point_ledger_user_id_idx ON point_ledger (user_id, id);

CREATE TABLE concerts (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title      TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    artist     TEXT NOT NULL CHECK (length(artist) BETWEEN 1 AND 200),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A schedule is one performance of a concert.
CREATE TABLE schedules (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    concert_id BIGINT NOT NULL REFERENCES concerts (id),
    starts_at  TIMESTAMPTZ NOT NULL,
    venue      TEXT NOT NULL CHECK (length(venue) BETWEEN 1 AND 200)
);
CREATE INDEX schedules_concert_id_idx ON schedules (concert_id, starts_at);

CREATE TABLE seats (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id),
    number      INTEGER NOT NULL CHECK (number > 0),
    grade       seat_grade NOT NULL,
    price       BIGINT NOT NULL CHECK (price >= 0),
    status      seat_status NOT NULL DEFAULT 'AVAILABLE',
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT seats_schedule_id_number_key UNIQUE (schedule_id, number)
);
-- Serves the seat map and "best available" (grade, then number) of one schedule.
CREATE INDEX seats_schedule_grade_number_idx ON seats (schedule_id, grade, number);

CREATE TABLE reservations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    schedule_id BIGINT NOT NULL REFERENCES schedules (id),
    status      reservation_status NOT NULL DEFAULT 'HELD',
    total_price BIGINT NOT NULL CHECK (total_price >= 0),
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Target of reservation_seats' (reservation_id, status) foreign key.
    CONSTRAINT reservations_id_status_key UNIQUE (id, status)
);
CREATE UNIQUE INDEX reservations_one_hold_per_user_schedule
    ON reservations (user_id, schedule_id) WHERE status = 'HELD';
CREATE INDEX reservations_held_expires_at_idx ON reservations (expires_at) WHERE status = 'HELD';
CREATE INDEX reservations_user_id_idx ON reservations (user_id, id);

ALTER TABLE point_ledger
    ADD CONSTRAINT point_ledger_reservation_id_fkey FOREIGN KEY (reservation_id) REFERENCES reservations (id);

-- The seats of a reservation. `status` mirrors the reservation's status through the cascading
-- foreign key, so the partial unique index below sees every status change of the reservation.
CREATE TABLE reservation_seats (
    reservation_id BIGINT NOT NULL,
    seat_id        BIGINT NOT NULL REFERENCES seats (id),
    status         reservation_status NOT NULL,
    PRIMARY KEY (reservation_id, seat_id),
    CONSTRAINT reservation_seats_reservation_fkey FOREIGN KEY (reservation_id, status)
        REFERENCES reservations (id, status) ON UPDATE CASCADE
);
CREATE UNIQUE INDEX reservation_seats_one_live_per_seat
    ON reservation_seats (seat_id) WHERE status IN ('HELD', 'CONFIRMED');

CREATE TABLE payments (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id  BIGINT NOT NULL REFERENCES reservations (id),
    user_id         BIGINT NOT NULL REFERENCES users (id),
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    idempotency_key TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT payments_reservation_id_key UNIQUE (reservation_id)
);
CREATE INDEX payments_user_id_idx ON payments (user_id);

-- A client-chosen key makes a mutation safe to retry: the first result is stored and replayed.
CREATE TABLE idempotency_keys (
    user_id      BIGINT NOT NULL REFERENCES users (id),
    key          TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    operation    TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Transactional outbox: events are written in the business transaction and relayed to Kafka.
CREATE TABLE outbox (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type    TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    payload       JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

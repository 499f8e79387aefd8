-- A hold in one round trip. The whole hold runs inside PostgreSQL as one function call, so a
-- hold costs one statement on one pooled connection, and the statements inside are planned once
-- per connection (PL/pgSQL caches their plans) instead of once per request.

-- "Is this seat free?": AVAILABLE, or HELD by a hold whose time ran out at or before now (the
-- expiry sweep may not have reached it yet; it must not keep the seat from a fan who wants it
-- now). The one statement of the rule: the hold, the free-seat counts and every other query use
-- it (a plain SQL function, inlined by the planner).
CREATE FUNCTION seat_is_free(status seat_status, held_until TIMESTAMPTZ) RETURNS BOOLEAN
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT status = 'AVAILABLE' OR (status = 'HELD' AND held_until <= now())
$$;

-- Marks the HELD reservations among `ids` whose time ran out as EXPIRED (the cascading foreign
-- key takes their seats out of the one-live-reservation index) and appends one `seats.expired`
-- event each to the outbox, in the payload the Rust `ExpiredHold` describes. Returns how many
-- it expired. Used by the hold (a fan's own past-due hold, the past-due holders of the seats it
-- takes) and by the expiry sweeper.
CREATE FUNCTION expire_holds(ids BIGINT[]) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    expired INTEGER;
BEGIN
    WITH ended AS (
        UPDATE reservations r
           SET status = 'EXPIRED', updated_at = now()
         WHERE r.id = ANY (ids) AND r.status = 'HELD' AND r.expires_at <= now()
        RETURNING r.id, r.schedule_id, r.user_id, r.expires_at
    ), events AS (
        INSERT INTO outbox (event_type, partition_key, payload)
        SELECT 'seats.expired', e.schedule_id::TEXT, jsonb_build_object(
                   'reservation_id', e.id,
                   'schedule_id', e.schedule_id,
                   'concert_id', s.concert_id,
                   'user_id', e.user_id,
                   'seat_ids', (SELECT coalesce(jsonb_agg(rs.seat_id ORDER BY rs.seat_id), '[]')
                                  FROM reservation_seats rs WHERE rs.reservation_id = e.id),
                   'expires_at', e.expires_at)
          FROM ended e JOIN schedules s ON s.id = e.schedule_id
         ORDER BY e.id
        RETURNING 1
    )
    SELECT count(*) INTO expired FROM events;
    RETURN expired;
END
$$;

-- Holds seats of `schedule_id` for `user_id` until now + `ttl_ms`: exactly `seat_ids` when given,
-- else the best `best_count` free seats (best grade, then lowest number). Seats are locked with
-- FOR UPDATE SKIP LOCKED in a fixed order, so nobody waits behind another fan's lock: either every
-- seat is free and locked at once, or the call raises and nothing is written (all or nothing).
-- The fan's own past-due hold on the schedule no longer counts as their one live hold, and a seat
-- whose hold ran out ends that hold first. Writes the reservation, its seats, the seats' HELD
-- state and the `seats.held` event (the payload of the Rust `SeatsHeld`).
--
-- Returns {"reservation": {...}, "seats": [{...}, ...]} (seats by number). Raises
-- 'SEAT_UNAVAILABLE' when the seats are taken and 'SEAT_NOT_IN_SCHEDULE' when a chosen seat is
-- not of this schedule; a second live hold violates reservations_one_hold_per_user_schedule.
CREATE FUNCTION hold_seats(user_id BIGINT, schedule_id BIGINT, seat_ids BIGINT[], best_count INTEGER,
                           ttl_ms BIGINT) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
    wanted INTEGER := coalesce(cardinality(seat_ids), best_count);
    locked BIGINT[];
    past_due BIGINT[];
    total BIGINT;
    until TIMESTAMPTZ := now() + ttl_ms * INTERVAL '1 millisecond';
    held reservations;
    seats_json JSONB;
BEGIN
    -- The caller's own hold on this schedule that ran out no longer counts as their live hold.
    PERFORM expire_holds(array(
        SELECT r.id FROM reservations r
         WHERE r.user_id = hold_seats.user_id AND r.schedule_id = hold_seats.schedule_id
           AND r.status = 'HELD' AND r.expires_at <= now()));

    -- Lock what is free, in a fixed order, skipping rows another transaction is locking now.
    IF seat_ids IS NOT NULL THEN
        SELECT coalesce(array_agg(f.id ORDER BY f.id), '{}'),
               coalesce(array_agg(f.id) FILTER (WHERE f.status = 'HELD'), '{}'),
               coalesce(sum(f.price), 0)
          INTO locked, past_due, total
          FROM (SELECT s.id, s.status, s.price FROM seats s
                 WHERE s.id = ANY (hold_seats.seat_ids) AND s.schedule_id = hold_seats.schedule_id
                   AND seat_is_free(s.status, s.held_until)
                 ORDER BY s.id
                   FOR UPDATE SKIP LOCKED) f;
    ELSE
        SELECT coalesce(array_agg(f.id), '{}'),
               coalesce(array_agg(f.id) FILTER (WHERE f.status = 'HELD'), '{}'),
               coalesce(sum(f.price), 0)
          INTO locked, past_due, total
          FROM (SELECT s.id, s.status, s.price FROM seats s
                 WHERE s.schedule_id = hold_seats.schedule_id
                   AND seat_is_free(s.status, s.held_until)
                 ORDER BY s.grade, s.number
                 LIMIT best_count
                   FOR UPDATE SKIP LOCKED) f;
    END IF;

    IF cardinality(locked) < wanted THEN
        IF seat_ids IS NOT NULL AND (SELECT count(*) FROM seats s
                                      WHERE s.id = ANY (hold_seats.seat_ids)
                                        AND s.schedule_id = hold_seats.schedule_id) < wanted THEN
            RAISE EXCEPTION 'SEAT_NOT_IN_SCHEDULE';
        END IF;
        RAISE EXCEPTION 'SEAT_UNAVAILABLE';
    END IF;

    -- Seats whose hold ran out: end that hold first, so the seat can join this one.
    IF cardinality(past_due) > 0 THEN
        PERFORM expire_holds(array(
            SELECT rs.reservation_id FROM reservation_seats rs
             WHERE rs.seat_id = ANY (past_due) AND rs.status = 'HELD'));
    END IF;

    INSERT INTO reservations (user_id, schedule_id, status, total_price, expires_at)
    VALUES (hold_seats.user_id, hold_seats.schedule_id, 'HELD', total, until)
    RETURNING * INTO held;
    INSERT INTO reservation_seats (reservation_id, seat_id, status)
    SELECT held.id, unnest(locked), 'HELD';
    WITH marked AS (
        UPDATE seats s SET status = 'HELD', held_until = until, updated_at = now()
         WHERE s.id = ANY (locked)
        RETURNING s.id, s.schedule_id, s.number, s.grade, s.price, s.status, s.held_until
    )
    SELECT jsonb_agg(to_jsonb(m) ORDER BY m.number) INTO seats_json FROM marked m;
    INSERT INTO outbox (event_type, partition_key, payload)
    VALUES ('seats.held', held.schedule_id::TEXT, jsonb_build_object(
        'reservation_id', held.id,
        'schedule_id', held.schedule_id,
        'user_id', held.user_id,
        'seat_ids', to_jsonb(locked),
        'expires_at', held.expires_at));
    RETURN jsonb_build_object('reservation', to_jsonb(held), 'seats', seats_json);
END
$$;

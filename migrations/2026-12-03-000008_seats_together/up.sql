-- Seats together (issue 15): holdBestAvailable(count: N > 1) gives N adjacent seats in one row
-- of a section, the best such run, when there is one; otherwise the best seats split, as before.
-- Still SKIP LOCKED, still nobody waits. Same signature as tickets_per_fan.

-- Holds seats of `schedule_id` for `user_id` until now + `ttl_ms`: exactly `seat_ids` when given,
-- else the best `best_count` free seats: adjacent in one row when there are such (the best run),
-- else the best seats split (best grade, then lowest number). Seats are locked with
-- FOR UPDATE SKIP LOCKED in a fixed order, so nobody waits behind another fan's lock: either every
-- seat is free and locked at once, or the call raises and nothing is written (all or nothing).
-- The fan's own past-due hold on the schedule no longer counts as their one live hold, and a seat
-- whose hold ran out ends that hold first. Writes the reservation, its seats, the seats' HELD
-- state and the `seats.held` event (the payload of the Rust `SeatsHeld`).
--
-- Returns {"reservation": {...}, "seats": [{...}, ...]} (seats by number). Raises
-- 'SEAT_UNAVAILABLE' when the seats are taken, 'SEAT_NOT_IN_SCHEDULE' when a chosen seat is
-- not of this schedule and 'TICKET_LIMIT' when the fan would have more than `max_per_fan` seats
-- of the performance; a second live hold violates reservations_one_hold_per_user_schedule.
CREATE OR REPLACE FUNCTION hold_seats(user_id BIGINT, schedule_id BIGINT, seat_ids BIGINT[], best_count INTEGER,
                           ttl_ms BIGINT, max_per_fan INTEGER) RETURNS JSONB
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    wanted INTEGER := coalesce(cardinality(seat_ids), best_count);
    own_past_due BIGINT[];
    locked BIGINT[];
    past_due BIGINT[];
    total BIGINT;
    until TIMESTAMPTZ := now() + ttl_ms * INTERVAL '1 millisecond';
    result JSONB;
    run RECORD;
BEGIN
    -- The caller's own hold on this schedule that ran out no longer counts as their live hold.
    -- (Most holds have none: expire_holds is called only when there is one.)
    own_past_due := array(
        SELECT r.id FROM reservations r
         WHERE r.user_id = hold_seats.user_id AND r.schedule_id = hold_seats.schedule_id
           AND r.status = 'HELD' AND r.expires_at <= now());
    IF cardinality(own_past_due) > 0 THEN
        PERFORM expire_holds(own_past_due);
    END IF;

    -- At most `max_per_fan` seats of a performance per fan, held and bought together (NULL: no
    -- limit). A hold of theirs being paid at this moment is counted either way (HELD before the
    -- payment commits, CONFIRMED after), and two holds of theirs at once cannot both be written
    -- (reservations_one_hold_per_user_schedule), so no lock is needed.
    IF max_per_fan IS NOT NULL THEN
        IF (SELECT count(*) FROM reservations r
              JOIN reservation_seats rs ON rs.reservation_id = r.id AND rs.status = r.status
             WHERE r.user_id = hold_seats.user_id AND r.schedule_id = hold_seats.schedule_id
               AND r.status IN ('HELD', 'CONFIRMED')) + wanted > max_per_fan THEN
            RAISE EXCEPTION 'TICKET_LIMIT';
        END IF;
    END IF;

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
        -- Seats together: runs of `best_count` adjacent free seats in one row, best first (by
        -- grade, then the run's first number), among the first 400 free seats in that order. A
        -- row's seats are numbered one after another, so a run is `best_count` free seats in a
        -- row whose numbers follow on; read in the index's order, this needs no sort (about
        -- 0.3 ms). Runs overlap (1-2, 2-3, ...), so fans arriving together find different ones.
        -- Each of the best 32 is tried with SKIP LOCKED inside a block of its own: a run part of
        -- which another fan is locking right now is given up, and the locks taken on the rest
        -- are released with the block, so nobody waits and no seat is kept from anyone. Without
        -- a run (or for a single seat): the best seats, split.
        IF best_count > 1 THEN
            FOR run IN
                SELECT f.ids
                  FROM (SELECT array_agg(c.id) OVER w AS ids, c.grade, c.number, c.section, c.row_label,
                               lead(c.number, best_count - 1) OVER v AS last_number,
                               lead(c.section, best_count - 1) OVER v AS last_section,
                               lead(c.row_label, best_count - 1) OVER v AS last_row
                          FROM (SELECT s.id, s.grade, s.number, s.section, s.row_label
                                  FROM seats s
                                 WHERE s.schedule_id = hold_seats.schedule_id
                                   AND seat_is_free(s.status, s.held_until)
                                 ORDER BY s.grade, s.number
                                 LIMIT 400) c
                        WINDOW v AS (ORDER BY c.grade, c.number),
                               w AS (v ROWS BETWEEN CURRENT ROW AND best_count - 1 FOLLOWING)) f
                 WHERE f.last_number = f.number + best_count - 1
                   AND f.last_section = f.section AND f.last_row = f.row_label
                 ORDER BY f.grade, f.number
                 LIMIT 32
            LOOP
                BEGIN
                    SELECT coalesce(array_agg(f.id ORDER BY f.id), '{}'),
                           coalesce(array_agg(f.id) FILTER (WHERE f.status = 'HELD'), '{}'),
                           coalesce(sum(f.price), 0)
                      INTO locked, past_due, total
                      FROM (SELECT s.id, s.status, s.price FROM seats s
                             WHERE s.id = ANY (run.ids) AND seat_is_free(s.status, s.held_until)
                             ORDER BY s.id
                               FOR UPDATE SKIP LOCKED) f;
                    IF cardinality(locked) < best_count THEN
                        RAISE EXCEPTION 'RUN_TAKEN';
                    END IF;
                    EXIT;
                EXCEPTION WHEN raise_exception THEN
                    locked := '{}';
                END;
            END LOOP;
        END IF;
        IF coalesce(cardinality(locked), 0) < best_count THEN
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

    -- The writes, as one statement: the reservation, its seats, the seats' HELD state and the
    -- event. The foreign keys are checked at the end of the statement, when every row is there.
    WITH held AS (
        INSERT INTO reservations (user_id, schedule_id, status, total_price, expires_at)
        VALUES (hold_seats.user_id, hold_seats.schedule_id, 'HELD', total, until)
        RETURNING *
    ), joined AS (
        INSERT INTO reservation_seats (reservation_id, seat_id, status)
        SELECT h.id, unnest(locked), 'HELD' FROM held h
    ), marked AS (
        UPDATE seats s SET status = 'HELD', held_until = until, updated_at = now()
         WHERE s.id = ANY (locked)
        RETURNING s.id, s.schedule_id, s.number, s.grade, s.price, s.status, s.held_until
    ), event AS (
        INSERT INTO outbox (event_type, partition_key, payload)
        SELECT 'seats.held', h.schedule_id::TEXT, jsonb_build_object(
                   'reservation_id', h.id,
                   'schedule_id', h.schedule_id,
                   'user_id', h.user_id,
                   'seat_ids', to_jsonb(locked),
                   'expires_at', h.expires_at)
          FROM held h
    )
    SELECT jsonb_build_object('reservation', to_jsonb(h),
                              'seats', (SELECT jsonb_agg(to_jsonb(m) ORDER BY m.number) FROM marked m))
      INTO result
      FROM held h;
    RETURN result;
END
$$;

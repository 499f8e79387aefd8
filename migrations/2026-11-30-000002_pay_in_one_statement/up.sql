-- A payment in one round trip: like the hold, the whole payment runs inside PostgreSQL as one
-- function call (one statement, plans cached per connection). The balance-and-ledger step and
-- the seat-state step are functions of their own, shared with top-ups and cancellations.

-- Adds `delta` points (negative: takes them) to a balance and writes the ledger entry. Returns
-- the balance after, or NULL when the user does not exist or, for a debit, has fewer points than
-- it takes: a balance never goes below zero.
CREATE FUNCTION record_points(user_id BIGINT, delta BIGINT, reason ledger_reason,
                              reservation_id BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    balance BIGINT;
BEGIN
    UPDATE users u SET points = u.points + delta
     WHERE u.id = record_points.user_id AND u.points + delta >= 0
    RETURNING u.points INTO balance;
    IF FOUND AND delta <> 0 THEN
        INSERT INTO point_ledger (user_id, delta, reason, reservation_id, balance_after)
        VALUES (record_points.user_id, delta, reason, record_points.reservation_id, balance);
    END IF;
    RETURN balance;
END
$$;

-- Moves every seat of a reservation to `new_status` (SOLD on payment, AVAILABLE on
-- cancellation), clearing its hold expiry. Returns the seats changed.
CREATE FUNCTION set_seats_of(reservation_id BIGINT, new_status seat_status) RETURNS BIGINT[]
LANGUAGE plpgsql AS $$
DECLARE
    changed BIGINT[];
BEGIN
    WITH moved AS (
        UPDATE seats s SET status = new_status, held_until = NULL, updated_at = now()
         WHERE s.id IN (SELECT rs.seat_id FROM reservation_seats rs
                         WHERE rs.reservation_id = set_seats_of.reservation_id)
        RETURNING s.id
    )
    SELECT coalesce(array_agg(m.id ORDER BY m.id), '{}') INTO changed FROM moved m;
    RETURN changed;
END
$$;

-- Pays the hold `reservation_id` of `user_id` with points, once per idempotency key, for a fan
-- whose queue token is ACTIVE for `concert_id`: claim the key, lock the hold, take the points
-- (balance and ledger), record the payment, mark the seats SOLD and the reservation CONFIRMED,
-- write `payment.completed` and store the receipt for replays.
--
-- Returns {"claimed": false} when another request already claimed the key (PostgreSQL made
-- this one wait until it committed: replay its receipt), else {"claimed": true, "receipt":
-- {...}, "schedule_id": n, "seat_ids": [...]}. A refusal raises NOT_FOUND, NOT_OWNER,
-- QUEUE_TOKEN_INVALID, HOLD_EXPIRED, HOLD_CANCELLED, ALREADY_PAID or INSUFFICIENT_POINTS (its
-- detail: "<price> <balance>"), and nothing is written.
CREATE FUNCTION pay_reservation(user_id BIGINT, concert_id BIGINT, reservation_id BIGINT,
                                key TEXT, request TEXT) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
    held reservations;
    balance BIGINT;
    paid payments;
    sold BIGINT[];
    receipt JSONB;
BEGIN
    INSERT INTO idempotency_keys (user_id, key, operation, request_hash, response)
    VALUES (pay_reservation.user_id, pay_reservation.key, 'pay', request, 'null')
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('claimed', false);
    END IF;

    SELECT * INTO held FROM reservations r WHERE r.id = pay_reservation.reservation_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NOT_FOUND';
    END IF;
    IF held.user_id <> pay_reservation.user_id THEN
        RAISE EXCEPTION 'NOT_OWNER';
    END IF;
    -- The token is ACTIVE for `concert_id`; it does not admit to another concert's seats.
    IF (SELECT s.concert_id FROM schedules s WHERE s.id = held.schedule_id)
           IS DISTINCT FROM pay_reservation.concert_id THEN
        RAISE EXCEPTION 'QUEUE_TOKEN_INVALID';
    END IF;
    IF held.status = 'CONFIRMED' THEN
        RAISE EXCEPTION 'ALREADY_PAID';
    ELSIF held.status = 'CANCELLED' THEN
        RAISE EXCEPTION 'HOLD_CANCELLED';
    ELSIF held.status = 'EXPIRED' OR held.expires_at <= now() THEN
        RAISE EXCEPTION 'HOLD_EXPIRED';
    END IF;

    balance := record_points(held.user_id, -held.total_price, 'PAYMENT', held.id);
    IF balance IS NULL THEN
        RAISE EXCEPTION 'INSUFFICIENT_POINTS' USING DETAIL = held.total_price || ' ' ||
            coalesce((SELECT u.points FROM users u WHERE u.id = held.user_id), 0);
    END IF;
    INSERT INTO payments (reservation_id, user_id, amount, idempotency_key)
    VALUES (held.id, held.user_id, held.total_price, pay_reservation.key)
    RETURNING * INTO paid;
    sold := set_seats_of(held.id, 'SOLD');
    UPDATE reservations r SET status = 'CONFIRMED', updated_at = now() WHERE r.id = held.id;
    receipt := jsonb_build_object(
        'payment_id', paid.id,
        'reservation_id', held.id,
        'amount', held.total_price,
        'balance_after', balance,
        'paid_at', paid.created_at);
    INSERT INTO outbox (event_type, partition_key, payload)
    VALUES ('payment.completed', held.schedule_id::TEXT, receipt);
    UPDATE idempotency_keys k SET response = receipt
     WHERE k.user_id = pay_reservation.user_id AND k.key = pay_reservation.key;
    RETURN jsonb_build_object('claimed', true, 'receipt', receipt,
                              'schedule_id', held.schedule_id, 'seat_ids', to_jsonb(sold));
END
$$;

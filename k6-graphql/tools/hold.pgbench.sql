-- The hold transaction of src/booking/mod.rs (hold_in_transaction), as plain SQL for pgbench: the
-- database's own ceiling for holds, without HTTP, GraphQL, Redis or the pool in front of it.
-- `scripts/load ceiling` runs it twice: @END@ becomes ROLLBACK (locks and writes without the
-- commit's WAL flush: an upper bound), then COMMIT with the `-- @commit@` lines switched on (a
-- second transaction gives the seat back as a cancellation would, so seats never run out: a lower
-- bound, since each script then commits twice).
--   pgbench -n -f <this, edited> -c 16 -j 2 -T 15 -D nseats=<max seat id> <load database url>
-- Client c is fan c + 1 (seeded users), so each client has one live hold at a time, as a fan has.
\set seat random(1, :nseats)
\set fan :client_id + 1
BEGIN;
-- The fan's own hold on this schedule that ran out no longer counts (expire it first).
SELECT r.id FROM reservations r JOIN seats s ON s.schedule_id = r.schedule_id
  WHERE s.id = :seat AND r.user_id = :fan AND r.status = 'HELD' AND r.expires_at <= now();
-- Lock the seat if it is free, skipping it if another transaction is locking it right now.
SELECT count(*) AS got FROM (
  SELECT id FROM seats WHERE id = :seat
    AND (status = 'AVAILABLE' OR (status = 'HELD' AND held_until < now()))
  ORDER BY id FOR UPDATE SKIP LOCKED) locked \gset
\if :got
INSERT INTO reservations (user_id, schedule_id, status, total_price, expires_at)
  SELECT :fan, schedule_id, 'HELD', price, now() + interval '5 minutes' FROM seats WHERE id = :seat
  RETURNING id AS rid, schedule_id AS sid \gset
INSERT INTO reservation_seats (reservation_id, seat_id, status) VALUES (:rid, :seat, 'HELD');
UPDATE seats SET status = 'HELD', held_until = now() + interval '5 minutes', updated_at = now() WHERE id = :seat;
INSERT INTO outbox (event_type, partition_key, payload) VALUES ('seats.held', (:sid)::text,
  jsonb_build_object('reservation_id', :rid, 'schedule_id', :sid, 'user_id', :fan, 'seat_ids', jsonb_build_array(:seat),
    'expires_at', now() + interval '5 minutes'));
\endif
@END@;
\if :got
-- @commit@ BEGIN;
-- @commit@ UPDATE reservations SET status = 'CANCELLED', updated_at = now() WHERE id = :rid;
-- @commit@ UPDATE seats SET status = 'AVAILABLE', held_until = NULL, updated_at = now() WHERE id = :seat;
-- @commit@ COMMIT;
\endif

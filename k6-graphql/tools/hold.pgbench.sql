-- A hold as the server sends it since migration hold_in_one_statement: one statement,
-- `SELECT hold_seats(...)`, here holdBestAvailable(count: 1) on a random schedule, as plain SQL for
-- pgbench: the database's own ceiling for holds, without HTTP, GraphQL, Redis or the pool in front
-- of it. `scripts/load ceiling` runs it twice: with the `-- @rollback@` lines switched on (the
-- hold inside BEGIN … ROLLBACK: locks and writes without the commit's WAL flush, an upper bound),
-- then with the `-- @commit@` lines (the one statement on its own, committed as the server's is,
-- then a second transaction gives the seat back as a cancellation would, so seats never run out:
-- a lower bound, since each script then commits twice).
--   pgbench -n -f <this, edited> -c 16 -j 2 -T 15 -D nschedules=<schedules> <load database url>
-- Client c is fan c + 1 (seeded users), so each client has one live hold at a time, as a fan has.
-- The TTL is 5 minutes (300,000 ms), as the server's default hold.
\set schedule random(1, :nschedules)
\set fan :client_id + 1
-- @rollback@ BEGIN;
SELECT (h->'reservation'->>'id')::bigint AS rid, (h->'seats'->0->>'id')::bigint AS seat
  FROM hold_seats(:fan, :schedule, NULL, 1, 300000, NULL) h \gset
-- @rollback@ ROLLBACK;
-- @commit@ BEGIN;
-- @commit@ UPDATE reservations SET status = 'CANCELLED', updated_at = now() WHERE id = :rid;
-- @commit@ UPDATE seats SET status = 'AVAILABLE', held_until = NULL, updated_at = now() WHERE id = :seat;
-- @commit@ COMMIT;

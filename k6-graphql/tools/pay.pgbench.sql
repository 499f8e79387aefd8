-- A payment as the server sends it since migration pay_in_one_statement: one statement,
-- `SELECT pay_reservation(...)`, as plain SQL for pgbench: the database's own ceiling for
-- payments, without HTTP, GraphQL, Redis or the pool in front of it. Inside BEGIN … ROLLBACK, so
-- each client pays the same hold again and again: the statement's locks and writes without the
-- commit's WAL flush, an upper bound (a payment cannot be given back as a hold is, so there is no
-- committed variant).
--   pgbench -n -f <this> -c 16 -j 2 -T 15 -D concert=2 -D last_schedule=<id> <load database url>
-- Client c is fan c + 1, who holds one seat of schedule last_schedule - c / 50 of that concert
-- (`scripts/load ceiling` makes these holds with hold_seats() before). The reservation is looked
-- up inside the statement (an index lookup the server's call does not make).
\set fan :client_id + 1
\set schedule :last_schedule - :client_id / 50
BEGIN;
SELECT pay_reservation(:fan, :concert,
  (SELECT id FROM reservations WHERE user_id = :fan AND schedule_id = :schedule AND status = 'HELD'),
  'pgbench-' || :client_id, 'pay reservation') IS NOT NULL AS paid;
ROLLBACK;

-- The booking functions never read a table with a sequential scan.
--
-- Since generic_plans, each statement inside them is planned once per connection, from the table
-- sizes of that moment. Planned on a fresh or emptied database (a new deployment,
-- `seed --reset`), the lookup of a fan's own past-due hold and the expiry's update read
-- `reservations` with a sequential scan, and kept doing so as the table grew: a profile of API
-- holds (perf) showed heap_getnextslot under those statements, and PostgreSQL's CPU per hold
-- rose from 1.1 to 3.9 ms. Every statement in these functions is a lookup by a key that has an
-- index, so sequential scans are switched off inside them: enable_seqscan = off makes the planner
-- take an index whenever there is one (it does not forbid a scan where there is none).
ALTER FUNCTION expire_holds(BIGINT[]) SET enable_seqscan = off;
ALTER FUNCTION hold_seats(BIGINT, BIGINT, BIGINT[], INTEGER, BIGINT) SET enable_seqscan = off;
ALTER FUNCTION record_points(BIGINT, BIGINT, ledger_reason, BIGINT) SET enable_seqscan = off;
ALTER FUNCTION set_seats_of(BIGINT, seat_status) SET enable_seqscan = off;
ALTER FUNCTION pay_reservation(BIGINT, BIGINT, BIGINT, TEXT, TEXT) SET enable_seqscan = off;

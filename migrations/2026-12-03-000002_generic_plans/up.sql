-- The statements inside the booking functions are planned once per connection, not once per call.
--
-- PL/pgSQL caches a plan for each statement, but with the default plan_cache_mode (auto) the plan
-- cache keeps making a custom plan, for the parameters of each call, whenever the generic plan's
-- estimate is higher than the custom plans' average. For these statements it always was: a
-- custom plan folds `id = ANY('{}')` (no past-due hold, the common case) to nothing, and plans
-- `LIMIT best_count` for the count given. A profile of the hold under pgbench (perf, 16 clients)
-- showed 31 % of PostgreSQL's CPU in the planner (GetCachedPlan -> pg_plan_queries), most of it
-- in the CTEs of expire_holds and of the seat update; with generic plans, 3 %. The generic plans
-- are the index scans the custom ones were (EXPLAIN in docs/performance.md).
ALTER FUNCTION expire_holds(BIGINT[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION hold_seats(BIGINT, BIGINT, BIGINT[], INTEGER, BIGINT) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION record_points(BIGINT, BIGINT, ledger_reason, BIGINT) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION set_seats_of(BIGINT, seat_status) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION pay_reservation(BIGINT, BIGINT, BIGINT, TEXT, TEXT) SET plan_cache_mode = force_generic_plan;

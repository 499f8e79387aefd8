ALTER FUNCTION pay_reservation(BIGINT, BIGINT, BIGINT, TEXT, TEXT) RESET plan_cache_mode;
ALTER FUNCTION set_seats_of(BIGINT, seat_status) RESET plan_cache_mode;
ALTER FUNCTION record_points(BIGINT, BIGINT, ledger_reason, BIGINT) RESET plan_cache_mode;
ALTER FUNCTION hold_seats(BIGINT, BIGINT, BIGINT[], INTEGER, BIGINT) RESET plan_cache_mode;
ALTER FUNCTION expire_holds(BIGINT[]) RESET plan_cache_mode;

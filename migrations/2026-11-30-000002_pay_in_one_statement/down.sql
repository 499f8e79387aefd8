DROP FUNCTION pay_reservation(BIGINT, BIGINT, BIGINT, TEXT, TEXT);
DROP FUNCTION set_seats_of(BIGINT, seat_status);
DROP FUNCTION record_points(BIGINT, BIGINT, ledger_reason, BIGINT);

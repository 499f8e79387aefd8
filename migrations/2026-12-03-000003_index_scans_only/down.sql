ALTER FUNCTION pay_reservation(BIGINT, BIGINT, BIGINT, TEXT, TEXT) RESET enable_seqscan;
ALTER FUNCTION set_seats_of(BIGINT, seat_status) RESET enable_seqscan;
ALTER FUNCTION record_points(BIGINT, BIGINT, ledger_reason, BIGINT) RESET enable_seqscan;
ALTER FUNCTION hold_seats(BIGINT, BIGINT, BIGINT[], INTEGER, BIGINT) RESET enable_seqscan;
ALTER FUNCTION expire_holds(BIGINT[]) RESET enable_seqscan;

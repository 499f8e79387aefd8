-- Organisers lay out a schedule's seat map and schedule its sale (issue 15).
--
-- Seats get a place: a section, a row in it and a number in the row. `number` stays the seat's
-- number across the whole schedule (what fans and the seat map have always shown, and the order
-- of "best available" within a grade). Seats laid out before this migration are one row "A" of
-- section "Floor", numbered as before.
ALTER TABLE seats
    ADD COLUMN section     TEXT NOT NULL DEFAULT 'Floor' CHECK (length(section) BETWEEN 1 AND 50),
    ADD COLUMN row_label   TEXT NOT NULL DEFAULT 'A' CHECK (length(row_label) BETWEEN 1 AND 10),
    ADD COLUMN seat_in_row INTEGER CHECK (seat_in_row > 0);
UPDATE seats SET seat_in_row = number;
ALTER TABLE seats
    ALTER COLUMN seat_in_row SET NOT NULL,
    ALTER COLUMN section DROP DEFAULT,
    ALTER COLUMN row_label DROP DEFAULT,
    ADD CONSTRAINT seats_place_key UNIQUE (schedule_id, section, row_label, seat_in_row);

-- A schedule's sale: fans may enter the queue from `prequeue_opens_at`, the sale opens at
-- `sales_open_at` and closes at `sales_close_at`. NULL: no such moment (open now, never closes).
-- The order is checked by the application first, with a clear message; the CHECK keeps any other
-- writer to it too.
ALTER TABLE schedules
    ADD COLUMN prequeue_opens_at TIMESTAMPTZ,
    ADD COLUMN sales_open_at     TIMESTAMPTZ,
    ADD COLUMN sales_close_at    TIMESTAMPTZ,
    ADD CONSTRAINT schedules_sale_in_order CHECK (
        (prequeue_opens_at IS NULL OR sales_open_at IS NULL OR prequeue_opens_at <= sales_open_at)
        AND (sales_open_at IS NULL OR sales_close_at IS NULL OR sales_open_at < sales_close_at)
        AND (sales_close_at IS NULL OR sales_close_at <= starts_at));

-- A HELD seat carries its hold's expiry, so the hold path can treat a seat whose hold ran out as
-- free at once (before the expiry sweep reaches it), without joining to reservations.
ALTER TABLE seats ADD COLUMN held_until TIMESTAMPTZ;
ALTER TABLE seats ADD CONSTRAINT seats_held_until_iff_held
    CHECK ((status = 'HELD') = (held_until IS NOT NULL));

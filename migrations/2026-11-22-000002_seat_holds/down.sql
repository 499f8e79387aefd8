ALTER TABLE seats DROP CONSTRAINT seats_held_until_iff_held;
ALTER TABLE seats DROP COLUMN held_until;

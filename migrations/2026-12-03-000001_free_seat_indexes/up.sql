-- "Has this schedule a free seat?" (the admitter's sold-out check, four times a second for every
-- queued concert) as two index probes that stop at their first entry, whatever share of the
-- schedule is already held or sold: an AVAILABLE seat, or a HELD seat whose hold ran out (the
-- earliest `held_until`). The index they replace held every unsold seat, so the check read each
-- held seat before it found a free one.
DROP INDEX seats_unsold_idx;
CREATE INDEX seats_available_idx ON seats (schedule_id) WHERE status = 'AVAILABLE';
CREATE INDEX seats_held_until_idx ON seats (schedule_id, held_until) WHERE status = 'HELD';

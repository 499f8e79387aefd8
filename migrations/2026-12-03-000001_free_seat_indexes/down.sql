DROP INDEX seats_held_until_idx;
DROP INDEX seats_available_idx;
CREATE INDEX seats_unsold_idx ON seats (schedule_id) WHERE status <> 'SOLD';

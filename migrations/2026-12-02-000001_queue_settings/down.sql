DROP INDEX seats_unsold_idx;
DROP TABLE queue_settings;

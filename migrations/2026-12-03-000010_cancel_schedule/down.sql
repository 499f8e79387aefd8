-- PostgreSQL cannot drop a value from an enum type: 'WITHDRAWN' stays in seat_status, unused
-- (the seats it marked go back on sale; no code before this migration writes it). Applying the
-- migration again is a no-op for the type (ADD VALUE IF NOT EXISTS).
UPDATE seats SET status = 'AVAILABLE', updated_at = now() WHERE status = 'WITHDRAWN';
ALTER TABLE schedules DROP COLUMN cancelled_at;

-- Organisers cancel a performance (issue 15): every hold on it is cancelled, every paid booking
-- refunded, and its seats are WITHDRAWN: off sale for good. A hold never takes a WITHDRAWN seat
-- (`seat_is_free` is true only of AVAILABLE seats and of HELD ones whose hold ran out), so once
-- the cancellation has withdrawn the seats no hold can start on them, with no extra check on the
-- hold's path.
ALTER TYPE seat_status ADD VALUE IF NOT EXISTS 'WITHDRAWN';

-- When the performance was cancelled (NULL: it was not). Its sale is closed from then on.
ALTER TABLE schedules ADD COLUMN cancelled_at TIMESTAMPTZ;

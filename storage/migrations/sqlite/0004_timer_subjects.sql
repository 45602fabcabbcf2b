-- Acknowledging or closing an incident cancels its timers by subject: find them by index.
CREATE INDEX timers_subject ON timers (subject, kind);

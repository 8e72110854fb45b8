-- Relays are woken by their own process's commits and a one-second poll (see the outbox module).
-- A NOTIFY at commit takes a lock that serializes every notifying commit of the database, and
-- each listening session spends a transaction reading each batch of notifications: under load
-- that was a third of a commit per order. Relays of an older version still poll every second.
DROP TRIGGER IF EXISTS outbox_notify_trg ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();

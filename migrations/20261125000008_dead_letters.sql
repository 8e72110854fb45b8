-- Messages parked in `orion.dead`, moved here by the worker so that admins can list them with their
-- error and replay them. The broker queue stays the parking place; this table is its readable copy.
CREATE TABLE dead_letters (
    id            uuid        NOT NULL,
    message_id    text,
    event_type    text,
    origin_queue  text        NOT NULL,
    error         text        NOT NULL,
    attempts      integer     NOT NULL,
    content_type  text,
    headers       jsonb       NOT NULL,
    body          bytea       NOT NULL,
    parked_at     timestamptz NOT NULL DEFAULT now(),
    replayed_at   timestamptz,
    replay_count  integer     NOT NULL DEFAULT 0,
    CONSTRAINT dead_letters_pk PRIMARY KEY (id),
    CONSTRAINT dead_letters_attempts_ck CHECK (attempts >= 0),
    CONSTRAINT dead_letters_replay_count_ck CHECK (replay_count >= 0)
);

CREATE INDEX dead_letters_parked_at_ix ON dead_letters (parked_at DESC, id DESC);

-- A delivery is `sending` while an SMTP conversation is under way, with `next_attempt_at` as the
-- lease. Found `sending` after its lease, the worker that sent it died mid-way: whether the
-- server took the message is unknown, and Orion would rather not send an email twice.
ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_status_ck;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_status_ck
    CHECK (status IN ('pending', 'sending', 'sent', 'failed'));

-- The admin view of deliveries reads by status, newest first.
CREATE INDEX email_deliveries_status_ix ON email_deliveries (status, created_at DESC);

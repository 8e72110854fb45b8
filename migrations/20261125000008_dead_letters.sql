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

-- The email consumer claims a delivery before sending; the sweeper of failed sends and the admin
-- view read by status.
CREATE INDEX email_deliveries_status_ix ON email_deliveries (status, updated_at);

-- Reliable messaging: the transactional outbox, the consumers' inbox and the event log.

-- Events written in the same transaction as the state change they describe, then published by
-- the relay. `seq` orders events (per aggregate, publication follows it).
CREATE TABLE outbox (
    seq            bigint      GENERATED ALWAYS AS IDENTITY,
    id             uuid        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    event_type     text        NOT NULL,
    payload        jsonb       NOT NULL,
    -- Envelope metadata: correlation and causation ids, traceparent.
    headers        jsonb       NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    -- A relay's lease on the row: another relay may take it once this has passed, so a crashed
    -- relay's claim comes back.
    claimed_until  timestamptz,
    attempts       integer     NOT NULL DEFAULT 0,
    last_error     text,
    CONSTRAINT outbox_pk PRIMARY KEY (seq),
    CONSTRAINT outbox_id_uq UNIQUE (id),
    CONSTRAINT outbox_attempts_ck CHECK (attempts >= 0)
);

-- The relay's claim query reads only unpublished rows in order; published rows drop out of it.
CREATE INDEX outbox_unpublished_ix ON outbox (seq) WHERE published_at IS NULL;
-- Clean-up of old published rows.
CREATE INDEX outbox_published_at_ix ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wakes relays as soon as a transaction that wrote events commits; one notification per
-- statement is enough, the relay reads everything pending.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orion_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify_trg AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- What each consumer has already handled, recorded in the handler's own transaction so a
-- redelivered message changes nothing twice.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    message_id   uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inbox_consumer_message_uq PRIMARY KEY (consumer, message_id)
);

CREATE INDEX inbox_processed_at_ix ON inbox (processed_at);

-- Append-only audit of every domain event; the order timeline reads it.
CREATE TABLE event_log (
    seq            bigint      GENERATED ALWAYS AS IDENTITY,
    id             uuid        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    -- The order an event belongs to, when it belongs to one (inventory and payment events too).
    order_id       uuid,
    event_type     text        NOT NULL,
    data           jsonb       NOT NULL,
    correlation_id uuid,
    causation_id   uuid,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_log_pk PRIMARY KEY (seq),
    CONSTRAINT event_log_id_uq UNIQUE (id)
);

CREATE INDEX event_log_order_ix ON event_log (order_id, seq) WHERE order_id IS NOT NULL;
CREATE INDEX event_log_aggregate_ix ON event_log (aggregate_type, aggregate_id, seq);

-- The log is an audit trail: rows are never changed or removed.
CREATE FUNCTION event_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_log is append-only' USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER event_log_append_only_trg BEFORE UPDATE OR DELETE ON event_log
    FOR EACH ROW EXECUTE FUNCTION event_log_append_only();

-- Outgoing email and idempotent request handling.

-- Every email Orion sends. The dedupe key (for example `order:<id>:order_confirmed`) makes
-- "at most one email per order and kind" a database rule, whatever is redelivered.
CREATE TABLE email_deliveries (
    id                  uuid        NOT NULL,
    dedupe_key          text        NOT NULL,
    order_id            uuid,
    kind                text        NOT NULL,
    recipient           text        NOT NULL,
    status              text        NOT NULL DEFAULT 'pending',
    attempts            integer     NOT NULL DEFAULT 0,
    last_error          text,
    provider_message_id text,
    next_attempt_at     timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    CONSTRAINT email_deliveries_pk PRIMARY KEY (id),
    CONSTRAINT email_deliveries_dedupe_uq UNIQUE (dedupe_key),
    CONSTRAINT email_deliveries_order_fk FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT email_deliveries_kind_ck CHECK (
        kind IN ('order_received', 'order_confirmed', 'order_failed', 'order_cancelled',
                 'order_shipped', 'order_delivered', 'low_stock_alert')
    ),
    CONSTRAINT email_deliveries_status_ck CHECK (status IN ('pending', 'sent', 'failed')),
    CONSTRAINT email_deliveries_attempts_ck CHECK (attempts >= 0),
    CONSTRAINT email_deliveries_sent_ck CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

CREATE INDEX email_deliveries_order_ix ON email_deliveries (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX email_deliveries_due_ix ON email_deliveries (next_attempt_at) WHERE status = 'pending';

-- Remembered responses of requests sent with an `Idempotency-Key`, per principal (a user or an
-- API key), written in the same transaction as the request's effects.
CREATE TABLE idempotency_keys (
    principal       text        NOT NULL,
    key             text        NOT NULL,
    -- Hash of method, path and body: the same key with a different request is refused.
    request_hash    text        NOT NULL,
    response_status smallint    NOT NULL,
    response_body   jsonb       NOT NULL,
    resource_id     uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_principal_key_uq PRIMARY KEY (principal, key),
    CONSTRAINT idempotency_keys_key_ck CHECK (length(key) BETWEEN 1 AND 255),
    CONSTRAINT idempotency_keys_status_ck CHECK (response_status BETWEEN 100 AND 599)
);

-- Expiry of old keys.
CREATE INDEX idempotency_keys_created_at_ix ON idempotency_keys (created_at);

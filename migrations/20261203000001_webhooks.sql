-- Webhooks: endpoints integrators register, and one delivery per endpoint and event.

-- API keys may manage webhooks.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_ck;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_ck CHECK (
    cardinality(scopes) > 0
    AND scopes <@ ARRAY['orders:read', 'orders:write', 'inventory:read', 'webhooks:manage']::text[]
);

-- The admins are emailed when Orion disables an endpoint.
ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_kind_ck;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_kind_ck CHECK (
    kind IN ('order_received', 'order_confirmed', 'order_failed', 'order_cancelled',
             'order_shipped', 'order_delivered', 'low_stock_alert', 'account_exists',
             'webhook_disabled')
);

CREATE TABLE webhook_endpoints (
    id                         uuid        PRIMARY KEY,
    url                        text        NOT NULL,
    -- Event types, or '*' for all.
    events                     text[]      NOT NULL,
    description                text,
    enabled                    boolean     NOT NULL DEFAULT true,
    disabled_reason            text,
    -- whsec_…; the previous one keeps signing beside it until it expires (a rotation).
    secret                     text        NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    -- The first failed attempt of the current run of failures (null while deliveries
    -- succeed), and the last one: a run ends with a success or a long quiet.
    failing_since              timestamptz,
    last_failed_at             timestamptz,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    CONSTRAINT webhook_endpoints_url_length_ck CHECK (length(url) <= 2048),
    CONSTRAINT webhook_endpoints_events_ck CHECK (cardinality(events) > 0)
);

CREATE TABLE webhook_deliveries (
    id               uuid        PRIMARY KEY,
    endpoint_id      uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- The domain event's id: the webhook-id header, the same on every attempt.
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    -- The body exactly as signed and sent on every attempt.
    payload          text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    last_status_code integer,
    last_latency_ms  integer,
    last_error       text,
    outcome          text        NOT NULL DEFAULT 'pending',
    -- Pending: when the next attempt is due (while an attempt runs, when its lease ends).
    next_attempt_at  timestamptz,
    -- Set by each claim: only the attempt holding it records its result, so an attempt whose
    -- lease ran out, or that an admin's replay overtook, cannot overwrite a newer one.
    lease            uuid,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_id),
    CONSTRAINT webhook_deliveries_outcome_ck CHECK (outcome IN ('pending', 'delivered', 'failed'))
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE outcome = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint
    ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
-- The retention sweep's finished deliveries.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at)
    WHERE outcome <> 'pending';

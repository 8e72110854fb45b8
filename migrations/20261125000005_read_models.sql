-- Read models (CQRS): shaped for the queries, never written by commands' own reads.

-- One row per order, in the wire shape of the API, so listing and fetching orders touch one table.
CREATE TABLE order_views (
    order_id       uuid        NOT NULL,
    customer_id    uuid        NOT NULL,
    status         text        NOT NULL,
    failure_reason text,
    items          jsonb       NOT NULL,
    total_amount   bigint      NOT NULL,
    currency       text        NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    -- The order version this view reflects; a projection never moves it backwards.
    version        bigint      NOT NULL,
    CONSTRAINT order_views_pk PRIMARY KEY (order_id),
    CONSTRAINT order_views_status_ck CHECK (
        status IN ('pending', 'reserved', 'confirmed', 'shipped', 'delivered', 'cancelled', 'failed')
    )
);

-- Cursor pagination, newest first: a customer's own orders, and everyone's (optionally by status).
CREATE INDEX order_views_customer_ix ON order_views (customer_id, created_at DESC, order_id DESC);
CREATE INDEX order_views_created_ix ON order_views (created_at DESC, order_id DESC);
CREATE INDEX order_views_status_ix ON order_views (status, created_at DESC, order_id DESC);

-- Order counts and amounts by status and currency, kept current as orders move; the admin stats
-- endpoint reads this instead of aggregating the orders table.
CREATE TABLE sales_stats (
    currency     text        NOT NULL,
    status       text        NOT NULL,
    order_count  bigint      NOT NULL DEFAULT 0,
    total_amount bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sales_stats_pk PRIMARY KEY (currency, status),
    CONSTRAINT sales_stats_count_ck CHECK (order_count >= 0),
    CONSTRAINT sales_stats_amount_ck CHECK (total_amount >= 0)
);

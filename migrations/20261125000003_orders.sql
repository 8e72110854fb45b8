-- The write side of orders: the aggregate, its lines, held stock, payments and saga state.

CREATE TABLE orders (
    id             uuid        NOT NULL,
    customer_id    uuid        NOT NULL,
    status         text        NOT NULL DEFAULT 'pending',
    failure_reason text,
    total_amount   bigint      NOT NULL,
    currency       text        NOT NULL,
    -- Opaque token from the client's payment form; never a card number.
    payment_token  text,
    version        bigint      NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_pk PRIMARY KEY (id),
    CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES users (id),
    CONSTRAINT orders_status_ck CHECK (
        status IN ('pending', 'reserved', 'confirmed', 'shipped', 'delivered', 'cancelled', 'failed')
    ),
    -- A reason exactly when failed, so the two columns can never disagree.
    CONSTRAINT orders_failure_reason_ck CHECK (
        (status = 'failed') = (failure_reason IS NOT NULL)
        AND (failure_reason IS NULL OR failure_reason IN ('out_of_stock', 'payment_declined', 'timeout'))
    ),
    CONSTRAINT orders_total_ck CHECK (total_amount >= 0),
    CONSTRAINT orders_currency_ck CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT orders_payment_token_ck CHECK (payment_token IS NULL OR length(payment_token) <= 200)
);

CREATE TABLE order_items (
    order_id          uuid    NOT NULL,
    line_no           integer NOT NULL,
    sku               text    NOT NULL,
    -- The name and price as they were when the order was placed; the catalog may change later.
    name              text    NOT NULL,
    quantity          integer NOT NULL,
    unit_price_amount bigint  NOT NULL,
    currency          text    NOT NULL,
    CONSTRAINT order_items_pk PRIMARY KEY (order_id, line_no),
    CONSTRAINT order_items_order_sku_uq UNIQUE (order_id, sku),
    CONSTRAINT order_items_order_fk FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
    CONSTRAINT order_items_sku_fk FOREIGN KEY (sku) REFERENCES inventory_items (sku),
    CONSTRAINT order_items_line_no_ck CHECK (line_no BETWEEN 1 AND 50),
    CONSTRAINT order_items_quantity_ck CHECK (quantity BETWEEN 1 AND 1000),
    CONSTRAINT order_items_price_ck CHECK (unit_price_amount >= 0),
    CONSTRAINT order_items_currency_ck CHECK (currency ~ '^[A-Z]{3}$')
);

-- Stock held for an order, line by line. 'held' rows are exactly what inventory_items.reserved
-- counts; releasing or shipping moves the row on and the counter with it, in one transaction.
CREATE TABLE inventory_reservations (
    order_id   uuid        NOT NULL,
    sku        text        NOT NULL,
    quantity   integer     NOT NULL,
    status     text        NOT NULL DEFAULT 'held',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inventory_reservations_pk PRIMARY KEY (order_id, sku),
    CONSTRAINT inventory_reservations_order_fk FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT inventory_reservations_sku_fk FOREIGN KEY (sku) REFERENCES inventory_items (sku),
    CONSTRAINT inventory_reservations_quantity_ck CHECK (quantity > 0),
    CONSTRAINT inventory_reservations_status_ck CHECK (status IN ('held', 'released', 'shipped'))
);

CREATE INDEX inventory_reservations_held_ix ON inventory_reservations (sku) WHERE status = 'held';

-- One payment per order; its authorization is voided when the order is compensated.
CREATE TABLE payments (
    id               uuid        NOT NULL,
    order_id         uuid        NOT NULL,
    provider         text        NOT NULL,
    status           text        NOT NULL,
    amount           bigint      NOT NULL,
    currency         text        NOT NULL,
    authorization_id text,
    decline_reason   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_pk PRIMARY KEY (id),
    CONSTRAINT payments_order_uq UNIQUE (order_id),
    CONSTRAINT payments_order_fk FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT payments_status_ck CHECK (status IN ('authorized', 'declined', 'voided')),
    CONSTRAINT payments_amount_ck CHECK (amount >= 0),
    CONSTRAINT payments_currency_ck CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT payments_authorization_ck CHECK (status = 'declined' OR authorization_id IS NOT NULL)
);

-- The saga of each order: its step, what it holds, its deadline and its history (for the
-- timeline). `state` is the whole serialized saga; the other columns are its queryable parts.
CREATE TABLE order_sagas (
    order_id    uuid        NOT NULL,
    step        text        NOT NULL,
    deadline_at timestamptz,
    state       jsonb       NOT NULL,
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_sagas_pk PRIMARY KEY (order_id),
    CONSTRAINT order_sagas_order_fk FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT order_sagas_step_ck CHECK (
        step IN ('reserving_stock', 'authorizing_payment', 'awaiting_shipment', 'shipped',
                 'completed', 'failed', 'cancelled')
    )
);

-- The timeout sweeper scans only sagas with a running step, oldest deadline first.
CREATE INDEX order_sagas_deadline_ix ON order_sagas (deadline_at) WHERE deadline_at IS NOT NULL;

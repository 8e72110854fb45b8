-- The catalog and its stock. One row per SKU is the inventory aggregate.

CREATE TABLE inventory_items (
    sku                 text        NOT NULL,
    name                text        NOT NULL,
    price_amount        bigint      NOT NULL,
    currency            text        NOT NULL,
    -- Counters: units free to sell, held for orders, gone out, and ever received (initial stock
    -- plus restocks). The conservation check below makes lost or invented units impossible,
    -- whatever code path writes the row.
    available           integer     NOT NULL,
    reserved            integer     NOT NULL DEFAULT 0,
    shipped             integer     NOT NULL DEFAULT 0,
    received            integer     NOT NULL,
    low_stock_threshold integer     NOT NULL DEFAULT 0,
    version             bigint      NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inventory_items_pk PRIMARY KEY (sku),
    CONSTRAINT inventory_items_sku_ck CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    CONSTRAINT inventory_items_name_ck CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT inventory_items_price_ck CHECK (price_amount >= 0),
    CONSTRAINT inventory_items_currency_ck CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT inventory_items_available_ck CHECK (available >= 0),
    CONSTRAINT inventory_items_reserved_ck CHECK (reserved >= 0),
    CONSTRAINT inventory_items_shipped_ck CHECK (shipped >= 0),
    CONSTRAINT inventory_items_threshold_ck CHECK (low_stock_threshold >= 0),
    CONSTRAINT inventory_items_conserved_ck CHECK (available::bigint + reserved + shipped = received)
);

-- The admin panel's low-stock list.
CREATE INDEX inventory_items_low_stock_ix ON inventory_items (sku) WHERE available < low_stock_threshold;

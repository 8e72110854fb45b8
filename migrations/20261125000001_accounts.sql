-- Accounts: people who log in (customers and admins) and integrators' API keys.

CREATE TABLE users (
    id            uuid        NOT NULL,
    -- Stored lower-cased by the application so one mailbox is one account; the check keeps
    -- a hand-written insert from creating a case-variant duplicate.
    email         text        NOT NULL,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    role          text        NOT NULL DEFAULT 'customer',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_pk PRIMARY KEY (id),
    CONSTRAINT users_email_uq UNIQUE (email),
    CONSTRAINT users_email_lower_ck CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    CONSTRAINT users_name_ck CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT users_role_ck CHECK (role IN ('customer', 'admin'))
);

-- Scoped keys for integrators. Only a hash of the secret is kept; the prefix is shown in lists
-- and finds the row without scanning every hash.
CREATE TABLE api_keys (
    id           uuid        NOT NULL,
    name         text        NOT NULL,
    prefix       text        NOT NULL,
    key_hash     text        NOT NULL,
    scopes       text[]      NOT NULL,
    created_by   uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_pk PRIMARY KEY (id),
    CONSTRAINT api_keys_prefix_uq UNIQUE (prefix),
    CONSTRAINT api_keys_created_by_fk FOREIGN KEY (created_by) REFERENCES users (id),
    CONSTRAINT api_keys_name_ck CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT api_keys_scopes_ck CHECK (
        cardinality(scopes) > 0
        AND scopes <@ ARRAY['orders:read', 'orders:write', 'inventory:read']::text[]
    )
);

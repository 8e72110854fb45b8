-- Refresh tokens: opaque, stored hashed, rotated on every use. Tokens descending from one login
-- share a family; presenting a token that was already used revokes the whole family, because
-- either the user or a thief holds a copy.

CREATE TABLE refresh_tokens (
    id         uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    family_id  uuid        NOT NULL,
    token_hash text        NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refresh_tokens_pk PRIMARY KEY (id),
    CONSTRAINT refresh_tokens_hash_uq UNIQUE (token_hash),
    CONSTRAINT refresh_tokens_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX refresh_tokens_family_ix ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_ix ON refresh_tokens (expires_at);

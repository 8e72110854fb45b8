-- Failed sign-ins per account (by email, whether or not an account has it, so the answer does
-- not tell which exist). The API locks an email out for a while after repeated failures; the
-- row is the same for every replica behind any number of gateways.
create table login_failures (
    email text primary key,
    failures integer not null,
    last_failed_at timestamptz not null,
    locked_until timestamptz not null
);

create index login_failures_last_failed_at_idx on login_failures (last_failed_at);

//! Refresh tokens and API keys: secrets stored only as hashes.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// A refresh token row, as found by its hash.
#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    user_id: Uuid,
    family_id: Uuid,
    token_hash: &str,
    expires_at: OffsetDateTime,
) -> Result<()> {
    sqlx::query!(
        r#"insert into refresh_tokens (id, user_id, family_id, token_hash, expires_at)
           values ($1, $2, $3, $4, $5)"#,
        Uuid::now_v7(),
        user_id,
        family_id,
        token_hash,
        expires_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The family of a refresh token, without locking anything.
pub async fn find_refresh_family(
    conn: &mut PgConnection,
    token_hash: &str,
) -> Result<Option<Uuid>> {
    let family = sqlx::query_scalar!(
        "select family_id from refresh_tokens where token_hash = $1",
        token_hash
    )
    .fetch_optional(conn)
    .await?;
    Ok(family)
}

/// Serializes every refresh of one family until the transaction ends. Taken before any token's
/// row lock, so a reuse's revocation sees every token the family has, including one a concurrent
/// refresh is about to commit.
pub async fn lock_refresh_family(conn: &mut PgConnection, family_id: Uuid) -> Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended($1::text, 1))",
        family_id.to_string()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a refresh token by hash and locks it, so two concurrent refreshes with one token cannot
/// both succeed.
pub async fn lock_refresh_token(
    conn: &mut PgConnection,
    token_hash: &str,
) -> Result<Option<RefreshTokenRecord>> {
    let record = sqlx::query_as!(
        RefreshTokenRecord,
        r#"select id, user_id, family_id, expires_at, used_at, revoked_at
           from refresh_tokens where token_hash = $1 for update"#,
        token_hash,
    )
    .fetch_optional(conn)
    .await?;
    Ok(record)
}

pub async fn mark_refresh_token_used(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<()> {
    sqlx::query!(
        "update refresh_tokens set used_at = $2 where id = $1",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes every token of a family (a used token came back).
pub async fn revoke_refresh_family(
    conn: &mut PgConnection,
    family_id: Uuid,
    now: OffsetDateTime,
) -> Result<u64> {
    let done = sqlx::query!(
        "update refresh_tokens set revoked_at = $2 where family_id = $1 and revoked_at is null",
        family_id,
        now,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// An integrator's key, without its secret.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: Vec<String>,
    pub created_by: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A key to store; `key_hash` is the hash of the whole key, shown to its owner once.
#[derive(Debug)]
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a [String],
    pub created_by: Uuid,
}

pub async fn insert_api_key(conn: &mut PgConnection, key: &NewApiKey<'_>) -> Result<ApiKeyRecord> {
    let record = sqlx::query_as!(
        ApiKeyRecord,
        r#"insert into api_keys (id, name, prefix, key_hash, scopes, created_by)
           values ($1, $2, $3, $4, $5, $6)
           returning id, name, prefix, key_hash, scopes, created_by, created_at, last_used_at, revoked_at"#,
        key.id,
        key.name,
        key.prefix,
        key.key_hash,
        key.scopes,
        key.created_by,
    )
    .fetch_one(conn)
    .await?;
    Ok(record)
}

pub async fn find_api_key_by_prefix(
    conn: &mut PgConnection,
    prefix: &str,
) -> Result<Option<ApiKeyRecord>> {
    let record = sqlx::query_as!(
        ApiKeyRecord,
        r#"select id, name, prefix, key_hash, scopes, created_by, created_at, last_used_at, revoked_at
           from api_keys where prefix = $1"#,
        prefix,
    )
    .fetch_optional(conn)
    .await?;
    Ok(record)
}

/// Every key, newest first.
pub async fn list_api_keys(conn: &mut PgConnection) -> Result<Vec<ApiKeyRecord>> {
    let records = sqlx::query_as!(
        ApiKeyRecord,
        r#"select id, name, prefix, key_hash, scopes, created_by, created_at, last_used_at, revoked_at
           from api_keys order by created_at desc, id desc"#,
    )
    .fetch_all(conn)
    .await?;
    Ok(records)
}

/// Revokes a key; false if there is no such key or it was already revoked.
pub async fn revoke_api_key(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<bool> {
    let done = sqlx::query!(
        "update api_keys set revoked_at = $2 where id = $1 and revoked_at is null",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records use, at most once a minute per key, so a busy integrator does not write on every call.
pub async fn touch_api_key(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> Result<()> {
    sqlx::query!(
        r#"update api_keys set last_used_at = $2
           where id = $1 and (last_used_at is null or last_used_at < $2::timestamptz - interval '1 minute')"#,
        id,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Until when sign-ins for `email` are refused, if they are.
pub async fn login_locked_until(
    conn: &mut PgConnection,
    email: &str,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>> {
    let locked = sqlx::query_scalar!(
        r#"select locked_until from login_failures where email = $1 and locked_until > $2"#,
        email,
        now,
    )
    .fetch_optional(conn)
    .await?;
    Ok(locked)
}

/// Counts a failed sign-in for `email` and returns the failures in the current window: a
/// failure more than `window` after the previous one starts a new count.
pub async fn record_login_failure(
    conn: &mut PgConnection,
    email: &str,
    now: OffsetDateTime,
    window: time::Duration,
) -> Result<i32> {
    let failures = sqlx::query_scalar!(
        r#"insert into login_failures as f (email, failures, last_failed_at, locked_until)
           values ($1, 1, $2, $2)
           on conflict (email) do update set
               failures = case when f.last_failed_at < $3 then 1
                               else f.failures + 1 end,
               last_failed_at = $2
           returning failures"#,
        email,
        now,
        now - window,
    )
    .fetch_one(conn)
    .await?;
    Ok(failures)
}

/// Refuses sign-ins for `email` until `until`.
pub async fn lock_login(conn: &mut PgConnection, email: &str, until: OffsetDateTime) -> Result<()> {
    sqlx::query!(
        r#"update login_failures set locked_until = $2 where email = $1"#,
        email,
        until,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A successful sign-in clears the count; rows idle for longer than `idle` go too, so made-up
/// emails do not pile up.
pub async fn clear_login_failures(
    conn: &mut PgConnection,
    email: &str,
    now: OffsetDateTime,
    idle: time::Duration,
) -> Result<()> {
    sqlx::query!(
        r#"delete from login_failures where email = $1 or last_failed_at < $2"#,
        email,
        now - idle,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the sign-in lock of `email` until the transaction ends, unless another sign-in holds
/// it: attempts for one account are checked one at a time across every replica, so that a burst
/// of parallel guesses cannot all pass the lockout check before any failure is counted.
pub async fn try_lock_login(conn: &mut PgConnection, email: &str) -> Result<bool> {
    let locked = sqlx::query_scalar!(
        r#"select pg_try_advisory_xact_lock(hashtextextended('login:' || $1, 0)) as "locked!""#,
        email,
    )
    .fetch_one(conn)
    .await?;
    Ok(locked)
}

//! Accounts: customers and admins.

use orion_domain::Email;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// A stored account. The password hash never leaves the API's auth code.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: OffsetDateTime,
}

/// An account to create; the email is already parsed and the password already hashed.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a Email,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
}

/// Creates an account; [`crate::Error::DuplicateEmail`] if the address is taken.
#[tracing::instrument(skip_all, fields(user.id = %user.id))]
pub async fn insert_user(conn: &mut PgConnection, user: &NewUser<'_>) -> Result<UserRecord> {
    let record = sqlx::query_as!(
        UserRecord,
        r#"insert into users (id, email, name, password_hash, role)
           values ($1, $2, $3, $4, $5)
           returning id, email, name, password_hash, role, created_at"#,
        user.id,
        user.email.as_str(),
        user.name,
        user.password_hash,
        user.role,
    )
    .fetch_one(conn)
    .await?;
    Ok(record)
}

/// Creates the account unless one with the same email exists; returns whether it was created.
pub async fn ensure_user(conn: &mut PgConnection, user: &NewUser<'_>) -> Result<bool> {
    let inserted = sqlx::query!(
        r#"insert into users (id, email, name, password_hash, role)
           values ($1, $2, $3, $4, $5)
           on conflict on constraint users_email_uq do nothing"#,
        user.id,
        user.email.as_str(),
        user.name,
        user.password_hash,
        user.role,
    )
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn find_user_by_email(
    conn: &mut PgConnection,
    email: &Email,
) -> Result<Option<UserRecord>> {
    let record = sqlx::query_as!(
        UserRecord,
        "select id, email, name, password_hash, role, created_at from users where email = $1",
        email.as_str(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(record)
}

pub async fn find_user(conn: &mut PgConnection, id: Uuid) -> Result<Option<UserRecord>> {
    let record = sqlx::query_as!(
        UserRecord,
        "select id, email, name, password_hash, role, created_at from users where id = $1",
        id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(record)
}

/// Address and name of every admin, for operational mail such as low-stock alerts.
pub async fn admin_contacts(conn: &mut PgConnection) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query!("select email, name from users where role = 'admin' order by email")
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.email, r.name)).collect())
}

//! Accounts that exist before anyone registers: the dev seed and admins made from the command line.

use orion_auth::{Password, hash_password};
use orion_domain::Email;
use orion_persistence::users::{self, NewUser};
use orion_persistence::{Pool, seed};
use uuid::Uuid;

use crate::error::ApiError;
use crate::{Config, Result};

/// Dev-mode accounts, as documented in the README: (email, password, name, role).
pub(crate) const DEV_ACCOUNTS: [(&str, &str, &str, &str); 2] = [
    (
        "admin@orion.local",
        "orion-admin-dev",
        "Orion Admin",
        "admin",
    ),
    (
        "customer@orion.local",
        "orion-customer-dev",
        "Demo Customer",
        "customer",
    ),
];

/// Seeds the demo catalog and the dev accounts that are missing. Safe to run from every replica.
pub(crate) async fn seed_dev_data(pool: &Pool) -> Result<()> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(orion_persistence::Error::from)?;
    let added = seed::seed_catalog(&mut conn).await?;
    for (email, password, name, role) in DEV_ACCOUNTS {
        let email = Email::parse(email).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if users::find_user_by_email(&mut conn, &email)
            .await?
            .is_some()
        {
            continue;
        }
        let password = Password::parse(password)?;
        let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
        let user = NewUser {
            id: Uuid::now_v7(),
            email: &email,
            name,
            password_hash: &hash,
            role,
        };
        if users::ensure_user(&mut conn, &user).await? {
            tracing::info!(email = %email.redacted(), role, "dev account created");
        }
    }
    if added > 0 {
        tracing::info!(items = added, "demo catalog seeded");
    }
    Ok(())
}

/// Creates an admin account (for prod, where nothing is seeded).
pub async fn create_admin(
    config: &Config,
    email: &str,
    name: &str,
    password: &str,
) -> Result<Uuid> {
    let email = Email::parse(email).map_err(|e| ApiError::field("email", e.to_string()))?;
    let password = Password::parse(password)?;
    let pool = orion_persistence::connect(&config.database.database_url, 2).await?;
    orion_persistence::migrate(&pool).await?;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    let mut conn = pool
        .acquire()
        .await
        .map_err(orion_persistence::Error::from)?;
    let id = Uuid::now_v7();
    users::insert_user(
        &mut conn,
        &NewUser {
            id,
            email: &email,
            name,
            password_hash: &hash,
            role: "admin",
        },
    )
    .await?;
    Ok(id)
}

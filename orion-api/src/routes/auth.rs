//! Accounts and tokens: register, login, refresh (rotating), and who am I.

use std::sync::LazyLock;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orion_auth::{Password, Role, hash_password, random_secret, secret_hash, verify_password};
use orion_domain::Email;
use orion_domain::events::{DomainEvent, RegistrationAttempted};
use orion_persistence::credentials;
use orion_persistence::events::{self, EventMetadata};
use orion_persistence::users::{self, NewUser, UserRecord};
use uuid::Uuid;

use super::{begin, commit, connection};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, Auth};
use crate::models::{LoginRequest, RefreshRequest, RegisterRequest, TokenResponse, UserResponse};
use crate::{AppState, throttle};

/// Checked against when the email is unknown, so both failures take as long as a real check.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Password::parse("not-a-real-password-at-all")
        .ok()
        .and_then(|p| hash_password(&p).ok())
        .unwrap_or_default()
});

fn user_response(user: &UserRecord) -> UserResponse {
    UserResponse {
        id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        role: user.role.clone(),
    }
}

/// Create a customer account.
///
/// The answer is the same whether or not the email already has an account, so registration
/// cannot be used to find out who has one: for a taken address nothing is created (the `id`
/// answered belongs to no account) and the address's owner is told by email.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", operation_id = "register_account",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered; sign in with the email and password. The same answer when the email was already taken (its owner is told by email, and the `id` belongs to no account)", body = UserResponse),
        (status = 422, description = "Invalid email, password or name", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many sign-ups at once, or the database is unavailable; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserResponse>), ApiError> {
    let email = Email::parse(&body.email).map_err(|e| ApiError::field("email", e.to_string()))?;
    let name = crate::routes::display_name("name", &body.name)?;
    let password = Password::parse(&body.password)?;
    // Hashed in both cases, so that a taken address does not answer sooner.
    let hash = state
        .hashing
        .run(move || hash_password(&password))
        .await??;
    let mut tx = begin(&state.pool).await?;
    let inserted = users::insert_user(
        &mut tx,
        &NewUser {
            id: Uuid::now_v7(),
            email: &email,
            name,
            password_hash: &hash,
            role: Role::Customer.as_str(),
        },
    )
    .await;
    match inserted {
        Ok(user) => {
            commit(tx).await?;
            tracing::info!(user.id = %user.id, "account registered");
            Ok((StatusCode::CREATED, Json(user_response(&user))))
        }
        Err(orion_persistence::Error::DuplicateEmail) => {
            // The failed insert ended the transaction; tell the owner in a new one.
            drop(tx);
            let mut tx = begin(&state.pool).await?;
            let owner = users::find_user_by_email(&mut tx, &email)
                .await?
                .ok_or_else(|| {
                    ApiError::internal(std::io::Error::other("the taken email has no account"))
                })?;
            let attempt = DomainEvent::AccountRegistrationAttempted(RegistrationAttempted {
                user_id: owner.id,
            });
            events::record_event(&mut tx, &attempt, &EventMetadata::default(), crate::now())
                .await?;
            commit(tx).await?;
            tracing::info!(user.id = %owner.id, "registration with a taken email; owner told");
            // The shape a new account gets, with an id that belongs to no account.
            let answer = UserResponse {
                id: Uuid::now_v7(),
                email: email.as_str().to_owned(),
                name: name.to_owned(),
                role: Role::Customer.as_str().to_owned(),
            };
            Ok((StatusCode::CREATED, Json(answer)))
        }
        Err(other) => Err(other.into()),
    }
}

/// Sign in.
///
/// Exchanges an email and password for a short-lived access token (send it as
/// `Authorization: Bearer <token>`) and a single-use refresh token. Repeated failures for one
/// email lock it out for a while (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", operation_id = "sign_in",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Unknown email or wrong password (the same answer for both)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed sign-ins for this email: locked out for the `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many sign-ins at once, or the database is unavailable; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let refused = || ApiError::Unauthorized("unknown email or wrong password".into());
    let now = crate::now();
    let email = Email::parse(&body.email).ok();
    // One transaction from the lockout check to the failure counted: it holds the account's
    // sign-in lock, so parallel guesses are checked one at a time.
    let mut tx = match &email {
        Some(email) => throttle::begin(&state.pool, email.as_str(), now).await?,
        None => begin(&state.pool).await?,
    };
    let user = match &email {
        Some(email) => users::find_user_by_email(&mut tx, email).await?,
        None => None,
    };
    let stored_hash = user
        .as_ref()
        .map_or(DUMMY_HASH.as_str(), |u| u.password_hash.as_str())
        .to_owned();
    let password = body.password;
    let valid = state
        .hashing
        .run(move || verify_password(&password, &stored_hash))
        .await?;
    let Some(user) = user.filter(|_| valid) else {
        if let Some(email) = &email {
            throttle::failed(&mut tx, email.as_str(), now).await?;
            commit(tx).await?;
        }
        return Err(refused());
    };
    if let Some(email) = &email {
        throttle::succeeded(&mut tx, email.as_str(), now).await?;
    }
    let role = Role::parse(&user.role)
        .ok_or_else(|| ApiError::internal(std::io::Error::other("unknown role")))?;
    let tokens = issue_tokens(&state, &mut tx, user.id, role, Uuid::now_v7()).await?;
    commit(tx).await?;
    Ok(Json(tokens))
}

/// Exchange a refresh token for a new pair.
///
/// Each refresh token works once; presenting a used one revokes every token descending from the
/// same login.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", operation_id = "refresh_tokens",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 401, description = "Unknown, expired, used or revoked refresh token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let refused = |why: &str| ApiError::Unauthorized(format!("the refresh token {why}"));
    let now = crate::now();
    let hash = secret_hash(&body.refresh_token);
    let mut tx = begin(&state.pool).await?;
    let family = credentials::find_refresh_family(&mut tx, &hash)
        .await?
        .ok_or_else(|| refused("is not valid"))?;
    credentials::lock_refresh_family(&mut tx, family).await?;
    let token = credentials::lock_refresh_token(&mut tx, &hash)
        .await?
        .ok_or_else(|| refused("is not valid"))?;
    if token.revoked_at.is_some() {
        return Err(refused("was revoked"));
    }
    if token.used_at.is_some() {
        // Either the owner or a thief holds a copy: end the whole session family.
        credentials::revoke_refresh_family(&mut tx, token.family_id, now).await?;
        commit(tx).await?;
        tracing::warn!(user.id = %token.user_id, "refresh token reused; session family revoked");
        return Err(refused(
            "was already used; all sessions of this login are revoked",
        ));
    }
    if token.expires_at <= now {
        return Err(refused("has expired"));
    }
    credentials::mark_refresh_token_used(&mut tx, token.id, now).await?;
    let user = users::find_user(&mut tx, token.user_id)
        .await?
        .ok_or_else(|| refused("is not valid"))?;
    let role = Role::parse(&user.role).ok_or_else(|| refused("is not valid"))?;
    let tokens = issue_tokens(&state, &mut tx, user.id, role, token.family_id).await?;
    commit(tx).await?;
    Ok(Json(tokens))
}

async fn issue_tokens(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    role: Role,
    family_id: Uuid,
) -> Result<TokenResponse, ApiError> {
    let now = crate::now();
    let access = state.keys.issue(user_id, role, now)?;
    let refresh_token = random_secret(32)?;
    let expires_at = now + state.refresh_ttl;
    credentials::insert_refresh_token(
        conn,
        user_id,
        family_id,
        &secret_hash(&refresh_token),
        expires_at,
    )
    .await?;
    Ok(TokenResponse {
        access_token: access.token,
        refresh_token,
        token_type: "Bearer".to_owned(),
        expires_in: access.expires_in,
    })
}

/// The signed-in account.
///
/// The account behind the access token: id, email, name and role.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", operation_id = "get_current_user",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = UserResponse),
        (status = 401, description = "Missing or invalid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Called with an API key", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn me(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<UserResponse>, ApiError> {
    let (id, _) = auth.require_user()?;
    let user = users::find_user(&mut *connection(&state.pool).await?, id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
    Ok(Json(user_response(&user)))
}

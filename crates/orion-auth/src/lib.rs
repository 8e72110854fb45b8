//! Authentication primitives shared by Orion's processes: passwords (argon2id), access tokens
//! (HS256 JWTs), opaque secrets for refresh tokens and API keys, roles, scopes and principals.

mod credential;
mod hs256;
mod password;
mod principal;
mod token;

pub use credential::{API_KEY_START, Credential};
pub use password::{HASH_MEMORY_KIB, Password, hash_password, verify_password};
pub use principal::{Principal, Role, Scope};
pub use token::{
    AUDIENCE, AccessClaims, ISSUER, IssuedToken, LEEWAY_SECONDS, TokenKeys, constant_time_eq,
    key_id, random_secret, secret_hash,
};

/// The answer header by which the API tells the gateway that it authenticated a request with an
/// API key (so the key exists); the gateway takes it off before the client sees the answer.
pub const KEY_ACCEPTED_HEADER: &str = "x-orion-api-key";

/// The one error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("password must be between {min} and {max} characters", min = Password::MIN_LEN, max = Password::MAX_LEN)]
    PasswordLength,
    #[error("password must not be only spaces or one repeated character")]
    PasswordTooSimple,
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("the access token has expired")]
    TokenExpired,
    #[error("the access token is invalid")]
    InvalidToken,
    #[error("token signing failed: {0}")]
    Token(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Authentication primitives shared by Orion's processes: password hashing and password rules.

mod password;

pub use password::{Password, hash_password, verify_password};

/// The one error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("password must be between {min} and {max} characters", min = Password::MIN_LEN, max = Password::MAX_LEN)]
    PasswordLength,
    #[error("password must not be only spaces or one repeated character")]
    PasswordTooSimple,
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Passwords: the minimum rules a new password must meet, and argon2id hashing.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::{Error, Result};

/// A new password that meets the rules. Never printed: `Debug` shows a placeholder.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 10;
    /// Bounded so a request cannot make the server hash megabytes.
    pub const MAX_LEN: usize = 128;

    /// Checks a new password: 10 to 128 characters, not blank, not one repeated character.
    pub fn parse(raw: &str) -> Result<Self> {
        let length = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&length) {
            return Err(Error::PasswordLength);
        }
        let mut chars = raw.chars();
        let first = chars.next();
        if raw.trim().is_empty() || chars.all(|c| Some(c) == first) {
            return Err(Error::PasswordTooSimple);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Memory one hash or check takes, in KiB (argon2id's default cost, 19 MiB): what a server
/// sizes its number of concurrent hashes by.
pub const HASH_MEMORY_KIB: u32 = argon2::Params::DEFAULT_M_COST;

/// Hashes with argon2id and a random salt, in PHC string form (parameters travel with the hash).
/// CPU-heavy: async callers run it on a blocking thread.
pub fn hash_password(password: &Password) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Hashing(e.to_string()))
}

/// True when `candidate` matches the stored hash. A malformed stored hash never matches.
pub fn verify_password(candidate: &str, stored_hash: &str) -> bool {
    if candidate.len() > Password::MAX_LEN * 4 {
        return false;
    }
    PasswordHash::new(stored_hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(candidate.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_refuse_short_long_blank_and_repeated() {
        assert_eq!(Password::parse("short").unwrap_err(), Error::PasswordLength);
        assert_eq!(
            Password::parse(&"ab".repeat(65)).unwrap_err(),
            Error::PasswordLength
        );
        assert_eq!(
            Password::parse("          ").unwrap_err(),
            Error::PasswordTooSimple
        );
        assert_eq!(
            Password::parse("aaaaaaaaaaaa").unwrap_err(),
            Error::PasswordTooSimple
        );
        assert!(Password::parse("orion-customer-dev").is_ok());
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let password = Password::parse("correct horse battery").unwrap();
        let first = hash_password(&password).unwrap();
        let second = hash_password(&password).unwrap();
        assert!(first.starts_with("$argon2id$"));
        assert_ne!(first, second, "salted");
        assert!(verify_password("correct horse battery", &first));
        assert!(!verify_password("wrong horse battery", &first));
        assert!(!verify_password("correct horse battery", "not a hash"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}

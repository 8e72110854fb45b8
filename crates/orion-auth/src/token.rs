//! Access tokens: short-lived HS256 JWTs with a strict algorithm allow-list, and the opaque
//! secrets (refresh tokens, API keys) that are stored only as hashes.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{Error, Result, Role};

/// The `iss` of every access token.
pub const ISSUER: &str = "orion";
/// The `aud` of every access token.
pub const AUDIENCE: &str = "orion-api";
/// Clock skew tolerated between the issuer and a verifier.
pub const LEEWAY_SECONDS: u64 = 5;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub role: Role,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub aud: String,
    pub jti: Uuid,
}

/// A freshly issued access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: i64,
}

/// Issues and verifies access tokens with one HMAC secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        crate::hs256::install();
        // Only HS256 is accepted: a token whose header names another algorithm (`none`, RS256
        // with the secret as a "public key", ...) is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user_id: Uuid, role: Role, now: OffsetDateTime) -> Result<IssuedToken> {
        let claims = AccessClaims {
            sub: user_id,
            role,
            iat: now.unix_timestamp(),
            exp: (now + self.ttl).unix_timestamp(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            jti: Uuid::now_v7(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Token(e.to_string()))?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl.whole_seconds(),
        })
    }

    /// Checks signature, algorithm, expiry (with a small leeway), issuer and audience.
    pub fn verify(&self, token: &str) -> Result<AccessClaims> {
        decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Error::TokenExpired,
                _ => Error::InvalidToken,
            })
    }
}

/// A random secret with `bytes` bytes of entropy, URL-safe.
pub fn random_secret(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| Error::Token(e.to_string()))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// The stored form of a high-entropy secret (refresh token, API key). A fast hash is enough:
/// these secrets cannot be guessed, unlike passwords.
pub fn secret_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            b"test-secret-test-secret-test-secret",
            Duration::minutes(15),
        )
    }

    #[test]
    fn issued_tokens_verify_with_all_claims() {
        let now = OffsetDateTime::now_utc();
        let user = Uuid::now_v7();
        let issued = keys().issue(user, Role::Admin, now).unwrap();
        let claims = keys().verify(&issued.token).unwrap();
        assert_eq!(
            (
                claims.sub,
                claims.role,
                claims.iss.as_str(),
                claims.aud.as_str()
            ),
            (user, Role::Admin, ISSUER, AUDIENCE)
        );
        assert_eq!(claims.exp - claims.iat, 15 * 60);
        assert_eq!(issued.expires_in, 15 * 60);
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let old = OffsetDateTime::now_utc() - Duration::hours(1);
        let expired = keys().issue(Uuid::now_v7(), Role::Customer, old).unwrap();
        assert_eq!(keys().verify(&expired.token), Err(Error::TokenExpired));

        let other = TokenKeys::new(b"another-secret-another-secret-xx", Duration::minutes(15));
        let forged = other
            .issue(Uuid::now_v7(), Role::Admin, OffsetDateTime::now_utc())
            .unwrap();
        assert_eq!(keys().verify(&forged.token), Err(Error::InvalidToken));
        assert_eq!(keys().verify("not.a.token"), Err(Error::InvalidToken));
        assert_eq!(keys().verify(""), Err(Error::InvalidToken));
    }

    #[test]
    fn alg_none_is_refused() {
        let issued = keys()
            .issue(Uuid::now_v7(), Role::Admin, OffsetDateTime::now_utc())
            .unwrap();
        let payload = issued.token.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert_eq!(keys().verify(&unsigned), Err(Error::InvalidToken));
    }

    #[test]
    fn secrets_are_random_and_hash_stably() {
        let a = random_secret(32).unwrap();
        let b = random_secret(32).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(secret_hash(&a), secret_hash(&a));
        assert_ne!(secret_hash(&a), secret_hash(&b));
    }
}

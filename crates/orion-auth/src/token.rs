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

/// One verification key and the `kid` naming it in token headers.
#[derive(Clone)]
struct VerifyingKey {
    kid: String,
    decoding: DecodingKey,
}

/// Issues access tokens with the current HMAC secret and verifies them with the current or a
/// previous one: a secret rotates without signing anyone out. Each token names its key in the
/// header's `kid` (a fingerprint of the secret, which reveals nothing of it).
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    /// The current key first, then the previous ones.
    verifying: Vec<VerifyingKey>,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("kid", &self.current_kid())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The `kid` of a secret: the first 12 hex digits of a domain-separated SHA-256 of it. Stable
/// across processes and restarts, so every replica names a key alike.
pub fn key_id(secret: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"orion access-token key id\0")
        .chain_update(secret)
        .finalize();
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

impl TokenKeys {
    /// Keys that sign with `current` and accept tokens signed with it or any of `previous`.
    pub fn new(current: &[u8], previous: &[&[u8]], ttl: Duration) -> Self {
        crate::hs256::install();
        // Only HS256 is accepted: a token whose header names another algorithm (`none`, RS256
        // with the secret as a "public key", ...) is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        let verifying = std::iter::once(current)
            .chain(previous.iter().copied())
            .map(|secret| VerifyingKey {
                kid: key_id(secret),
                decoding: DecodingKey::from_secret(secret),
            })
            .collect();
        Self {
            encoding: EncodingKey::from_secret(current),
            verifying,
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The `kid` new tokens carry: the current key's, first of those that verify.
    pub fn current_kid(&self) -> &str {
        self.verifying.first().map_or("", |key| key.kid.as_str())
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
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current_kid().to_owned());
        let token =
            encode(&header, &claims, &self.encoding).map_err(|e| Error::Token(e.to_string()))?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl.whole_seconds(),
        })
    }

    /// Checks signature (with the key the `kid` names), algorithm, expiry (with a small
    /// leeway), issuer and audience. A token without a `kid` (issued before keys had names)
    /// is tried with each key; one naming an unknown key is refused.
    pub fn verify(&self, token: &str) -> Result<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::InvalidToken)?;
        let candidates: Vec<&VerifyingKey> = match &header.kid {
            Some(kid) => self.verifying.iter().filter(|k| &k.kid == kid).collect(),
            None => self.verifying.iter().collect(),
        };
        // The most telling refusal wins: "expired" from the key that signed it, not "invalid"
        // from another key tried after it.
        let mut refusal = Error::InvalidToken;
        for key in candidates {
            match decode::<AccessClaims>(token, &key.decoding, &self.validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    refusal = Error::TokenExpired;
                }
                Err(_) => {}
            }
        }
        Err(refusal)
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

    const CURRENT: &[u8] = b"test-secret-test-secret-test-secret";
    const PREVIOUS: &[u8] = b"the-previous-secret-the-previous-secret";

    fn keys() -> TokenKeys {
        TokenKeys::new(CURRENT, &[], Duration::minutes(15))
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

        let other = TokenKeys::new(
            b"another-secret-another-secret-xx",
            &[],
            Duration::minutes(15),
        );
        let forged = other
            .issue(Uuid::now_v7(), Role::Admin, OffsetDateTime::now_utc())
            .unwrap();
        assert_eq!(keys().verify(&forged.token), Err(Error::InvalidToken));
        assert_eq!(keys().verify("not.a.token"), Err(Error::InvalidToken));
        assert_eq!(keys().verify(""), Err(Error::InvalidToken));
    }

    #[test]
    fn a_rotated_secret_keeps_its_tokens_valid_until_it_is_dropped() {
        let now = OffsetDateTime::now_utc();
        let before = TokenKeys::new(PREVIOUS, &[], Duration::minutes(15));
        let during = TokenKeys::new(CURRENT, &[PREVIOUS], Duration::minutes(15));
        let after = keys();
        let old_token = before.issue(Uuid::now_v7(), Role::Customer, now).unwrap();
        let new_token = during.issue(Uuid::now_v7(), Role::Customer, now).unwrap();
        // Signed with the current key, named by its kid.
        let header = jsonwebtoken::decode_header(&new_token.token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key_id(CURRENT).as_str()));
        assert_eq!(during.current_kid(), key_id(CURRENT));
        assert!(during.verify(&old_token.token).is_ok());
        assert!(during.verify(&new_token.token).is_ok());
        assert!(after.verify(&new_token.token).is_ok());
        // The previous key, dropped, takes its tokens with it.
        assert_eq!(after.verify(&old_token.token), Err(Error::InvalidToken));
        // Before the rotation reached it, a replica does not know the new key yet.
        assert_eq!(before.verify(&new_token.token), Err(Error::InvalidToken));
    }

    #[test]
    fn a_token_naming_another_key_is_refused_even_if_a_known_key_signed_it() {
        let now = OffsetDateTime::now_utc();
        let claims = AccessClaims {
            sub: Uuid::now_v7(),
            role: Role::Admin,
            iat: now.unix_timestamp(),
            exp: now.unix_timestamp() + 600,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            jti: Uuid::now_v7(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("000000000000".to_owned());
        let token = encode(&header, &claims, &EncodingKey::from_secret(CURRENT)).unwrap();
        assert_eq!(keys().verify(&token), Err(Error::InvalidToken));
        // Without a kid (a token from before keys had names), the known key is tried.
        let unnamed = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(CURRENT),
        )
        .unwrap();
        assert!(keys().verify(&unnamed).is_ok());
        assert_ne!(key_id(CURRENT), key_id(PREVIOUS));
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

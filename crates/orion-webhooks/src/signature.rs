//! Standard Webhooks 1.0 signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `<webhook-id>.<webhook-timestamp>.<body>`, keyed by the secret's bytes (a secret is written
//! `whsec_<base64>`). While a rotated-out secret still signs, the header carries both
//! signatures, separated by a space, and a receiver accepts either.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Error, Result};

const PREFIX: &str = "whsec_";

/// Bytes of a new secret: 24, as the reference libraries generate.
const SECRET_BYTES: usize = 24;

/// An endpoint's signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A new random secret.
    pub fn generate() -> Result<Secret> {
        let mut key = vec![0_u8; SECRET_BYTES];
        getrandom::fill(&mut key).map_err(|e| Error::Secret(e.to_string()))?;
        Ok(Secret { key })
    }

    /// Reads a `whsec_…` secret.
    pub fn parse(raw: &str) -> Result<Secret> {
        let encoded = raw
            .strip_prefix(PREFIX)
            .ok_or_else(|| Error::Secret(format!("it does not start with {PREFIX}")))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|e| Error::Secret(e.to_string()))?;
        if key.is_empty() {
            return Err(Error::Secret("it is empty".into()));
        }
        Ok(Secret { key })
    }

    /// The secret as shown to the admin and stored: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// One signature, `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret still signing.
pub fn header(secrets: &[Secret], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference implementations.
    #[test]
    fn signs_the_specifications_example() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_generated_secret_reads_back_and_two_secrets_sign_side_by_side() {
        let current = Secret::generate().unwrap();
        let again = Secret::parse(&current.expose()).unwrap();
        assert_eq!(current, again);
        let previous = Secret::generate().unwrap();
        let both = header(&[current.clone(), previous.clone()], "id", 1, "{}");
        let parts: Vec<_> = both.split(' ').collect();
        assert_eq!(
            parts,
            [current.sign("id", 1, "{}"), previous.sign("id", 1, "{}")]
        );
    }

    #[test]
    fn refuses_what_is_not_a_secret() {
        assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(Secret::parse("whsec_!!").is_err());
        assert!(Secret::parse("whsec_").is_err());
    }
}

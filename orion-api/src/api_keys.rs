//! The format of integrators' API keys: `ork_<prefix>_<secret>`. The prefix (public, unique)
//! finds the stored row; the hash of the whole key proves it.

use orion_auth::{API_KEY_START, random_secret};

/// A new key and its prefix.
pub(crate) fn generate() -> orion_auth::Result<(String, String)> {
    let prefix = random_secret(6)?;
    let secret = random_secret(32)?;
    Ok((format!("{API_KEY_START}{prefix}_{secret}"), prefix))
}

/// The prefix of a well-formed key.
pub(crate) fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(API_KEY_START)?;
    let (prefix, secret) = rest.split_once('_')?;
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    (prefix.len() == 12 && secret.len() == 64 && hex(prefix) && hex(secret)).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_to_their_prefix() {
        let (key, prefix) = generate().unwrap();
        assert_eq!(prefix_of(&key), Some(prefix.as_str()));
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        for bad in [
            "",
            "ork_",
            "ork_abc_def",
            "xyz_0123456789ab_",
            &format!("ork_0123456789ab_{}", "g".repeat(64)),
        ] {
            assert_eq!(prefix_of(bad), None, "{bad:?}");
        }
    }
}

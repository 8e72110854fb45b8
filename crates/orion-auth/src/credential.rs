//! Which credential a request presents, by the one rule the gateway and the API both follow:
//! an `Authorization` header wins (`Bearer <token>` or `ApiKey <key>`), and `X-Api-Key` counts
//! only without one. Two readings of the same headers that disagree let a request be limited
//! as one caller and authenticated as another.
//!
//! `Bearer <key>` with an API key is a key: SDK generators send an API key as a bearer token
//! (often beside `X-Api-Key`), and an access token never starts like a key does.

/// How every API key starts (`ork_<prefix>_<secret>`).
pub const API_KEY_START: &str = "ork_";

/// The credential of a request, from its `Authorization` and `X-Api-Key` values (a value that
/// is not text is passed as `""`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Neither header.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Authorization: ApiKey <key>`, `Authorization: Bearer <key>`, or `X-Api-Key` without an
    /// `Authorization` header.
    ApiKey(&'a str),
    /// An `Authorization` header of another scheme, or none at all.
    Unsupported,
}

impl<'a> Credential<'a> {
    pub fn of(authorization: Option<&'a str>, x_api_key: Option<&'a str>) -> Credential<'a> {
        match (authorization, x_api_key) {
            (Some(value), _) => match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    let token = token.trim();
                    if token.starts_with(API_KEY_START) {
                        Self::ApiKey(token)
                    } else {
                        Self::Bearer(token)
                    }
                }
                Some((scheme, key)) if scheme.eq_ignore_ascii_case("apikey") => {
                    Self::ApiKey(key.trim())
                }
                _ => Self::Unsupported,
            },
            (None, Some(key)) => Self::ApiKey(key.trim()),
            (None, None) => Self::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_wins_over_x_api_key() {
        assert_eq!(Credential::of(None, None), Credential::None);
        assert_eq!(
            Credential::of(Some("bearer  t "), None),
            Credential::Bearer("t")
        );
        assert_eq!(
            Credential::of(Some("ApiKey real"), Some("junk")),
            Credential::ApiKey("real")
        );
        assert_eq!(
            Credential::of(Some("Bearer t"), Some("junk")),
            Credential::Bearer("t")
        );
        assert_eq!(Credential::of(None, Some(" k ")), Credential::ApiKey("k"));
        assert_eq!(
            Credential::of(Some("Basic x"), Some("k")),
            Credential::Unsupported
        );
        assert_eq!(Credential::of(Some(""), None), Credential::Unsupported);
    }

    #[test]
    fn a_key_sent_as_a_bearer_token_is_a_key() {
        assert_eq!(
            Credential::of(Some("Bearer ork_abc_def"), Some("ork_abc_def")),
            Credential::ApiKey("ork_abc_def")
        );
        assert_eq!(
            Credential::of(Some("bearer ork_abc_def"), None),
            Credential::ApiKey("ork_abc_def")
        );
        assert_eq!(
            Credential::of(Some("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"), None),
            Credential::Bearer("eyJhbGciOiJIUzI1NiJ9.e30.x")
        );
    }
}

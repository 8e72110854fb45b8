//! Which credential a request presents, by the one rule the gateway and the API both follow:
//! an `Authorization` header wins (`Bearer <token>` or `ApiKey <key>`), and `X-Api-Key` counts
//! only without one. Two readings of the same headers that disagree let a request be limited
//! as one caller and authenticated as another.

/// The credential of a request, from its `Authorization` and `X-Api-Key` values (a value that
/// is not text is passed as `""`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Neither header.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Authorization: ApiKey <key>`, or `X-Api-Key` without an `Authorization` header.
    ApiKey(&'a str),
    /// An `Authorization` header of another scheme, or none at all.
    Unsupported,
}

impl<'a> Credential<'a> {
    pub fn of(authorization: Option<&'a str>, x_api_key: Option<&'a str>) -> Credential<'a> {
        match (authorization, x_api_key) {
            (Some(value), _) => match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    Self::Bearer(token.trim())
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
}

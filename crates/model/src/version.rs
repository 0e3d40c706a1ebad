//! `X-Client-Version`: which API version a client speaks, and how we serve it.
//!
//! 3.5 to 3.6.2 are served; above 3.6.2 is served as 3.6.2; below 3.5 is refused; absent means
//! newest. Below 3.6.1 the plan's `lastSession` (added in 3.6.1) is left out.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("'{0}' is not an API version; send a version such as 3.6.1.")]
    Malformed(String),
    #[error("API version {0} is not supported; this server serves versions 3.5 to 3.6.2.")]
    Unsupported(String),
}

impl ClientVersion {
    pub const OLDEST: ClientVersion = ClientVersion::new(3, 5, 0);
    pub const NEWEST: ClientVersion = ClientVersion::new(3, 6, 2);
    const LAST_SESSION_ADDED: ClientVersion = ClientVersion::new(3, 6, 1);

    /// What `negotiate` accepts, as the ECMA regex the OpenAPI document gives for the header:
    /// two to four dot-separated numbers (up to 9 significant digits each), 3.5 or newer.
    pub const HEADER_PATTERN: &str = concat!(
        r"^(0*3\.0*([5-9]|[1-9][0-9]{1,8})|0*([4-9]|[1-9][0-9]{1,8})\.(0*[1-9][0-9]{0,8}|0+))",
        r"(\.(0*[1-9][0-9]{0,8}|0+)){0,2}$"
    );

    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// The version to serve for a header value (`None` when the header is absent).
    pub fn negotiate(header: Option<&str>) -> Result<Self, VersionError> {
        let Some(text) = header.map(str::trim) else {
            return Ok(Self::NEWEST);
        };
        let malformed = || VersionError::Malformed(text.to_owned());
        let mut parts = text.split('.');
        let mut next = |required: bool| -> Result<u32, VersionError> {
            match parts.next() {
                // At most 9 significant digits: no real version needs more, and the parse
                // cannot overflow (the documented pattern says the same).
                Some(part)
                    if !part.is_empty()
                        && part.bytes().all(|b| b.is_ascii_digit())
                        && part.trim_start_matches('0').len() <= 9 =>
                {
                    part.parse().map_err(|_| malformed())
                }
                None if !required => Ok(0),
                _ => Err(malformed()),
            }
        };
        let version = Self::new(next(true)?, next(true)?, next(false)?);
        // A fourth component (3.6.1.0) is tolerated; anything after it is not.
        let build = next(false)?;
        let _ = build;
        if parts.next().is_some() {
            return Err(malformed());
        }
        if version < Self::OLDEST {
            return Err(VersionError::Unsupported(text.to_owned()));
        }
        Ok(version.min(Self::NEWEST))
    }

    pub fn has_last_session(self) -> bool {
        self >= Self::LAST_SESSION_ADDED
    }
}

impl std::fmt::Display for ClientVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_design() {
        assert_eq!(ClientVersion::negotiate(None), Ok(ClientVersion::NEWEST));
        assert_eq!(
            ClientVersion::negotiate(Some("3.6.1")),
            Ok(ClientVersion::new(3, 6, 1))
        );
        assert_eq!(
            ClientVersion::negotiate(Some("3.5")),
            Ok(ClientVersion::new(3, 5, 0))
        );
        assert_eq!(
            ClientVersion::negotiate(Some("3.7")),
            Ok(ClientVersion::NEWEST)
        );
        assert_eq!(
            ClientVersion::negotiate(Some("4.0.1")),
            Ok(ClientVersion::NEWEST)
        );
        assert!(matches!(
            ClientVersion::negotiate(Some("3.4")),
            Err(VersionError::Unsupported(_))
        ));
        for bad in ["", "3", "three", "3.x", "3..1", "-3.6", "3.6.1.0.1"] {
            assert!(
                matches!(
                    ClientVersion::negotiate(Some(bad)),
                    Err(VersionError::Malformed(_))
                ),
                "{bad}"
            );
        }
        for bad in ["3.6.1234567890", "3.6.99999999999999999999"] {
            assert!(ClientVersion::negotiate(Some(bad)).is_err(), "{bad}");
        }
        assert!(ClientVersion::negotiate(Some("3.6.0000000000001")).is_ok());
        assert!(!ClientVersion::new(3, 6, 0).has_last_session());
        assert!(ClientVersion::new(3, 6, 1).has_last_session());
    }

    proptest::proptest! {
        /// The pattern in the OpenAPI document accepts exactly what the server accepts.
        #[test]
        fn the_documented_pattern_is_the_parser(
            text in r"(0{0,3}[0-9]{0,11}\.){0,4}0{0,3}[0-9]{0,11}"
        ) {
            let pattern = regex::Regex::new(ClientVersion::HEADER_PATTERN).unwrap();
            proptest::prop_assert_eq!(
                pattern.is_match(&text),
                ClientVersion::negotiate(Some(&text)).is_ok(),
                "{}", text
            );
        }
    }
}

//! `limit` and `offset`.

use crate::error::QueryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub limit: u32,
    pub offset: u32,
}

impl Paging {
    pub const DEFAULT_LIMIT: u32 = 100;
    /// VSPC's default `MaxPageSize`.
    pub const MAX_LIMIT: u32 = 500;

    /// Reads the raw query values; `max_limit` is the server's page-size cap.
    pub fn parse(
        limit: Option<&str>,
        offset: Option<&str>,
        max_limit: u32,
    ) -> Result<Self, QueryError> {
        let limit = match limit {
            None => Self::DEFAULT_LIMIT.min(max_limit),
            Some(text) => {
                let value = parse_int("limit", text)?;
                if value < 1 {
                    return Err(QueryError::new(
                        "limit",
                        "Property value must be larger or equal to 1.",
                    ));
                }
                if value > i64::from(max_limit) {
                    return Err(QueryError::new(
                        "limit",
                        format!("Property value must be less or equal to {max_limit}."),
                    ));
                }
                value as u32
            }
        };
        let offset = match offset {
            None => 0,
            Some(text) => {
                let value = parse_int("offset", text)?;
                if value < 0 {
                    return Err(QueryError::new(
                        "offset",
                        "Property value must be larger or equal to 0.",
                    ));
                }
                if value > i64::from(i32::MAX) {
                    return Err(QueryError::new(
                        "offset",
                        format!("Property value must be less or equal to {}.", i32::MAX),
                    ));
                }
                value as u32
            }
        };
        Ok(Paging { limit, offset })
    }
}

fn parse_int(parameter: &'static str, text: &str) -> Result<i64, QueryError> {
    text.trim().parse::<i64>().map_err(|_| {
        QueryError::new(
            parameter,
            format!("The value '{text}' is not a valid integer."),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(
            Paging::parse(None, None, 500),
            Ok(Paging {
                limit: 100,
                offset: 0
            })
        );
        assert_eq!(
            Paging::parse(Some("500"), Some("2147483647"), 500),
            Ok(Paging {
                limit: 500,
                offset: i32::MAX as u32
            })
        );
        for (limit, offset, parameter) in [
            (Some("0"), None, "limit"),
            (Some("501"), None, "limit"),
            (Some("ten"), None, "limit"),
            (Some("1.5"), None, "limit"),
            (None, Some("-1"), "offset"),
            (None, Some("2147483648"), "offset"),
            (None, Some(""), "offset"),
        ] {
            assert_eq!(
                Paging::parse(limit, offset, 500).unwrap_err().parameter,
                parameter
            );
        }
    }
}

//! Form bodies and query strings as ordered name/value pairs: the bulk form repeats `plan`, and
//! serde's struct forms cannot take a repeated field.

use axum::body::Bytes;

#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// A form body or a query string; anything unreadable is an empty form (every handler then
    /// refuses what it misses with its own message).
    pub fn parse(text: &[u8]) -> Fields {
        Fields(serde_urlencoded::from_bytes(text).unwrap_or_default())
    }

    pub fn from_query(raw: Option<&str>) -> Fields {
        Fields::parse(raw.unwrap_or("").as_bytes())
    }

    pub fn from_body(body: &Bytes) -> Fields {
        Fields::parse(body)
    }

    /// The first value of a field, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// Every non-blank value of a repeated field, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_blank_fields() {
        let fields = Fields::parse(b"plan=a&plan=&plan=b&name=%20x%20&empty=");
        assert_eq!(fields.all("plan"), vec!["a", "b"]);
        assert_eq!(fields.get("name"), Some("x"));
        assert_eq!(fields.get("empty"), None);
        assert_eq!(fields.get("missing"), None);
        assert!(Fields::parse(b"%zz=&&=").get("x").is_none());
    }
}

//! The three VSPC collations and the derived keys that let SQL evaluate them exactly.
//!
//! Text properties are stored three times: as is (ordinal), folded (ignorecase) and as a natural
//! key (lexicographic). Comparing the derived keys byte by byte gives the collation's order, on
//! SQLite and PostgreSQL alike, with ordinary indexes and no database-specific collation.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Collation {
    /// Character by character (Unicode code points).
    #[default]
    Ordinal,
    /// Character by character after Unicode lower-casing.
    IgnoreCase,
    /// Natural order: digit runs compare as numbers ("vm2" < "vm10"), the rest ordinally.
    Lexicographic,
}

impl Collation {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "ordinal" => Some(Self::Ordinal),
            "ignorecase" => Some(Self::IgnoreCase),
            "lexicographic" => Some(Self::Lexicographic),
            _ => None,
        }
    }

    /// The key under which two strings compare as this collation says.
    pub fn key(self, text: &str) -> String {
        match self {
            Collation::Ordinal => text.to_owned(),
            Collation::IgnoreCase => fold(text),
            Collation::Lexicographic => natural_key(text),
        }
    }

    pub fn compare(self, left: &str, right: &str) -> Ordering {
        match self {
            Collation::Ordinal => left.cmp(right),
            _ => self.key(left).cmp(&self.key(right)),
        }
    }
}

/// The ignorecase key: Unicode lower case.
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}

/// The lexicographic key. Non-digit characters stand for themselves, so a string without digits
/// is its own key; each run of ASCII digits becomes `'0'`, the count of digits in its length, the
/// length, and the digits without leading zeros. Byte order on keys is then natural order, and a
/// digit run still sorts where a digit would against any other character.
pub fn natural_key(text: &str) -> String {
    let mut key = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        key.push_str(&rest[..start]);
        let digits_end = rest[start..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len(), |end| start + end);
        let significant = rest[start..digits_end].trim_start_matches('0');
        let length = significant.len().to_string();
        key.push('0');
        // Lengths of up to 9 digits (numbers below 10^999999999) keep their order.
        key.push(char::from(b'0' + length.len().min(9) as u8));
        key.push_str(&length);
        key.push_str(significant);
        rest = &rest[digits_end..];
    }
    key.push_str(rest);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut names = vec![
            "vm10", "vm2", "vm1", "VM3", "vm02a", "vm", "vm 1", "vm100", "vm9x",
        ];
        names.sort_by(|a, b| Collation::Lexicographic.compare(a, b));
        assert_eq!(
            names,
            [
                "VM3", "vm", "vm 1", "vm1", "vm2", "vm02a", "vm9x", "vm10", "vm100"
            ]
        );
        assert_eq!(natural_key("no digits"), "no digits");
        assert_eq!(
            Collation::Lexicographic.compare("a007", "a7"),
            Ordering::Equal
        );
    }

    #[test]
    fn ignorecase_folds_unicode() {
        assert_eq!(
            Collation::IgnoreCase.compare("ÉCOLE-vm", "école-VM"),
            Ordering::Equal
        );
        assert_eq!(Collation::Ordinal.compare("B", "a"), Ordering::Less);
        assert_eq!(Collation::IgnoreCase.compare("B", "a"), Ordering::Greater);
    }

    /// A direct natural comparison, written independently of the key encoding.
    fn natural_reference(a: &str, b: &str) -> Ordering {
        fn runs(s: &str) -> Vec<Result<String, char>> {
            let mut out: Vec<Result<String, char>> = Vec::new();
            for c in s.chars() {
                if c.is_ascii_digit() {
                    if let Some(Ok(run)) = out.last_mut() {
                        run.push(c);
                        continue;
                    }
                    out.push(Ok(c.to_string()));
                } else {
                    out.push(Err(c));
                }
            }
            out
        }
        let (ra, rb) = (runs(a), runs(b));
        for (x, y) in ra.iter().zip(rb.iter()) {
            let ord = match (x, y) {
                (Ok(n), Ok(m)) => {
                    let (n, m) = (n.trim_start_matches('0'), m.trim_start_matches('0'));
                    n.len().cmp(&m.len()).then_with(|| n.cmp(m))
                }
                (Ok(_), Err(c)) => '0'.cmp(c),
                (Err(c), Ok(_)) => c.cmp(&'0'),
                (Err(c), Err(d)) => c.cmp(d),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        ra.len().cmp(&rb.len())
    }

    proptest! {
        #[test]
        fn natural_key_order_matches_a_direct_comparison(a in "[a-c0-9 ._é]{0,10}", b in "[a-c0-9 ._é]{0,10}") {
            prop_assert_eq!(natural_key(&a).cmp(&natural_key(&b)), natural_reference(&a, &b));
        }

        #[test]
        fn digit_free_strings_are_their_own_natural_key(a in "[^0-9]{0,20}") {
            prop_assert_eq!(natural_key(&a), a);
        }
    }
}

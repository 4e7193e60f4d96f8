//! Keyset pagination: a cursor names the last row seen by its sort key and id, so a deep page
//! costs the same as the first one and rows inserted meanwhile are neither skipped nor repeated.

use crate::DomainError;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// Position after a row: its sort key (a timestamp in ms) and its id as a tie-breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub id: String,
}

impl Cursor {
    /// Opaque text form: `key.id`, hex encoded so clients treat it as opaque.
    pub fn encode(&self) -> String {
        let raw = format!("{}.{}", self.key, self.id);
        raw.bytes().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(text: &str) -> Result<Self, DomainError> {
        let bad = || DomainError::invalid("cursor", "the cursor is not one this API returned");
        if !text.is_ascii() || !text.len().is_multiple_of(2) || text.len() > 200 {
            return Err(bad());
        }
        let bytes: Result<Vec<u8>, _> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect();
        let raw = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
        let (key, id) = raw.split_once('.').ok_or_else(bad)?;
        let key = key.parse().map_err(|_| bad())?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(bad());
        }
        Ok(Self {
            key,
            id: id.to_string(),
        })
    }
}

/// A validated page request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub after: Option<Cursor>,
    pub limit: u32,
}

impl PageRequest {
    pub fn parse(cursor: Option<&str>, limit: Option<u32>) -> Result<Self, DomainError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(DomainError::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match cursor {
            Some(c) if !c.is_empty() => Some(Cursor::decode(c)?),
            _ => None,
        };
        Ok(Self { after, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects_junk() {
        let c = Cursor {
            key: 1_700_000_000_000,
            id: "ord_abc".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).expect("round trip"), c);
        assert!(Cursor::decode("zz").is_err());
        assert!(Cursor::decode("6869").is_err());
        // Multi-byte input must not be sliced mid-character.
        assert!(Cursor::decode("a\u{e9}a").is_err());
        assert!(PageRequest::parse(None, Some(0)).is_err());
        assert!(PageRequest::parse(None, Some(101)).is_err());
    }
}

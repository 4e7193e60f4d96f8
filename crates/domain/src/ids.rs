//! Prefixed random ids (`shp_…`, `prd_…`, `ord_…`): 128 random bits in lowercase base32, so an id
//! says what it names in logs and support tickets and cannot be guessed or enumerated.

use rand::RngExt;

pub const USER: &str = "usr";
pub const SHOP: &str = "shp";
pub const PRODUCT: &str = "prd";
pub const VARIANT: &str = "var";
pub const ORDER: &str = "ord";
pub const CHECKOUT: &str = "chk";
pub const LEDGER_TX: &str = "ltx";
pub const PAYMENT_TOKEN: &str = "tok";

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new id with the given prefix.
pub fn new_id(prefix: &str) -> String {
    let bytes: [u8; 16] = rand::rng().random();
    format!("{prefix}_{}", base32(&bytes))
}

/// A random secret of `n` bytes, base32 encoded (session ids, API tokens).
pub fn random_secret(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill(&mut bytes[..]);
    base32(&bytes)
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_unique_and_valid() {
        let a = new_id(SHOP);
        let b = new_id(SHOP);
        assert_ne!(a, b);
        assert!(a.starts_with("shp_"));
        assert_eq!(a.len(), 4 + 26, "128 bits in base32");
        assert!(a[4..].bytes().all(|c| ALPHABET.contains(&c)));
    }

    #[test]
    fn secrets_have_the_requested_entropy() {
        assert_eq!(random_secret(20).len(), 32);
    }
}

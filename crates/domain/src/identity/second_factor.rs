//! Second-factor rules: which TOTP time steps a code may match, that each step is accepted at
//! most once, and the shape of recovery codes. Time is always a parameter (epoch milliseconds).
//! The HMAC itself (RFC 6238, SHA-1, 6 digits, 30 s) is computed by the server with `totp-rs`.

use rand::RngExt;

/// Seconds per TOTP time step (RFC 6238's recommended value).
pub const TOTP_STEP_SECS: i64 = 30;
/// Digits per TOTP code.
pub const TOTP_DIGITS: usize = 6;
/// Steps either side of the current one a code may come from (clock skew, typing time).
pub const TOTP_SKEW_STEPS: i64 = 1;
/// Bytes of a TOTP seed: 160 bits, as RFC 4226 recommends.
pub const TOTP_SECRET_BYTES: usize = 20;
/// How many recovery codes a set holds.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Base32 characters in a recovery code: 10 × 5 = 50 random bits.
pub const RECOVERY_CODE_CHARS: usize = 10;
/// A pending "password accepted, second factor still to come" sign-in lasts this long.
pub const PENDING_SECOND_FACTOR_MS: i64 = 5 * 60 * 1000;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The time step an instant falls in.
pub fn step_at(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000).div_euclid(TOTP_STEP_SECS)
}

/// The steps a code typed at `now_ms` may match, oldest first (the current one ± the skew).
pub fn candidate_steps(now_ms: i64) -> impl Iterator<Item = i64> {
    let current = step_at(now_ms);
    (current - TOTP_SKEW_STEPS..=current + TOTP_SKEW_STEPS).filter(|s| *s >= 0)
}

/// Whether a code that matched `matched_step` may be accepted, given the last step accepted
/// for this factor (`None` before the first). Each step is accepted once, and never one at or
/// before an accepted step: a replayed or older code is refused (RFC 6238 §5.2).
pub fn accepts_step(matched_step: i64, last_accepted: Option<i64>, now_ms: i64) -> bool {
    let current = step_at(now_ms);
    let in_window = (current - TOTP_SKEW_STEPS..=current + TOTP_SKEW_STEPS).contains(&matched_step);
    in_window && last_accepted.is_none_or(|last| matched_step > last)
}

/// What a person typed as a second factor.
#[derive(Clone, PartialEq, Eq)]
pub enum CodeKind {
    /// Six digits from an authenticator app.
    Totp(String),
    /// A recovery code, normalised (upper case, no separators).
    Recovery(String),
}

impl std::fmt::Debug for CodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Codes are secrets: never in Debug output.
        match self {
            CodeKind::Totp(_) => f.write_str("Totp(<redacted>)"),
            CodeKind::Recovery(_) => f.write_str("Recovery(<redacted>)"),
        }
    }
}

/// Reads a typed code: spaces and dashes are ignored; six digits are a TOTP code, ten base32
/// characters (any case) a recovery code; anything else is no code at all.
pub fn parse_code(raw: &str) -> Option<CodeKind> {
    let cleaned: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if cleaned.len() == TOTP_DIGITS && cleaned.chars().all(|c| c.is_ascii_digit()) {
        return Some(CodeKind::Totp(cleaned));
    }
    let upper = cleaned.to_ascii_uppercase();
    if upper.len() == RECOVERY_CODE_CHARS && upper.bytes().all(|b| BASE32.contains(&b)) {
        return Some(CodeKind::Recovery(upper));
    }
    None
}

/// A fresh recovery code, normalised (what is digested and stored).
pub fn new_recovery_code() -> String {
    let mut rng = rand::rng();
    (0..RECOVERY_CODE_CHARS)
        .map(|_| char::from(BASE32[rng.random_range(0..BASE32.len())]))
        .collect()
}

/// How a recovery code is shown: two groups of five, lower case (`abcde-fghij`).
pub fn display_recovery_code(normalised: &str) -> String {
    let lower = normalised.to_ascii_lowercase();
    match lower.split_at_checked(RECOVERY_CODE_CHARS / 2) {
        Some((a, b)) => format!("{a}-{b}"),
        None => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_564_800_000; // a step boundary

    #[test]
    fn steps_are_thirty_seconds() {
        assert_eq!(step_at(0), 0);
        assert_eq!(step_at(29_999), 0);
        assert_eq!(step_at(30_000), 1);
        assert_eq!(step_at(T + 45_000), step_at(T) + 1);
    }

    #[test]
    fn the_window_is_one_step_either_side() {
        let s = step_at(T);
        assert_eq!(
            candidate_steps(T).collect::<Vec<_>>(),
            vec![s - 1, s, s + 1]
        );
        assert_eq!(candidate_steps(0).collect::<Vec<_>>(), vec![0, 1]);
        assert!(accepts_step(s - 1, None, T));
        assert!(accepts_step(s + 1, None, T));
        assert!(!accepts_step(s - 2, None, T));
        assert!(!accepts_step(s + 2, None, T));
    }

    #[test]
    fn a_step_is_accepted_once_and_never_an_older_one() {
        let s = step_at(T);
        assert!(accepts_step(s, Some(s - 1), T));
        assert!(!accepts_step(s, Some(s), T), "replay");
        assert!(
            !accepts_step(s - 1, Some(s), T),
            "older than the last accepted"
        );
        assert!(
            !accepts_step(s, Some(s + 1), T),
            "a later code was already used"
        );
        // Thirty seconds on, the next code is fine.
        assert!(accepts_step(s + 1, Some(s), T + 30_000));
    }

    #[test]
    fn codes_are_told_apart() {
        assert_eq!(
            parse_code(" 123 456 "),
            Some(CodeKind::Totp("123456".into()))
        );
        assert_eq!(
            parse_code("abcde-fgh23"),
            Some(CodeKind::Recovery("ABCDEFGH23".into()))
        );
        for bad in [
            "",
            "12345",
            "1234567",
            "abcde-fgh21",
            "ABCDEFGHIJK",
            "12345a",
        ] {
            assert_eq!(parse_code(bad), None, "{bad}");
        }
        assert_eq!(
            format!("{:?}", parse_code("123456")),
            "Some(Totp(<redacted>))"
        );
    }

    #[test]
    fn recovery_codes_round_trip_through_their_display_form() {
        let a = new_recovery_code();
        let b = new_recovery_code();
        assert_ne!(a, b);
        assert_eq!(a.len(), RECOVERY_CODE_CHARS);
        let shown = display_recovery_code(&a);
        assert_eq!(shown.len(), RECOVERY_CODE_CHARS + 1);
        assert_eq!(parse_code(&shown), Some(CodeKind::Recovery(a)));
    }
}

//! The password policy, after NIST SP 800-63B rev 4 (§3.1.1.2):
//!
//! - length counted in characters: at least 15 when the password is the only factor, at least 8
//!   when a second factor is enrolled, at most 256 (so 64 and well beyond are allowed);
//! - no composition rules (no "one digit, one symbol"), no truncation, no case folding of what is
//!   stored: these rules only *read* the password;
//! - refused when it is on a shipped list of common and breached passwords (compared
//!   case-insensitively, also once trailing or leading digits and symbols are stripped, so
//!   "Password123!" is refused like "password"), when it is one character repeated, or when it is
//!   built from context words (parts of the email, the name, the shop name, "clipcart");
//! - strength feedback from zxcvbn, on the first 100 characters only. It advises; it does not
//!   refuse.
//!
//! The list is `data/common-passwords.txt.gz` (see `data/README.md` for its source and how to
//! regenerate it): sorted, lower-cased and de-duplicated text, decompressed once on first use
//! and searched by binary search.

use crate::DomainError;
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::LazyLock;

/// Minimum length of a password that is the only factor.
pub const MIN_PASSWORD_SINGLE_FACTOR: usize = 15;
/// Minimum length of a password used together with an enrolled second factor.
pub const MIN_PASSWORD_WITH_SECOND_FACTOR: usize = 8;
/// Upper bound on accepted length, well above the required 64, to bound hashing work.
pub const MAX_PASSWORD: usize = 256;
/// zxcvbn looks at this many characters and no more: its cost grows quickly with length.
pub const STRENGTH_CHARS: usize = 100;
/// What is left after stripping digits and symbols is looked up only when at least this long;
/// shorter remainders ("abc" in "abc!7#2...") match too much of the list to mean anything.
const MIN_STRIPPED_LENGTH: usize = 4;
/// After context words are removed, this much must remain...
const MIN_REMAINDER: usize = 8;
/// ...made of at least this many different characters (also the bar for repetitive passwords).
const MIN_DISTINCT: usize = 4;
/// Context words shorter than this are ignored: removing "al" or "jo" would refuse too much.
const MIN_CONTEXT_WORD: usize = 3;
/// Only this much of each email or name is read, and at most this many words are kept, so a
/// huge input cannot make a check expensive.
const MAX_CONTEXT_TEXT: usize = 256;
const MAX_CONTEXT_WORDS: usize = 64;

/// Why a new password is refused. Every variant has a message that says what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRefusal {
    TooShort {
        min: usize,
    },
    TooLong {
        max: usize,
    },
    /// On the list of common and breached passwords.
    Common,
    /// A listed password with digits or symbols added before or after it.
    CommonWithAdditions,
    /// Fewer than four different characters.
    Repetitive,
    /// Made mostly of the email, the name, the shop name or "clipcart".
    ContextWords,
}

impl PasswordRefusal {
    pub fn message(&self) -> String {
        match self {
            PasswordRefusal::TooShort { min } if *min >= MIN_PASSWORD_SINGLE_FACTOR => {
                format!("use at least {min} characters; a few unrelated words work well")
            }
            PasswordRefusal::TooShort { min } => format!("use at least {min} characters"),
            PasswordRefusal::TooLong { max } => format!("use at most {max} characters"),
            PasswordRefusal::Common => {
                "this password is on a list of common and breached passwords; choose another".into()
            }
            PasswordRefusal::CommonWithAdditions => {
                "this is a common password with digits or symbols added; choose another".into()
            }
            PasswordRefusal::Repetitive => {
                "this password repeats too few characters; a few unrelated words work well".into()
            }
            PasswordRefusal::ContextWords => {
                "the password is too close to your email, your name or the site name".into()
            }
        }
    }
}

/// The words a password must not be built from: parts of the email, the person's or shop's
/// name, and always "clipcart". Stored lower-cased and trimmed; too-short words are dropped.
#[derive(Debug, Clone, Default)]
pub struct PasswordContext {
    words: Vec<String>,
}

impl PasswordContext {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an email's local part and its pieces ("ann.lee+shop" gives "ann.lee+shop", "ann",
    /// "lee", "shop") and its domain labels except the last ("mail.example.com" gives "mail",
    /// "example"). The email need not be valid.
    pub fn email(mut self, email: &str) -> Self {
        let email = bounded(email).trim().to_lowercase();
        let (local, domain) = email.rsplit_once('@').unwrap_or((email.as_str(), ""));
        self.add(local);
        self.add_pieces(local);
        let labels: Vec<&str> = domain.split('.').collect();
        if let Some((_tld, rest)) = labels.split_last() {
            for label in rest {
                self.add(label);
            }
        }
        self
    }

    /// Adds a name (a person's display name or a shop name) and each of its words.
    pub fn name(mut self, name: &str) -> Self {
        let name = bounded(name);
        self.add(name);
        self.add_pieces(name);
        self
    }

    /// Adds one word as it is.
    pub fn word(mut self, word: &str) -> Self {
        self.add(bounded(word));
        self
    }

    /// The context words, "clipcart" included, longest first.
    pub fn words(&self) -> Vec<&str> {
        let mut words: Vec<&str> = self.words.iter().map(String::as_str).collect();
        words.push("clipcart");
        words.sort_by(|a, b| b.chars().count().cmp(&a.chars().count()).then(a.cmp(b)));
        words.dedup();
        words
    }

    fn add(&mut self, word: &str) {
        let w = word.trim().to_lowercase();
        if self.words.len() < MAX_CONTEXT_WORDS
            && w.chars().count() >= MIN_CONTEXT_WORD
            && !self.words.contains(&w)
        {
            self.words.push(w);
        }
    }

    fn add_pieces(&mut self, text: &str) {
        for piece in text.split(|c: char| !c.is_alphanumeric()) {
            self.add(piece);
        }
    }
}

fn bounded(text: &str) -> &str {
    first_chars(text, MAX_CONTEXT_TEXT)
}

/// The first `n` characters of `text` (never a cut inside a character).
fn first_chars(text: &str, n: usize) -> &str {
    let end = text.char_indices().nth(n).map_or(text.len(), |(i, _)| i);
    text.get(..end).unwrap_or(text)
}

/// Every reason `password` would be refused, most pressing first; empty when it is accepted.
/// `has_second_factor` lowers the minimum length from 15 to 8 characters.
pub fn password_refusals(
    password: &str,
    context: &PasswordContext,
    has_second_factor: bool,
) -> Vec<PasswordRefusal> {
    let mut refusals = Vec::new();
    let chars = password.chars().count();
    let min = if has_second_factor {
        MIN_PASSWORD_WITH_SECOND_FACTOR
    } else {
        MIN_PASSWORD_SINGLE_FACTOR
    };
    if chars < min {
        refusals.push(PasswordRefusal::TooShort { min });
    }
    if chars > MAX_PASSWORD {
        // Nothing else is worth computing on an over-long input.
        refusals.push(PasswordRefusal::TooLong { max: MAX_PASSWORD });
        return refusals;
    }
    if let Some(common) = blocklist_refusal(password) {
        refusals.push(common);
    }
    let lowered = password.to_lowercase();
    if distinct_chars(&lowered) < MIN_DISTINCT {
        refusals.push(PasswordRefusal::Repetitive);
    } else if built_from_context(&lowered, context) {
        refusals.push(PasswordRefusal::ContextWords);
    }
    refusals
}

/// Checks a new password against the policy. Reports the most pressing refusal as a field
/// error on `password` (`password_refusals` lists them all).
pub fn check_new_password(
    password: &str,
    context: &PasswordContext,
    has_second_factor: bool,
) -> Result<(), DomainError> {
    match password_refusals(password, context, has_second_factor).first() {
        None => Ok(()),
        Some(refusal) => Err(DomainError::invalid("password", refusal.message())),
    }
}

/// Whether `candidate`, trimmed and lower-cased, is on the shipped list.
pub fn is_common_password(candidate: &str) -> bool {
    BLOCKLIST.contains(&candidate.trim().to_lowercase())
}

/// How many passwords the shipped list holds.
pub fn common_password_count() -> usize {
    BLOCKLIST.len()
}

fn is_addition(c: char) -> bool {
    c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace()
}

fn blocklist_refusal(password: &str) -> Option<PasswordRefusal> {
    let candidate = password.trim().to_lowercase();
    if BLOCKLIST.contains(&candidate) {
        return Some(PasswordRefusal::Common);
    }
    // Only a password with something besides digits and symbols has a "common word" inside;
    // "4729 1836 5502 9174" is refused only when listed as a whole.
    let without_head = candidate.trim_start_matches(is_addition);
    let core = without_head.trim_end_matches(is_addition);
    if core.is_empty() {
        return None;
    }
    // Every way of cutting digits and symbols off the ends: all of them ("password" in
    // "!!password123!"), or some ("!!!sara" in "!!!sara2024", "monkey1" in "monkey1!!").
    let head_end = candidate.len() - without_head.len();
    let tail_start = head_end + core.len();
    let starts = candidate
        .char_indices()
        .map(|(i, _)| i)
        .take_while(|&i| i <= head_end);
    let ends: Vec<usize> = candidate
        .char_indices()
        .map(|(i, _)| i)
        .filter(|&i| i > tail_start)
        .chain([tail_start, candidate.len()])
        .collect();
    for start in starts {
        for &end in &ends {
            let Some(rest) = candidate.get(start..end) else {
                continue;
            };
            if rest.len() < candidate.len()
                && rest.chars().count() >= MIN_STRIPPED_LENGTH
                && BLOCKLIST.contains(rest)
            {
                return Some(PasswordRefusal::CommonWithAdditions);
            }
        }
    }
    None
}

fn distinct_chars(s: &str) -> usize {
    s.chars().collect::<BTreeSet<_>>().len()
}

/// True when removing the context words leaves too little: fewer than 8 characters, or fewer
/// than 4 different ones. Only applies when a context word was actually found.
fn built_from_context(lowered: &str, context: &PasswordContext) -> bool {
    let mut rest = lowered.to_string();
    for word in context.words() {
        rest = rest.replace(word, "");
    }
    rest != lowered
        && (rest.chars().count() < MIN_REMAINDER || distinct_chars(&rest) < MIN_DISTINCT)
}

/// zxcvbn's estimate of a password: a score from 0 (too guessable) to 4 (very unguessable), and
/// its advice, which it gives only for scores up to 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strength {
    pub score: u8,
    pub warning: Option<String>,
    pub suggestions: Vec<String>,
}

impl Strength {
    /// A word for the score, for a meter's label.
    pub fn label(&self) -> &'static str {
        match self.score {
            0 => "very weak",
            1 => "weak",
            2 => "fair",
            3 => "strong",
            _ => "very strong",
        }
    }
}

/// Estimates strength from the first 100 characters of `password` only, with the context words
/// as zxcvbn's "user inputs".
pub fn strength(password: &str, context: &PasswordContext) -> Strength {
    let head = first_chars(password, STRENGTH_CHARS);
    let entropy = zxcvbn::zxcvbn(head, &context.words());
    let (warning, suggestions) = match entropy.feedback() {
        Some(f) => (
            f.warning().map(|w| w.to_string()),
            f.suggestions().iter().map(ToString::to_string).collect(),
        ),
        None => (None, Vec::new()),
    };
    Strength {
        score: u8::from(entropy.score()),
        warning,
        suggestions,
    }
}

/// Everything a form or a client needs to show about a password being chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordAssessment {
    pub refusals: Vec<PasswordRefusal>,
    pub strength: Strength,
}

impl PasswordAssessment {
    pub fn accepted(&self) -> bool {
        self.refusals.is_empty()
    }

    pub fn refusal_messages(&self) -> Vec<String> {
        self.refusals.iter().map(PasswordRefusal::message).collect()
    }
}

/// The policy's verdict and zxcvbn's feedback together.
pub fn assess_password(
    password: &str,
    context: &PasswordContext,
    has_second_factor: bool,
) -> PasswordAssessment {
    PasswordAssessment {
        refusals: password_refusals(password, context, has_second_factor),
        strength: strength(password, context),
    }
}

// ---- the shipped list ----

static BLOCKLIST_GZ: &[u8] = include_bytes!("../../data/common-passwords.txt.gz");
static BLOCKLIST: LazyLock<Blocklist> = LazyLock::new(|| Blocklist::decode(BLOCKLIST_GZ));

/// The list as one string of `\n`-terminated, sorted entries plus where each entry starts.
struct Blocklist {
    text: String,
    starts: Vec<u32>,
}

impl Blocklist {
    fn decode(gz: &[u8]) -> Self {
        let mut text = String::new();
        // The list is compiled in and checked by the tests below: failing here is a build bug.
        flate2::read::GzDecoder::new(gz)
            .read_to_string(&mut text)
            .expect("the shipped password list is gzip-compressed UTF-8");
        let mut starts = Vec::new();
        let mut at = 0usize;
        for line in text.split_terminator('\n') {
            starts.push(u32::try_from(at).expect("the shipped password list is under 4 GiB"));
            at += line.len() + 1;
        }
        Self { text, starts }
    }

    fn len(&self) -> usize {
        self.starts.len()
    }

    fn entry_at(&self, start: u32) -> &str {
        let rest = self.text.get(start as usize..).unwrap_or("");
        rest.split_once('\n').map_or(rest, |(entry, _)| entry)
    }

    fn contains(&self, candidate: &str) -> bool {
        self.starts
            .binary_search_by(|&start| self.entry_at(start).cmp(candidate))
            .is_ok()
    }

    #[cfg(test)]
    fn entry(&self, i: usize) -> &str {
        self.starts.get(i).map_or("", |&s| self.entry_at(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refusals(password: &str) -> Vec<PasswordRefusal> {
        password_refusals(password, &PasswordContext::new(), false)
    }

    #[test]
    fn the_shipped_list_is_large_sorted_lowercased_and_unique() {
        let list = &*BLOCKLIST;
        assert!(list.len() >= 100_000, "{} entries", list.len());
        let mut previous = "";
        for i in 0..list.len() {
            let e = list.entry(i);
            assert!(!e.is_empty(), "entry {i} is empty");
            assert_eq!(e, e.trim(), "entry {i} is not trimmed");
            assert_eq!(e, e.to_lowercase(), "entry {i} is not lower-cased");
            assert!(previous < e, "entries {} and {i} are out of order", i - 1);
            previous = e;
        }
        assert_eq!(common_password_count(), list.len());
    }

    #[test]
    fn membership_is_case_insensitive_and_trimmed() {
        for p in [
            "password",
            "PassWord",
            "  qwerty ",
            "123456",
            "passwordpassword",
        ] {
            assert!(is_common_password(p), "{p}");
        }
        for p in ["correct horse battery staple", "vivid-otter-lantern-47", ""] {
            assert!(!is_common_password(p), "{p}");
        }
    }

    #[test]
    fn length_rules_count_characters() {
        let fourteen = "kq7vx2mzr9tbwl";
        assert_eq!(fourteen.chars().count(), 14);
        assert_eq!(refusals(fourteen), [PasswordRefusal::TooShort { min: 15 }]);
        assert!(refusals(&format!("{fourteen}h")).is_empty());
        // With a second factor, 8 is enough.
        let eight = "kq7vx2mz";
        assert!(password_refusals(eight, &PasswordContext::new(), true).is_empty());
        assert_eq!(
            password_refusals("kq7vx2m", &PasswordContext::new(), true),
            [PasswordRefusal::TooShort { min: 8 }]
        );
        // Characters, not bytes: 13 two-byte characters are still too short...
        assert!(refusals("ééééééééééééé").contains(&PasswordRefusal::TooShort { min: 15 }));
        // ...and 15 multi-byte characters are long enough.
        assert!(refusals("日本語のパスワードはとても長いです").is_empty());
    }

    #[test]
    fn sixty_four_and_up_to_256_characters_are_allowed() {
        let word = "lantern otter vivid quay ";
        let long: String = word.chars().cycle().take(64).collect();
        assert!(refusals(&long).is_empty());
        let longest: String = word.chars().cycle().take(MAX_PASSWORD).collect();
        assert!(refusals(&longest).is_empty());
        let too_long: String = word.chars().cycle().take(MAX_PASSWORD + 1).collect();
        assert_eq!(
            refusals(&too_long),
            [PasswordRefusal::TooLong { max: MAX_PASSWORD }]
        );
    }

    #[test]
    fn no_composition_rules() {
        assert!(refusals("thisisalongpassphrase").is_empty());
        assert!(refusals("correct horse battery").is_empty());
        assert!(refusals("4729 1836 5502 9174").is_empty());
    }

    #[test]
    fn listed_passwords_are_refused_with_a_reason() {
        assert_eq!(refusals("passwordpassword"), [PasswordRefusal::Common]);
        assert_eq!(refusals("PasswordPassword"), [PasswordRefusal::Common]);
        assert_eq!(refusals(" passwordpassword "), [PasswordRefusal::Common]);
        let e = check_new_password("passwordpassword", &PasswordContext::new(), false)
            .expect_err("refused");
        assert_eq!(
            e,
            DomainError::invalid("password", PasswordRefusal::Common.message())
        );
        assert!(PasswordRefusal::Common.message().contains("common"));
    }

    #[test]
    fn listed_passwords_with_digits_or_symbols_added_are_refused() {
        for p in [
            "password123!",
            "Password1234567!",
            "football!!!!2024!!",
            "2024!!sunshine",
            "!!!sunshine2024!!!",
        ] {
            let r = refusals(p);
            assert!(
                r.contains(&PasswordRefusal::CommonWithAdditions)
                    || r.contains(&PasswordRefusal::Common),
                "{p}: {r:?}"
            );
        }
        assert!(refusals("Password1234567!").contains(&PasswordRefusal::CommonWithAdditions));
        // Part of the additions belongs to the listed password: "#hashtag" + "2024-2025".
        assert!(BLOCKLIST.contains("#hashtag") && !BLOCKLIST.contains("hashtag"));
        assert_eq!(
            refusals("#hashtag2024-2025"),
            [PasswordRefusal::CommonWithAdditions]
        );
        // Digits and symbols alone are refused only when listed whole.
        assert!(refusals("4729 1836 5502 9174").is_empty());
        // A listed word inside a longer passphrase is fine.
        assert!(refusals("password of the lighthouse keeper").is_empty());
    }

    #[test]
    fn repetitive_passwords_are_refused() {
        assert!(refusals("abababababababababab").contains(&PasswordRefusal::Repetitive));
        assert!(refusals("zzzzzzzzzzzzzzzzzzzzzz").contains(&PasswordRefusal::Repetitive));
    }

    #[test]
    fn context_words_are_refused() {
        assert_eq!(
            refusals("clipcartclipcart1"),
            [PasswordRefusal::ContextWords]
        );
        let ann = PasswordContext::new()
            .email("Ann.Lee@Example.test")
            .name("Ann Lee");
        let r = |p: &str| password_refusals(p, &ann, false);
        assert_eq!(r("annexample-annexample"), [PasswordRefusal::ContextWords]);
        assert_eq!(r("ann.lee-ann.lee-2026"), [PasswordRefusal::ContextWords]);
        assert_eq!(r("LeeAnnLeeAnn12345"), [PasswordRefusal::ContextWords]);
        // Context words inside a passphrase with enough else are fine.
        assert!(r("ann likes quiet lighthouse evenings").is_empty());
        // Shop names count too.
        let shop = PasswordContext::new().name("Kite & Loom");
        assert_eq!(
            password_refusals("kiteloomkiteloom99", &shop, false),
            [PasswordRefusal::ContextWords]
        );
    }

    #[test]
    fn context_words_are_split_sensibly() {
        let c = PasswordContext::new()
            .email("ann.lee+shop@mail.example.com")
            .name("Ann Lee")
            .word("Tiny Forest");
        let words = c.words();
        for w in [
            "ann.lee+shop",
            "ann",
            "lee",
            "shop",
            "mail",
            "example",
            "ann lee",
            "tiny forest",
            "clipcart",
        ] {
            assert!(words.contains(&w), "{w} missing from {words:?}");
        }
        assert!(
            !words.contains(&"com"),
            "the top-level domain is not a context word"
        );
        assert!(
            words
                .windows(2)
                .all(|p| p[0].chars().count() >= p[1].chars().count())
        );
    }

    #[test]
    fn huge_context_stays_cheap() {
        let name = "word ".repeat(200_000)
            + &(0..100_000)
                .map(|i| format!("w{i:06} "))
                .collect::<String>();
        let c = PasswordContext::new()
            .name(&name)
            .email(&format!("{name}@{name}.test"));
        assert!(c.words().len() <= MAX_CONTEXT_WORDS + 1);
        assert!(password_refusals("vivid otter lantern quay", &c, false).is_empty());
    }

    #[test]
    fn only_the_first_refusal_is_a_field_error() {
        match check_new_password("short", &PasswordContext::new(), false) {
            Err(DomainError::Invalid(errors)) => {
                assert_eq!(errors.len(), 1);
                assert_eq!(errors[0].field, "password");
                assert!(errors[0].message.contains("at least 15"));
            }
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn strength_comes_from_zxcvbn() {
        let weak = strength("password", &PasswordContext::new());
        assert_eq!(weak.score, 0);
        assert!(weak.warning.is_some() || !weak.suggestions.is_empty());
        assert_eq!(weak.label(), "very weak");
        let strong = strength(
            "vivid otter lantern quay marmalade",
            &PasswordContext::new(),
        );
        assert_eq!(strong.score, 4);
        assert!(strong.warning.is_none() && strong.suggestions.is_empty());
        // Context words lower the score.
        let c = PasswordContext::new().email("marmalade.quay@example.test");
        assert!(
            strength("marmaladequay", &c).score
                < strength("marmaladequay", &PasswordContext::new()).score
        );
    }

    #[test]
    fn strength_reads_only_the_first_100_characters() {
        let head: String = "ab1!".chars().cycle().take(STRENGTH_CHARS).collect();
        let base = strength(&head, &PasswordContext::new());
        let tail = "Zq8#vL2@xW5$nK7&".repeat(1000);
        assert_eq!(
            strength(&format!("{head}{tail}"), &PasswordContext::new()),
            base
        );
        // The cut is by characters, never inside one.
        let wide: String = "é".repeat(150);
        assert_eq!(
            strength(&wide, &PasswordContext::new()),
            strength(&"é".repeat(100), &PasswordContext::new())
        );
    }

    #[test]
    fn an_assessment_combines_both() {
        let a = assess_password("password", &PasswordContext::new(), false);
        assert!(!a.accepted());
        assert_eq!(
            a.refusals,
            [
                PasswordRefusal::TooShort { min: 15 },
                PasswordRefusal::Common
            ]
        );
        assert_eq!(a.refusal_messages().len(), 2);
        assert_eq!(a.strength.score, 0);
        let b = assess_password("vivid otter lantern quay", &PasswordContext::new(), false);
        assert!(b.accepted() && b.refusal_messages().is_empty());
    }

    /// Upper-cases the characters picked by `mask` where that round-trips (not "ß" → "SS").
    fn recase(s: &str, mask: &[bool]) -> String {
        s.chars()
            .zip(mask.iter().cycle())
            .map(|(c, &up)| {
                let upper: String = c.to_uppercase().collect();
                if up && upper.to_lowercase() == c.to_string() {
                    upper
                } else {
                    c.to_string()
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn any_listed_password_in_any_casing_is_refused(
            i in 0..BLOCKLIST.len(),
            mask in proptest::collection::vec(any::<bool>(), 1..16),
        ) {
            let entry = BLOCKLIST.entry(i);
            let p = recase(entry, &mask);
            prop_assert!(is_common_password(&p), "{p:?}");
            let r = refusals(&p);
            if p.chars().count() <= MAX_PASSWORD {
                prop_assert!(r.contains(&PasswordRefusal::Common), "{p:?}: {r:?}");
            }
            prop_assert!(check_new_password(&p, &PasswordContext::new(), false).is_err());
            prop_assert!(check_new_password(&p, &PasswordContext::new(), true).is_err());
        }

        #[test]
        fn listed_passwords_with_digits_and_symbols_appended_are_refused(
            i in 0..BLOCKLIST.len(),
            tail in "[0-9!@#$%^&*.?]{1,12}",
        ) {
            let entry = BLOCKLIST.entry(i);
            prop_assume!(entry.chars().count() >= MIN_STRIPPED_LENGTH);
            prop_assume!(!entry.chars().all(is_addition));
            let p = format!("{entry}{tail}");
            prop_assert!(check_new_password(&p, &PasswordContext::new(), false).is_err());
            prop_assert!(check_new_password(&p, &PasswordContext::new(), true).is_err());
            let q = format!("{tail}{entry}");
            prop_assert!(check_new_password(&q, &PasswordContext::new(), true).is_err());
        }

        #[test]
        fn any_long_random_password_from_a_large_alphabet_is_accepted(
            p in "[a-zA-Z0-9!@#$%^&*()_+=~;:,.<>?/|{} \\-\\[\\]αβγδεжзийклمنهو]{15,200}",
        ) {
            prop_assert_eq!(refusals(&p), Vec::<PasswordRefusal>::new(), "{:?}", p);
        }

        #[test]
        fn the_password_is_never_shortened_or_folded(p in "\\PC{0,300}") {
            // The rules read the password; length limits are by character count, nothing else.
            let r = refusals(&p);
            let n = p.chars().count();
            prop_assert_eq!(r.contains(&PasswordRefusal::TooShort { min: 15 }), n < 15);
            prop_assert_eq!(r.contains(&PasswordRefusal::TooLong { max: MAX_PASSWORD }), n > MAX_PASSWORD);
        }
    }
}

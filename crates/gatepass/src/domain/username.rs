//! Usernames per RFC 8265 (PRECIS): Unicode letters and digits plus `.`, `_` and `-`,
//! 3–64 characters, unique by their UsernameCaseMapped form, and never a mix of scripts
//! that could pass for another name (UTS #39, "highly restrictive").
//!
//! Every name valid under the earlier ASCII rule (`[A-Za-z0-9._-]{3,64}`) stays valid with
//! the same canonical form: for ASCII, width mapping and NFC change nothing and the case
//! mapping is ASCII lower-casing.

use std::borrow::Cow;

use precis_core::Error as PrecisError;
use precis_core::profile::PrecisFastInvocation;
use precis_profiles::{UsernameCaseMapped, UsernameCasePreserved};
use unicode_security::{GeneralSecurityProfile, RestrictionLevel, RestrictionLevelDetection};

use super::ValidationError;

/// Fewest characters in a username.
pub const MIN_CHARS: usize = 3;
/// Most characters in a username (Unicode scalar values, after normalisation).
pub const MAX_CHARS: usize = 64;
/// Longest input looked at, in bytes: 64 characters take at most 256 bytes, and a
/// decomposed spelling (base + combining marks) or fullwidth forms a few times more.
/// Anything longer is refused before any Unicode processing.
const MAX_INPUT_BYTES: usize = 1024;
/// Longest canonical form stored, in bytes (lower-casing can lengthen a name slightly).
const MAX_CANONICAL_BYTES: usize = 512;

const LENGTH: &str = "must be 3 to 64 characters long";
const ALPHABET: &str = "may contain only letters, digits, '.', '_' and '-'";

/// A validated username: the display form keeps the user's spelling after width mapping
/// and NFC (RFC 8265 UsernameCasePreserved); [`Username::canonical`] is the
/// UsernameCaseMapped form (also case-mapped), which uniqueness and look-ups use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    display: String,
    canonical: String,
}

impl Username {
    /// Validates `raw` as given (no trimming: `" bob"` is refused, not silently changed).
    ///
    /// # Errors
    /// Wrong length, a character outside letters, digits, `.`, `_` and `-` (spaces,
    /// control and format characters, symbols), a character UTS #39 restricts from
    /// identifiers, scripts mixed in a confusable way (`pаypal` with a Cyrillic `а`), or
    /// right-to-left text breaking the bidi rule.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > MAX_INPUT_BYTES {
            return Err(invalid(LENGTH));
        }
        let display = UsernameCasePreserved::enforce(raw).map_err(precis_error)?;
        let chars = display.chars().count();
        if !(MIN_CHARS..=MAX_CHARS).contains(&chars) {
            return Err(invalid(LENGTH));
        }
        // PRECIS's IdentifierClass admits every printable ASCII symbol and, in context, the
        // zero-width joiners; the earlier rule allowed only these three symbols, and
        // invisible characters have no place in a name people read.
        if display
            .chars()
            .any(|c| (c.is_ascii() && !c.is_ascii_alphanumeric() && !matches!(c, '.' | '_' | '-')) || is_format(c))
        {
            return Err(invalid(ALPHABET));
        }
        check_scripts(&display)?;
        let canonical = UsernameCaseMapped::enforce(display.as_ref()).map_err(precis_error)?.into_owned();
        // Case mapping can compose further (`T` + U+0308 has no precomposed capital, `ẗ`
        // does): the canonical form must pass the length and character rules too, so that
        // every spelling of one account is valid or none is.
        if canonical.len() > MAX_CANONICAL_BYTES || !(MIN_CHARS..=MAX_CHARS).contains(&canonical.chars().count()) {
            return Err(invalid(LENGTH));
        }
        check_scripts(&canonical)?;
        Ok(Self { display: display.into_owned(), canonical })
    }

    /// The name as the user spelled it (width-mapped, NFC).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The UsernameCaseMapped form: `Élodie`, `ÉLODIE`, `E\u{301}lodie` and fullwidth
    /// `ｅｌｏｄｉｅ`-style spellings are one account.
    pub fn canonical(&self) -> String {
        self.canonical.clone()
    }

    /// The key to look a name up by, for input that may not be a valid username (an
    /// administrator's search): the canonical form when `raw` is valid, else `raw`
    /// width-mapped where possible, NFC and lower-cased, so a valid prefix or near-miss
    /// still finds canonical names.
    pub fn lookup_key(raw: &str) -> String {
        if let Ok(name) = Self::parse(raw) {
            return name.canonical;
        }
        let raw = &raw[..floor_char_boundary(raw, MAX_INPUT_BYTES)];
        match UsernameCaseMapped::enforce(raw) {
            Ok(key) => key.into_owned(),
            Err(_) => {
                use unicode_normalization::UnicodeNormalization;
                raw.nfc().collect::<String>().to_lowercase()
            }
        }
    }
}

/// Format characters (general category Cf) that PRECIS lets through in context.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}')
}

/// Refuses characters UTS #39 restricts from identifiers (obsolete and limited-use
/// scripts, compatibility forms) and names mixing scripts beyond the "highly restrictive"
/// level: one script, or Latin with Han, Hiragana/Katakana or Hangul (as Japanese, Chinese
/// and Korean names are written). Latin mixed with Cyrillic or Greek, the classic
/// look-alike attack, is refused.
fn check_scripts(display: &str) -> Result<(), ValidationError> {
    // The three symbols are script-neutral and allowed by the earlier rule.
    let letters: Cow<'_, str> = if display.contains(['.', '_', '-']) {
        display.chars().filter(|c| !matches!(c, '.' | '_' | '-')).collect::<String>().into()
    } else {
        display.into()
    };
    if !letters.chars().all(GeneralSecurityProfile::identifier_allowed) {
        return Err(invalid("contains a character that is not allowed in usernames"));
    }
    if !letters.as_ref().check_restriction_level(RestrictionLevel::HighlyRestrictive) {
        return Err(invalid("must not mix scripts that can look alike (such as Latin and Cyrillic letters)"));
    }
    Ok(())
}

fn precis_error(e: PrecisError) -> ValidationError {
    match e {
        PrecisError::BadCodepoint(_) => invalid(ALPHABET),
        // Empty input is refused earlier; the remaining `Invalid` is the bidi rule.
        PrecisError::Invalid => invalid("mixes right-to-left and left-to-right text in a way that is not allowed"),
        _ => invalid(ALPHABET),
    }
}

fn invalid(message: &str) -> ValidationError {
    ValidationError::new("username", message)
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(raw: &str) -> String {
        Username::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}")).canonical()
    }

    fn message(raw: &str) -> String {
        Username::parse(raw).expect_err(raw).message
    }

    #[test]
    fn accepts_the_allowed_alphabet_and_lengths() {
        for ok in ["abc", "Alice.B_c-9", &"a".repeat(64), "...", "_-_", "007"] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(canonical("AlIcE"), "alice");
    }

    #[test]
    fn every_name_valid_under_the_ascii_rule_keeps_its_spelling_and_canonical_form() {
        let alphabet: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').chain(['.', '_', '-']).collect();
        // Every allowed character at every position class, and many mixed names.
        for (i, &c) in alphabet.iter().enumerate() {
            let next = alphabet[(i + 1) % alphabet.len()];
            let last = alphabet[(i * 7 + 3) % alphabet.len()];
            for name in [format!("{c}{next}{last}"), format!("{c}{c}{c}"), format!("xY{c}9{next}-{last}")] {
                let parsed = Username::parse(&name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
                assert_eq!(parsed.as_str(), name);
                assert_eq!(parsed.canonical(), name.to_ascii_lowercase(), "{name:?}");
            }
        }
        let long: String = alphabet.iter().cycle().take(64).collect();
        assert_eq!(canonical(&long), long.to_ascii_lowercase());
    }

    #[test]
    fn unicode_letters_are_case_mapped_and_normalised() {
        // RFC 8265 §3.3: case mapping and NFC.
        let composed = Username::parse("Élodie").unwrap();
        assert_eq!(composed.as_str(), "Élodie");
        assert_eq!(composed.canonical(), "élodie");
        assert_eq!(canonical("ÉLODIE"), "élodie");
        let decomposed = Username::parse("E\u{301}lodie").unwrap();
        assert_eq!(decomposed.as_str(), "Élodie", "the display form is NFC");
        assert_eq!(decomposed.canonical(), "élodie");
        for ok in ["Ярослав", "Σωκράτης", "山田太郎", "yamada山田", "김민준", "Zoë", "straße", "josé_müller"]
        {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn fullwidth_letters_are_width_mapped() {
        // RFC 8265 §3.3.2 width mapping: fullwidth to their decomposition.
        let bob = Username::parse("ｂｏｂ").unwrap();
        assert_eq!(bob.as_str(), "bob");
        assert_eq!(bob.canonical(), "bob");
        assert_eq!(canonical("ＢＯＢ"), "bob");
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(Username::parse(&"é".repeat(64)).is_ok(), "128 bytes, 64 characters");
        assert_eq!(message(&"é".repeat(65)), LENGTH);
        assert_eq!(message("éé"), LENGTH);
        // 3 characters once composed, though 6 code points as typed.
        assert_eq!(canonical("e\u{301}e\u{301}e\u{301}"), "ééé");
        assert_eq!(message(&"a".repeat(2000)), LENGTH);
        assert_eq!(message(""), LENGTH);
    }

    #[test]
    fn confusable_script_mixes_are_refused() {
        // Latin with a Cyrillic "а" (U+0430), and Latin with a Greek omicron.
        for bad in ["p\u{430}ypal", "g\u{3bf}\u{3bf}gle", "admin\u{456}"] {
            assert!(message(bad).contains("mix scripts"), "{bad:?}");
        }
        // Single-script names in those scripts are fine.
        assert!(Username::parse("\u{440}\u{430}\u{443}").is_ok());
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "ab",
            "bob smith",
            " bob",
            "bob ",
            "bob'--",
            "a\0b",
            "x/y",
            "a@b.c",
            "bo\u{200D}b",
            "bo\u{200B}b",
            "bob\u{00A0}x",
            "tab\tx",
            "new\nline",
            "bo\u{202E}b",
            "smile😀x",
            "ﬁle",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(message("bob smith"), ALPHABET);
        assert_eq!(message("bo\u{200D}b"), ALPHABET);
    }

    /// Stored display forms are parsed again when read back: parsing must be idempotent,
    /// and no input may panic.
    #[test]
    fn parsing_is_idempotent_and_total() {
        use rand::Rng;
        // Latin, accents, combining marks, Greek, Cyrillic, Hebrew, Arabic, Devanagari,
        // Han, Kana, Hangul, fullwidth, spaces and joiners, and anything at all.
        let ranges: [(u32, u32); 14] = [
            (0x20, 0x7e),
            (0xc0, 0x17f),
            (0x300, 0x36f),
            (0x370, 0x3ff),
            (0x400, 0x4ff),
            (0x5d0, 0x5ea),
            (0x620, 0x64a),
            (0x900, 0x97f),
            (0x4e00, 0x4e80),
            (0x3041, 0x30ff),
            (0xac00, 0xac80),
            (0xff01, 0xff5e),
            (0x2000, 0x206f),
            (0, 0x10ffff),
        ];
        let mut rng = rand::rng();
        let mut valid = 0;
        for _ in 0..20_000 {
            let len = rng.random_range(0..12);
            // Mostly one or two ranges per name, so that many are valid.
            let picks = [ranges[rng.random_range(0..ranges.len())], ranges[rng.random_range(0..3)]];
            let raw: String = (0..len)
                .filter_map(|_| {
                    let (lo, hi) = picks[rng.random_range(0..2)];
                    char::from_u32(rng.random_range(lo..=hi))
                })
                .collect();
            let _ = Username::lookup_key(&raw);
            if let Ok(name) = Username::parse(&raw) {
                valid += 1;
                let again = Username::parse(name.as_str()).unwrap_or_else(|e| panic!("{raw:?} -> {name:?}: {e}"));
                assert_eq!(again, name, "{raw:?}");
                assert_eq!(Username::parse(&name.canonical()).map(|n| n.canonical()), Ok(name.canonical()), "{raw:?}");
                assert_eq!(Username::lookup_key(&raw), name.canonical());
            }
        }
        assert!(valid > 1000, "the generator produces valid names too ({valid})");
    }

    /// Inputs the random test above once found: `T` + U+0308 + U+031B is three characters,
    /// its case-mapped form `ẗ` + U+031B two, and `ẗ` is a character UTS #39 restricts.
    /// Every spelling is refused, so none can name an account the others cannot.
    #[test]
    fn marks_that_compose_after_case_mapping_are_judged_in_the_canonical_form() {
        for raw in ["\u{ff34}\u{308}\u{31b}", "T\u{308}\u{31b}", "t\u{31b}\u{308}"] {
            assert_eq!(Username::parse(raw), Err(invalid(LENGTH)), "{raw:?}");
        }
        for raw in ["ab\u{ff34}\u{308}\u{31b}", "abT\u{308}\u{31b}", "abt\u{31b}\u{308}", "ab\u{1e97}"] {
            assert!(Username::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn lookup_key_matches_the_canonical_form() {
        assert_eq!(Username::lookup_key("ÉLODIE"), "élodie");
        assert_eq!(Username::lookup_key("ｂｏ"), "bo", "a prefix need not be a valid name");
        assert_eq!(Username::lookup_key("Al"), "al");
        assert_eq!(Username::lookup_key("x y"), "x y");
    }
}

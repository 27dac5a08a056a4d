//! Context for numbers written as bare digits, which alone could be order
//! numbers, timestamps or amounts: a column name (`ssn`, `phone_number`,
//! `cpf`) or a keyword shortly before the number in the same value
//! (`SSN: 123456789`, `call 5551234567`). Keywords are whole words or word
//! prefixes (`telephone`, `mobile`), never the inside of a word (`hotel`).

use super::swar::{HIGH, letters, splat};

/// Which kinds of bare number the context suggests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints(u8);

const SSN: u8 = 1;
const CPF: u8 = 2;
const NHS: u8 = 4;
const AADHAAR: u8 = 8;
const PHONE: u8 = 16;
const NOT_PERSONAL_COLUMN: u8 = 32;

impl std::ops::BitOr for Hints {
    type Output = Hints;
    fn bitor(self, o: Hints) -> Hints {
        Hints(self.0 | o.0)
    }
}

impl Hints {
    pub fn ssn(self) -> bool {
        self.0 & SSN != 0
    }
    pub fn cpf(self) -> bool {
        self.0 & CPF != 0
    }
    pub fn nhs(self) -> bool {
        self.0 & NHS != 0
    }
    pub fn aadhaar(self) -> bool {
        self.0 & AADHAAR != 0
    }
    pub fn phone(self) -> bool {
        self.0 & PHONE != 0
    }
    /// The column is named for something that is not personal data
    /// (`tracking_number`, `sku`, `order_no`) and for nothing that is.
    pub fn not_personal(self) -> bool {
        self.0 == NOT_PERSONAL_COLUMN
    }
    /// These hints without "not personal": what a name the client chose
    /// (an alias) may add, since it must not take masking away.
    pub fn personal_only(self) -> Hints {
        Hints(self.0 & !NOT_PERSONAL_COLUMN)
    }
}

/// Keywords, lowercase, each a word prefix.
const KEYWORDS: &[(&[u8], u8)] = &[
    (b"ssn", SSN),
    (b"social security", SSN),
    (b"social_security", SSN),
    (b"socsec", SSN),
    (b"cpf", CPF),
    (b"nhs", NHS),
    (b"aadhaar", AADHAAR),
    (b"aadhar", AADHAAR),
    (b"uidai", AADHAAR),
    (b"phone", PHONE),
    (b"tel", PHONE),
    (b"mobile", PHONE),
    (b"mob", PHONE),
    (b"cell", PHONE),
    (b"fax", PHONE),
    (b"call", PHONE),
    (b"sms", PHONE),
    (b"whatsapp", PHONE),
    (b"msisdn", PHONE),
    (b"celular", PHONE),
    (b"contact", PHONE),
];

/// How far before a number keywords are looked for, in bytes.
const WINDOW: usize = 32;

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn scan(text: &[u8]) -> Hints {
    let mut h = 0u8;
    for i in 0..text.len() {
        let c = text[i].to_ascii_lowercase();
        if !matches!(
            c,
            b's' | b'c' | b'n' | b'a' | b'u' | b'p' | b't' | b'm' | b'f' | b'w'
        ) {
            continue;
        }
        if i > 0 && text[i - 1].is_ascii_alphabetic() {
            continue;
        }
        for (kw, bit) in KEYWORDS {
            if kw[0] == c
                && text.len() - i >= kw.len()
                && text[i..i + kw.len()].eq_ignore_ascii_case(kw)
            {
                h |= bit;
            }
        }
    }
    Hints(h)
}

/// Hints from the text just before byte `at` of a value.
pub fn before(v: &[u8], at: usize) -> Hints {
    scan(&v[at.saturating_sub(WINDOW)..at])
}

/// Hints from a column name: its words (split at non-alphanumerics and
/// lower-to-upper case changes) are matched like keywords.
pub fn column(name: &str) -> Hints {
    // Long names are cut: the words that matter come early.
    let b = &name.as_bytes()[..name.len().min(64)];
    let mut spaced = [0u8; 128];
    let mut n = 0;
    for (i, &c) in b.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() && b[i - 1].is_ascii_lowercase() {
            spaced[n] = b' ';
            n += 1;
        }
        spaced[n] = if is_word(c) { c } else { b' ' };
        n += 1;
    }
    // `hotel` is one word, so `tel` inside it is not a keyword: the word
    // start rule in `scan` sees to that.
    let words = &spaced[..n];
    let mut h = scan(words);
    if h.0 == 0
        && words
            .split(|&b| b == b' ')
            .any(|w| NOT_PERSONAL.iter().any(|k| w.eq_ignore_ascii_case(k)))
    {
        h.0 = NOT_PERSONAL_COLUMN;
    }
    h
}

/// Words that, right before a number, say it is not about a person: a
/// tracking number, a barcode, an order or a version. They overrule
/// shapes that other numbers share (12 digits in fours, 3-3-4, a dotted
/// quad), not the distinctive ones (`123-45-6789`, `529.982.247-25`). Only the word just
/// before the number counts (skipping `#`, `:`, `no.`, `number`), so
/// "order paid with card 4242 ..." is still a card.
const NOT_PERSONAL: &[&[u8]] = &[
    b"tracking",
    b"awb",
    b"fedex",
    b"ups",
    b"usps",
    b"dhl",
    b"shipment",
    b"parcel",
    b"order",
    b"invoice",
    b"inv",
    b"po",
    b"ean",
    b"gtin",
    b"upc",
    b"isbn",
    b"barcode",
    b"sku",
    b"serial",
    b"version",
    b"ver",
    b"build",
    b"rv",
];
#[cfg(test)]
const FILLER: &[&[u8]] = &[b"no", b"nr", b"num", b"number", b"id"];

/// A lowercase word of one to eight letters as a number, its last
/// letter the low byte (as `not_personal` reads the bytes before a
/// number): letters are not zero, so no two words share a number.
const fn word(w: &[u8]) -> u64 {
    let mut x = 0;
    let mut k = 0;
    while k < w.len() {
        x = x << 8 | w[k] as u64;
        k += 1;
    }
    x
}

/// The words of `NOT_PERSONAL` and the fillers, as `word` numbers, to
/// match on: a few compares in a tree instead of a slice compare per
/// entry (the tests check them against the lists).
macro_rules! words {
    ($($name:ident = $w:literal),* $(,)?) => {
        $(const $name: u64 = word($w);)*
    };
}
words! {
    TRACKING = b"tracking", AWB = b"awb", FEDEX = b"fedex", UPS = b"ups", USPS = b"usps",
    DHL = b"dhl", SHIPMENT = b"shipment", PARCEL = b"parcel", ORDER = b"order",
    INVOICE = b"invoice", INV = b"inv", PO = b"po", EAN = b"ean", GTIN = b"gtin", UPC = b"upc",
    ISBN = b"isbn", BARCODE = b"barcode", SKU = b"sku", SERIAL = b"serial",
    VERSION = b"version", VER = b"ver", BUILD = b"build", RV = b"rv",
    NO = b"no", NR = b"nr", NUM = b"num", NUMBER = b"number", ID = b"id",
}

/// What a word (as a `word` number) before a number says about it.
#[derive(Debug, PartialEq, Eq)]
enum Said {
    NotPersonal,
    /// `no`, `nr`, `num`, `number`, `id`: look at the word before.
    Filler,
    Nothing,
}

fn said(w: u64) -> Said {
    match w {
        TRACKING | AWB | FEDEX | UPS | USPS | DHL | SHIPMENT | PARCEL | ORDER | INVOICE | INV
        | PO | EAN | GTIN | UPC | ISBN | BARCODE | SKU | SERIAL | VERSION | VER | BUILD | RV => {
            Said::NotPersonal
        }
        NO | NR | NUM | NUMBER | ID => Said::Filler,
        _ => Said::Nothing,
    }
}

#[cfg(test)]
fn is_not_personal_word(w: &[u8]) -> bool {
    w.len() <= 8 && said(word(w)) == Said::NotPersonal
}

/// Whether the word before byte `at` marks the number there as not
/// personal data.
pub fn not_personal(v: &[u8], at: usize) -> bool {
    let mut e = at;
    for _ in 0..2 {
        // Skip separators: spaces, `#`, `:`, `.`, `(`, `=` (at most four).
        // The commonest, one space after the word (`tracking 9400`, `INV
        // 2024...`), is settled by two byte tests instead of the loop's.
        if e >= 2 && v[e - 1] == b' ' && v[e - 2].is_ascii_alphabetic() {
            e -= 1;
        } else {
            let mut skipped = 0;
            while skipped < 4 && e > 0 && !v[e - 1].is_ascii_alphanumeric() {
                e -= 1;
                skipped += 1;
            }
        }
        // The letters before `e`, eight bytes at once: no listed word is
        // longer, and a longer one has a letter before these eight, which
        // refuses it like any word glued to a letter or digit.
        let x = eight_before(v, e);
        let n = ((!letters(x) & HIGH).trailing_zeros() / 8) as usize;
        let s = e - n;
        if n == 0 || (s > 0 && v[s - 1].is_ascii_alphanumeric()) {
            return false;
        }
        // `| 0x20` lowercases a letter; the mask keeps the word's `n`.
        let w = (x | splat(0x20)) & (u64::MAX >> (64 - 8 * n));
        match said(w) {
            Said::NotPersonal => return true,
            Said::Filler => e = s,
            Said::Nothing => return false,
        }
    }
    false
}

/// `v[e - 8..e]` as a big-endian number, so that `v[e - 1]` is its low
/// byte; bytes before the start of `v` are zeros.
fn eight_before(v: &[u8], e: usize) -> u64 {
    match (v[..e].last_chunk::<8>(), v.first_chunk::<8>()) {
        (Some(c), _) => u64::from_be_bytes(*c),
        // Fewer than eight before `e` (`INV 2024...`): the value's first
        // eight, shifted so that `v[e - 1]` comes last.
        (None, Some(c)) if e > 0 => u64::from_be_bytes(*c) >> (8 * (8 - e)),
        (None, _) => v[..e].iter().fold(0, |a, &b| a << 8 | u64::from(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_word_prefixes() {
        assert!(before(b"SSN: ", 5).ssn());
        assert!(before(b"Social Security # ", 18).ssn());
        assert!(before(b"call me on ", 11).phone());
        assert!(before(b"Telephone ", 10).phone());
        assert!(!before(b"hotel ", 6).phone());
        assert!(!before(b"recall ", 7).phone());
        assert!(!before(b"classname ", 10).ssn());
        assert!(column("customer_ssn").ssn());
        assert!(column("phoneNumber").phone());
        assert!(column("CPF").cpf());
        assert!(column("nhs_number").nhs());
        assert!(column("aadhaar_no").aadhaar());
        assert!(!column("hotel_id").phone());
        assert!(!column("order_id").phone());
        assert!(column("tracking_number").not_personal());
        assert!(column("SKU").not_personal());
        assert!(!column("order_phone").not_personal());
        assert!(!column("notes").not_personal());
        assert!(not_personal(b"tracking 1", 9));
        assert!(not_personal(b"Tracking number: 1", 17));
        assert!(not_personal(b"EAN 1", 4));
        assert!(not_personal(b"rv:1", 3));
        assert!(not_personal(b"Order #1", 7));
        assert!(!not_personal(b"order paid with card 1", 21));
        assert!(!not_personal(b"1", 0));
        assert!(!not_personal(b"x-ray 1", 6));
    }

    #[test]
    fn letters_agree_with_a_byte_test() {
        for b in 0..=255u8 {
            let x = u64::from_le_bytes([b'1', b'a', b, b'Z', b' ', b, b'z', b'@']);
            let want = [
                false,
                true,
                b.is_ascii_alphabetic(),
                true,
                false,
                b.is_ascii_alphabetic(),
                true,
                false,
            ];
            let got = letters(x).to_le_bytes().map(|m| m == 0x80);
            assert_eq!(got, want, "{b:#x}");
        }
        for v in [&b"ab order"[..], b"ab", b"INV 20240315-12345"] {
            for e in 0..=v.len() {
                let mut want = [0u8; 8];
                let k = e.min(8);
                want[8 - k..].copy_from_slice(&v[e - k..e]);
                assert_eq!(eight_before(v, e), u64::from_be_bytes(want));
            }
        }
        assert_eq!(
            eight_before(b"xx tracking", 11),
            u64::from_be_bytes(*b"tracking")
        );
    }

    #[test]
    fn word_matches_agree_with_the_lists() {
        for w in NOT_PERSONAL {
            assert!(is_not_personal_word(w), "{w:?}");
            let mut v = w.to_ascii_uppercase();
            v.extend_from_slice(b" 1");
            assert!(not_personal(&v, v.len() - 1), "{w:?}");
        }
        for f in FILLER {
            assert!(!is_not_personal_word(f));
            let mut v = b"order ".to_vec();
            v.extend_from_slice(f);
            v.extend_from_slice(b" 1");
            assert!(not_personal(&v, v.len() - 1), "{f:?}");
        }
        // Every word of up to four letters, and each listed word with a
        // letter more or less, is matched exactly when listed.
        let abc = b"abcdefghijklmnopqrstuvwxyz";
        for n in 1..=4u32 {
            for k in 0..26usize.pow(n) {
                let t: Vec<u8> = (0..n).map(|p| abc[k / 26usize.pow(p) % 26]).collect();
                assert_eq!(is_not_personal_word(&t), NOT_PERSONAL.contains(&&t[..]));
                assert_eq!(said(word(&t)) == Said::Filler, FILLER.contains(&&t[..]));
            }
        }
        for w in NOT_PERSONAL {
            assert!(!is_not_personal_word(&w[1..]) || NOT_PERSONAL.contains(&&w[1..]));
            assert!(!is_not_personal_word(&[w, &b"s"[..]].concat()));
        }
    }
}

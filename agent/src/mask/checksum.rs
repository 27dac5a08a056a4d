//! Check-digit algorithms and number-range tables behind the checksum-backed
//! detectors. Every function takes ASCII digits (`b'0'..=b'9'`) already
//! stripped of separators.

/// Luhn (ISO/IEC 7812-1), used by payment cards.
pub fn luhn(digits: &[u8]) -> bool {
    // Two digits a step, the first of each pair doubled (after a lone
    // first digit when the count is odd): no parity test per digit.
    let (head, pairs) = digits.split_at(digits.len() % 2);
    let mut sum: u32 = head.iter().map(|&d| u32::from(d - b'0')).sum();
    for p in pairs.chunks_exact(2) {
        let v = 2 * u32::from(p[0] - b'0');
        sum += if v > 9 { v - 9 } else { v };
        sum += u32::from(p[1] - b'0');
    }
    sum % 10 == 0
}

/// Whether a card number of this length starts with an issuer
/// identification number that card networks use for that length.
pub fn card_iin(d: &[u8]) -> bool {
    let len = d.len();
    let p = |n: usize| -> u32 {
        d[..n]
            .iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'))
    };
    if !(12..=19).contains(&len) {
        return false;
    }
    let (p1, p2, p3, p4) = (p(1), p(2), p(3), p(4));
    match p1 {
        // Visa.
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard 51-55; Maestro 50xx, 56-58.
        5 => {
            (51..=55).contains(&p2) && len == 16
                || matches!(p4, 5018 | 5020 | 5038 | 5893)
                || (56..=58).contains(&p2)
        }
        // Mastercard 2221-2720.
        2 => (2221..=2720).contains(&p4) && len == 16 || p4 == 2131 && len == 15,
        // Amex 34, 37; Diners 300-305, 3095, 36, 38, 39; JCB 3528-3589,
        // taken as all of 35 (generators and test suites use 3500-3527 too,
        // and nothing else is issued there).
        3 => {
            matches!(p2, 34 | 37) && len == 15
                || ((300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39))
                    && (14..=19).contains(&len)
                || p2 == 35 && len >= 16
        }
        // Discover 6011, 644-649, 65; UnionPay 62; Maestro 6304, 6390,
        // 6759, 6761-6763.
        6 => {
            (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || p2 == 62) && len >= 16
                || matches!(p4, 6304 | 6390 | 6759 | 6761 | 6762 | 6763)
        }
        // JCB's old 15-digit 1800 range.
        1 => p4 == 1800 && len == 15,
        _ => false,
    }
}

/// US SSN: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub fn ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = &d[..3];
    area != b"000" && area != b"666" && area[0] != b'9' && &d[3..5] != b"00" && &d[5..] != b"0000"
}

/// Brazil CPF: 11 digits, two mod-11 check digits, not all the same digit.
pub fn cpf(d: &[u8]) -> bool {
    if d.len() != 11 || d.iter().all(|&b| b == d[0]) {
        return false;
    }
    let check = |n: usize| -> u8 {
        let sum: u32 = d[..n]
            .iter()
            .enumerate()
            .map(|(i, &b)| u32::from(b - b'0') * (n as u32 + 1 - i as u32))
            .sum();
        let r = (sum * 10) % 11;
        if r == 10 { 0 } else { r as u8 }
    };
    check(9) == d[9] - b'0' && check(10) == d[10] - b'0'
}

/// UK NHS number: 10 digits, mod 11 with weights 10..2, in a range the
/// NHS allocates (320-399 Northern Ireland, 400-499 and 600-708 England
/// and Wales). Scotland's date-based CHI numbers are not included.
pub fn nhs(d: &[u8]) -> bool {
    if d.len() != 10 {
        return false;
    }
    let head = u32::from(d[0] - b'0') * 100 + u32::from(d[1] - b'0') * 10 + u32::from(d[2] - b'0');
    if !((320..=399).contains(&head) || (400..=499).contains(&head) || (600..=708).contains(&head))
    {
        return false;
    }
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, &b)| u32::from(b - b'0') * (10 - i as u32))
        .sum();
    let check = 11 - sum % 11;
    match check {
        11 => d[9] == b'0',
        10 => false,
        c => u32::from(d[9] - b'0') == c,
    }
}

const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 8, 7, 6, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Verhoeff check over digits whose last digit is the check digit.
pub fn verhoeff(d: &[u8]) -> bool {
    let mut c = 0u8;
    for (i, &b) in d.iter().rev().enumerate() {
        c = VERHOEFF_D[usize::from(c)][usize::from(VERHOEFF_P[i % 8][usize::from(b - b'0')])];
    }
    c == 0
}

/// India Aadhaar: 12 digits, first 2-9, Verhoeff.
pub fn aadhaar(d: &[u8]) -> bool {
    d.len() == 12 && d[0] >= b'2' && verhoeff(d)
}

const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// Spain DNI (8 digits) or NIE (`X`/`Y`/`Z` read as 0/1/2, then 7
/// digits): the check letter, compared without regard to case.
pub fn dni_letter_ok(prefix: Option<u8>, digits: &[u8], letter: u8) -> bool {
    let mut n: u32 = match prefix {
        None => 0,
        Some(b'X' | b'x') => 0,
        Some(b'Y' | b'y') => 1,
        Some(b'Z' | b'z') => 2,
        Some(_) => return false,
    };
    for &b in digits {
        n = n * 10 + u32::from(b - b'0');
    }
    DNI_LETTERS[(n % 23) as usize] == letter.to_ascii_uppercase()
}

/// IBAN length by country (SWIFT IBAN registry).
pub fn iban_length(cc: [u8; 2]) -> Option<usize> {
    let n = match &cc {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BR" => 29,
        b"BY" => 28,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IQ" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LC" => 32,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"LY" => 25,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NL" => 18,
        b"NO" => 15,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"SA" => 24,
        b"SC" => 31,
        b"SD" => 18,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"ST" => 25,
        b"SV" => 28,
        b"TL" => 23,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        _ => return None,
    };
    Some(n)
}

/// IBAN mod-97 over the compact form (uppercase letters and digits).
pub fn iban_mod97(compact: &[u8]) -> bool {
    if compact.len() < 5 {
        return false;
    }
    let mut r: u32 = 0;
    let (head, tail) = compact.split_at(4);
    for &b in tail.iter().chain(head) {
        r = match b {
            b'0'..=b'9' => (r * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (r * 100 + u32::from(b - b'A') + 10) % 97,
            _ => return false,
        };
    }
    r == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_agrees_with_the_digit_by_digit_form() {
        let by_digit = |digits: &[u8]| {
            let mut sum = 0u32;
            for (i, &d) in digits.iter().rev().enumerate() {
                let mut v = u32::from(d - b'0');
                if i % 2 == 1 {
                    v *= 2;
                    if v > 9 {
                        v -= 9;
                    }
                }
                sum += v;
            }
            sum % 10 == 0
        };
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 20) as usize;
            let d: Vec<u8> = (0..n)
                .map(|k| b'0' + (x >> ((3 * k) % 61)) as u8 % 10)
                .collect();
            assert_eq!(luhn(&d), by_digit(&d), "{:?}", String::from_utf8_lossy(&d));
        }
    }

    #[test]
    fn known_values() {
        assert!(luhn(b"4242424242424242"));
        assert!(!luhn(b"4242424242424241"));
        assert!(card_iin(b"4242424242424242"));
        assert!(card_iin(b"378282246310005"));
        assert!(card_iin(b"5555555555554444"));
        assert!(card_iin(b"2223003122003222"));
        assert!(card_iin(b"6011111111111117"));
        assert!(card_iin(b"3530111333300000"));
        assert!(card_iin(b"30569309025904"));
        assert!(!card_iin(b"9781234567897"));
        assert!(!card_iin(b"7000000000000000"));
        assert!(ssn(b"123456789"));
        assert!(!ssn(b"666456789") && !ssn(b"900456789") && !ssn(b"000456789"));
        assert!(!ssn(b"123006789") && !ssn(b"123450000"));
        assert!(cpf(b"52998224725"));
        assert!(!cpf(b"52998224726"));
        assert!(!cpf(b"11111111111"));
        assert!(nhs(b"4010232137"));
        assert!(!nhs(b"4010232138"));
        assert!(verhoeff(b"2363"));
        assert!(!verhoeff(b"2364"));
        assert!(aadhaar(b"234123412346"));
        assert!(!aadhaar(b"234123412347"));
        assert!(dni_letter_ok(None, b"12345678", b'Z'));
        assert!(!dni_letter_ok(None, b"12345678", b'A'));
        assert!(dni_letter_ok(Some(b'X'), b"1234567", b'L'));
        assert!(iban_mod97(b"GB82WEST12345698765432"));
        assert!(iban_mod97(b"DE89370400440532013000"));
        assert!(!iban_mod97(b"GB82WEST12345698765433"));
        assert_eq!(iban_length(*b"GB"), Some(22));
    }
}

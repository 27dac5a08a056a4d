//! What masking needs to know of a column's type to read its values in
//! binary format.
//!
//! In text format every value is text and is scanned as such. In binary
//! format (tokio-postgres and other drivers ask for it) a value is laid out
//! by its type's send function, and a type the agent cannot read cannot be
//! scanned: such values are withheld (sent as NULL, and the audit event
//! names the column) rather than passed unmasked. The types whose OIDs are
//! fixed in PostgreSQL's catalog are known here; the others (enums,
//! extension types such as `citext`, arrays of domains) are read from
//! `pg_type` when a masked session logs in ([`QUERY`]). (A domain column
//! itself is described with its base type's OID.) Types created later in
//! the session are withheld until the next session.

use std::collections::HashMap;

/// A numeric type whose binary value is rendered as decimal text and
/// scanned (a card number stored as `bigint` or `numeric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    I2,
    I4,
    I8,
    F4,
    F8,
    Numeric,
}

/// How a type's binary values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The bytes are the text (`text`, `varchar`, `citext`, enums, ...).
    Text,
    /// A version byte, then the text.
    Jsonb,
    /// Rendered as decimal text and scanned; withheld if anything matches.
    Number(Num),
    /// `inet`/`cidr`: withheld when the `ip` detector is on.
    Address,
    /// Holds no text a detector looks for (dates, booleans, UUIDs, ...).
    Opaque,
    /// An array (`array_send` layout) of the element type with this OID.
    Array(u32),
}

/// Asks for the types whose OIDs are not fixed: their OID, send function
/// and element type. The send function is named by the built-in C
/// function it runs (`prosrc` of a `LANGUAGE internal` function, which
/// only a superuser can create: `citext`'s `citextsend` runs `textsend`);
/// a type sent by any other function is not trusted to lay out what its
/// name suggests and stays unknown.
pub const QUERY: &str = "SELECT t.oid, CASE WHEN l.lanname = 'internal' THEN p.prosrc ELSE '' END, t.typelem FROM pg_catalog.pg_type t JOIN pg_catalog.pg_proc p ON p.oid = t.typsend JOIN pg_catalog.pg_language l ON l.oid = p.prolang WHERE t.oid >= 10000 AND t.typtype IN ('b', 'd', 'e')";

/// The real name of a result column: its table (`schema.table`) and
/// column, from `pg_attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealColumn {
    /// `None` for a view, materialized view, partition or inheritance
    /// child: RowDescription names the relation the query read, not the
    /// table the data lives in, so a rule naming that table must still
    /// match (by the column alone).
    pub table: Option<String>,
    pub name: String,
}

/// What a masked session looked up when it logged in: its types, and the
/// real names of the columns a column rule may match (by table OID and
/// column number, as RowDescription gives them), so that an alias does
/// not take a column out of its rule and `users.email` applies to the
/// `users` table only.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    more: HashMap<u32, Class>,
    columns: HashMap<(u32, i16), RealColumn>,
}

/// Most column names taken from one session's lookup.
pub const MAX_COLUMNS: usize = 100_000;

/// The query for the columns whose own name may match one of `globs`
/// (the column part of each column rule), or `None` when no glob can be
/// put in it (a rule matching every column needs no lookup: the alias
/// is covered by the same rule).
pub fn columns_query(globs: &[&str]) -> Option<String> {
    let mut likes = Vec::new();
    for g in globs {
        // `$` could end the dollar quote: such a rule goes without the
        // lookup (matched by the names results show).
        if g.chars().all(|c| c == '*') || g.contains('$') {
            return None;
        }
        let mut like = String::with_capacity(g.len() + 4);
        for c in g.chars() {
            match c {
                '*' => like.push('%'),
                '?' => like.push('_'),
                '\\' | '%' | '_' => {
                    like.push('\\');
                    like.push(c);
                }
                c => like.push(c),
            }
        }
        likes.push(format!(
            "a.attname ILIKE $hoop${like}$hoop$ ESCAPE $hoop$\\$hoop$"
        ));
    }
    if likes.is_empty() {
        return None;
    }
    Some(format!(
        "SELECT a.attrelid, a.attnum, \
         CASE WHEN c.relkind IN ('r', 'p', 'f') AND NOT c.relispartition \
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) \
         THEN n.nspname || '.' || c.relname END, a.attname \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'm', 'p', 'f') \
         AND ({}) LIMIT {MAX_COLUMNS}",
        likes.join(" OR ")
    ))
}

impl Catalog {
    /// Adds one row of [`columns_query`]'s answer: `table` is
    /// `schema.table`, or `None` for a relation that is not where its data
    /// lives (see [`RealColumn::table`]).
    pub fn add_column(&mut self, table_oid: u32, attnum: i16, table: Option<&str>, name: &str) {
        self.columns.insert(
            (table_oid, attnum),
            RealColumn {
                table: table.map(str::to_string),
                name: name.to_string(),
            },
        );
    }

    /// The real name of column `attnum` of table `table_oid`, if it was
    /// looked up.
    pub fn column(&self, table_oid: u32, attnum: i16) -> Option<&RealColumn> {
        if table_oid == 0 || attnum <= 0 {
            return None;
        }
        self.columns.get(&(table_oid, attnum))
    }

    /// Adds one row of [`QUERY`]'s answer; a send function this module
    /// does not know leaves the type unknown (withheld).
    pub fn add(&mut self, oid: u32, send: &str, elem: u32) {
        let class = match send {
            "textsend" | "varcharsend" | "bpcharsend" | "namesend" | "citextsend" | "enum_send"
            | "json_send" | "xml_send" | "unknownsend" | "cstring_send" => Class::Text,
            "jsonb_send" => Class::Jsonb,
            "int2send" => Class::Number(Num::I2),
            "int4send" => Class::Number(Num::I4),
            "int8send" => Class::Number(Num::I8),
            "float4send" => Class::Number(Num::F4),
            "float8send" => Class::Number(Num::F8),
            "numeric_send" => Class::Number(Num::Numeric),
            "inet_send" | "cidr_send" => Class::Address,
            "array_send" if elem != 0 => Class::Array(elem),
            "boolsend" | "byteasend" | "charsend" | "date_send" | "time_send" | "timetz_send"
            | "timestamp_send" | "timestamptz_send" | "interval_send" | "uuid_send" | "oidsend"
            | "cash_send" | "bit_send" | "varbit_send" | "macaddr_send" | "macaddr8_send"
            | "pg_lsn_send" | "xidsend" | "xid8send" => Class::Opaque,
            _ => return,
        };
        self.more.insert(oid, class);
    }

    /// How values of type `oid` are read in binary; `None`: not at all.
    pub fn class(&self, oid: u32) -> Option<Class> {
        builtin(oid).or_else(|| self.more.get(&oid).copied())
    }
}

/// The types with fixed OIDs (`pg_type.dat`), by their send functions.
fn builtin(oid: u32) -> Option<Class> {
    Some(match oid {
        // text, name, unknown, varchar, bpchar, json, xml, refcursor, cstring
        25 | 19 | 705 | 1043 | 1042 | 114 | 142 | 1790 | 2275 => Class::Text,
        3802 => Class::Jsonb,
        21 => Class::Number(Num::I2),
        23 => Class::Number(Num::I4),
        20 => Class::Number(Num::I8),
        700 => Class::Number(Num::F4),
        701 => Class::Number(Num::F8),
        1700 => Class::Number(Num::Numeric),
        869 | 650 => Class::Address,
        // bool, bytea, "char", oid, tid, xid, cid, regproc and friends,
        // int2vector, oidvector, geometry, money, macaddr(8), date and
        // time types, bit strings, uuid, void, pg_lsn, txid_snapshot,
        // numeric and time ranges and multiranges, xid8, pg_snapshot.
        16
        | 17
        | 18
        | 26
        | 27
        | 28
        | 29
        | 24
        | 2202..=2206
        | 3734
        | 3769
        | 4089
        | 4096
        | 4191
        | 22
        | 30
        | 600..=604
        | 628
        | 718
        | 790
        | 829
        | 774
        | 1082
        | 1083
        | 1114
        | 1184
        | 1186
        | 1266
        | 1560
        | 1562
        | 2950
        | 2278
        | 3220
        | 2970
        | 3904
        | 3906
        | 3908
        | 3910
        | 3912
        | 3926
        | 4451
        | 4532..=4536
        | 5069
        | 5038 => Class::Opaque,
        // Arrays of the above.
        1009 => Class::Array(25),
        1003 => Class::Array(19),
        1015 => Class::Array(1043),
        1014 => Class::Array(1042),
        199 => Class::Array(114),
        143 => Class::Array(142),
        2201 => Class::Array(1790),
        1263 => Class::Array(2275),
        3807 => Class::Array(3802),
        1005 => Class::Array(21),
        1007 => Class::Array(23),
        1016 => Class::Array(20),
        1021 => Class::Array(700),
        1022 => Class::Array(701),
        1231 => Class::Array(1700),
        1041 => Class::Array(869),
        651 => Class::Array(650),
        1000 => Class::Array(16),
        1001 => Class::Array(17),
        1002 => Class::Array(18),
        1028 => Class::Array(26),
        1182 => Class::Array(1082),
        1183 => Class::Array(1083),
        1115 => Class::Array(1114),
        1185 => Class::Array(1184),
        1187 => Class::Array(1186),
        1270 => Class::Array(1266),
        2951 => Class::Array(2950),
        791 => Class::Array(790),
        _ => return None,
    })
}

/// Longest decimal rendering scanned; a longer `numeric` is withheld.
const MAX_DIGITS: usize = 1000;

/// Renders a binary numeric value as the decimal text its text format
/// would show, into `out` (cleared first). `Err` if the bytes are not a
/// value of that type; `Ok(false)` for values with no digits (NaN,
/// infinities).
pub fn render(num: Num, v: &[u8], out: &mut String) -> Result<bool, ()> {
    use std::fmt::Write;
    out.clear();
    match num {
        Num::I2 => {
            let b: [u8; 2] = v.try_into().map_err(|_| ())?;
            let _ = write!(out, "{}", i16::from_be_bytes(b));
        }
        Num::I4 => {
            let b: [u8; 4] = v.try_into().map_err(|_| ())?;
            let _ = write!(out, "{}", i32::from_be_bytes(b));
        }
        Num::I8 => {
            let b: [u8; 8] = v.try_into().map_err(|_| ())?;
            let _ = write!(out, "{}", i64::from_be_bytes(b));
        }
        Num::F4 => {
            let b: [u8; 4] = v.try_into().map_err(|_| ())?;
            let f = f32::from_be_bytes(b);
            if !f.is_finite() {
                return Ok(false);
            }
            let _ = write!(out, "{f}");
        }
        Num::F8 => {
            let b: [u8; 8] = v.try_into().map_err(|_| ())?;
            let f = f64::from_be_bytes(b);
            if !f.is_finite() {
                return Ok(false);
            }
            let _ = write!(out, "{f}");
        }
        Num::Numeric => return numeric(v, out),
    }
    Ok(true)
}

/// `numeric_send`: digit count, weight (of the first base-10000 digit),
/// sign, display scale, then the base-10000 digits.
fn numeric(v: &[u8], out: &mut String) -> Result<bool, ()> {
    use std::fmt::Write;
    let word = |at: usize| -> Result<u16, ()> {
        v.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    if v.len() != 8 + 2 * ndigits || ndigits > i16::MAX as usize || dscale > 0x3FFF {
        return Err(());
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Result<_, _>>()?;
    if digits.iter().any(|d| *d > 9999) {
        return Err(());
    }
    match sign {
        0x0000 => {}
        0x4000 => out.push('-'),
        0xC000 | 0xD000 | 0xF000 => return Ok(false),
        _ => return Err(()),
    }
    let int_groups = usize::try_from(weight + 1).unwrap_or(0);
    if int_groups * 4 + dscale > MAX_DIGITS {
        return Err(());
    }
    // Digit `i` stands for 10000^(weight - i); digits past the end are 0.
    let at = |i: i32| -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    if int_groups == 0 {
        out.push('0');
    } else {
        let _ = write!(out, "{}", at(0));
        for i in 1..int_groups as i32 {
            let _ = write!(out, "{:04}", at(i));
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut left = dscale;
        let mut i = weight + 1;
        while left > 0 {
            let group = format!("{:04}", at(i));
            let take = left.min(4);
            out.push_str(&group[..take]);
            left -= take;
            i += 1;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary form of a numeric, as `numeric_send` lays it out.
    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(digits.len() as u16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    fn show(num: Num, v: &[u8]) -> Result<Option<String>, ()> {
        let mut s = String::new();
        render(num, v, &mut s).map(|some| some.then_some(s))
    }

    #[test]
    fn numerics_render_as_their_text_format() {
        // 4111111111111111 = 4111 1111 1111 1111 (weight 3).
        let card = numeric_bytes(3, 0, 0, &[4111, 1111, 1111, 1111]);
        assert_eq!(
            show(Num::Numeric, &card),
            Ok(Some("4111111111111111".into()))
        );
        // -12.50 with scale 2: digits 12, 5000; weight 0.
        let v = numeric_bytes(0, 0x4000, 2, &[12, 5000]);
        assert_eq!(show(Num::Numeric, &v), Ok(Some("-12.50".into())));
        // 0.0001234 (scale 7): weight -1, digits 1, 2340.
        let v = numeric_bytes(-1, 0, 7, &[1, 2340]);
        assert_eq!(show(Num::Numeric, &v), Ok(Some("0.0001234".into())));
        // 100000000 = 1 0000 0000: trailing zero groups are not sent.
        let v = numeric_bytes(2, 0, 0, &[1]);
        assert_eq!(show(Num::Numeric, &v), Ok(Some("100000000".into())));
        // Zero: no digits at all.
        let v = numeric_bytes(0, 0, 0, &[]);
        assert_eq!(show(Num::Numeric, &v), Ok(Some("0".into())));
        let nan = numeric_bytes(0, 0xC000, 0, &[]);
        assert_eq!(show(Num::Numeric, &nan), Ok(None));
        // Malformed: a digit over 9999, a length that does not match, a
        // bad sign, a value far too long to scan.
        assert!(show(Num::Numeric, &numeric_bytes(0, 0, 0, &[10000])).is_err());
        assert!(show(Num::Numeric, &card[..card.len() - 1]).is_err());
        assert!(show(Num::Numeric, &numeric_bytes(0, 0x1234, 0, &[1])).is_err());
        assert!(show(Num::Numeric, &numeric_bytes(i16::MAX, 0, 0, &[1])).is_err());
    }

    #[test]
    fn integers_and_floats_render() {
        assert_eq!(
            show(Num::I8, &4_111_111_111_111_111i64.to_be_bytes()),
            Ok(Some("4111111111111111".into()))
        );
        assert_eq!(show(Num::I4, &(-7i32).to_be_bytes()), Ok(Some("-7".into())));
        assert_eq!(show(Num::I2, &300i16.to_be_bytes()), Ok(Some("300".into())));
        assert_eq!(
            show(Num::F8, &4_155_551_234f64.to_be_bytes()),
            Ok(Some("4155551234".into()))
        );
        assert_eq!(show(Num::F8, &f64::NAN.to_be_bytes()), Ok(None));
        assert!(show(Num::I8, &[0; 4]).is_err());
    }

    #[test]
    fn types_from_the_catalog_are_classified_by_send_function() {
        let mut t = Catalog::default();
        t.add(16_500, "textsend", 0);
        t.add(16_501, "array_send", 16_500);
        t.add(16_502, "enum_send", 0);
        t.add(16_503, "hstore_send", 0);
        t.add(16_504, "", 0);
        assert_eq!(t.class(16_500), Some(Class::Text));
        assert_eq!(t.class(16_501), Some(Class::Array(16_500)));
        assert_eq!(t.class(16_502), Some(Class::Text));
        assert_eq!(t.class(16_503), None);
        assert_eq!(t.class(16_504), None);
        assert_eq!(t.class(2249), None, "record is not readable");
        assert_eq!(t.class(25), Some(Class::Text));
        assert_eq!(t.class(1231), Some(Class::Array(1700)));
    }

    #[test]
    fn column_lookups_ask_only_for_names_a_rule_may_match() {
        let q = columns_query(&["email", "*ssn*", "a_b%c?"]).unwrap();
        assert!(q.contains("a.attname ILIKE $hoop$email$hoop$"), "{q}");
        assert!(q.contains("$hoop$%ssn%$hoop$"), "{q}");
        assert!(q.contains("$hoop$a\\_b\\%c_$hoop$"), "{q}");
        // A rule that matches every column needs no lookup.
        assert_eq!(columns_query(&["email", "*"]), None);
        assert_eq!(columns_query(&[]), None);
        assert_eq!(columns_query(&["x$hoop$y"]), None);
        assert_eq!(columns_query(&["x$hoop"]), None);
        let mut c = Catalog::default();
        c.add_column(16_400, 3, Some("public.users"), "email");
        assert_eq!(
            c.column(16_400, 3),
            Some(&RealColumn {
                table: Some("public.users".into()),
                name: "email".into()
            })
        );
        assert_eq!(c.column(16_400, 4), None);
        assert_eq!(c.column(0, 3), None, "an expression has no table");
    }

    proptest::proptest! {
        #[test]
        fn hostile_numerics_never_panic(v in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut s = String::new();
            for n in [Num::I2, Num::I4, Num::I8, Num::F4, Num::F8, Num::Numeric] {
                let _ = render(n, &v, &mut s);
                proptest::prop_assert!(s.len() <= MAX_DIGITS + 2);
            }
        }
    }
}

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::mysql::column::*;
use crate::mysql::flags::*;
use crate::mysql::result::MAX_COLUMNS;

/// The column definitions MariaDB sent for the executed statement
/// `select ?, cast(? as char) as s, <datetime(6)> as dt, <date> as d,
/// <time> as t, 1.5 as dec1, cast(3 as unsigned) as u, cast(-2 as signed)
/// as i, cast(1.25 as double) as dbl, x'00ff' as bin, null as nul,
/// year(now()) as y, json_object('k','v') as j` (no extended type info).
const BINARY_COLUMNS: &[&str] = &[
    "1700000203646566000000013f000c3f0015000000088100000000",
    "17000003036465660000000173000c2d0014000000fd0000000000",
    "1800000403646566000000026474000c3f001a0000000c8000060000",
    "17000005036465660000000164000c3f000a0000000a8000000000",
    "17000006036465660000000174000c3f000a0000000b8000000000",
    "1a000007036465660000000464656331000c3f0004000000f68100010000",
    "17000008036465660000000175000c3f000100000003a100000000",
    "17000009036465660000000169000c3f0002000000038100000000",
    "1900000a036465660000000364626c000c3f00160000000580001f0000",
    "1900000b036465660000000362696e000c3f0002000000fda100000000",
    "1900000c03646566000000036e756c000c3f0000000000068000000000",
    "1700000d036465660000000179000c3f0004000000038000000000",
    "1700000e03646566000000016a000c2d0048000000fd0000270000",
];

/// The binary row that followed, then the OK (0xFE) that ended it.
const BINARY_ROW: &str = "5100000f0000102a000000000000000568656c6c6f0be80701020304050600000004e807010208010000000001020303312e3503000000feffffff000000000000f43f0200ffea0700000a7b226b223a202276227d";
const BINARY_END: &str = "07000010fe000002000000";

const CAPS: u64 = CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF;

fn binary_columns() -> Vec<ColumnDefinition> {
    BINARY_COLUMNS
        .iter()
        .map(|hex| ColumnDefinition::decode(&payload(hex), CAPS).unwrap())
        .collect()
}

#[test]
fn captured_column_definitions_decode_and_reencode() {
    let columns = binary_columns();
    let names: Vec<Cow<'_, str>> = columns.iter().map(ColumnDefinition::name_lossy).collect();
    assert_eq!(
        names,
        [
            "?", "s", "dt", "d", "t", "dec1", "u", "i", "dbl", "bin", "nul", "y", "j"
        ]
    );
    let s = &columns[1];
    assert_eq!(&s.catalog[..], b"def");
    assert_eq!(s.column_type, MYSQL_TYPE_VAR_STRING);
    assert_eq!(s.charset, UTF8MB4_GENERAL_CI);
    assert_eq!(charset_name(s.charset), Some("utf8mb4"));
    assert!(s.is_text_like() && !s.is_binary());
    assert!(columns[6].is_unsigned());
    assert_eq!(columns[2].decimals, 6);
    assert_eq!(type_name(columns[2].column_type), "DATETIME");
    assert!(columns[9].is_binary());
    for (c, hex) in columns.iter().zip(BINARY_COLUMNS) {
        let mut out = Vec::new();
        c.encode(CAPS, &mut out).unwrap();
        assert_eq!(out, &payload(hex)[..]);
    }
}

#[test]
fn captured_binary_row_decodes_reencodes_and_masks() {
    let types: Vec<u8> = binary_columns().iter().map(|c| c.column_type).collect();
    let p = packet(BINARY_ROW);
    assert_eq!(classify_row_packet(&p.payload), RowPacketKind::Row);
    let row = BinaryRow::decode(&p.payload, &types).unwrap();
    let values: Vec<Option<&[u8]>> = row.iter().collect();
    assert_eq!(
        values,
        [
            Some(&42u64.to_le_bytes()[..]),
            Some(b"hello"),
            Some(&[0xe8, 0x07, 1, 2, 3, 4, 5, 6, 0, 0, 0][..]),
            Some(&[0xe8, 0x07, 1, 2][..]),
            Some(&[1, 0, 0, 0, 0, 1, 2, 3][..]),
            Some(b"1.5"),
            Some(&3u32.to_le_bytes()[..]),
            Some(&(-2i32).to_le_bytes()[..]),
            Some(&1.25f64.to_le_bytes()[..]),
            Some(&[0x00, 0xff][..]),
            None,
            Some(&[0xea, 0x07, 0, 0][..]),
            Some(&br#"{"k": "v"}"#[..]),
        ]
    );
    // Values share the packet's memory.
    let hello = row.get_bytes(1).unwrap().unwrap();
    assert_eq!(
        hello.as_ptr(),
        p.payload[row.values[1].clone().unwrap()].as_ptr()
    );
    assert_eq!(row.get(10), Some(None));
    assert_eq!(row.get(13), None);

    let mut out = Vec::new();
    row.encode(&types, &mut out).unwrap();
    assert_eq!(out, &p.payload[..]);

    // A masker replaces a string value and rebuilds the row.
    let masked: Vec<Option<Cow<'_, [u8]>>> = row
        .iter()
        .enumerate()
        .map(|(i, v)| match (i, v) {
            (1, Some(_)) => Some(Cow::Owned(b"h***o masked".to_vec())),
            (_, v) => v.map(Cow::Borrowed),
        })
        .collect();
    let mut out = BytesMut::new();
    let next = write_packet(&mut out, p.seq, |o| encode_binary_row(&types, &masked, o)).unwrap();
    assert_eq!(next, p.next_seq());
    let again = split_packet(&mut out, MAX_PACKET_LEN).unwrap().unwrap();
    let back = BinaryRow::decode(&again.payload, &types).unwrap();
    assert_eq!(back.get(1), Some(Some(&b"h***o masked"[..])));
    assert_eq!(back.get(8), row.get(8));
    assert_eq!(again.payload.len(), p.payload.len() + 7);

    let end = payload(BINARY_END);
    assert_eq!(classify_row_packet(&end), RowPacketKind::End);
    let eof = EofPacket::decode_terminator(&end, CAPS).unwrap();
    assert_eq!(eof.status, SERVER_STATUS_AUTOCOMMIT);
}

#[test]
fn captured_text_result_set_walks_through() {
    let stream = unhex(MARIADB_TEXT_RESULT);
    let mut buf = BytesMut::from(&stream[..]);
    let caps = MARIADB_SESSION_CAPS;
    let mut next = || split_packet(&mut buf, MAX_PACKET_LEN).unwrap().unwrap();

    let QueryResponse::ResultSet(header) = QueryResponse::decode(&next().payload, caps).unwrap()
    else {
        panic!("not a result set")
    };
    assert_eq!(header.column_count, 3);
    assert_eq!(header.metadata_follows, Some(1));
    assert!(header.has_metadata());
    let mut columns = Vec::new();
    for _ in 0..header.column_count {
        let p = next();
        let c = ColumnDefinition::decode(&p.payload, caps).unwrap();
        assert_eq!(c.extended_metadata.as_deref(), Some(&b""[..]));
        let mut out = Vec::new();
        c.encode(caps, &mut out).unwrap();
        assert_eq!(out, &p.payload[..]);
        columns.push(c);
    }
    assert_eq!(columns[2].column_type, MYSQL_TYPE_VAR_STRING);
    assert_eq!(columns[2].decimals, 39);
    assert!(is_eof_packet(&next().payload));

    let p = next();
    assert_eq!(classify_row_packet(&p.payload), RowPacketKind::Row);
    let row = TextRow::decode(&p.payload, columns.len()).unwrap();
    let values: Vec<Option<&[u8]>> = row.iter().collect();
    assert_eq!(values, [Some(&b"1"[..]), None, Some(b"abc")]);
    let mut out = Vec::new();
    row.encode(&mut out).unwrap();
    assert_eq!(out, &p.payload[..]);

    let end = next();
    assert_eq!(classify_row_packet(&end.payload), RowPacketKind::End);
    let eof = EofPacket::decode_terminator(&end.payload, caps).unwrap();
    assert_eq!(eof.status & SERVER_MORE_RESULTS_EXISTS, 0);
}

#[test]
fn text_rows_round_trip_every_length_form() {
    let long = vec![b'x'; 70_000];
    let values: Vec<Option<&[u8]>> = vec![
        Some(b""),
        None,
        Some(&long[..250]),
        Some(&long[..251]),
        Some(&long),
    ];
    let mut out = Vec::new();
    encode_text_row(&values, &mut out).unwrap();
    let row = TextRow::decode(&Bytes::from(out), values.len()).unwrap();
    assert_eq!(row.iter().collect::<Vec<_>>(), values);
    assert_eq!(row.len(), 5);
}

#[test]
fn hostile_text_rows_are_errors_before_allocating() {
    // More columns than bytes: refused before the value list is reserved.
    assert_invalid(TextRow::decode(&Bytes::from_static(b"\x01a"), usize::MAX));
    assert_invalid(TextRow::decode(&Bytes::from_static(b"\x01a"), 3));
    // A value announcing 2^64 - 1 bytes.
    assert_invalid(TextRow::decode(
        &Bytes::from_static(b"\xfe\xff\xff\xff\xff\xff\xff\xff\xffx"),
        1,
    ));
    // Truncated, too many values, and 0xFF, which no value starts with.
    assert_invalid(TextRow::decode(&Bytes::from_static(b"\x05abc"), 1));
    assert_invalid(TextRow::decode(&Bytes::from_static(b"\x01a\x01b"), 1));
    assert_invalid(TextRow::decode(&Bytes::from_static(b"\xff"), 1));
}

#[test]
fn hostile_binary_rows_are_errors() {
    let types = [MYSQL_TYPE_LONG, MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_DATETIME];
    let mut good = Vec::new();
    encode_binary_row(
        &types,
        &[
            Some(&[1, 0, 0, 0][..]),
            Some(b"abc"),
            Some(&[0xe8, 0x07, 1, 2][..]),
        ],
        &mut good,
    )
    .unwrap();
    assert_eq!(good, b"\x00\x00\x01\x00\x00\x00\x03abc\x04\xe8\x07\x01\x02");
    for cut in 0..good.len() {
        assert!(BinaryRow::decode(&Bytes::copy_from_slice(&good[..cut]), &types).is_err());
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_invalid(BinaryRow::decode(&Bytes::from(trailing), &types));
    // An unknown type cannot be skipped, unless its value is NULL.
    assert_invalid(BinaryRow::decode(&Bytes::from(good.clone()), &[0x42, 0, 0]));
    let null_of_unknown = BinaryRow::decode(&Bytes::from_static(b"\x00\x04"), &[0x42]).unwrap();
    assert_eq!(null_of_unknown.get(0), Some(None));
    let mut out = Vec::new();
    null_of_unknown.encode(&[0x42], &mut out).unwrap();
    assert_eq!(out, b"\x00\x04");
    // A row that is not one.
    assert!(matches!(
        BinaryRow::decode(&Bytes::from_static(b"\x01\x31"), &[MYSQL_TYPE_LONG]),
        Err(DecodeError::Unexpected { header: 1, .. })
    ));
    // More columns than the bitmap has bytes for.
    assert_invalid(BinaryRow::decode(
        &Bytes::from(good),
        &[MYSQL_TYPE_NULL; 200],
    ));
    // A string announcing more than the row holds.
    assert_invalid(BinaryRow::decode(
        &Bytes::from_static(b"\x00\x00\xfd\xff\xff\xff"),
        &[MYSQL_TYPE_BLOB],
    ));
}

#[test]
fn binary_rows_with_nulls_and_every_layout_round_trip() {
    let types = [
        MYSQL_TYPE_NULL,
        MYSQL_TYPE_TINY,
        MYSQL_TYPE_SHORT,
        MYSQL_TYPE_YEAR,
        MYSQL_TYPE_INT24,
        MYSQL_TYPE_FLOAT,
        MYSQL_TYPE_LONGLONG,
        MYSQL_TYPE_TIME,
        MYSQL_TYPE_TIMESTAMP,
        MYSQL_TYPE_NEWDECIMAL,
        MYSQL_TYPE_BLOB,
        MYSQL_TYPE_JSON,
        MYSQL_TYPE_STRING,
        MYSQL_TYPE_GEOMETRY,
    ];
    let long = vec![b'z'; 300];
    let values: Vec<Option<&[u8]>> = vec![
        None,
        Some(&[1]),
        Some(&[1, 2]),
        None,
        Some(&[1, 2, 3, 4]),
        Some(&[0, 0, 0x80, 0x3f]),
        None,
        Some(&[]),
        Some(&[0xe8, 0x07, 1, 2, 3, 4, 5]),
        Some(b"-12.50"),
        Some(&long),
        Some(b"{}"),
        None,
        Some(b""),
    ];
    let mut out = BytesMut::new();
    encode_binary_row(&types, &values, &mut out).unwrap();
    // 14 columns + 2 offset bits: a 2-byte bitmap with bits 2, 5, 8, 14.
    assert_eq!(&out[1..3], &[0b0010_0100, 0b0100_0001]);
    let row = BinaryRow::decode(&out.freeze(), &types).unwrap();
    assert_eq!(row.iter().collect::<Vec<_>>(), values);
}

#[test]
fn binary_row_encoder_refuses_what_it_cannot_frame() {
    let mut out = Vec::new();
    assert!(encode_binary_row(&[MYSQL_TYPE_LONG], &[Some(&[1, 2][..])], &mut out).is_err());
    assert!(encode_binary_row(&[MYSQL_TYPE_DATE], &[Some(&[0; 256][..])], &mut out).is_err());
    assert!(encode_binary_row(&[0x42], &[Some(b"x")], &mut out).is_err());
    assert!(encode_binary_row(&[MYSQL_TYPE_LONG], &[None::<&[u8]>, None], &mut out).is_err());
    assert!(out.is_empty(), "nothing written on error");
}

#[test]
fn text_like_types() {
    for t in [
        MYSQL_TYPE_VARCHAR,
        MYSQL_TYPE_VAR_STRING,
        MYSQL_TYPE_STRING,
        MYSQL_TYPE_BLOB,
        MYSQL_TYPE_TINY_BLOB,
        MYSQL_TYPE_MEDIUM_BLOB,
        MYSQL_TYPE_LONG_BLOB,
        MYSQL_TYPE_JSON,
        MYSQL_TYPE_ENUM,
        MYSQL_TYPE_SET,
    ] {
        assert!(is_text_like(t), "{}", type_name(t));
    }
    for t in [
        MYSQL_TYPE_LONG,
        MYSQL_TYPE_NEWDECIMAL,
        MYSQL_TYPE_DATETIME,
        MYSQL_TYPE_BIT,
        MYSQL_TYPE_GEOMETRY,
        MYSQL_TYPE_NULL,
    ] {
        assert!(!is_text_like(t), "{}", type_name(t));
    }
}

#[test]
fn column_definitions_hostile_and_field_list_defaults() {
    let mut c = ColumnDefinition::new("email", MYSQL_TYPE_VAR_STRING);
    c.default_value = Some(Bytes::from_static(b"nobody@example.com"));
    let mut out = Vec::new();
    c.encode(CAPS, &mut out).unwrap();
    let back = ColumnDefinition::decode(&Bytes::from(out.clone()), CAPS).unwrap();
    assert_eq!(back, c);
    for cut in 0..out.len() - c.default_value.as_ref().unwrap().len() - 1 {
        assert!(
            ColumnDefinition::decode(&Bytes::copy_from_slice(&out[..cut]), CAPS).is_err(),
            "cut at {cut}"
        );
    }
    // Extended metadata only with the MariaDB capability.
    c.extended_metadata = Some(Bytes::from_static(b"\x00\x04json"));
    assert!(c.encode(CAPS, &mut Vec::new()).is_err());
    let ext = CAPS | MARIADB_CLIENT_EXTENDED_TYPE_INFO;
    let mut out = Vec::new();
    c.encode(ext, &mut out).unwrap();
    assert_eq!(ColumnDefinition::decode(&Bytes::from(out), ext).unwrap(), c);
    // A fixed-fields block too short to hold the fields.
    assert_invalid(ColumnDefinition::decode(
        &Bytes::from_static(b"\x03def\x00\x00\x00\x01a\x00\x04\x21\x00\x00\x00"),
        CAPS,
    ));
}

#[test]
fn query_responses() {
    let caps = CAPS;
    let decode = |bytes: &[u8]| QueryResponse::decode(&Bytes::copy_from_slice(bytes), caps);
    assert!(
        matches!(decode(b"\x00\x01\x00\x02\x00\x00\x00"), Ok(QueryResponse::Ok(ok)) if ok.affected_rows == 1)
    );
    assert!(
        matches!(decode(b"\xff\x7a\x04#42S02Table 'x' doesn't exist"), Ok(QueryResponse::Err(e)) if e.code == 1146)
    );
    let Ok(QueryResponse::LocalInfile(req)) = decode(b"\xfb/etc/passwd") else {
        panic!("not a LOCAL INFILE request")
    };
    assert_eq!(&req.filename[..], b"/etc/passwd");
    let mut out = Vec::new();
    QueryResponse::LocalInfile(req)
        .encode(caps, &mut out)
        .unwrap();
    assert_eq!(out, b"\xfb/etc/passwd");
    assert!(matches!(
        decode(b"\xfc\x00\x01"),
        Ok(QueryResponse::ResultSet(h)) if h.column_count == 256 && h.metadata_follows.is_none()
    ));
    let Ok(QueryResponse::ResultSet(h)) = decode(b"\x02\x00") else {
        panic!()
    };
    assert!(!h.has_metadata());
    let mut out = BytesMut::new();
    out.put_u8(0xfd);
    out.put_slice(&[0x00, 0x00, 0x01]);
    assert_invalid(decode(&out));
    assert_invalid(decode(&[0xfe, 0, 0, 1, 0, 0, 0, 0, 0]));
    assert_invalid(decode(b"\x01\x01\x01"));
    assert_invalid(decode(b""));
    let too_many = ResultSetHeader {
        column_count: MAX_COLUMNS + 1,
        metadata_follows: None,
    };
    assert!(too_many.encode(&mut Vec::new()).is_err());
}

//! Property tests: arbitrary bytes through the splitter and every decoder
//! never panic, whatever decodes re-encodes to something that decodes the
//! same, and encoded values decode back to themselves.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::mysql::column::{BinaryLayout, binary_layout};
use crate::mysql::flags::*;

/// Capability sets that change how packets read.
const CAPS: [u64; 4] = [
    0,
    CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF,
    CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK | CLIENT_QUERY_ATTRIBUTES,
    CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | MARIADB_CLIENT_EXTENDED_TYPE_INFO,
];

/// Asserts that what decoded re-encodes (when `encode` accepts it) to
/// bytes that decode to the same value.
macro_rules! stable {
    ($decoded:expr, |$v:ident, $out:ident| $encode:expr, |$b:ident| $decode:expr) => {
        if let Ok($v) = &$decoded {
            let mut $out = Vec::new();
            let encoded: Result<(), EncodeError> = $encode;
            if encoded.is_ok() {
                let $b = Bytes::from($out);
                assert_eq!(&$decode.expect("re-encoded value decodes"), $v);
            }
        }
    };
}

/// Runs every decoder that could see this payload.
pub(super) fn decode_everything(p: &Bytes) {
    let _ = decode_lenenc_int(p);
    let _ = decode_lenenc_str(p);
    let _ = classify_row_packet(p);
    let _ = is_eof_packet(p);
    let _ = is_ssl_request(p);
    let _ = SslRequest::decode(p);
    let _ = LocalInfileRequest::decode(p);
    let _ = AuthMoreData::decode(p);
    let _ = StmtPrepareOk::decode(p);
    stable!(
        InitialHandshake::decode(p),
        |v, out| v.encode(&mut out),
        |b| { InitialHandshake::decode(&b) }
    );
    stable!(
        HandshakeResponse::decode(p),
        |v, out| v.encode(&mut out),
        |b| { HandshakeResponse::decode(&b) }
    );
    stable!(
        AuthSwitchRequest::decode(p),
        |v, out| v.encode(&mut out),
        |b| { AuthSwitchRequest::decode(&b) }
    );
    stable!(ErrPacket::decode(p), |v, out| v.encode(&mut out), |b| {
        ErrPacket::decode(&b)
    });
    for caps in CAPS {
        let _ = AuthPacket::decode(p, caps);
        let _ = EofPacket::decode(p, caps);
        let _ = EofPacket::decode_terminator(p, caps);
        let ok = OkPacket::decode(p, caps);
        if let Ok(ok) = &ok {
            let _ = ok.session_changes();
            let _ = ok.schema_change();
        }
        stable!(ok, |v, out| v.encode(caps, &mut out), |b| {
            OkPacket::decode(&b, caps)
        });
        stable!(
            QueryResponse::decode(p, caps),
            |v, out| v.encode(caps, &mut out),
            |b| { QueryResponse::decode(&b, caps) }
        );
        stable!(
            ColumnDefinition::decode(p, caps),
            |v, out| v.encode(caps, &mut out),
            |b| { ColumnDefinition::decode(&b, caps) }
        );
        let command = Command::decode(p, caps);
        if let Ok(Command::StmtExecute(ex)) = &command {
            for n in [0, 1, 2, 7, 300] {
                let _ = ex.params(n, caps);
            }
        }
        stable!(command, |v, out| v.encode(caps, &mut out), |b| {
            Command::decode(&b, caps)
        });
    }
    // Rows compare by value: re-encoding normalises length prefixes and
    // bitmap padding, so the storage may differ.
    for columns in 1..4 {
        if let Ok(row) = TextRow::decode(p, columns) {
            let mut out = Vec::new();
            row.encode(&mut out).expect("decoded row re-encodes");
            let again =
                TextRow::decode(&Bytes::from(out), columns).expect("re-encoded row decodes");
            assert!(again.iter().eq(row.iter()));
        }
    }
    // Column types taken from the payload itself, so rows meet every type.
    let types: Vec<u8> = p.iter().rev().take(6).copied().collect();
    for n in 0..=types.len() {
        let t = &types[..n];
        if let Ok(row) = BinaryRow::decode(p, t) {
            let mut out = Vec::new();
            row.encode(t, &mut out).expect("decoded row re-encodes");
            let again = BinaryRow::decode(&Bytes::from(out), t).expect("re-encoded row decodes");
            assert!(again.iter().eq(row.iter()));
        }
    }
}

/// A payload whose first byte is usually a meaningful header, so bodies
/// reach the decoders past their first check.
fn payload_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![
            0x00u8, 0x01, 0x02, 0x03, 0x0a, 0x0e, 0x16, 0x17, 0x18, 0x19, 0x1c, 0xfb, 0xfe, 0xff,
        ]),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(first, rest)| {
            let mut v = vec![first];
            v.extend(rest);
            v
        })
}

/// A column type and a value that fits its binary layout.
fn typed_value() -> impl Strategy<Value = (u8, Option<Vec<u8>>)> {
    let types: Vec<u8> = (0..=255u8)
        .filter(|&t| binary_layout(t).is_some())
        .collect();
    (
        prop::sample::select(types),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(t, null, mut bytes)| {
            match binary_layout(t) {
                Some(BinaryLayout::Fixed(n)) => bytes.resize(n, 0),
                Some(BinaryLayout::LengthByte) => bytes.truncate(12),
                _ => {}
            }
            (t, (!null).then_some(bytes))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_streams_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        for max in [MAX_PACKET_LEN, MAX_PRE_AUTH_PACKET_LEN, 16] {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(p)) = split_packet(&mut buf, max) {
                prop_assert!(p.payload.len() <= max);
                decode_everything(&p.payload);
            }
        }
    }

    #[test]
    fn arbitrary_payloads_never_panic(data in payload_bytes()) {
        decode_everything(&Bytes::from(data));
    }

    #[test]
    fn text_rows_round_trip(values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..300)), 1..20)) {
        let mut out = Vec::new();
        encode_text_row(&values, &mut out).unwrap();
        let wire = frame(3, &out);
        let p = Packet::from_bytes(&wire, MAX_PACKET_LEN).unwrap().unwrap();
        let row = TextRow::decode(&p.payload, values.len()).unwrap();
        let back: Vec<Option<Vec<u8>>> = row.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
        prop_assert_eq!(back, values);
    }

    #[test]
    fn binary_rows_round_trip(columns in prop::collection::vec(typed_value(), 1..24)) {
        let (types, values): (Vec<u8>, Vec<Option<Vec<u8>>>) = columns.into_iter().unzip();
        let mut out = Vec::new();
        encode_binary_row(&types, &values, &mut out).unwrap();
        let row = BinaryRow::decode(&Bytes::from(out), &types).unwrap();
        let back: Vec<Option<Vec<u8>>> = row.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
        prop_assert_eq!(back, values);
    }

    #[test]
    fn lenenc_ints_round_trip(n in any::<u64>(), small in 0u64..0x100_0000) {
        for n in [n, small] {
            let mut out = Vec::new();
            encode_lenenc_int(n, &mut out);
            prop_assert_eq!(decode_lenenc_int(&out), Ok((Some(n), out.len())));
        }
    }

    #[test]
    fn handshake_responses_round_trip(
        user in prop::collection::vec(1u8..=255, 0..32),
        auth in prop::collection::vec(any::<u8>(), 0..255),
        db in prop::option::of(prop::collection::vec(1u8..=255, 0..16)),
        attrs in prop::option::of(prop::collection::vec((prop::collection::vec(any::<u8>(), 0..8), prop::collection::vec(any::<u8>(), 0..300)), 0..4)),
        ext in any::<u32>(),
        lenenc in any::<bool>(),
    ) {
        let mut caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | (u64::from(ext) << 32);
        if lenenc { caps |= CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA; }
        if db.is_some() { caps |= CLIENT_CONNECT_WITH_DB; }
        if attrs.is_some() { caps |= CLIENT_CONNECT_ATTRS; }
        let r = HandshakeResponse {
            capabilities: caps,
            max_packet_size: 1 << 24,
            charset: 45,
            username: Bytes::from(user),
            auth_response: Bytes::from(auth),
            database: db.map(Bytes::from),
            auth_plugin: Some("caching_sha2_password".into()),
            connect_attrs: attrs.map(|a| a.into_iter().map(|(k, v)| (Bytes::from(k), Bytes::from(v))).collect()),
            zstd_level: None,
        };
        let mut out = Vec::new();
        r.encode(&mut out).unwrap();
        prop_assert!(!is_ssl_request(&out));
        prop_assert_eq!(HandshakeResponse::decode(&Bytes::from(out)).unwrap(), r);
    }

    #[test]
    fn queries_round_trip(sql in prop::collection::vec(any::<u8>(), 0..128), attrs in any::<bool>()) {
        let caps = if attrs { CLIENT_PROTOCOL_41 | CLIENT_QUERY_ATTRIBUTES } else { CLIENT_PROTOCOL_41 };
        let mut out = Vec::new();
        crate::mysql::command::encode_query(&sql, caps, &mut out);
        let Command::Query(q) = Command::decode(&Bytes::from(out), caps).unwrap() else {
            panic!("not a query")
        };
        prop_assert_eq!(&q.sql[..], &sql[..]);
    }
}

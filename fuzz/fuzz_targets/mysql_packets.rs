//! MySQL/MariaDB bytes in either direction: `split_packet` (with the
//! post- and pre-authentication caps) and every decoder, fed both the
//! split packets and the whole input as one payload. Whatever decodes
//! must, if it re-encodes, decode again to the same value.

#![no_main]

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use hoop_proto::mysql::flags::{
    CLIENT_DEPRECATE_EOF, CLIENT_PROTOCOL_41, CLIENT_QUERY_ATTRIBUTES, CLIENT_SESSION_TRACK,
    CLIENT_TRANSACTIONS, MARIADB_CLIENT_EXTENDED_TYPE_INFO,
};
use hoop_proto::mysql::{
    AuthMoreData, AuthPacket, AuthSwitchRequest, BinaryRow, ColumnDefinition, Command, DecodeError,
    EncodeError, EofPacket, ErrPacket, HandshakeResponse, InitialHandshake, LocalInfileRequest,
    MAX_PACKET_LEN, MAX_PRE_AUTH_PACKET_LEN, OkPacket, QueryResponse, SslRequest, StmtPrepareOk,
    TextRow, classify_row_packet, decode_lenenc_int, decode_lenenc_str, is_eof_packet,
    is_ssl_request, split_packet, text_row_ranges,
};
use libfuzzer_sys::fuzz_target;

/// Capability sets that change how packets read.
const CAPS: [u64; 4] = [
    0,
    CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF,
    CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK | CLIENT_QUERY_ATTRIBUTES,
    CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | MARIADB_CLIENT_EXTENDED_TYPE_INFO,
];

/// What decoded re-encodes (when the encoder accepts it) to bytes that
/// decode to the same value.
fn stable<T: PartialEq + Debug>(
    decoded: Result<T, DecodeError>,
    encode: impl Fn(&T, &mut Vec<u8>) -> Result<(), EncodeError>,
    decode: impl Fn(&Bytes) -> Result<T, DecodeError>,
) {
    let Ok(value) = decoded else { return };
    let mut out = Vec::new();
    if encode(&value, &mut out).is_ok() {
        let again = decode(&Bytes::from(out)).expect("re-encoded value decodes");
        assert_eq!(again, value);
    }
}

fn decode_everything(p: &Bytes) {
    let _ = decode_lenenc_int(p);
    let _ = decode_lenenc_str(p);
    let _ = classify_row_packet(p);
    let _ = is_eof_packet(p);
    let _ = is_ssl_request(p);
    let _ = SslRequest::decode(p);
    let _ = LocalInfileRequest::decode(p);
    let _ = AuthMoreData::decode(p);
    let _ = StmtPrepareOk::decode(p);
    stable(
        InitialHandshake::decode(p),
        |v, o| v.encode(o),
        InitialHandshake::decode,
    );
    stable(
        HandshakeResponse::decode(p),
        |v, o| v.encode(o),
        HandshakeResponse::decode,
    );
    stable(
        AuthSwitchRequest::decode(p),
        |v, o| v.encode(o),
        AuthSwitchRequest::decode,
    );
    stable(ErrPacket::decode(p), |v, o| v.encode(o), ErrPacket::decode);
    for caps in CAPS {
        let _ = AuthPacket::decode(p, caps);
        let _ = EofPacket::decode(p, caps);
        let _ = EofPacket::decode_terminator(p, caps);
        let ok = OkPacket::decode(p, caps);
        if let Ok(ok) = &ok {
            let _ = ok.session_changes();
            let _ = ok.schema_change();
        }
        stable(ok, |v, o| v.encode(caps, o), |b| OkPacket::decode(b, caps));
        stable(
            QueryResponse::decode(p, caps),
            |v, o| v.encode(caps, o),
            |b| QueryResponse::decode(b, caps),
        );
        stable(
            ColumnDefinition::decode(p, caps),
            |v, o| v.encode(caps, o),
            |b| ColumnDefinition::decode(b, caps),
        );
        let command = Command::decode(p, caps);
        if let Ok(Command::StmtExecute(ex)) = &command {
            for n in [0, 1, 2, 7, 300] {
                let _ = ex.params(n, caps);
            }
        }
        stable(
            command,
            |v, o| v.encode(caps, o),
            |b| Command::decode(b, caps),
        );
    }
    // Rows compare by value: re-encoding normalises length prefixes and
    // bitmap padding, so the storage may differ.
    let mut ranges = Vec::new();
    for columns in 1..4 {
        // The relay's allocation-free reader agrees with the decoder.
        let fast = text_row_ranges(p, columns, &mut ranges);
        if let Ok(row) = TextRow::decode(p, columns) {
            assert!(fast.is_ok(), "text_row_ranges refused a row TextRow reads");
            assert_eq!(ranges, row.values);
            let mut out = Vec::new();
            row.encode(&mut out).expect("decoded row re-encodes");
            let again =
                TextRow::decode(&Bytes::from(out), columns).expect("re-encoded row decodes");
            assert!(again.iter().eq(row.iter()));
        } else {
            assert!(fast.is_err(), "text_row_ranges read a row TextRow refuses");
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

fuzz_target!(|data: &[u8]| {
    for max in [MAX_PACKET_LEN, MAX_PRE_AUTH_PACKET_LEN] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(packet)) = split_packet(&mut buf, max) {
            assert!(packet.payload.len() <= max);
            assert!(packet.raw.len() >= packet.payload.len() + 4);
            decode_everything(&packet.payload);
        }
    }
    decode_everything(&Bytes::copy_from_slice(data));
});

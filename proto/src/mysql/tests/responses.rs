use bytes::Bytes;

use super::*;
use crate::mysql::flags::*;
use crate::mysql::response::*;

/// MariaDB's OK after login with `-D mysql`: session state says the
/// current database is now `mysql`.
const OK_WITH_SCHEMA: &str = "110000020000000240000000080106056d7973716c";

/// MariaDB's answer to a prepare with a syntax error (message shortened).
const SYNTAX_ERROR: &str = "2d000001ff2804233432303030596f75206861766520616e206572726f7220696e20796f75722053514c2073796e746178";

#[test]
fn ok_with_session_state_decodes_and_reencodes() {
    let p = packet(OK_WITH_SCHEMA);
    let ok = OkPacket::decode(&p.payload, MARIADB_SESSION_CAPS).unwrap();
    assert_eq!(ok.affected_rows, 0);
    assert_eq!(
        ok.status,
        SERVER_STATUS_AUTOCOMMIT | SERVER_SESSION_STATE_CHANGED
    );
    assert!(ok.info.is_empty());
    assert_eq!(
        ok.session_changes().unwrap(),
        vec![(SESSION_TRACK_SCHEMA, Bytes::from_static(b"\x05mysql"))]
    );
    assert_eq!(ok.schema_change().unwrap().as_deref(), Some(&b"mysql"[..]));
    let mut out = Vec::new();
    ok.encode(MARIADB_SESSION_CAPS, &mut out).unwrap();
    assert_eq!(out, &p.payload[..]);
}

#[test]
fn ok_packets_round_trip_with_and_without_session_tracking() {
    let ok = OkPacket {
        affected_rows: 70_000,
        last_insert_id: 1 << 40,
        status: SERVER_STATUS_IN_TRANS,
        warnings: 2,
        info: Bytes::from_static(b"Rows matched: 1  Changed: 1  Warnings: 0"),
        session_state: None,
    };
    for caps in [
        CLIENT_PROTOCOL_41,
        CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK,
        CLIENT_TRANSACTIONS,
    ] {
        let mut out = Vec::new();
        ok.encode(caps, &mut out).unwrap();
        let mut back = OkPacket::decode(&Bytes::from(out), caps).unwrap();
        if caps == CLIENT_TRANSACTIONS {
            // Pre-4.1 OK packets carry no warning count.
            back.warnings = ok.warnings;
        }
        assert_eq!(back, ok, "caps {caps:x}");
    }
    // The result-set terminator form has a 0xFE header and is short.
    let end = OkPacket {
        status: SERVER_STATUS_AUTOCOMMIT,
        ..OkPacket::default()
    };
    let mut out = Vec::new();
    end.encode_as_eof(CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK, &mut out)
        .unwrap();
    assert_eq!(out, [0xfe, 0, 0, 2, 0, 0, 0]);
    assert_eq!(
        OkPacket::decode(&Bytes::from(out), CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK).unwrap(),
        end
    );
    // Session state without the flags that announce it is refused.
    let bad = OkPacket {
        session_state: Some(Bytes::new()),
        ..OkPacket::default()
    };
    assert!(bad.encode(CLIENT_PROTOCOL_41, &mut Vec::new()).is_err());
}

#[test]
fn hostile_ok_packets_are_errors() {
    let caps = CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK;
    for bytes in [
        &b"\x00"[..],
        b"\x00\xfc\x01",
        b"\x00\x00\x00\x02",
        b"\x00\x00\x00\x02\x00\x00\x00\xfe\xff\xff\xff\xff\xff\xff\xff\x7f",
        b"\x00\x00\x00\x00\x40\x00\x00\x00\x09\x01\x06\x05mysql",
        b"\x00\xff",
    ] {
        assert_invalid(OkPacket::decode(&Bytes::copy_from_slice(bytes), caps));
    }
    assert!(matches!(
        OkPacket::decode(&Bytes::from_static(b"\x01"), caps),
        Err(DecodeError::Unexpected { header: 1, .. })
    ));
    // A session state entry claiming more than it holds.
    let ok = OkPacket {
        status: SERVER_SESSION_STATE_CHANGED,
        session_state: Some(Bytes::from_static(b"\x01\x09\x05mysql")),
        ..OkPacket::default()
    };
    assert_invalid(ok.session_changes());
}

#[test]
fn err_packets() {
    let p = packet(SYNTAX_ERROR);
    let err = ErrPacket::decode(&p.payload).unwrap();
    assert_eq!(err.code, 1064);
    assert_eq!(err.sql_state_str(), "42000");
    assert!(err.message_lossy().starts_with("You have an error"));
    let mut out = Vec::new();
    err.encode(&mut out).unwrap();
    assert_eq!(out, &p.payload[..]);

    // The agent's refusal.
    let refusal = ErrPacket::new(
        ER_TABLEACCESS_DENIED_ERROR,
        "42000",
        "hoop: DROP is not allowed on prod-db",
    );
    let mut out = Vec::new();
    refusal.encode(&mut out).unwrap();
    assert_eq!(&out[..9], b"\xff\x76\x04#42000");
    assert_eq!(ErrPacket::decode(&Bytes::from(out)).unwrap(), refusal);
    assert_eq!(ErrPacket::new(1, "bad", "m").sql_state, Some(*b"HY000"));

    // Before protocol 4.1 is agreed there is no SQL state.
    let early = ErrPacket::decode(&Bytes::from_static(b"\xff\x6a\x04Host is not allowed")).unwrap();
    assert_eq!(early.sql_state, None);
    assert_eq!(early.sql_state_str(), "HY000");
    assert_eq!(&early.message[..], b"Host is not allowed");
    // A message that would read as a state is not encoded without one.
    let ambiguous = ErrPacket {
        code: 1,
        sql_state: None,
        message: Bytes::from_static(b"#12345 oops"),
    };
    assert!(ambiguous.encode(&mut Vec::new()).is_err());

    assert_invalid(ErrPacket::decode(&Bytes::from_static(b"\xff\x01")));
    assert!(matches!(
        ErrPacket::decode(&Bytes::from_static(b"\x00\x01\x02")),
        Err(DecodeError::Unexpected { header: 0, .. })
    ));
}

#[test]
fn eof_packets_and_terminators() {
    let eof_bytes = payload("05000005fe00000200");
    assert!(is_eof_packet(&eof_bytes));
    let eof = EofPacket::decode(&eof_bytes, CLIENT_PROTOCOL_41).unwrap();
    assert_eq!(
        eof,
        EofPacket {
            warnings: 0,
            status: SERVER_STATUS_AUTOCOMMIT
        }
    );
    let mut out = Vec::new();
    eof.encode(CLIENT_PROTOCOL_41, &mut out);
    assert_eq!(out, &eof_bytes[..]);
    assert_eq!(
        EofPacket::decode_terminator(&eof_bytes, CLIENT_PROTOCOL_41),
        Ok(eof)
    );

    // With CLIENT_DEPRECATE_EOF the terminator is an OK packet with 0xFE.
    let caps = CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF | CLIENT_SESSION_TRACK;
    let ok_end = Bytes::from_static(b"\xfe\x00\x00\x22\x00\x01\x00");
    assert_eq!(
        EofPacket::decode_terminator(&ok_end, caps),
        Ok(EofPacket {
            warnings: 1,
            status: 0x22
        })
    );

    // An EOF is shorter than 9 bytes; 9 or more with 0xFE is not one.
    let long = Bytes::from_static(b"\xfe\x00\x00\x02\x00\x00\x00\x00\x00");
    assert!(!is_eof_packet(&long));
    assert_invalid(EofPacket::decode(&long, CLIENT_PROTOCOL_41));
    assert_invalid(EofPacket::decode(b"\xfe\x00", CLIENT_PROTOCOL_41));
    assert_eq!(EofPacket::decode(b"\xfe", 0), Ok(EofPacket::default()));
}

#[test]
fn rows_are_told_from_their_end_by_header_and_length() {
    assert_eq!(
        classify_row_packet(b"\xfe\x00\x00\x02\x00"),
        RowPacketKind::End
    );
    assert_eq!(
        classify_row_packet(b"\xfe\x00\x00\x02\x00\x00\x00\x00\x00\x00"),
        RowPacketKind::End
    );
    assert_eq!(classify_row_packet(b"\xff\x01\x02"), RowPacketKind::Err);
    assert_eq!(classify_row_packet(b"\x00\x00\x2a"), RowPacketKind::Row);
    assert_eq!(classify_row_packet(b"\x01\x31\xfb"), RowPacketKind::Row);
    assert_eq!(classify_row_packet(b"\xfb"), RowPacketKind::Row);
    // A text row whose first value is 16 MiB starts with 0xFE too.
    let mut big = vec![0xfe];
    big.extend_from_slice(&(MAX_CHUNK_LEN as u64).to_le_bytes());
    big.resize(9 + MAX_CHUNK_LEN, b'x');
    assert_eq!(classify_row_packet(&big), RowPacketKind::Row);
}

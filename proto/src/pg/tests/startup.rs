use super::*;
use crate::pg::startup::{
    encode_cancel, encode_gssenc_request, encode_ssl_request, encode_startup,
};

/// psql 17's startup packet, byte for byte.
const PSQL_STARTUP: &[u8] = b"\0\0\0\x4c\0\x03\0\0\
user\0alice\0database\0app\0application_name\0psql\0client_encoding\0UTF8\0\0";

#[test]
fn decodes_psql_startup() {
    assert_eq!(PSQL_STARTUP.len(), 0x4c);
    let StartupPacket::Startup(s) = StartupPacket::decode(PSQL_STARTUP).unwrap() else {
        panic!("not a startup message");
    };
    assert_eq!((s.major, s.minor), (3, 0));
    assert_eq!(s.param("user"), Some("alice"));
    assert_eq!(s.param("database"), Some("app"));
    assert_eq!(s.param("application_name"), Some("psql"));
    assert_eq!(s.param("options"), None);
    assert_eq!(s.params.len(), 4);
    let mut out = Vec::new();
    s.encode(&mut out).unwrap();
    assert_eq!(out, PSQL_STARTUP);
}

#[test]
fn encode_startup_matches_fixture() {
    let mut out = Vec::new();
    encode_startup(
        &[
            ("user", "alice"),
            ("database", "app"),
            ("application_name", "psql"),
            ("client_encoding", "UTF8"),
        ],
        &mut out,
    )
    .unwrap();
    assert_eq!(out, PSQL_STARTUP);
}

#[test]
fn special_requests_byte_exact() {
    let mut out = Vec::new();
    encode_ssl_request(&mut out);
    assert_eq!(out, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    assert_eq!(StartupPacket::decode(&out), Ok(StartupPacket::SslRequest));

    let mut out = Vec::new();
    encode_gssenc_request(&mut out);
    assert_eq!(out, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
    assert_eq!(
        StartupPacket::decode(&out),
        Ok(StartupPacket::GssEncRequest)
    );

    let mut out = Vec::new();
    encode_cancel(0x1234, &[9, 8, 7, 6], &mut out).unwrap();
    assert_eq!(
        out,
        [
            0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0x12, 0x34, 9, 8, 7, 6
        ]
    );
    assert_eq!(
        StartupPacket::decode(&out),
        Ok(StartupPacket::Cancel {
            process_id: 0x1234,
            secret_key: vec![9, 8, 7, 6]
        })
    );
}

#[test]
fn round_trips_every_packet() {
    let packets = [
        StartupPacket::SslRequest,
        StartupPacket::GssEncRequest,
        StartupPacket::Cancel {
            process_id: -5,
            secret_key: vec![0xaa; 32],
        },
        StartupPacket::Startup(Startup {
            major: 3,
            minor: 2,
            params: vec![
                ("user".into(), "bob".into()),
                ("options".into(), "-c search_path=x".into()),
                ("_pq_.test".into(), String::new()),
            ],
        }),
        StartupPacket::Startup(Startup::new(vec![("user".into(), "ünï".into())])),
    ];
    for p in packets {
        let mut out = bytes::BytesMut::new();
        p.encode(&mut out).unwrap();
        let whole = split_startup(&mut out).unwrap().unwrap();
        assert_eq!(StartupPacket::decode(&whole), Ok(p));
        assert!(out.is_empty());
    }
}

#[test]
fn newer_minor_is_reported_other_majors_refused() {
    let mut out = Vec::new();
    crate::pg::startup::encode_startup_version(3, 9, &[("user", "a")], &mut out).unwrap();
    let StartupPacket::Startup(s) = StartupPacket::decode(&out).unwrap() else {
        panic!()
    };
    assert_eq!(s.minor, 9);

    let mut out = Vec::new();
    crate::pg::startup::encode_startup_version(2, 0, &[("user", "a")], &mut out).unwrap();
    let err = StartupPacket::decode(&out).unwrap_err();
    assert_eq!(err, DecodeError::UnsupportedProtocol { major: 2, minor: 0 });
    assert!(err.to_string().contains("2.0"));

    // An unknown special request code.
    let packet = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x31];
    assert_eq!(
        StartupPacket::decode(&packet),
        Err(DecodeError::UnsupportedProtocol {
            major: 1234,
            minor: 5681
        })
    );
}

fn packet(body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 3, 0, 0]);
    v.extend_from_slice(body);
    v
}

#[test]
fn malformed_startup_packets() {
    // Missing final terminator.
    assert_invalid(StartupPacket::decode(&packet(b"user\0a\0")));
    // Value without its NUL.
    assert_invalid(StartupPacket::decode(&packet(b"user\0a")));
    // Name without a value.
    assert_invalid(StartupPacket::decode(&packet(b"user\0\0")));
    // Bytes after the terminator.
    assert_invalid(StartupPacket::decode(&packet(b"user\0a\0\0x")));
    // Duplicate user: a gateway and a server could disagree on which counts.
    assert_invalid(StartupPacket::decode(&packet(
        b"user\0a\0user\0postgres\0\0",
    )));
    // Not UTF-8.
    assert_invalid(StartupPacket::decode(&packet(b"user\0\xff\0\0")));
    // Length word disagrees with the slice.
    let mut p = packet(b"user\0a\0\0");
    p[3] += 1;
    assert_invalid(StartupPacket::decode(&p));
    // Shorter than 8 bytes.
    assert_invalid(StartupPacket::decode(&[0, 0, 0, 4]));
    assert_invalid(StartupPacket::decode(&[]));
    // SSLRequest with extra bytes.
    assert_invalid(StartupPacket::decode(&[
        0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f, 0,
    ]));
    // Cancel keys of 3 and 257 bytes.
    for key_len in [3usize, 257] {
        let mut p = ((12 + key_len) as u32).to_be_bytes().to_vec();
        p.extend_from_slice(&[0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1]);
        p.extend(std::iter::repeat_n(7, key_len));
        assert_invalid(StartupPacket::decode(&p));
    }
    // No parameters at all is well-formed (the server then asks for a user).
    assert!(StartupPacket::decode(&packet(b"\0")).is_ok());
}

#[test]
fn encoders_refuse_what_would_be_misread() {
    let mut out = Vec::new();
    assert_eq!(
        encode_startup(&[("user", "a\0database\0postgres")], &mut out),
        Err(EncodeError::Nul {
            field: "startup parameter"
        })
    );
    assert!(encode_startup(&[("", "x")], &mut out).is_err());
    assert!(encode_startup(&[("user", "x".repeat(MAX_STARTUP_LEN))], &mut out).is_err());
    assert!(encode_cancel(1, &[1, 2], &mut out).is_err());
    assert!(out.is_empty(), "nothing written on error");
}

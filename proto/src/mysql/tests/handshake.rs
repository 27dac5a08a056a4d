use bytes::Bytes;

use super::*;
use crate::mysql::flags::*;
use crate::mysql::handshake::SSL_REQUEST_LEN;

#[test]
fn mariadb_handshake_decodes_and_reencodes_byte_for_byte() {
    let p = packet(MARIADB_HANDSHAKE);
    assert_eq!(p.seq, 0);
    let hs = InitialHandshake::decode(&p.payload).unwrap();
    assert_eq!(hs.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
    assert!(hs.is_mariadb());
    assert_eq!(hs.version(), "10.11.19-MariaDB-0+deb12u1");
    assert_eq!(hs.connection_id, 8);
    assert_eq!(hs.scramble(), b"Z_MEO>)P9j.BCha/e/XM");
    assert_eq!(hs.auth_plugin_data.len(), 21);
    assert_eq!(
        hs.auth_plugin_name.as_deref(),
        Some("mysql_native_password")
    );
    assert_eq!(hs.charset, 45);
    assert_eq!(hs.status, SERVER_STATUS_AUTOCOMMIT);
    assert_eq!(hs.capabilities & CLIENT_MYSQL, 0);
    assert!(has(
        hs.capabilities,
        CLIENT_PROTOCOL_41 | CLIENT_PLUGIN_AUTH | CLIENT_DEPRECATE_EOF
    ));
    assert_eq!(hs.capabilities & CLIENT_SSL, 0);
    assert!(has(
        hs.capabilities,
        MARIADB_CLIENT_PROGRESS
            | MARIADB_CLIENT_STMT_BULK_OPERATIONS
            | MARIADB_CLIENT_CACHE_METADATA
    ));

    let mut out = Vec::new();
    hs.encode(&mut out).unwrap();
    assert_eq!(out, &p.payload[..]);
}

/// A handshake as MySQL 8 sends it.
fn mysql8_handshake() -> InitialHandshake {
    let mut data = b"0123456789abcdefghij".to_vec();
    data.push(0);
    InitialHandshake {
        server_version: "8.0.36".into(),
        connection_id: 77,
        auth_plugin_data: Bytes::from(data),
        capabilities: 0xdfff_ffff,
        charset: 255,
        status: SERVER_STATUS_AUTOCOMMIT,
        auth_plugin_name: Some("caching_sha2_password".into()),
    }
}

#[test]
fn mysql_handshake_round_trips_without_extended_capabilities() {
    let hs = mysql8_handshake();
    let mut out = Vec::new();
    hs.encode(&mut out).unwrap();
    // Reserved bytes are zero for MySQL.
    let reserved_at = 1 + 7 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1;
    assert_eq!(&out[reserved_at..reserved_at + 10], &[0; 10]);
    let back = InitialHandshake::decode(&Bytes::from(out)).unwrap();
    assert_eq!(back, hs);
    assert!(!back.is_mariadb());
    assert_eq!(back.version(), "8.0.36");
    assert_eq!(back.scramble(), b"0123456789abcdefghij");
}

#[test]
fn handshake_errors() {
    // Protocol 9 is refused as unsupported, an ERR as unexpected.
    assert!(matches!(
        InitialHandshake::decode(&Bytes::from_static(b"\x09abc\0")),
        Err(DecodeError::Unsupported { .. })
    ));
    let err = Bytes::from_static(b"\xff\x6a\x04Host is not allowed to connect");
    assert_eq!(
        InitialHandshake::decode(&err),
        Err(DecodeError::Unexpected {
            what: "initial handshake",
            header: 0xff
        })
    );
    // Every truncation of a real handshake is an error, never a panic
    // (the plugin name may lose its NUL: the server's own bug, tolerated).
    let full = payload(MARIADB_HANDSHAKE);
    for cut in 0..full.len() - "mysql_native_password".len() - 1 {
        assert!(
            InitialHandshake::decode(&full.slice(..cut)).is_err(),
            "cut at {cut}"
        );
    }
    let no_nul = full.slice(..full.len() - 1);
    let hs = InitialHandshake::decode(&no_nul).unwrap();
    assert_eq!(
        hs.auth_plugin_name.as_deref(),
        Some("mysql_native_password")
    );
}

#[test]
fn handshake_encoder_refuses_what_a_client_would_misread() {
    let mut hs = mysql8_handshake();
    hs.auth_plugin_data = Bytes::from_static(b"short");
    assert!(hs.encode(&mut Vec::new()).is_err());

    let mut hs = mysql8_handshake();
    hs.capabilities |= MARIADB_CLIENT_PROGRESS;
    assert!(
        hs.encode(&mut Vec::new()).is_err(),
        "needs CLIENT_MYSQL clear"
    );

    let mut hs = mysql8_handshake();
    hs.capabilities &= !CLIENT_PLUGIN_AUTH;
    assert!(
        hs.encode(&mut Vec::new()).is_err(),
        "plugin name without the flag"
    );
    hs.auth_plugin_name = None;
    let mut out = Vec::new();
    hs.encode(&mut out).unwrap();
    assert_eq!(InitialHandshake::decode(&Bytes::from(out)).unwrap(), hs);

    let mut hs = mysql8_handshake();
    hs.server_version = "8.0\0evil".into();
    assert_eq!(
        hs.encode(&mut Vec::new()),
        Err(EncodeError::Nul {
            field: "server version"
        })
    );
}

#[test]
fn mariadb_client_response_decodes_and_reencodes_byte_for_byte() {
    let p = packet(MARIADB_CLIENT_RESPONSE);
    assert_eq!(p.seq, 1);
    assert!(!is_ssl_request(&p.payload));
    let r = HandshakeResponse::decode(&p.payload).unwrap();
    assert_eq!(&r.username[..], b"root");
    assert!(r.auth_response.is_empty());
    assert_eq!(r.database().map(|d| &d[..]), Some(&b"mysql"[..]));
    assert_eq!(r.auth_plugin.as_deref(), Some("mysql_native_password"));
    assert_eq!(r.charset, 33);
    assert_eq!(r.max_packet_size, 1 << 20);
    assert_eq!(r.capabilities >> 32, 0x1d);
    assert!(has(
        r.capabilities,
        CLIENT_PROTOCOL_41 | CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS
    ));
    assert_eq!(
        r.connect_attr(b"program_name").map(|v| &v[..]),
        Some(&b"mysql"[..])
    );
    assert_eq!(r.connect_attrs.as_ref().map(Vec::len), Some(7));

    let mut out = Vec::new();
    r.encode(&mut out).unwrap();
    assert_eq!(out, &p.payload[..]);
}

fn agent_login() -> HandshakeResponse {
    HandshakeResponse {
        capabilities: CLIENT_PROTOCOL_41
            | CLIENT_LONG_PASSWORD
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CLIENT_CONNECT_WITH_DB
            | CLIENT_CONNECT_ATTRS
            | CLIENT_DEPRECATE_EOF,
        max_packet_size: 1 << 24,
        charset: UTF8MB4_GENERAL_CI as u8,
        username: Bytes::from_static(b"app"),
        auth_response: Bytes::from(vec![0xAB; 32]),
        database: Some(Bytes::from_static(b"shop")),
        auth_plugin: Some("caching_sha2_password".into()),
        connect_attrs: Some(vec![(
            Bytes::from_static(b"_client_name"),
            Bytes::from_static(b"hoop"),
        )]),
        zstd_level: None,
    }
}

#[test]
fn responses_round_trip_in_each_auth_data_form() {
    for form in [
        CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
        CLIENT_SECURE_CONNECTION,
        0,
    ] {
        let mut r = agent_login();
        r.capabilities &= !(CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_SECURE_CONNECTION);
        r.capabilities |= form;
        if form == 0 {
            r.auth_response = Bytes::from_static(b"no-nul-here");
        }
        let mut out = Vec::new();
        r.encode(&mut out).unwrap();
        assert_eq!(HandshakeResponse::decode(&Bytes::from(out)).unwrap(), r);
    }
    // zstd level only with its flag.
    let mut r = agent_login();
    r.capabilities |= CLIENT_ZSTD_COMPRESSION_ALGORITHM;
    r.zstd_level = Some(3);
    let mut out = Vec::new();
    r.encode(&mut out).unwrap();
    assert_eq!(HandshakeResponse::decode(&Bytes::from(out)).unwrap(), r);
}

#[test]
fn response_encoder_refuses_inconsistent_fields() {
    let mut r = agent_login();
    r.capabilities &= !CLIENT_CONNECT_WITH_DB;
    assert!(r.encode(&mut Vec::new()).is_err());

    let mut r = agent_login();
    r.capabilities &= !(CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA);
    r.auth_response = Bytes::from(vec![1; 256]);
    assert!(matches!(
        r.encode(&mut Vec::new()),
        Err(EncodeError::TooLong { .. })
    ));

    let mut r = agent_login();
    r.username = Bytes::from_static(b"ro\0ot");
    assert_eq!(
        r.encode(&mut Vec::new()),
        Err(EncodeError::Nul { field: "user name" })
    );

    let mut r = agent_login();
    r.capabilities &= !CLIENT_PROTOCOL_41;
    assert!(r.encode(&mut Vec::new()).is_err());

    let mut r = agent_login();
    r.zstd_level = Some(1);
    assert!(r.encode(&mut Vec::new()).is_err());
}

#[test]
fn optional_fields_cut_off_by_the_client_read_as_empty() {
    let mut r = agent_login();
    r.connect_attrs = None;
    r.capabilities &= !CLIENT_CONNECT_ATTRS;
    r.auth_plugin = None;
    r.capabilities &= !CLIENT_PLUGIN_AUTH;
    r.database = None;
    r.capabilities &= !CLIENT_CONNECT_WITH_DB;
    let mut out = Vec::new();
    r.encode(&mut out).unwrap();
    // Now claim the three flags without sending their fields.
    let caps = (r.capabilities | CLIENT_CONNECT_WITH_DB | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS)
        as u32;
    out[..4].copy_from_slice(&caps.to_le_bytes());
    let back = HandshakeResponse::decode(&Bytes::from(out)).unwrap();
    assert_eq!(back.database.as_deref(), Some(&b""[..]));
    assert_eq!(back.database(), None);
    assert_eq!(back.auth_plugin.as_deref(), Some(""));
    assert_eq!(back.connect_attrs, Some(vec![]));
}

#[test]
fn hostile_responses_are_errors() {
    let good = {
        let mut out = Vec::new();
        agent_login().encode(&mut out).unwrap();
        out
    };
    for cut in 0..good.len() {
        // Cuts inside the trailing optional fields may still decode
        // (absent fields read as empty); none may panic.
        let _ = HandshakeResponse::decode(&Bytes::copy_from_slice(&good[..cut]));
    }
    for cut in 0..SSL_REQUEST_LEN + 4 {
        assert!(HandshakeResponse::decode(&Bytes::copy_from_slice(&good[..cut])).is_err());
    }
    // Attributes announcing more than the packet holds.
    let mut r = agent_login();
    r.connect_attrs = Some(vec![]);
    let mut out = Vec::new();
    r.encode(&mut out).unwrap();
    let last = out.len() - 1;
    out[last] = 0xfc;
    out.extend_from_slice(&[0xff, 0xff]);
    assert_invalid(HandshakeResponse::decode(&Bytes::from(out)));
    // A pre-4.1 client is unsupported.
    let mut old = good.clone();
    old[1] &= !0x02;
    assert!(matches!(
        HandshakeResponse::decode(&Bytes::from(old)),
        Err(DecodeError::Unsupported { .. })
    ));
}

#[test]
fn ssl_requests_are_told_from_responses() {
    let req = SslRequest {
        capabilities: CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION,
        max_packet_size: 1 << 24,
        charset: 45,
    };
    let mut out = Vec::new();
    req.encode(&mut out).unwrap();
    assert_eq!(out.len(), SSL_REQUEST_LEN);
    assert!(is_ssl_request(&out));
    assert_eq!(SslRequest::decode(&out), Ok(req));

    // The same 32 bytes without CLIENT_SSL are neither.
    out[1] &= !0x08;
    assert!(!is_ssl_request(&out));
    assert_invalid(SslRequest::decode(&out));
    // A full response is not an SSL request even with CLIENT_SSL.
    let mut r = agent_login();
    r.capabilities |= CLIENT_SSL;
    let mut full = Vec::new();
    r.encode(&mut full).unwrap();
    assert!(!is_ssl_request(&full));
    assert!(!is_ssl_request(&full[..31]));
}

use bytes::{BufMut, BytesMut};

use super::*;
use crate::pg::backend::{self, TransactionStatus};
use crate::pg::frontend;

/// A stream with one of most message shapes, as a client would see it.
fn backend_stream() -> Vec<u8> {
    let mut out = Vec::new();
    crate::pg::auth::encode_authentication_ok(&mut out);
    backend::encode_parameter_status("server_version", "17.2", &mut out).unwrap();
    backend::encode_backend_key_data(42, &[1, 2, 3, 4], &mut out).unwrap();
    backend::encode_ready_for_query(TransactionStatus::Idle, &mut out);
    backend::encode_data_row(&[Some(&b"1"[..]), None, Some(b"")], &mut out).unwrap();
    backend::encode_command_complete("SELECT 1", &mut out).unwrap();
    backend::encode_empty_query_response(&mut out);
    out
}

#[test]
fn split_message_returns_each_message_whole_and_shares_memory() {
    let stream = backend_stream();
    let mut buf = BytesMut::from(&stream[..]);
    let mut tags = Vec::new();
    let mut total = 0;
    while let Some(msg) = split_message(&mut buf, MAX_MESSAGE_LEN).unwrap() {
        assert_eq!(msg.bytes[0], msg.tag);
        assert_eq!(msg.body().len() + 5, msg.len());
        total += msg.len();
        tags.push(msg.tag);
    }
    assert_eq!(tags, b"RSKZDCI");
    assert_eq!(total, stream.len());
    assert!(buf.is_empty());
}

#[test]
fn every_cut_of_a_stream_is_incomplete_never_an_error() {
    let stream = backend_stream();
    for cut in 0..=stream.len() {
        let mut buf = BytesMut::from(&stream[..cut]);
        let mut seen = Vec::new();
        while let Some(msg) = split_message(&mut buf, MAX_MESSAGE_LEN).unwrap() {
            seen.extend_from_slice(&msg.bytes);
        }
        // What was split plus what is left is exactly the prefix.
        seen.extend_from_slice(&buf);
        assert_eq!(seen, &stream[..cut], "cut at {cut}");
    }
}

#[test]
fn hostile_length_from_postgres_protocol_report_is_refused_without_allocating() {
    // postgres_protocol's Message::parse reserves 2.9 GB for these 6 bytes.
    let mut buf = BytesMut::from(&[0x0a, 0xac, 0xac, 0xac, 0xac, 0x21][..]);
    let capacity = buf.capacity();
    for max in [MAX_MESSAGE_LEN, MAX_PRE_AUTH_MESSAGE_LEN, 64] {
        let err = split_message(&mut buf, max).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooLong {
                tag: 0x0a,
                len: 0xacac_acac,
                max
            }
        );
        assert_eq!(buf.capacity(), capacity, "nothing reserved");
        assert_eq!(buf.len(), 6, "nothing consumed");
    }
}

#[test]
fn too_long_is_reported_from_the_header_alone() {
    // Only the 5 header bytes have arrived.
    let mut buf = BytesMut::new();
    buf.put_u8(b'D');
    buf.put_u32(MAX_MESSAGE_LEN as u32 + 1);
    let capacity = buf.capacity();
    assert!(matches!(
        split_message(&mut buf, MAX_MESSAGE_LEN),
        Err(DecodeError::TooLong { tag: b'D', .. })
    ));
    assert_eq!(buf.capacity(), capacity);

    // The limit itself is allowed, and announcing it reserves nothing.
    let mut buf = BytesMut::new();
    buf.put_u8(b'D');
    buf.put_u32(MAX_MESSAGE_LEN as u32);
    let capacity = buf.capacity();
    assert_eq!(split_message(&mut buf, MAX_MESSAGE_LEN), Ok(None));
    assert_eq!(buf.capacity(), capacity);
}

#[test]
fn negative_length_words_are_too_long_even_with_no_limit() {
    let mut buf = BytesMut::from(&[b'Q', 0xff, 0xff, 0xff, 0xff][..]);
    assert!(matches!(
        split_message(&mut buf, usize::MAX),
        Err(DecodeError::TooLong { tag: b'Q', .. })
    ));
}

#[test]
fn lengths_below_four_are_invalid() {
    for len in 0..4u32 {
        let mut buf = BytesMut::new();
        buf.put_u8(b'Q');
        buf.put_u32(len);
        assert_invalid(split_message(&mut buf, MAX_MESSAGE_LEN));
    }
    // Exactly 4 is an empty body.
    let mut buf = BytesMut::from(&[b'S', 0, 0, 0, 4][..]);
    let msg = split_message(&mut buf, MAX_MESSAGE_LEN).unwrap().unwrap();
    assert!(msg.body().is_empty());
}

#[test]
fn pre_auth_cap_refuses_a_big_password_message() {
    let mut buf = BytesMut::new();
    buf.put_u8(b'p');
    buf.put_u32(MAX_PRE_AUTH_MESSAGE_LEN as u32 + 1);
    assert_eq!(
        split_message(&mut buf, MAX_PRE_AUTH_MESSAGE_LEN),
        Err(DecodeError::TooLong {
            tag: b'p',
            len: MAX_PRE_AUTH_MESSAGE_LEN + 1,
            max: MAX_PRE_AUTH_MESSAGE_LEN
        })
    );
    let mut out = BytesMut::new();
    crate::pg::auth::encode_password(&"x".repeat(MAX_PRE_AUTH_MESSAGE_LEN - 5), &mut out).unwrap();
    assert!(
        split_message(&mut out, MAX_PRE_AUTH_MESSAGE_LEN)
            .unwrap()
            .is_some()
    );
}

#[test]
fn peek_and_check_header() {
    assert_eq!(peek_header(b"Q\0\0\0"), None);
    assert_eq!(peek_header(b"Q\0\0\0\x09SEL"), Some((b'Q', 10)));
    assert_eq!(peek_header(b"Q\xff\xff\xff\xff"), Some((b'Q', 1 << 32)));
    assert_eq!(check_header(b"Q\0\0\0\x09", 100), Ok(Some((b'Q', 10))));
    assert_eq!(check_header(b"Q\0\0", 100), Ok(None));
    assert_invalid(check_header(b"Q\0\0\0\x03", 100));
    assert!(matches!(
        check_header(b"d\0\0\x10\0", 100),
        Err(DecodeError::TooLong { .. })
    ));
}

#[test]
fn raw_message_from_bytes_refuses_trailing_bytes() {
    let mut out = Vec::new();
    frontend::encode_sync(&mut out);
    frontend::encode_sync(&mut out);
    assert_invalid(RawMessage::from_bytes(&out, MAX_MESSAGE_LEN));
    assert_eq!(RawMessage::from_bytes(&out[..3], MAX_MESSAGE_LEN), Ok(None));
}

#[test]
fn hand_built_raw_message_shorter_than_a_header_does_not_panic() {
    let msg = RawMessage {
        tag: b'D',
        bytes: bytes::Bytes::from_static(b"D"),
    };
    assert!(msg.body().is_empty());
    assert_invalid(backend::DataRow::decode(&msg));
}

#[test]
fn split_startup_caps_and_waits() {
    // Needs the length word first.
    let mut buf = BytesMut::from(&[0, 0, 0][..]);
    assert_eq!(split_startup(&mut buf), Ok(None));
    // A length that is too small.
    let mut buf = BytesMut::from(&[0, 0, 0, 7, 0, 3, 0][..]);
    assert_invalid(split_startup(&mut buf));
    // Over PostgreSQL's 10 000-byte cap, refused at once.
    let mut buf = BytesMut::from(&[0, 0, 0x27, 0x11][..]);
    let capacity = buf.capacity();
    assert_eq!(
        split_startup(&mut buf),
        Err(DecodeError::TooLong {
            tag: STARTUP_TAG,
            len: 10_001,
            max: MAX_STARTUP_LEN
        })
    );
    assert_eq!(buf.capacity(), capacity);
    // A hostile 4 GiB announcement.
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    assert!(matches!(
        split_startup(&mut buf),
        Err(DecodeError::TooLong { .. })
    ));
    // Incomplete, then complete, and the next bytes stay in the buffer.
    let mut packet = Vec::new();
    crate::pg::startup::encode_ssl_request(&mut packet);
    let mut buf = BytesMut::from(&packet[..7]);
    assert_eq!(split_startup(&mut buf), Ok(None));
    buf.put_u8(packet[7]);
    buf.put_u8(b'Q');
    assert_eq!(split_startup(&mut buf).unwrap().unwrap(), &packet[..]);
    assert_eq!(&buf[..], b"Q");
}

#[test]
fn error_messages_name_the_message_readably() {
    let err = DecodeError::Invalid {
        tag: b'D',
        reason: "negative count",
    };
    assert_eq!(err.to_string(), "malformed message 'D': negative count");
    let err = DecodeError::TooLong {
        tag: STARTUP_TAG,
        len: 20_000,
        max: MAX_STARTUP_LEN,
    };
    assert_eq!(
        err.to_string(),
        "startup packet announces 20000 bytes, more than the 10000-byte limit"
    );
    assert_eq!(
        DecodeError::UnexpectedTag(0x0a).to_string(),
        "unexpected message 0x0a"
    );
}

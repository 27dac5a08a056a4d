use super::*;
use crate::pg::frontend::*;

fn all_messages() -> Vec<Vec<u8>> {
    let mut msgs = Vec::new();
    let mut push = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        f(&mut out);
        msgs.push(out);
    };
    push(&|o| encode_query("SELECT 1; SELECT 'é'", o).unwrap());
    push(&|o| encode_parse("s1", "SELECT $1::int, $2", &[23, 0], o).unwrap());
    push(&|o| encode_parse("", "", &[], o).unwrap());
    push(&|o| {
        encode_bind(
            "p",
            "s1",
            &[1, 0],
            &[Some(&b"\0\0\0\x05"[..]), None, Some(b"")],
            &[1],
            o,
        )
        .unwrap()
    });
    push(&|o| encode_bind::<&[u8]>("", "", &[], &[], &[], o).unwrap());
    push(&|o| encode_execute("p", 100, o).unwrap());
    push(&|o| encode_describe(Target::Statement, "s1", o).unwrap());
    push(&|o| encode_describe(Target::Portal, "", o).unwrap());
    push(&|o| encode_close(Target::Portal, "p", o).unwrap());
    push(&|o| encode_sync(o));
    push(&|o| encode_flush(o));
    push(&|o| encode_copy_data(b"1\talice\n", o).unwrap());
    push(&|o| encode_copy_done(o));
    push(&|o| encode_copy_fail("client gave up", o).unwrap());
    push(&|o| encode_function_call(954, &[1], &[Some(&b"\0\0\0\x01"[..]), None], 1, o).unwrap());
    push(&|o| encode_terminate(o));
    push(&|o| crate::pg::auth::encode_password("pw", o).unwrap());
    msgs
}

#[test]
fn every_message_round_trips_through_the_enum() {
    for bytes in all_messages() {
        let msg = framed(&bytes);
        let decoded = FrontendMessage::decode(&msg).unwrap();
        assert_eq!(decoded.tag().as_u8(), msg.tag);
        assert_eq!(Tag::from_u8(msg.tag), Some(decoded.tag()));
        let mut again = Vec::new();
        decoded.encode(&mut again).unwrap();
        assert_eq!(again, bytes, "{decoded:?}");
    }
}

#[test]
fn fixtures_as_libpq_sends_them() {
    let mut out = Vec::new();
    encode_query("SELECT 1", &mut out).unwrap();
    assert_eq!(out, b"Q\0\0\0\x0dSELECT 1\0");

    // PQexecParams("SELECT $1", 1 text param "42"), as on the wire.
    let wire: &[u8] = b"P\0\0\0\x11\0SELECT $1\0\0\0\
B\0\0\0\x14\0\0\0\0\0\x01\0\0\0\x0242\0\x01\0\0\
D\0\0\0\x06P\0\
E\0\0\0\x09\0\0\0\0\0\
S\0\0\0\x04";
    let mut buf = bytes::BytesMut::from(wire);
    let mut msgs = Vec::new();
    while let Some(m) = split_message(&mut buf, MAX_MESSAGE_LEN).unwrap() {
        msgs.push(m);
    }
    assert!(buf.is_empty());
    let decoded: Vec<_> = msgs
        .iter()
        .map(|m| FrontendMessage::decode(m).unwrap())
        .collect();
    assert_eq!(
        decoded,
        [
            FrontendMessage::Parse(Parse {
                name: "",
                query: "SELECT $1",
                param_types: vec![]
            }),
            FrontendMessage::Bind(Bind {
                portal: "",
                statement: "",
                param_formats: vec![],
                params: vec![Some(b"42")],
                result_formats: vec![0],
            }),
            FrontendMessage::Describe(Describe {
                target: Target::Portal,
                name: ""
            }),
            FrontendMessage::Execute(Execute {
                portal: "",
                max_rows: 0
            }),
            FrontendMessage::Sync,
        ]
    );
}

#[test]
fn decoded_values_borrow_from_the_message() {
    let mut out = Vec::new();
    encode_bind("", "", &[], &[Some(b"value")], &[], &mut out).unwrap();
    let msg = framed(&out);
    let FrontendMessage::Bind(bind) = FrontendMessage::decode(&msg).unwrap() else {
        panic!()
    };
    let value = bind.params[0].unwrap();
    let start = value.as_ptr() as usize - msg.bytes.as_ptr() as usize;
    assert_eq!(&msg.bytes[start..start + 5], b"value");
    assert_eq!(bind.param_format(0), Some(Format::Text));
    assert_eq!(bind.result_format(7), Some(Format::Text));
}

#[test]
fn parse_and_bind_allow_65535_parameters() {
    let types = vec![23u32; 65_535];
    let mut out = Vec::new();
    encode_parse("", "SELECT", &types, &mut out).unwrap();
    let msg = framed(&out);
    let FrontendMessage::Parse(p) = FrontendMessage::decode(&msg).unwrap() else {
        panic!()
    };
    assert_eq!(p.param_types.len(), 65_535);
    let too_many = vec![0u32; 65_536];
    assert!(matches!(
        encode_parse("", "", &too_many, &mut Vec::new()),
        Err(EncodeError::TooMany { .. })
    ));
}

#[test]
fn malformed_frontend_messages() {
    // Strings without their NUL.
    assert_invalid(FrontendMessage::decode(&raw(b'Q', b"SELECT 1")));
    assert_invalid(FrontendMessage::decode(&raw(b'P', b"s\0SELECT")));
    // Not UTF-8.
    assert_invalid(FrontendMessage::decode(&raw(b'Q', b"SELECT '\xff'\0")));
    // Trailing bytes.
    assert_invalid(FrontendMessage::decode(&raw(b'Q', b"SELECT 1\0\0")));
    assert_invalid(FrontendMessage::decode(&raw(b'S', b"x")));
    // Parse announcing more parameter types than it holds.
    assert_invalid(FrontendMessage::decode(&raw(
        b'P',
        b"\0\0\xff\xff\0\0\0\x17",
    )));
    // Bind with a parameter longer than the message, a negative length
    // other than -1, and a hostile count.
    assert_invalid(FrontendMessage::decode(&raw(
        b'B',
        b"\0\0\0\0\0\x01\0\0\x10\0ab\0\0",
    )));
    assert_invalid(FrontendMessage::decode(&raw(
        b'B',
        b"\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0",
    )));
    assert_invalid(FrontendMessage::decode(&raw(b'B', b"\0\0\0\0\xff\xff")));
    // Bind missing its result format count.
    assert_invalid(FrontendMessage::decode(&raw(b'B', b"\0\0\0\0\0\0")));
    // Describe with an unknown target.
    assert_invalid(FrontendMessage::decode(&raw(b'D', b"X\0")));
    // Execute without max_rows.
    assert_invalid(FrontendMessage::decode(&raw(b'E', b"\0\0\0")));
    // FunctionCall with a truncated argument.
    assert_invalid(FrontendMessage::decode(&raw(
        b'F',
        b"\0\0\x03\xba\0\0\0\x01\0\0\0\x04\0\0\0\x01",
    )));
    // A backend-only tag.
    assert_eq!(
        FrontendMessage::decode(&raw(b'Z', b"I")),
        Err(DecodeError::UnexpectedTag(b'Z'))
    );
}

#[test]
fn encoders_refuse_interior_nul() {
    let mut out = Vec::new();
    assert_eq!(
        encode_query("SELECT 1\0; DROP TABLE t", &mut out),
        Err(EncodeError::Nul { field: "query" })
    );
    assert!(encode_parse("a\0", "", &[], &mut out).is_err());
    assert!(encode_execute("\0", 0, &mut out).is_err());
    assert!(encode_copy_fail("\0", &mut out).is_err());
    assert!(out.is_empty());
}

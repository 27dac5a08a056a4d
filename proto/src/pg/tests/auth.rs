use bytes::Bytes;

use super::*;
use crate::pg::auth::*;

#[test]
fn authentication_round_trips() {
    let all = [
        Authentication::Ok,
        Authentication::CleartextPassword,
        Authentication::Md5Password { salt: [1, 2, 3, 4] },
        Authentication::Sasl {
            mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()],
        },
        Authentication::SaslContinue(Bytes::from_static(b"r=abc,s=c2FsdA==,i=4096")),
        Authentication::SaslFinal(Bytes::from_static(b"v=xyz")),
        Authentication::Other(7),
    ];
    for a in all {
        let mut out = Vec::new();
        a.encode(&mut out).unwrap();
        let msg = framed(&out);
        assert_eq!(Authentication::decode(&msg), Ok(a.clone()));
        assert_eq!(
            BackendMessage::decode(&msg),
            Ok(BackendMessage::Authentication(a))
        );
    }
}

#[test]
fn authentication_fixtures_as_postgres_sends_them() {
    let mut out = Vec::new();
    encode_authentication_ok(&mut out);
    assert_eq!(out, b"R\0\0\0\x08\0\0\0\0");

    let sasl = b"R\0\0\0\x2a\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0";
    assert_eq!(sasl.len(), 0x2b);
    assert_eq!(
        Authentication::decode(&framed(sasl)),
        Ok(Authentication::Sasl {
            mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]
        })
    );

    let md5 = b"R\0\0\0\x0c\0\0\0\x05\xde\xad\xbe\xef";
    assert_eq!(
        Authentication::decode(&framed(md5)),
        Ok(Authentication::Md5Password {
            salt: [0xde, 0xad, 0xbe, 0xef]
        })
    );
}

#[test]
fn sasl_data_shares_the_message_memory() {
    let msg = raw(b'R', b"\0\0\0\x0br=nonce");
    let Authentication::SaslContinue(data) = Authentication::decode(&msg).unwrap() else {
        panic!()
    };
    assert_eq!(&data[..], b"r=nonce");
    assert_eq!(data.as_ptr(), msg.bytes[9..].as_ptr());
}

#[test]
fn malformed_authentication_requests() {
    // Truncated code, salt, and trailing bytes after Ok.
    assert_invalid(Authentication::decode(&raw(b'R', b"\0\0")));
    assert_invalid(Authentication::decode(&raw(b'R', b"\0\0\0\x05\x01\x02")));
    assert_invalid(Authentication::decode(&raw(b'R', b"\0\0\0\0\0")));
    // SASL list without its terminators, and with no mechanism.
    assert_invalid(Authentication::decode(&raw(
        b'R',
        b"\0\0\0\x0aSCRAM-SHA-256",
    )));
    assert_invalid(Authentication::decode(&raw(
        b'R',
        b"\0\0\0\x0aSCRAM-SHA-256\0",
    )));
    assert_invalid(Authentication::decode(&raw(b'R', b"\0\0\0\x0a\0")));
    // Wrong tag.
    assert_eq!(
        Authentication::decode(&raw(b'p', b"\0\0\0\0")),
        Err(DecodeError::UnexpectedTag(b'p'))
    );
}

#[test]
fn frontend_responses_round_trip() {
    let mut out = Vec::new();
    encode_password("hunter2", &mut out).unwrap();
    assert_eq!(out, b"p\0\0\0\x0chunter2\0");
    assert_eq!(decode_password(&framed(&out)), Ok(&b"hunter2"[..]));

    let mut out = Vec::new();
    encode_sasl_initial("SCRAM-SHA-256", b"n,,n=,r=abc", &mut out).unwrap();
    let msg = framed(&out);
    assert_eq!(
        SaslInitialResponse::decode(&msg),
        Ok(SaslInitialResponse {
            mechanism: "SCRAM-SHA-256",
            data: Some(b"n,,n=,r=abc")
        })
    );
    assert!(matches!(
        FrontendMessage::decode(&msg),
        Ok(FrontendMessage::AuthResponse(body)) if body == msg.body()
    ));

    let none = SaslInitialResponse {
        mechanism: "X",
        data: None,
    };
    let mut out = Vec::new();
    none.encode(&mut out).unwrap();
    assert_eq!(out, b"p\0\0\0\x0aX\0\xff\xff\xff\xff");
    assert_eq!(SaslInitialResponse::decode(&framed(&out)), Ok(none));

    let mut out = Vec::new();
    encode_sasl_response(b"c=biws,r=x,p=y", &mut out).unwrap();
    assert_eq!(
        decode_sasl_response(&framed(&out)),
        Ok(&b"c=biws,r=x,p=y"[..])
    );
}

#[test]
fn malformed_frontend_responses() {
    assert_invalid(decode_password(&raw(b'p', b"no terminator")));
    assert_invalid(decode_password(&raw(b'p', b"pw\0extra")));
    // Initial response length longer than the message, or negative.
    assert_invalid(SaslInitialResponse::decode(&raw(b'p', b"M\0\0\0\0\x09abc")));
    assert_invalid(SaslInitialResponse::decode(&raw(
        b'p',
        b"M\0\xff\xff\xff\xfe",
    )));
    assert!(encode_password("a\0b", &mut Vec::new()).is_err());
}

#[test]
fn md5_password_matches_postgres() {
    // pg_authid stores "md5" || md5(password || user); for postgres/postgres
    // that is the well-known md53175bce1d3201d16594cebf9d7eb3f9d.
    assert_eq!(
        md5_password("postgres", "postgres", [1, 2, 3, 4]),
        "md568be9ed08db75f318087ab337aaea044"
    );
    assert_eq!(
        md5_password("alice", b"secret", &[0xde, 0xad, 0xbe, 0xef][..]),
        "md53e1d73ba00a55e8805aa0277d29996c5"
    );
}

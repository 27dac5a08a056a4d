use super::*;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn round_trip_every_request() {
    let msgs = vec![
        Request::Hello {
            version: PROTOCOL_VERSION,
            token: Token::new("a.b.c"),
            client: "hoop 0.1.0".into(),
        },
        Request::Discover { version: 1 },
        Request::Refresh {
            token: Token::new("x"),
        },
        Request::ListConnections,
        Request::Open {
            connection: "echo".into(),
            client_addr: Some("127.0.0.1:5000".into()),
        },
    ];
    for m in msgs {
        let mut out = Vec::new();
        encode(&m, &mut out).unwrap();
        let (back, used): (Request, usize) = decode(&out).unwrap();
        assert_eq!(back, m);
        assert_eq!(used, out.len());
    }
}

#[test]
fn round_trip_responses() {
    let msgs = vec![
        Response::Welcome {
            version: 1,
            identity: Identity {
                user: "alice@example.com".into(),
                groups: vec!["eng".into()],
                issuer: "https://idp".into(),
                expires_at: 17,
            },
            agent: "hoop-agent".into(),
        },
        Response::Opened {
            session: "s-1".into(),
        },
        Response::Error(WireError::new(ErrorCode::Forbidden, "no")),
        Response::Discovery(LoginSettings {
            issuer: "https://idp".into(),
            client_id: "hoop-cli".into(),
            audience: "hoop".into(),
            scopes: vec!["openid".into()],
        }),
    ];
    for m in msgs {
        let mut out = Vec::new();
        encode(&m, &mut out).unwrap();
        let (back, _): (Response, usize) = decode(&out).unwrap();
        assert_eq!(back, m);
    }
}

#[test]
fn token_debug_hides_value() {
    let t = Token::new("secret-token-value");
    let hello = Request::Hello {
        version: 1,
        token: t,
        client: String::new(),
    };
    let dbg = format!("{hello:?}");
    assert!(!dbg.contains("secret-token-value"), "{dbg}");
    assert!(dbg.contains("***"));
}

#[test]
fn incomplete_is_not_invalid() {
    let mut out = Vec::new();
    encode(&Request::ListConnections, &mut out).unwrap();
    for cut in 0..out.len() {
        match decode::<Request>(&out[..cut]) {
            Err(FrameError::Incomplete { needed }) => assert!(needed > cut),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn oversized_length_rejected_before_body() {
    // Announces 4 GiB with only a 6-byte buffer: must not allocate or wait.
    let hostile = [0xff, 0xff, 0xff, 0xff, b'{', b'}'];
    assert_eq!(
        decode::<Request>(&hostile).unwrap_err(),
        FrameError::TooLarge {
            len: u32::MAX as usize,
            max: MAX_HEADER_LEN
        }
    );
    let just_over = ((MAX_HEADER_LEN + 1) as u32).to_be_bytes();
    assert!(matches!(
        body_len(just_over),
        Err(FrameError::TooLarge { .. })
    ));
    assert_eq!(
        body_len((MAX_HEADER_LEN as u32).to_be_bytes()),
        Ok(MAX_HEADER_LEN)
    );
}

#[test]
fn encode_refuses_oversized() {
    let huge = Request::Refresh {
        token: Token::new("x".repeat(MAX_HEADER_LEN)),
    };
    let mut out = Vec::new();
    assert!(matches!(
        encode(&huge, &mut out),
        Err(FrameError::TooLarge { .. })
    ));
    assert!(out.is_empty());
}

#[test]
fn hostile_bodies_are_invalid_not_panics() {
    let bodies: &[&[u8]] = &[
        b"",
        b"{",
        b"null",
        b"[]",
        b"{\"type\":\"open\"}",
        b"{\"type\":\"open\",\"connection\":1}",
        b"{\"type\":\"nope\"}",
        b"{\"type\":\"hello\",\"version\":1,\"token\":\"t\",\"extra\":1}",
        b"\xff\xfe\x00",
        b"{\"type\":\"list_connections\"}garbage",
    ];
    for b in bodies {
        let f = frame(b);
        match decode::<Request>(&f) {
            Err(FrameError::Invalid(_)) => {}
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(b)),
        }
    }
}

#[test]
fn unknown_error_code_from_newer_agent() {
    let body = br#"{"type":"error","code":"brand_new","message":"m"}"#;
    let (r, _): (Response, usize) = decode(&frame(body)).unwrap();
    assert_eq!(r, Response::Error(WireError::new(ErrorCode::Unknown, "m")));
}

#[test]
fn version_probe_reads_future_hello() {
    let body = br#"{"type":"hello","version":7,"token":{"new":"shape"}}"#;
    assert!(decode::<Request>(&frame(body)).is_err());
    assert_eq!(probe_version(body), Some(7));
    assert_eq!(probe_version(b"{}"), None);
}

#[test]
fn two_frames_back_to_back() {
    let mut out = Vec::new();
    encode(&Request::ListConnections, &mut out).unwrap();
    encode(&Request::Discover { version: 1 }, &mut out).unwrap();
    let (a, n): (Request, usize) = decode(&out).unwrap();
    let (b, m): (Request, usize) = decode(&out[n..]).unwrap();
    assert_eq!(a, Request::ListConnections);
    assert_eq!(b, Request::Discover { version: 1 });
    assert_eq!(n + m, out.len());
}

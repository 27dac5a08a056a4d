//! Errors a user can act on, each from the real binaries; and hostile or
//! out-of-date peers on the tunnel itself.

use std::time::Duration;

use hoop_proto::tunnel::{ErrorCode, PROTOCOL_VERSION, Request, Response, Token};
use hoop_tests::harness::{Agent, Conn, Connect, TempDir};
use hoop_tests::issuer::TestIssuer;
use hoop_tests::servers;
use hoop_tunnel::{Fingerprint, Pin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_not_answering() {
    let issuer = TestIssuer::start().await.unwrap();
    let mut agent = Agent::start(issuer.url(), &[]).unwrap();
    agent.stop();
    let token = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 600)
        .unwrap();
    let started = std::time::Instant::now();
    let out = agent.run_hoop(Some(&token), &["connections"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let port = agent.addr.port();
    assert!(
        err.contains(&format!(
            "no answer from the agent at {} over UDP within 5s; is UDP {port} open?",
            agent.addr
        )),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_not_matching_the_pin() {
    let issuer = TestIssuer::start().await.unwrap();
    let agent = Agent::start(issuer.url(), &[]).unwrap();
    let other = Agent::start(issuer.url(), &[]).unwrap();
    let token = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 600)
        .unwrap();

    // Pinned to another agent's fingerprint.
    let out = agent
        .hoop(Some(&token))
        .env("HOOP_AGENT_FINGERPRINT", &other.fingerprint)
        .arg("connections")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("does not chain to the pinned CA"), "{err}");
    assert!(
        err.contains(&other.fingerprint) && err.contains(&agent.fingerprint),
        "{err}"
    );

    // Pinned by CA file: the other agent's CA is refused, its own accepted.
    let other_ca = other.data_dir().join("tls/ca.pem");
    let own_ca = agent.data_dir().join("tls/ca.pem");
    let out = agent
        .hoop(Some(&token))
        .env_remove("HOOP_AGENT_FINGERPRINT")
        .env("HOOP_AGENT_CA", &other_ca)
        .arg("connections")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("TLS handshake with the agent"),
        "{}",
        stderr(&out)
    );
    let out = agent
        .hoop(Some(&token))
        .env_remove("HOOP_AGENT_FINGERPRINT")
        .env("HOOP_AGENT_CA", &own_ca)
        .arg("connections")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // A fingerprint that is not one.
    let out = agent
        .hoop(Some(&token))
        .env("HOOP_AGENT_FINGERPRINT", "SHA256:1234")
        .arg("connections")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("SHA256:<64 hex digits>"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_forbidden_and_unreachable_connections() {
    let issuer = TestIssuer::start().await.unwrap();
    let echo = servers::echo().await.unwrap();
    let dead = servers::closed_port();
    let mut agent = Agent::start(
        issuer.url(),
        &[
            Conn::tcp("echo", echo),
            Conn::tcp("admin", echo).groups(&["admins"]),
            Conn::tcp("dead", dead),
        ],
    )
    .unwrap();
    let token = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 600)
        .unwrap();

    let out = agent.run_hoop(Some(&token), &["connect", "nope", "-p", "0"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no connection named \"nope\""),
        "{}",
        stderr(&out)
    );

    let out = agent.run_hoop(Some(&token), &["connect", "admin", "-p", "0"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("alice@example.com may not use connection \"admin\""),
        "{err}"
    );

    // Unreachable backend: `hoop connect` starts (the backend may come
    // back), and each TCP connection is closed with the reason on stderr.
    let connect = Connect::start(&agent, &token, "dead").unwrap();
    // (The connection is reset rather than closed, so a client cannot
    // mistake it for an empty answer; connecting itself may race the reset.)
    if let Ok(mut s) = tokio::net::TcpStream::connect(connect.addr).await {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf))
            .await
            .expect("closed, not hung");
        assert!(buf.is_empty());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !connect.stderr.all().contains("could not reach the backend") {
        assert!(
            std::time::Instant::now() < deadline,
            "stderr: {}",
            connect.stderr.all()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(connect.stderr.all().contains(&dead.to_string()));

    agent.stop();
    let refused: Vec<String> = agent
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "refused")
        .map(|e| e["code"].as_str().unwrap().to_string())
        .collect();
    for code in ["unknown_connection", "forbidden", "backend_unreachable"] {
        assert!(
            refused.iter().any(|c| c == code),
            "{code} not audited: {refused:?}"
        );
    }
}

/// A raw tunnel client, for speaking to the agent in ways `hoop` never would.
async fn raw(agent: &Agent) -> (quinn::Endpoint, quinn::Connection) {
    let fp: Fingerprint = agent.fingerprint.parse().unwrap();
    let (cfg, _) = hoop_tunnel::tls::client_config(&Pin::Fingerprint(fp)).unwrap();
    let (ep, _) = hoop_tunnel::transport::endpoint("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let conn = ep
        .connect_with(cfg, agent.addr, "127.0.0.1")
        .unwrap()
        .await
        .unwrap();
    (ep, conn)
}

async fn ask(conn: &quinn::Connection, body: &[u8]) -> Option<Response> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(body).await.ok()?;
    tokio::time::timeout(
        Duration::from_secs(10),
        hoop_tunnel::frame::read::<Response>(&mut recv),
    )
    .await
    .expect("an answer or a close, not silence")
    .ok()
}

fn frame(req: &Request) -> Vec<u8> {
    let mut v = Vec::new();
    hoop_proto::tunnel::encode(req, &mut v).unwrap();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_version_mismatch_says_who_to_upgrade() {
    let issuer = TestIssuer::start().await.unwrap();
    let agent = Agent::start(issuer.url(), &[]).unwrap();
    let token = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 600)
        .unwrap();

    let (_ep, conn) = raw(&agent).await;
    let hello = Request::Hello {
        version: PROTOCOL_VERSION + 1,
        token: Token::new(token.clone()),
        client: "hoop 9".into(),
    };
    match ask(&conn, &frame(&hello)).await {
        Some(Response::Error(w)) => {
            assert_eq!(w.code, ErrorCode::VersionMismatch);
            assert!(w.message.contains("upgrade hoop-agent"), "{}", w.message);
        }
        other => panic!("{other:?}"),
    }

    // A future client whose Hello no longer parses still gets a version error.
    let (_ep, conn) = raw(&agent).await;
    let body = br#"{"type":"hello","version":7,"credentials":{"kind":"new"}}"#;
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    match ask(&conn, &bytes).await {
        Some(Response::Error(w)) => assert_eq!(w.code, ErrorCode::VersionMismatch, "{}", w.message),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_headers_are_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let echo = servers::echo().await.unwrap();
    let agent = Agent::start(issuer.url(), &[Conn::tcp("echo", echo)]).unwrap();

    // 4 GiB announced: refused at once, nothing allocated.
    let (_ep, conn) = raw(&agent).await;
    match ask(&conn, &[0xff, 0xff, 0xff, 0xff, b'{']).await {
        Some(Response::Error(w)) => assert_eq!(w.code, ErrorCode::BadRequest),
        None => {}
        other => panic!("{other:?}"),
    }

    // Garbage JSON.
    let (_ep, conn) = raw(&agent).await;
    match ask(&conn, b"\x00\x00\x00\x05hello").await {
        Some(Response::Error(w)) => assert_eq!(w.code, ErrorCode::BadRequest),
        other => panic!("{other:?}"),
    }

    // Open before Hello: no bytes flow to the backend.
    let (_ep, conn) = raw(&agent).await;
    let open = Request::Open {
        connection: "echo".into(),
        client_addr: None,
    };
    match ask(&conn, &frame(&open)).await {
        Some(Response::Error(w)) => assert_eq!(w.code, ErrorCode::Unauthenticated),
        other => panic!("{other:?}"),
    }

    // Discover needs no token and reveals only login settings.
    let (_ep, conn) = raw(&agent).await;
    match ask(
        &conn,
        &frame(&Request::Discover {
            version: PROTOCOL_VERSION,
        }),
    )
    .await
    {
        Some(Response::Discovery(s)) => {
            assert_eq!(s.issuer, issuer.url());
            assert_eq!(s.client_id, "hoop-cli");
            assert_eq!(s.audience, "hoop");
        }
        other => panic!("{other:?}"),
    }

    // Silence after the handshake: the agent hangs up on its own.
    let (_ep, conn) = raw(&agent).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0, 0]).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(30), conn.closed()).await;
    assert!(closed.is_ok(), "agent kept a silent tunnel open");

    // The agent is still healthy.
    let token = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 600)
        .unwrap();
    let connect = Connect::start(&agent, &token, "echo").unwrap();
    let mut s = tokio::net::TcpStream::connect(connect.addr).await.unwrap();
    s.write_all(b"still ok").await.unwrap();
    let mut b = [0u8; 8];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"still ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn trust_saves_a_verified_pin() {
    let issuer = TestIssuer::start().await.unwrap();
    let agent = Agent::start(issuer.url(), &[]).unwrap();
    let cli = TempDir::new("hoop-cli");
    let base = || {
        let mut c = std::process::Command::new(hoop_tests::harness::bin("hoop"));
        c.env("HOOP_CONFIG_DIR", cli.path())
            .env_remove("HOOP_AGENT")
            .env_remove("HOOP_AGENT_FINGERPRINT")
            .env_remove("HOOP_AGENT_CA")
            .env_remove("HOOP_TOKEN");
        c
    };
    let out = base().arg("connections").output().unwrap();
    assert!(stderr(&out).contains("hoop trust"), "{}", stderr(&out));

    let addr = agent.addr.to_string();
    let wrong = format!("SHA256:{}", "ab".repeat(32));
    let out = base()
        .args(["trust", &addr, "--fingerprint", &wrong])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not saved"), "{}", stderr(&out));
    assert!(!cli.path().join("config.toml").exists());

    let out = base()
        .args(["trust", &addr, "--fingerprint", &agent.fingerprint])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let token = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 600)
        .unwrap();
    let out = base()
        .env("HOOP_TOKEN", &token)
        .args(["whoami", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

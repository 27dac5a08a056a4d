//! Bytes through the real `hoop connect` and `hoop-agent` to TCP servers.

use std::time::Duration;

use hoop_tests::harness::{Agent, Conn, Connect};
use hoop_tests::issuer::TestIssuer;
use hoop_tests::servers::{self, Noise, sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn setup() -> (TestIssuer, Agent, String) {
    let issuer = TestIssuer::start().await.unwrap();
    let echo = servers::echo().await.unwrap();
    let sink = servers::hashing_sink().await.unwrap();
    let agent = Agent::start(
        issuer.url(),
        &[Conn::tcp("echo", echo), Conn::tcp("sink", sink)],
    )
    .unwrap();
    let token = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 3600)
        .unwrap();
    (issuer, agent, token)
}

async fn echo_round_trip(addr: std::net::SocketAddr, seed: u64, len: usize) -> anyhow::Result<()> {
    let mut data = vec![0u8; len];
    Noise::new(seed).fill(&mut data);
    let mut s = TcpStream::connect(addr).await?;
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&data).await?;
        w.shutdown().await?;
        anyhow::Ok(())
    };
    let mut back = Vec::with_capacity(len);
    let recv = async {
        r.read_to_end(&mut back).await?;
        anyhow::Ok(())
    };
    tokio::try_join!(send, recv)?;
    anyhow::ensure!(
        back.len() == len,
        "got {} bytes back, sent {len}",
        back.len()
    );
    anyhow::ensure!(sha256(&back) == sha256(&data), "echoed bytes differ");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_through_agent_and_cli() {
    let (_issuer, agent, token) = setup().await;
    let connect = Connect::start(&agent, &token, "echo").unwrap();
    echo_round_trip(connect.addr, 1, 10).await.unwrap();
    echo_round_trip(connect.addr, 2, 3 * 1024 * 1024 + 7)
        .await
        .unwrap();

    // The session is in the audit log with who, what and how much.
    drop(connect);
    let mut agent = agent;
    agent.stop();
    let events = agent.audit();
    let ends: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "session_end")
        .collect();
    assert_eq!(ends.len(), 2, "{events:#?}");
    let big = ends
        .iter()
        .find(|e| e["bytes_up"] == 3 * 1024 * 1024 + 7)
        .expect("the 3 MiB session");
    assert_eq!(big["bytes_down"], 3 * 1024 * 1024 + 7);
    assert_eq!(big["user"], "alice@example.com");
    assert_eq!(big["connection"], "echo");
    assert_eq!(big["outcome"], "ok");
    let start = events
        .iter()
        .find(|e| e["event"] == "session_start" && e["session"] == big["session"])
        .expect("matching session_start");
    assert_eq!(start["connection_type"], "tcp");
    assert!(
        start["client_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(events.last().unwrap()["event"], "agent_stop");
    let out = std::process::Command::new(hoop_tests::harness::bin("hoop-agent"))
        .args(["audit", "verify", "--data-dir"])
        .arg(agent.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("chain intact"));
}

#[tokio::test(flavor = "multi_thread")]
async fn half_close_is_carried_both_ways() {
    let (_issuer, agent, token) = setup().await;
    let connect = Connect::start(&agent, &token, "sink").unwrap();
    // The sink answers only after it sees EOF: our shutdown(SHUT_WR) must
    // reach it while our read side stays open for the answer.
    let mut s = TcpStream::connect(connect.addr).await.unwrap();
    let data = b"half-close me";
    s.write_all(data).await.unwrap();
    s.shutdown().await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer.len(), 40);
    assert_eq!(&answer[..32], sha256(data).as_slice());
    assert_eq!(
        u64::from_be_bytes(answer[32..].try_into().unwrap()),
        data.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_connections() {
    let (_issuer, agent, token) = setup().await;
    let connect = Connect::start(&agent, &token, "echo").unwrap();
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let addr = connect.addr;
        tasks.push(tokio::spawn(async move {
            echo_round_trip(addr, i + 10, 64 * 1024 + i as usize).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        t.await
            .unwrap()
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_gibibyte_one_way_with_checksum() {
    let (_issuer, agent, token) = setup().await;
    let connect = Connect::start(&agent, &token, "sink").unwrap();
    const TOTAL: u64 = 1 << 30;
    let mut s = TcpStream::connect(connect.addr).await.unwrap();
    let mut noise = Noise::new(42);
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut sent = 0u64;
    while sent < TOTAL {
        noise.fill(&mut buf);
        ctx.update(&buf);
        s.write_all(&buf).await.unwrap();
        sent += buf.len() as u64;
    }
    s.shutdown().await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer.len(), 40, "sink answer");
    assert_eq!(u64::from_be_bytes(answer[32..].try_into().unwrap()), TOTAL);
    assert_eq!(
        &answer[..32],
        ctx.finish().as_ref(),
        "checksum of 1 GiB differs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_restart_mid_run_reconnects_on_next_connection() {
    let (_issuer, mut agent, token) = setup().await;
    let mut connect = Connect::start(&agent, &token, "echo").unwrap();
    echo_round_trip(connect.addr, 1, 1000).await.unwrap();

    // A connection open across the restart is cut, not hung.
    let mut open = TcpStream::connect(connect.addr).await.unwrap();
    open.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    open.read_exact(&mut one).await.unwrap();

    agent.restart().unwrap();
    let mut rest = Vec::new();
    let cut = tokio::time::timeout(Duration::from_secs(20), open.read_to_end(&mut rest))
        .await
        .expect("a connection across the restart must end, not hang");
    assert!(cut.is_err() || rest.is_empty(), "{cut:?} {rest:?}");

    // The same `hoop connect` serves new connections through the new agent.
    echo_round_trip(connect.addr, 2, 100_000).await.unwrap();
    echo_round_trip(connect.addr, 3, 10).await.unwrap();
    assert!(connect.running());
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_runs_command_and_returns_its_status() {
    let (_issuer, agent, token) = setup().await;
    let out = agent
        .hoop(Some(&token))
        .args(["connect", "echo", "-p", "0", "--", "sh", "-c"])
        .arg("test -n \"$HOOP_HOST\" && test -n \"$HOOP_PORT\" && echo port=$HOOP_PORT; exit 7")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("port="), "{stdout}");
    // The ready line went to stderr so the command's output stays clean.
    assert!(String::from_utf8_lossy(&out.stderr).contains("is ready on 127.0.0.1:"));

    // The command really can use the port: python's socket as a client.
    let out = agent
        .hoop(Some(&token))
        .args(["connect", "echo", "-p", "0", "--", "python3", "-c"])
        .arg(
            "import os,socket;s=socket.create_connection((os.environ['HOOP_HOST'],int(os.environ['HOOP_PORT'])));\
             s.sendall(b'ping');s.shutdown(socket.SHUT_WR);print(s.makefile('rb').read().decode())",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ping");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_connects_at_once_and_port_in_use() {
    let (_issuer, agent, token) = setup().await;
    let a = Connect::start(&agent, &token, "echo").unwrap();
    let b = Connect::start(&agent, &token, "sink").unwrap();
    echo_round_trip(a.addr, 5, 5000).await.unwrap();
    let mut s = TcpStream::connect(b.addr).await.unwrap();
    s.write_all(b"abc").await.unwrap();
    s.shutdown().await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    assert_eq!(&answer[..32], sha256(b"abc").as_slice());

    // Asking for a port that is taken says so and how to fix it.
    let port = a.addr.port().to_string();
    let out = agent.run_hoop(Some(&token), &["connect", "sink", "-p", &port]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {port} on 127.0.0.1 is in use")),
        "{err}"
    );
    assert!(err.contains("-p 0"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_lists_only_what_the_caller_may_open() {
    let issuer = TestIssuer::start().await.unwrap();
    let echo = servers::echo().await.unwrap();
    let agent = Agent::start(
        issuer.url(),
        &[
            Conn::tcp("by-group", echo),
            Conn::tcp("by-user", echo)
                .groups(&[])
                .users(&["bob@example.com"]),
            Conn::tcp("nobody", echo).groups(&[]),
        ],
    )
    .unwrap();
    let alice = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 600)
        .unwrap();
    let bob = issuer
        .token_for("bob@example.com", &["sales"], "hoop", 600)
        .unwrap();
    let list = |t: &str| -> Vec<String> {
        let out = agent.run_hoop(Some(t), &["connections", "-o", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert_eq!(c["type"], "tcp");
                assert_eq!(c["default_port"], 8999);
                c["name"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(list(&alice), vec!["by-group"]);
    assert_eq!(list(&bob), vec!["by-user"]);
    let table = agent.run_hoop(Some(&alice), &["connections"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("NAME") && text.contains("by-group") && !text.contains("nobody"),
        "{text}"
    );
}

//! A PostgreSQL session through hoop over time: cancel requests (which
//! arrive on a connection of their own), LISTEN/NOTIFY, the backend going
//! away under a session, and a port probe that must not disturb anything.

mod postgres_common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use hoop_tests::pg::{APP_DB, PgCluster, connect_tokio, psql_command};
use postgres_common::*;
use tokio_postgres::{AsyncMessage, NoTls};

#[tokio::test(flavor = "multi_thread")]
async fn cancel_through_hoop() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    let ignored = || {
        s.agent
            .log
            .all()
            .matches("cancel request with an unknown key ignored")
            .count()
    };

    // tokio-postgres: its cancel token dials the hoop port again.
    let client = std::sync::Arc::new(
        connect_tokio("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, None)
            .await
            .unwrap(),
    );
    let sleeper = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .simple_query("select pg_sleep(60) /* tokio-sleep */")
                .await
        }
    });
    wait_active(&pg, "tokio-sleep");
    client.cancel_token().cancel_query(NoTls).await.unwrap();
    let err = tokio::time::timeout(WAIT, sleeper)
        .await
        .expect("the cancelled query must return")
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    let row = client.query_one("select 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);

    // The key the client holds works only with its exact value and only
    // for the same hoop user.
    let (mut raw, login) = RawPg::connect(c.addr, &[("user", CLIENT_USER), ("database", APP_DB)])
        .await
        .unwrap();
    let (pid, key) = login
        .iter()
        .find(|m| m.tag == b'K')
        .expect("BackendKeyData")
        .key_data();
    raw.send(&fe::query("select pg_sleep(60) /* raw-sleep */"))
        .await
        .unwrap();
    wait_active(&pg, "raw-sleep");
    let mut wrong = key.clone();
    wrong[0] ^= 1;
    send_cancel(c.addr, pid, &wrong).await;
    let bob = s
        .issuer
        .token_for("bob@example.com", &["eng"], "hoop", 3600)
        .unwrap();
    let bob_port = hoop_tests::harness::Connect::start(&s.agent, &bob, "db").unwrap();
    send_cancel(bob_port.addr, pid, &key).await;
    wait_for("the agent to ignore both cancels", || {
        (ignored() == 2).then_some(())
    })
    .unwrap();
    assert_eq!(
        active_with(&pg, "raw-sleep"),
        1,
        "a wrong or foreign cancel went through"
    );

    send_cancel(c.addr, pid, &key).await;
    let msgs = raw.until_ready().await.unwrap();
    assert_eq!(tags(&msgs), "TEZ", "{msgs:?}");
    assert_eq!(msgs[1].code(), "57014");
    let msgs = raw.simple("select 'after cancel'").await.unwrap();
    assert_eq!(msgs[1].values(), [Some("after cancel".to_string())]);
    assert_eq!(
        s.agent
            .log
            .all()
            .matches("cancel request forwarded")
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_notify() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(c.addr.port())
        .user(CLIENT_USER)
        .dbname(APP_DB)
        .connect_timeout(WAIT);
    let (client, mut conn) = config.connect(NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client.batch_execute("listen hoop_chan").await.unwrap();

    // From another hoop session (psql), and from outside hoop altogether:
    // both arrive while the listener is idle.
    assert_eq!(psql_ok(&c, "select pg_notify('hoop_chan', 'via hoop')"), "");
    pg.sql(APP_DB, "notify hoop_chan, 'direct'").unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a notification within the time limit")
            .expect("the connection is alive");
        got.push(n);
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("hoop_chan".to_string(), "direct".to_string()),
            ("hoop_chan".to_string(), "via hoop".to_string())
        ]
    );
    // psql prints a notification to its own session after the command.
    let out = psql(
        &c,
        APP_DB,
        &[
            "-c",
            "listen self_chan",
            "-c",
            "notify self_chan, 'to myself'",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Asynchronous notification \"self_chan\" with payload \"to myself\""),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_gone_mid_session_is_an_error_not_a_hang() {
    let mut pg = PgCluster::start().unwrap();
    let proxy = Proxy::start(pg.addr()).await.unwrap();
    let s = Setup::start(&[pg_conn("db", &pg), pg_conn_via("cut", &pg, proxy.addr)]).await;

    // The agent's connection to the backend drops while a query runs: the
    // client gets the agent's FATAL 08006, then the end of the stream.
    let cut = s.connect("cut");
    let (mut raw, login) = RawPg::connect(cut.addr, &[("user", CLIENT_USER), ("database", APP_DB)])
        .await
        .unwrap();
    assert_eq!(login.last().unwrap().tag, b'Z', "{login:?}");
    raw.send(&fe::query("select pg_sleep(60) /* cut-tag */"))
        .await
        .unwrap();
    wait_active(&pg, "cut-tag");
    proxy.cut();
    let msgs = raw.until_closed().await.unwrap();
    let fatal = msgs.last().expect("a message before the end");
    let f = fatal.fields();
    assert_eq!(fatal.tag, b'E', "{msgs:?}");
    assert_eq!(f[&'S'], "FATAL");
    assert_eq!(f[&'C'], "08006");
    assert!(
        f[&'M'].starts_with("hoop: the backend closed the connection; "),
        "{}",
        f[&'M']
    );
    let end = s.wait_event("session_end", |e| e["connection"] == "cut");
    assert_eq!(end["outcome"], "error");

    // The cluster restarts under a session with a query in flight: the
    // query fails within the limit, and new sessions work once it is back.
    let c = s.connect("db");
    let client = connect_tokio("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, None)
        .await
        .unwrap();
    let sleeper = tokio::spawn(async move {
        let r = client
            .simple_query("select pg_sleep(60) /* restart-tag */")
            .await;
        (r, client)
    });
    wait_active(&pg, "restart-tag");
    pg.restart().unwrap();
    let (result, client) = tokio::time::timeout(WAIT, sleeper)
        .await
        .expect("a query across a backend restart must fail, not hang")
        .unwrap();
    assert!(result.is_err(), "{result:?}");
    let again = tokio::time::timeout(WAIT, client.simple_query("select 1"))
        .await
        .expect("the dead session must answer at once");
    assert!(again.is_err());
    assert_eq!(psql_ok(&c, "select 'back'"), "back");

    // psql idle across a restart: its next command reports the loss.
    let mut idle = psql_command("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB)
        .args(["-At"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = idle.stdin.take().unwrap();
    let mut out = BufReader::new(idle.stdout.take().unwrap());
    writeln!(stdin, "select 'before';").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "before");
    pg.restart().unwrap();
    writeln!(stdin, "select 'after';").unwrap();
    drop(stdin);
    let waited = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || idle.wait_with_output()),
    )
    .await
    .expect("psql must not hang")
    .unwrap()
    .unwrap();
    assert!(!waited.status.success());
    let err = stderr(&waited);
    // The server's own goodbye, then the agent's.
    assert!(err.contains("terminating connection"), "{err}");
    assert!(
        err.contains("hoop: the backend closed the connection"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_port_probe_does_not_disturb_the_tunnel() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let mut c = s.connect("db");
    // `nc -z`: connect and close without a byte.
    drop(std::net::TcpStream::connect(c.addr).unwrap());
    // A checker that asks for TLS, hears N, and leaves.
    let mut probe = std::net::TcpStream::connect(c.addr).unwrap();
    std::io::Write::write_all(&mut probe, &fe::ssl_request()).unwrap();
    let mut answer = [0u8; 1];
    std::io::Read::read_exact(&mut probe, &mut answer).unwrap();
    assert_eq!(&answer, b"N");
    drop(probe);

    assert_eq!(psql_ok(&c, "select 'still fine'"), "still fine");
    assert!(c.running());
    let ok = s.wait_event("session_end", |e| e["outcome"] == "ok");
    assert_eq!(ok["client_user"], CLIENT_USER);
    // Only the probes' own sessions ended early; nothing else went wrong.
    let ends = s.wait_audit("the three sessions to end", |evs| {
        let ends: Vec<_> = evs
            .iter()
            .filter(|e| e["event"] == "session_end")
            .cloned()
            .collect();
        (ends.len() >= 3).then_some(ends)
    });
    assert_eq!(ends.len(), 3, "{ends:#?}");
    let probes: Vec<_> = ends.iter().filter(|e| e["outcome"] != "ok").collect();
    assert_eq!(probes.len(), 2, "{ends:#?}");
    for p in probes {
        assert_eq!(p["error"], "client closed before startup", "{ends:#?}");
        assert_eq!(p["bytes_up"], 0);
    }
    let errors = s.log_at("ERROR");
    assert!(errors.is_empty(), "{errors:#?}");
    let cli = c.stderr.all();
    assert!(!cli.to_lowercase().contains("error"), "{cli}");
}

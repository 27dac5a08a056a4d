//! MySQL connections at their edges, against a real MariaDB the tests
//! start: TLS to the backend and its failures, the backend restarting
//! under a session, hostile bytes on the local port, LOCAL INFILE when a
//! connection allows it, and COM_RESET_CONNECTION on a read-only
//! connection.

#[path = "postgres_common/mod.rs"]
mod common;
mod mysql_common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use common::{Setup, stderr, stdout};
use hoop_proto::mysql::{self, InitialHandshake, OkPacket, Packet, SslRequest, flags::*};
use hoop_tests::harness::{Conn, TempDir};
use hoop_tests::mysql::{APP_DB, MariaDb, mysql_command, python_mysql_client};
use hoop_tests::pg::TestCerts;
use mysql_common::{Answer, RawMy, closes, err_of, my_conn, my_conn_tls, q, q_ok, read_packet};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread")]
async fn tls_to_the_backend_verifies_and_fails_clearly() {
    let db = MariaDb::builder().tls().start().unwrap();
    let ca = db.ca_path().unwrap().display().to_string();
    let other = TempDir::new("hoop-other-ca");
    let other_ca = other.path().join("ca.crt");
    std::fs::write(
        &other_ca,
        TestCerts::generate("hoop-tests other CA").unwrap().ca_pem,
    )
    .unwrap();
    let s = Setup::start(&[
        my_conn_tls(
            "full",
            &db,
            &format!("tls = \"verify-full\"\ntls_ca = {ca:?}"),
        ),
        my_conn_tls("req", &db, "tls = \"require\""),
        my_conn_tls("plain", &db, "tls = \"disable\""),
        my_conn_tls(
            "wrongca",
            &db,
            &format!(
                "tls = \"verify-full\"\ntls_ca = {:?}",
                other_ca.display().to_string()
            ),
        ),
    ])
    .await;
    let ssl = "select variable_value from information_schema.session_status where variable_name = 'Ssl_version'";
    for name in ["full", "req"] {
        let c = s.connect(name);
        let version = q_ok(c.addr.port(), ssl);
        assert!(version.starts_with("TLSv1."), "{name}: {version:?}");
        // The app user logs in with mysql_native_password, over TLS.
        assert_eq!(
            q_ok(c.addr.port(), "select current_user(), database()"),
            format!("app@%\t{APP_DB}")
        );
    }
    // Plain TCP to a server that requires TLS: it says "access denied"
    // as for a wrong password; hoop says what else that may mean.
    let c = s.connect("plain");
    let err = stderr(&q(c.addr.port(), "select 1"));
    assert!(err.contains("ERROR 1045"), "{err}");
    assert!(
        err.contains("the backend offers TLS, which this connection does not use"),
        "{err}"
    );
    assert!(err.contains("tls = \"verify-full\""), "{err}");
    // A CA that did not sign the server's certificate.
    let c = s.connect("wrongca");
    let err = stderr(&q(c.addr.port(), "select 1"));
    assert!(err.contains("ERROR 1105"), "{err}");
    assert!(
        err.contains("TLS to the backend failed: invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_restart_ends_the_session_with_an_error_and_new_ones_work() {
    let mut db = MariaDb::start().unwrap();
    let s = Setup::start(&[my_conn("shop", &db)]).await;
    let c = s.connect("shop");
    let port = c.addr.port();
    let mut raw = RawMy::connect(port).await;
    assert_eq!(raw.value("select 1").await.as_deref(), Some("1"));

    db.restart().unwrap();
    // The agent tells the idle client at once, as the answer to its next
    // statement, and ends the session.
    raw.command(b"\x03select 2").await;
    let p = raw
        .next_or_closed()
        .await
        .expect("an ERR, not just a close");
    let err = err_of(&p);
    assert_eq!((p.seq, err.code), (1, 1105));
    assert_eq!(
        err.message_lossy(),
        "hoop: the backend closed the connection"
    );
    assert!(closes(&mut raw.stream).await);
    let end = s.wait_event("session_end", |e| e["outcome"] == "error");
    assert!(
        end["error"].as_str().unwrap().contains("backend"),
        "{end:#}"
    );
    // A new session logs in again.
    let mut raw = RawMy::connect(port).await;
    assert_eq!(raw.value("select 3").await.as_deref(), Some("3"));
    assert_eq!(q_ok(port, "select 4"), "4");

    // With the server down, a login gets an error that says so.
    db.stop().unwrap();
    let out = q(port, "select 5");
    let err = stderr(&out);
    assert!(err.contains("ERROR 1105"), "{err}");
    assert!(
        err.contains("hoop could not reach the database of connection \"shop\""),
        "{err}"
    );
}

/// Sends `bytes` where the HandshakeResponse belongs; what comes back.
async fn hello_with(port: u16, bytes: &[u8]) -> (Option<Packet>, TcpStream) {
    let (mut stream, mut buf, _) = RawMy::greeted(port).await;
    stream.write_all(bytes).await.unwrap();
    (read_packet(&mut stream, &mut buf).await, stream)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_bytes_on_the_local_port_get_errors_and_the_agent_goes_on() {
    let db = MariaDb::start().unwrap();
    let s = Setup::start(&[my_conn("shop", &db)]).await;
    let c = s.connect("shop");
    let port = c.addr.port();

    // Not MySQL at all: "GET" reads as a 5 MB packet, over the pre-login cap.
    let (p, mut stream) = hello_with(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let err = err_of(&p.expect("an ERR"));
    assert_eq!(err.code, 1043);
    assert!(
        err.message_lossy()
            .starts_with("hoop: bad handshake: packet announces"),
        "{}",
        err.message_lossy()
    );
    assert!(closes(&mut stream).await);
    // A header announcing 16 MiB is refused at once, not waited for.
    let (p, mut stream) = hello_with(port, &[0xFF, 0xFF, 0xFF, 0x01]).await;
    assert_eq!(err_of(&p.expect("an ERR")).code, 1043);
    assert!(closes(&mut stream).await);
    // A well-framed packet of garbage.
    let (p, mut stream) = hello_with(port, &[5, 0, 0, 1, 1, 2, 3, 4, 5]).await;
    let err = err_of(&p.expect("an ERR"));
    assert_eq!(err.code, 1043);
    assert!(
        err.message_lossy()
            .starts_with("hoop: bad handshake: malformed"),
        "{}",
        err.message_lossy()
    );
    assert!(closes(&mut stream).await);
    // Half a packet, then the client goes.
    let (mut stream, _, _) = RawMy::greeted(port).await;
    stream.write_all(&[40, 0, 0, 1, 0x85, 0xa6]).await.unwrap();
    stream.shutdown().await.unwrap();
    assert!(closes(&mut stream).await);

    // An SSLRequest: TLS is not spoken on the local leg.
    let mut ssl = BytesMut::new();
    mysql::write_packet(&mut ssl, 1, |o| {
        SslRequest {
            capabilities: CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION,
            max_packet_size: 1 << 24,
            charset: 45,
        }
        .encode(o)
    })
    .unwrap();
    let (p, mut stream) = hello_with(port, &ssl).await;
    let p = p.expect("an ERR");
    assert_eq!(p.seq, 2);
    let msg = err_of(&p).message_lossy().into_owned();
    assert!(msg.contains("--ssl-mode=DISABLED"), "{msg}");
    assert!(msg.contains("--skip-ssl"), "{msg}");
    assert!(closes(&mut stream).await);

    // After login: broken commands get an ERR and the session goes on.
    let mut raw = RawMy::connect(port).await;
    let stmt = raw.prepare("select ?").await;
    let id = stmt.statement_id.to_le_bytes();
    // (code, start of the message): hoop's own refusals, or the server's.
    for (cmd, code, msg) in [
        (vec![], 1047, "hoop: malformed command: empty payload"),
        (
            vec![0x17, id[0], id[1]],
            1047,
            "hoop: malformed COM_STMT_EXECUTE",
        ),
        (
            vec![0x17, id[0], id[1], id[2], id[3], 0, 1, 0, 0, 0],
            1210,
            "Incorrect arguments to mysqld_stmt_execute",
        ),
        (
            vec![0x7F, 1, 2, 3],
            1047,
            "hoop: command COM_UNKNOWN is not supported",
        ),
    ] {
        raw.command(&cmd).await;
        let p = raw.next().await;
        let err = err_of(&p);
        assert_eq!((p.seq, err.code), (1, code), "{cmd:?}");
        assert!(err.message_lossy().starts_with(msg), "{cmd:?}: {err:?}");
        assert_eq!(raw.value("select 1").await.as_deref(), Some("1"));
    }
    // A real client that would like TLS but does not insist (`--ssl`)
    // still connects: the greeting does not offer TLS, so it never asks.
    let out = mysql_command("127.0.0.1", port, "alice", APP_DB)
        .args(["--ssl", "-N", "-B", "-e", "select 3"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "3", "{}", stderr(&out));

    // Other sessions were never disturbed.
    assert_eq!(q_ok(port, "select 2"), "2");
    assert!(!s.agent.log.all().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn local_infile_when_allowed_is_relayed_and_audited() {
    let db = MariaDb::start().unwrap();
    let s = Setup::start(&[my_conn("files", &db).extra("allow_local_infile = true")]).await;
    let c = s.connect("files");
    let out = python_mysql_client("127.0.0.1", c.addr.port(), "alice", APP_DB, "infile")
        .unwrap()
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("\"rows\": 1000"), "{}", stdout(&out));
    let ev = s.wait_audit("the load's statement event", |evs| {
        evs.iter()
            .find(|e| {
                e["event"] == "statement"
                    && e["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("load data local infile"))
            })
            .cloned()
    });
    assert_eq!(ev["outcome"], "ok", "{ev:#}");
    assert_eq!(ev["rows"], 1000, "{ev:#}");
    // 1,000 lines of "N\trow N é\n".
    let size: usize = (0..1000).map(|i| format!("{i}\trow {i} é\n").len()).sum();
    assert_eq!(
        ev["commands"],
        serde_json::json!([format!("LOCAL INFILE {size} bytes"), "OK 1000"]),
        "{ev:#}"
    );
}

/// A server that logs anyone in and answers every query with a request
/// for the client's `/etc/passwd`; what the agent sends after such a
/// request goes to `seen`.
async fn rogue_server(seen: Arc<Mutex<Vec<u8>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let caps = CLIENT_PROTOCOL_41
                    | CLIENT_SECURE_CONNECTION
                    | CLIENT_PLUGIN_AUTH
                    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
                    | CLIENT_CONNECT_WITH_DB
                    | CLIENT_TRANSACTIONS
                    | CLIENT_DEPRECATE_EOF
                    | CLIENT_LOCAL_FILES;
                let hello = InitialHandshake {
                    server_version: "5.5.5-10.11.0-MariaDB".into(),
                    connection_id: 7,
                    auth_plugin_data: Bytes::from_static(b"0123456789abcdefghij\0"),
                    capabilities: caps,
                    charset: 45,
                    status: 2,
                    auth_plugin_name: Some("mysql_native_password".into()),
                };
                let mut out = BytesMut::new();
                mysql::write_packet(&mut out, 0, |o| hello.encode(o)).unwrap();
                let mut buf = BytesMut::new();
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                let Some(login) = read_packet(&mut stream, &mut buf).await else {
                    return;
                };
                // Results take the layout the agent asked for.
                let agreed = mysql::HandshakeResponse::decode(&login.payload)
                    .map(|h| h.capabilities & caps)
                    .unwrap_or(caps);
                out.clear();
                mysql::write_packet(&mut out, 2, |o| OkPacket::default().encode(caps, o)).unwrap();
                stream.write_all(&out).await.unwrap();
                while let Some(p) = read_packet(&mut stream, &mut buf).await {
                    if p.first() != Some(mysql::command::COM_QUERY) {
                        seen.lock().unwrap().extend_from_slice(&p.raw);
                        continue;
                    }
                    out.clear();
                    if p.payload.windows(18).any(|w| w == b"max_allowed_packet") {
                        // The agent's own question at login: answer it.
                        let col = mysql::ColumnDefinition::new(
                            "@@max_allowed_packet",
                            mysql::column::MYSQL_TYPE_LONGLONG,
                        );
                        let eof = mysql::EofPacket {
                            warnings: 0,
                            status: 2,
                        };
                        let mut seq = mysql::encode_packet(1, &[1], &mut out).unwrap();
                        seq =
                            mysql::write_packet(&mut out, seq, |o| col.encode(agreed, o)).unwrap();
                        if agreed & CLIENT_DEPRECATE_EOF == 0 {
                            seq = mysql::write_packet(&mut out, seq, |o| {
                                eof.encode(agreed, o);
                                Ok(())
                            })
                            .unwrap();
                        }
                        seq = mysql::write_packet(&mut out, seq, |o| {
                            mysql::encode_text_row(&[Some(b"16777216")], o)
                        })
                        .unwrap();
                        mysql::write_packet(&mut out, seq, |o| {
                            if agreed & CLIENT_DEPRECATE_EOF == 0 {
                                eof.encode(agreed, o);
                                Ok(())
                            } else {
                                OkPacket::default().encode_as_eof(agreed, o)
                            }
                        })
                        .unwrap();
                    } else {
                        mysql::encode_packet(1, b"\xFB/etc/passwd", &mut out).unwrap();
                    }
                    stream.write_all(&out).await.unwrap();
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_asking_for_a_file_the_connection_does_not_allow_gets_nothing() {
    let seen = Arc::<Mutex<Vec<u8>>>::default();
    let addr = rogue_server(seen.clone()).await;
    let conn = Conn::mysql("rogue", addr).extra(
        "user = \"app\"\ndatabase = \"appdb\"\npassword = { value = \"pw\" }\ntls = \"disable\"",
    );
    let s = Setup::start(&[conn]).await;
    let c = s.connect("rogue");
    // PyMySQL with local_infile on would send the file if asked.
    let out = python_mysql_client("127.0.0.1", c.addr.port(), "alice", APP_DB, "infile")
        .unwrap()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the backend asked for a client file (LOCAL INFILE), which this connection does not allow"),
        "{err}"
    );
    let ev = s.wait_event("session_end", |e| e["connection"] == "rogue");
    assert_eq!(ev["outcome"], "error", "{ev:#}");
    assert!(!String::from_utf8_lossy(&seen.lock().unwrap()).contains("root:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_survives_reset_connection_and_mariadb_ways_around_it() {
    let db = MariaDb::start().unwrap();
    db.sql(APP_DB, "create table t (id int)").unwrap();
    let s = Setup::start(&[my_conn("ro", &db).extra("read_only = true")]).await;
    let c = s.connect("ro");
    let mut raw = RawMy::connect(c.addr.port()).await;
    let ro = "select @@session.tx_read_only";
    assert_eq!(raw.value(ro).await.as_deref(), Some("1"));
    // COM_RESET_CONNECTION (the mariadb client cannot send it) drops the
    // session's settings; the agent sets read-only again.
    raw.command(&[mysql::command::COM_RESET_CONNECTION]).await;
    let ok = raw.next().await;
    assert_eq!((ok.seq, ok.first()), (1, Some(0x00)), "{:?}", ok.payload);
    assert_eq!(raw.value(ro).await.as_deref(), Some("1"));
    // An executed comment hides a write from the guardrail; the server
    // still refuses it.
    match raw.query("/*! insert into t values (1) */").await {
        Answer::Err(code, _) => assert_eq!(code, 1792),
        other => panic!("the write went through: {other:?}"),
    }
    // MariaDB's ways to make the session writable are refused before
    // they reach it.
    let hex: String = b"set tx_read_only = 0"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(matches!(
        raw.query(&format!("set @q = x'{hex}'")).await,
        Answer::Ok(_)
    ));
    for sql in [
        "set tx_read_only = 0",
        "/*!40101 set @@tx_read_only = off */",
        "select 'x\\'', 1; set session transaction read write; select '1'",
        "prepare s from @q",
        "execute immediate @q",
    ] {
        match raw.query(sql).await {
            Answer::Err(1142, msg) => assert!(
                msg.starts_with("this connection is read-only: ")
                    && msg.ends_with("(refused by hoop guardrail read_only)"),
                "{msg}"
            ),
            other => panic!("{sql}: {other:?}"),
        }
    }
    assert_eq!(raw.value(ro).await.as_deref(), Some("1"));
    assert_eq!(db.sql(APP_DB, "select count(*) from t").unwrap(), "0");
    s.wait_event("statement_refused", |e| {
        e["text"] == "prepare s from @q" && e["rule"] == "read_only"
    });
}

/// MariaDB's PAM plugin, in-process (v1: v2 needs a setuid helper that
/// Debian does not ship), where Debian puts it.
const PAM_PLUGIN: &str = "/usr/lib/mysql/plugin/auth_pam_v1.so";

#[tokio::test(flavor = "multi_thread")]
async fn clear_password_is_sent_only_over_tls() {
    if !std::path::Path::new(PAM_PLUGIN).exists() {
        eprintln!("skipped: no {PAM_PLUGIN}, nothing asks for mysql_clear_password");
        return;
    }
    // PAM with pam_use_cleartext_plugin asks for mysql_clear_password.
    let db = MariaDb::builder()
        .tls_optional()
        .option("plugin-load-add", "auth_pam_v1")
        .option("pam-use-cleartext-plugin", "ON")
        .start()
        .unwrap();
    db.sql(
        APP_DB,
        "create user pamu@'%' identified via pam using 'hoop-test-none'",
    )
    .unwrap();
    let ca = db.ca_path().unwrap().display().to_string();
    let pam = |name: &str, tls: &str| {
        Conn::mysql(name, db.addr()).extra(&format!(
            "user = \"pamu\"\ndatabase = {APP_DB:?}\npassword = {{ value = \"pam-secret\" }}\n{tls}"
        ))
    };
    let s = Setup::start(&[
        pam("plain", "tls = \"disable\""),
        pam("tls", &format!("tls = \"verify-full\"\ntls_ca = {ca:?}")),
    ])
    .await;
    let c = s.connect("plain");
    let err = stderr(&q(c.addr.port(), "select 1"));
    assert!(
        err.contains("the backend asks for the password in clear over an unencrypted connection"),
        "{err}"
    );
    // Over TLS the password goes; PAM (no such service, no such user)
    // says no, and that verdict is the server's.
    let c = s.connect("tls");
    let err = stderr(&q(c.addr.port(), "select 1"));
    assert!(err.contains("ERROR 1045"), "{err}");
    assert!(
        err.contains("the backend refused the login: Access denied for user 'pamu'"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_longer_than_the_backends_max_allowed_packet_is_refused_before_buffering() {
    let db = MariaDb::builder()
        .option("max_allowed_packet", "1M")
        .start()
        .unwrap();
    let s = Setup::start(&[my_conn("shop", &db)]).await;
    let c = s.connect("shop");
    let mut raw = RawMy::connect(c.addr.port()).await;
    let big = format!("select '{}'", "x".repeat(3 << 20));
    // The agent reads the command through without keeping it, so the
    // whole write goes out and the refusal arrives (closing under the
    // write would reset the connection and lose it).
    match raw.query(&big).await {
        Answer::Err(code, msg) => {
            assert_eq!(code, 1153, "{msg}");
            assert!(
                msg.contains("1048576-byte limit (max_allowed_packet)"),
                "{msg}"
            );
        }
        other => panic!("a 3 MiB command passed: {other:?}"),
    }
    // The session is still in step and goes on.
    match raw.query("select 2").await {
        Answer::Rows(rows) => assert_eq!(rows, vec![vec![Some("2".to_string())]]),
        other => panic!("the session after a refused command: {other:?}"),
    }
    // Its audit counts the refused bytes: they crossed the tunnel.
    drop(raw);
    let end = s.wait_event("session_end", |e| e["connection"] == "shop");
    assert!(end["bytes_up"].as_u64().unwrap() > 3 << 20, "{end:#}");
    // And so does the agent; the real client gets the same refusal.
    assert_eq!(q_ok(c.addr.port(), "select 1"), "1");
    // (from a file: an argument that long is over the kernel's limit)
    let dir = TempDir::new("hoop-big-command");
    let file = dir.path().join("big.sql");
    std::fs::write(&file, format!("{big};\n")).unwrap();
    let out = mysql_command("127.0.0.1", c.addr.port(), "alice", APP_DB)
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("ERROR 1153") && err.contains("max_allowed_packet"),
        "{err}"
    );
}

//! The agent's own login to PostgreSQL, seen from both ends: what the
//! client receives (never a password, a SCRAM message or an auth request
//! beyond AuthenticationOk) and how the server saw the agent log in
//! (SCRAM, SCRAM over TLS, md5, cleartext only over TLS unless allowed),
//! where the password comes from, clear errors when the login fails, and
//! which databases a client may ask for.

mod postgres_common;

use hoop_tests::harness::{Conn, TempDir};
use hoop_tests::pg::{APP_DB, APP_USER, OTHER_DB, PgCluster, connect_tokio, psql_command};
use postgres_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::error::{DbError, SqlState};

/// The server error a failed tokio-postgres connect carried.
async fn tokio_login_error(port: u16, db: &str) -> DbError {
    let err = connect_tokio("127.0.0.1", port, CLIENT_USER, db, None)
        .await
        .expect_err("the login must fail");
    err.chain()
        .find_map(|e| e.downcast_ref::<tokio_postgres::Error>())
        .and_then(|e| e.as_db_error())
        .unwrap_or_else(|| panic!("not a server error: {err:#}"))
        .clone()
}

/// The ssl column and TLS version of the backend session serving `c`.
fn backend_tls(c: &hoop_tests::harness::Connect) -> String {
    psql_ok(
        c,
        "select ssl, coalesce(version, '-') from pg_stat_ssl where pid = pg_backend_pid()",
    )
}

/// Splits `bytes` after `skip` bytes into (tag, body) messages.
fn messages(bytes: &[u8], skip: usize) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = skip;
    while i + 5 <= bytes.len() {
        let len = i32::from_be_bytes(bytes[i + 1..i + 5].try_into().unwrap()) as usize;
        assert!(i + 1 + len <= bytes.len(), "truncated message at {i}");
        out.push((bytes[i], bytes[i + 5..i + 1 + len].to_vec()));
        i += 1 + len;
    }
    assert_eq!(i, bytes.len(), "trailing bytes");
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_password_or_scram_message_reaches_the_client() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    // Record every byte between the clients and the `hoop connect` port.
    let proxy = Proxy::start(c.addr).await.unwrap();
    let out = psql_command("127.0.0.1", proxy.addr.port(), CLIENT_USER, APP_DB)
        .env("PGSSLMODE", "prefer")
        .args(["-At", "-c", "select pg_backend_pid()"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let backend_pid: i32 = stdout(&out).parse().unwrap();
    let client = connect_tokio("127.0.0.1", proxy.addr.port(), CLIENT_USER, APP_DB, None)
        .await
        .unwrap();
    let row = client
        .query_one("select $1::text", &[&"extended"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "extended");
    drop(client);

    // The agent really did SCRAM with the backend, twice.
    assert_eq!(pg.auth_methods(APP_USER), ["scram-sha-256"; 2]);

    let recorded = proxy.recorded();
    assert_eq!(recorded.len(), 2);
    for (n, (up, down)) in recorded.iter().enumerate() {
        for (dir, bytes) in [("client to hoop", up), ("hoop to client", down)] {
            for needle in [
                pg.app_password().as_bytes(),
                pg.superuser_password().as_bytes(),
                b"SCRAM-SHA-256",
                b"n,,n=",
                b"n=,r=",
                b"c=biws",
                b",p=",
                b",i=4096",
                b"md5",
            ] {
                assert!(
                    !contains(bytes, needle),
                    "connection {n}, {dir}: found {:?}",
                    String::from_utf8_lossy(needle)
                );
            }
        }
        // psql asked for TLS first (sslmode=prefer) and heard N.
        let psql = n == 0;
        let ssl_request = [0, 0, 0, 8, 4, 210, 22, 47];
        assert_eq!(up.starts_with(&ssl_request), psql, "connection {n}");
        assert_eq!(down.first() == Some(&b'N'), psql, "connection {n}");
        let skip_up = if psql { 8 } else { 0 };
        let startup_len = i32::from_be_bytes(up[skip_up..skip_up + 4].try_into().unwrap()) as usize;
        let startup = &up[skip_up..skip_up + startup_len];
        assert!(!contains(startup, b"password"));
        // No password message of any kind from the client.
        let client_msgs = messages(up, skip_up + startup_len);
        assert!(
            client_msgs.iter().all(|(tag, _)| *tag != b'p'),
            "connection {n}: client sent a password message"
        );
        // One authentication request, and it is AuthenticationOk.
        let server_msgs = messages(down, usize::from(psql));
        let auth: Vec<_> = server_msgs.iter().filter(|(t, _)| *t == b'R').collect();
        assert_eq!(auth.len(), 1, "connection {n}: {auth:?}");
        assert_eq!(server_msgs[0], (b'R', vec![0, 0, 0, 0]), "connection {n}");
        // The cancel key is the agent's, not the backend's.
        let (_, key) = server_msgs
            .iter()
            .find(|(t, _)| *t == b'K')
            .expect("BackendKeyData");
        let pid = i32::from_be_bytes(key[..4].try_into().unwrap());
        if psql {
            assert_ne!(pid, backend_pid, "the backend's pid reached the client");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_backend_logins_are_explained_to_the_client() {
    let pg = PgCluster::start().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let creds = |name: &str, addr: std::net::SocketAddr, password: &str| {
        Conn::postgres(name, addr).extra(&format!(
            "user = \"app\"\ndatabase = \"appdb\"\npassword = {password}\ntls = \"disable\""
        ))
    };
    let s = Setup::start(&[
        creds("wrong", pg.addr(), "{ value = \"not-the-password\" }"),
        creds("unset", pg.addr(), "{ env = \"HOOP_TEST_UNSET_PASSWORD\" }"),
        creds(
            "nofile",
            pg.addr(),
            "{ file = \"/nonexistent/hoop-test-pw\" }",
        ),
        creds("down", closed, "{ value = \"x\" }"),
    ])
    .await;
    let hint = "HINT:  the connection's stored credential or settings are wrong; tell the hoop agent's operator";
    for (name, want) in [
        (
            "wrong",
            "the backend refused the login: password authentication failed for user \"app\"",
        ),
        (
            "unset",
            "environment variable HOOP_TEST_UNSET_PASSWORD is not set for the agent",
        ),
        ("nofile", "cannot read /nonexistent/hoop-test-pw"),
        ("down", "cannot reach the backend"),
    ] {
        let c = s.connect(name);
        let out = psql(&c, APP_DB, &["-c", "select 1"]);
        assert!(!out.status.success(), "{name}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "FATAL:  hoop could not log in to the database of connection \"{name}\": {want}"
            )),
            "{name}: {err}"
        );
        assert!(err.contains(hint), "{name}: {err}");
        assert!(!err.contains(pg.app_password()));
        let end = s.wait_event("session_end", |e| e["connection"] == name);
        assert_eq!(end["outcome"], "error", "{end}");
    }
    // A driver gets the backend's SQLSTATE.
    let c = s.connect("wrong");
    let db = tokio_login_error(c.addr.port(), APP_DB).await;
    assert_eq!(db.code(), &SqlState::INVALID_PASSWORD);
    assert_eq!(db.severity(), "FATAL");
}

#[tokio::test(flavor = "multi_thread")]
async fn md5_backend() {
    let pg = PgCluster::builder().md5().start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    assert_eq!(psql_ok(&c, "select current_user"), "app");
    let client = connect_tokio("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, None)
        .await
        .unwrap();
    assert_eq!(
        client
            .query_one("select 40 + $1", &[&2i32])
            .await
            .unwrap()
            .get::<_, i32>(0),
        42
    );
    assert_eq!(pg.auth_methods(APP_USER), ["md5"; 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_over_tls_verify_full() {
    // debug5 makes the server log the length of each SASL message.
    let pg = PgCluster::builder()
        .ssl()
        .setting("log_min_messages", "debug5")
        .start()
        .unwrap();
    // verify-full against the cluster's CA.
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    assert_eq!(backend_tls(&c), "t|TLSv1.3");
    assert_eq!(pg.auth_methods(APP_USER), ["scram-sha-256"]);
    let log = pg.log();
    assert!(
        log.contains(&format!(
            "connection authorized: user=app database=appdb application_name=hoop:{HOOP_USER} psql SSL enabled"
        )),
        "{log}"
    );
    // Over TLS the server offers SCRAM-SHA-256-PLUS, and the agent must
    // take it. The log does not name the mechanism, but the lengths tell:
    // with a client nonce of n characters, SCRAM-SHA-256-PLUS sends
    //   first = "SCRAM-SHA-256-PLUS\0" + i32 + "p=tls-server-end-point,,n=,r=" + nonce
    //   final = "c=" + base64(gs2 header + 32-byte hash) (76) + ",r=" + nonce
    //           + server nonce (24) + ",p=" + proof (44)
    // so final - first = 100, where plain SCRAM ("SCRAM-SHA-256\0",
    // "n,,"/"y,,", "c=biws") gives 54.
    let agent_pid = log
        .lines()
        .find(|l| l.contains("connection authorized: user=app"))
        .and_then(|l| l.split('[').nth(1))
        .and_then(|l| l.split(']').next())
        .map(|pid| format!("[{pid}]"))
        .unwrap();
    let lengths: Vec<i64> = log
        .lines()
        .filter(|l| l.contains(&agent_pid))
        .filter_map(|l| {
            l.split("processing received SASL response of length ")
                .nth(1)
        })
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert_eq!(lengths.len(), 2, "{lengths:?}");
    assert_eq!(
        lengths[1] - lengths[0],
        100,
        "not SCRAM-SHA-256-PLUS: {lengths:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cleartext_password_over_tls_verify_full() {
    let pg = PgCluster::builder().cleartext().ssl().start().unwrap();
    // A CA that did not sign the server's certificate.
    let dir = TempDir::new("hoop-ca");
    let other_ca = dir.path().join("other-ca.crt");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hoop-tests unrelated CA");
    std::fs::write(&other_ca, params.self_signed(&key).unwrap().pem()).unwrap();
    let s = Setup::start(&[
        // verify-full against the cluster's CA.
        pg_conn("db", &pg),
        pg_conn_tls(
            "wrong-ca",
            &pg,
            pg.addr(),
            &format!(
                "tls = \"verify-full\"\ntls_ca = {:?}",
                other_ca.display().to_string()
            ),
        ),
        // The server takes TLS connections only.
        pg_conn_tls("plain", &pg, pg.addr(), "tls = \"disable\""),
    ])
    .await;
    let c = s.connect("db");
    assert_eq!(backend_tls(&c), "t|TLSv1.3");
    assert_eq!(pg.auth_methods(APP_USER), ["password"]);

    for (name, want) in [
        ("wrong-ca", "TLS to the backend failed"),
        (
            "plain",
            "no pg_hba.conf entry for host \"127.0.0.1\", user \"app\", database \"appdb\", no encryption",
        ),
    ] {
        let c = s.connect(name);
        let out = psql(&c, APP_DB, &["-c", "select 1"]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "hoop could not log in to the database of connection \"{name}\""
            )),
            "{name}: {err}"
        );
        assert!(err.contains(want), "{name}: {err}");
    }
    // Neither failure sent the password anywhere.
    assert_eq!(pg.auth_methods(APP_USER), ["password"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn cleartext_without_tls_only_when_allowed() {
    let pg = PgCluster::builder().cleartext().start().unwrap();
    let s = Setup::start(&[
        pg_conn("strict", &pg),
        pg_conn("allowed", &pg).extra("allow_cleartext_password = true"),
    ])
    .await;
    let strict = s.connect("strict");
    let out = psql(&strict, APP_DB, &["-c", "select 1"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "hoop could not log in to the database of connection \"strict\": the backend asks for the password in clear over an unencrypted connection; set tls = \"require\" or better, or allow_cleartext_password = true"
        ),
        "{err}"
    );
    // The agent hung up instead of answering: the server never got a password.
    assert!(pg.auth_methods(APP_USER).is_empty());
    assert!(!pg.log().contains("password authentication failed"));

    let allowed = s.connect("allowed");
    assert_eq!(psql_ok(&allowed, "select current_user"), "app");
    assert_eq!(pg.auth_methods(APP_USER), ["password"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn password_from_env_and_file_read_at_each_login() {
    let pg = PgCluster::start().unwrap();
    let dir = TempDir::new("hoop-pw");
    let file = dir.path().join("pgpass");
    std::fs::write(&file, format!("{}\n", pg.app_password())).unwrap();
    let conn = |name: &str, password: String| {
        Conn::postgres(name, pg.addr()).extra(&format!(
            "user = \"app\"\ndatabase = \"appdb\"\npassword = {password}\ntls = \"disable\""
        ))
    };
    let s = Setup::start_env(
        &[
            conn("env", "{ env = \"HOOP_TEST_PG_PASSWORD\" }".into()),
            conn(
                "file",
                format!("{{ file = {:?} }}", file.display().to_string()),
            ),
        ],
        &[("HOOP_TEST_PG_PASSWORD", pg.app_password())],
    )
    .await;
    let env = s.connect("env");
    let from_file = s.connect("file");
    assert_eq!(psql_ok(&env, "select 'env'"), "env");
    assert_eq!(psql_ok(&from_file, "select 'file'"), "file");
    // Neither leaks into the agent's log.
    assert!(!s.agent.log.all().contains(pg.app_password()));

    // Rotate the password: the file is read again at the next login, the
    // environment stays what the agent started with.
    pg.sql("postgres", "alter role app password 'rotated-password-2'")
        .unwrap();
    std::fs::write(&file, "rotated-password-2\n").unwrap();
    assert_eq!(psql_ok(&from_file, "select 'rotated'"), "rotated");
    let out = psql(&env, APP_DB, &["-c", "select 1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("password authentication failed for user \"app\""),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_listed_databases_are_reachable() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg).extra(&format!("databases = [{OTHER_DB:?}]"))]).await;
    let c = s.connect("db");
    let db_of = |db: &str| {
        let out = psql(&c, db, &["-At", "-c", "select current_database()"]);
        assert!(out.status.success(), "{db}: {}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(db_of(OTHER_DB), OTHER_DB);
    assert_eq!(db_of(APP_DB), APP_DB);
    // libpq's default database is the user name: that means "the default".
    assert_eq!(db_of(CLIENT_USER), APP_DB);

    // A client naming no database at all, after asking for GSS and TLS
    // encryption (each answered N).
    let mut stream = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    for request in [fe::gssenc_request(), fe::ssl_request()] {
        stream.write_all(&request).await.unwrap();
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"N");
    }
    let (mut raw, login) = RawPg::login(stream, &[("user", CLIENT_USER)])
        .await
        .unwrap();
    assert_eq!(tags(&login[..1]), "R");
    assert_eq!(login.last().unwrap().tag, b'Z');
    let msgs = raw.simple("select current_database()").await.unwrap();
    assert_eq!(msgs[1].values(), [Some(APP_DB.to_string())]);

    let out = psql(&c, "postgres", &["-c", "select 1"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("FATAL:  hoop: database \"postgres\" is not available through connection \"db\"; use one of: appdb, otherdb"),
        "{err}"
    );
    let db = tokio_login_error(c.addr.port(), "template1").await;
    assert_eq!(db.code(), &SqlState::INVALID_CATALOG_NAME);
    // The refused ones never reached the server.
    assert!(!pg.log().contains("user=app database=postgres"));
    assert!(!pg.log().contains("user=app database=template1"));

    let end = s.wait_event("session_end", |e| e["database"] == OTHER_DB);
    assert_eq!(end["client_user"], CLIENT_USER);
    assert_eq!(end["outcome"], "ok");
    let refused = s.wait_event("session_end", |e| {
        e["error"].as_str().is_some_and(|x| x.contains("template1"))
    });
    assert_eq!(refused["outcome"], "error");
}

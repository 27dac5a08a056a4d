//! The agent's `caching_sha2_password` logins end to end, against the
//! MySQL 8.0 stand-in (`hoop_tests::mysql8`: no MySQL 8 server can run
//! here, and MariaDB has no server-side caching_sha2_password): the
//! `mariadb` client with no password through `hoop connect`, the agent
//! logging in to the stand-in with the stored one.

#[path = "postgres_common/mod.rs"]
mod common;
mod mysql_common;

use bytes::{Bytes, BytesMut};
use common::{Setup, stderr};
use hoop_proto::mysql::{self, HandshakeResponse, TextRow, flags::*};
use hoop_tests::harness::Conn;
use hoop_tests::mysql::APP_DB;
use hoop_tests::mysql8::{Login, Mysql8, Plugin, Step::*};
use mysql_common::{RawMy, q, q_ok, read_packet};
use tokio::io::AsyncWriteExt;

const USER: &str = "app";
const PASSWORD: &str = "s3cret-Sha2-pw";

/// A mysql connection to `server` as [`USER`] with `password`; `tls` is
/// TOML lines for the TLS settings.
fn conn(name: &str, server: &Mysql8, password: &str, tls: &str) -> Conn {
    Conn::mysql(name, server.addr()).extra(&format!(
        "user = {USER:?}\ndatabase = {APP_DB:?}\npassword = {{ value = {password:?} }}\n{tls}"
    ))
}

const NO_TLS: &str = "tls = \"disable\"";

/// The password never crossed the wire outside TLS, as is or
/// NUL-terminated.
fn assert_not_in_clear(login: &Login, password: &str) {
    let plain = &login.plain;
    assert!(!plain.is_empty());
    assert!(
        !plain
            .windows(password.len())
            .any(|w| w == password.as_bytes()),
        "the password crossed in clear: {login:?}"
    );
}

fn login(server: &Mysql8, i: usize) -> Login {
    let logins = server.logins();
    assert!(logins.len() > i, "{logins:#?}");
    logins[i].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn full_authentication_without_tls_uses_the_rsa_key_then_the_cache() {
    let server = Mysql8::builder()
        .account(USER, PASSWORD, Plugin::CachingSha2)
        .start()
        .await
        .unwrap();
    let s = Setup::start(&[conn("sha2", &server, PASSWORD, NO_TLS)]).await;
    let c = s.connect("sha2");
    let port = c.addr.port();

    assert_eq!(q_ok(port, "select 1"), "1");
    let l = login(&server, 0);
    assert!(l.ok && !l.tls, "{l:?}");
    assert_eq!(l.user, USER);
    assert_eq!(l.client_plugin, "caching_sha2_password");
    assert_eq!(
        l.steps,
        [
            PerformFullAuth,
            PublicKeyRequested,
            PublicKeySent,
            PasswordRsa
        ]
    );
    // The fast-auth scramble, the key request, one RSA-2048 block.
    assert_eq!(l.auth_data[0].len(), 32);
    assert_eq!(l.auth_data[1], [0x02]);
    assert_eq!(l.auth_data[2].len(), 256);
    assert_not_in_clear(&l, PASSWORD);
    assert!(server.is_cached(USER));

    // The next login finds the password in the server's cache.
    assert_eq!(q_ok(port, "select current_user()"), "app@%");
    let l = login(&server, 1);
    assert!(l.ok, "{l:?}");
    assert_eq!(l.steps, [FastAuthSuccess]);
    assert_eq!(l.auth_data.len(), 1);

    let queries = server.queries();
    assert!(
        queries.iter().any(|q| q == "SELECT @@max_allowed_packet"),
        "{queries:?}"
    );
    assert!(queries.iter().any(|q| q == "select 1"), "{queries:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_path_when_the_server_has_the_password_cached() {
    let server = Mysql8::builder()
        .account(USER, PASSWORD, Plugin::CachingSha2)
        .cached(USER)
        .start()
        .await
        .unwrap();
    let s = Setup::start(&[conn("sha2", &server, PASSWORD, NO_TLS)]).await;
    let c = s.connect("sha2");
    assert_eq!(q_ok(c.addr.port(), "select 42"), "42");
    let l = login(&server, 0);
    assert!(l.ok, "{l:?}");
    assert_eq!(l.steps, [FastAuthSuccess]);
    assert_eq!(l.auth_data.len(), 1);
    assert_not_in_clear(&l, PASSWORD);
}

#[tokio::test(flavor = "multi_thread")]
async fn full_authentication_over_verified_tls_sends_the_password_nul_terminated() {
    let server = Mysql8::builder()
        .account(USER, PASSWORD, Plugin::CachingSha2)
        .tls()
        .start()
        .await
        .unwrap();
    let ca = server.ca_path().unwrap().display().to_string();
    let tls = format!("tls = \"verify-full\"\ntls_ca = {ca:?}");
    let s = Setup::start(&[conn("sha2tls", &server, PASSWORD, &tls)]).await;
    let c = s.connect("sha2tls");
    let port = c.addr.port();

    assert_eq!(q_ok(port, "select 7"), "7");
    let l = login(&server, 0);
    assert!(l.ok && l.tls, "{l:?}");
    assert_eq!(l.steps, [PerformFullAuth, PasswordOverTls]);
    assert_eq!(l.auth_data[1], format!("{PASSWORD}\0").as_bytes());
    // Only the SSLRequest crossed outside TLS.
    assert_eq!(l.plain.len(), 4 + 32, "{:?}", l.plain);
    assert_not_in_clear(&l, PASSWORD);

    assert_eq!(q_ok(port, "select 8"), "8");
    let l = login(&server, 1);
    assert!(l.ok && l.tls, "{l:?}");
    assert_eq!(l.steps, [FastAuthSuccess]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_gives_the_servers_access_denied() {
    // Cached, so the fast path is tried first: a wrong scramble falls
    // back to full authentication, which fails.
    let server = Mysql8::builder()
        .account(USER, PASSWORD, Plugin::CachingSha2)
        .cached(USER)
        .start()
        .await
        .unwrap();
    let s = Setup::start(&[conn("wrong", &server, "not-the-password", NO_TLS)]).await;
    let c = s.connect("wrong");
    let out = q(c.addr.port(), "select 1");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("ERROR 1045"), "{err}");
    assert!(
        err.contains("hoop could not log in to the database of connection \"wrong\""),
        "{err}"
    );
    assert!(
        err.contains("the backend refused the login: Access denied for user 'app'@'127.0.0.1' (using password: YES)"),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");
    let l = login(&server, 0);
    assert!(!l.ok, "{l:?}");
    assert_eq!(
        l.steps,
        [
            PerformFullAuth,
            PublicKeyRequested,
            PublicKeySent,
            PasswordRsa
        ]
    );
    assert_not_in_clear(&l, "not-the-password");
    let end = s.wait_event("session_end", |e| e["connection"] == "wrong");
    assert_eq!(end["outcome"], "error", "{end:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_switch_from_the_native_default_to_caching_sha2() {
    // A MySQL 8 with default_authentication_plugin=mysql_native_password
    // and an account on caching_sha2_password: the switch carries the
    // nonce the RSA step must use.
    let server = Mysql8::builder()
        .default_plugin(Plugin::Native)
        .account(USER, PASSWORD, Plugin::CachingSha2)
        .start()
        .await
        .unwrap();
    let s = Setup::start(&[conn("switch", &server, PASSWORD, NO_TLS)]).await;
    let c = s.connect("switch");
    let port = c.addr.port();
    assert_eq!(q_ok(port, "select 1"), "1");
    let l = login(&server, 0);
    assert!(l.ok, "{l:?}");
    assert_eq!(l.client_plugin, "mysql_native_password");
    assert_eq!(
        l.steps,
        [
            Switch,
            PerformFullAuth,
            PublicKeyRequested,
            PublicKeySent,
            PasswordRsa
        ]
    );
    assert_eq!(l.auth_data[0].len(), 20);
    assert_eq!(l.auth_data[1].len(), 32);
    assert_not_in_clear(&l, PASSWORD);

    assert_eq!(q_ok(port, "select 2"), "2");
    assert_eq!(login(&server, 1).steps, [Switch, FastAuthSuccess]);
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_switch_from_the_caching_sha2_default_to_native() {
    let server = Mysql8::builder()
        .account(USER, PASSWORD, Plugin::Native)
        .start()
        .await
        .unwrap();
    let s = Setup::start(&[
        conn("native", &server, PASSWORD, NO_TLS),
        conn("wrong", &server, "not-the-password", NO_TLS),
    ])
    .await;
    let c = s.connect("native");
    assert_eq!(q_ok(c.addr.port(), "select 3"), "3");
    let l = login(&server, 0);
    assert!(l.ok, "{l:?}");
    assert_eq!(l.client_plugin, "caching_sha2_password");
    assert_eq!(l.steps, [Switch, Native]);
    assert_eq!(l.auth_data[0].len(), 32);
    assert_eq!(l.auth_data[1].len(), 20);

    let c = s.connect("wrong");
    let err = stderr(&q(c.addr.port(), "select 1"));
    assert!(err.contains("ERROR 1045"), "{err}");
    assert!(err.contains("Access denied for user 'app'"), "{err}");
    assert!(!login(&server, 1).ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_tls_or_an_rsa_key_the_password_is_never_sent() {
    // The agent asks for the key and never falls back to the password in
    // clear; the server (as MySQL without RSA keys) refuses.
    let server = Mysql8::builder()
        .account(USER, PASSWORD, Plugin::CachingSha2)
        .without_rsa()
        .start()
        .await
        .unwrap();
    let s = Setup::start(&[conn("norsa", &server, PASSWORD, NO_TLS)]).await;
    let c = s.connect("norsa");
    let out = q(c.addr.port(), "select 1");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("ERROR 1045"), "{err}");
    // MySQL says only "access denied": the agent says what it may mean.
    assert!(err.contains("asked for its RSA public key"), "{err}");
    let l = login(&server, 0);
    assert!(!l.ok, "{l:?}");
    assert_eq!(l.steps, [PerformFullAuth]);
    assert_eq!(l.auth_data, [l.auth_data[0].clone(), vec![0x02]]);
    assert_not_in_clear(&l, PASSWORD);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_too_long_for_the_rsa_key_fails_clearly() {
    // RSA-OAEP(SHA-1) with a 2048-bit key carries at most 214 bytes: the
    // password, its NUL and nothing more.
    let long = "p".repeat(300);
    let server = Mysql8::builder()
        .account(USER, &long, Plugin::CachingSha2)
        .start()
        .await
        .unwrap();
    let s = Setup::start(&[conn("long", &server, &long, NO_TLS)]).await;
    let c = s.connect("long");
    let err = stderr(&q(c.addr.port(), "select 1"));
    assert!(
        err.contains("the password (300 bytes) is too long for the server's RSA key (at most 213)"),
        "{err}"
    );
    assert!(!err.contains(&long), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_without_deprecate_eof_gets_eof_packets_through_the_agent() {
    // The backend session takes the client's capabilities, so the
    // agent's own setup query and the client's results end with EOF
    // packets rather than OK.
    let server = Mysql8::builder()
        .account(USER, PASSWORD, Plugin::CachingSha2)
        .cached(USER)
        .start()
        .await
        .unwrap();
    let s = Setup::start(&[conn("eof", &server, PASSWORD, NO_TLS)]).await;
    let c = s.connect("eof");
    let (mut stream, mut buf, hs) = RawMy::greeted(c.addr.port()).await;
    let caps =
        (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH) & hs.capabilities;
    let hello = HandshakeResponse {
        capabilities: caps,
        max_packet_size: 1 << 24,
        charset: 45,
        username: Bytes::from_static(b"bob"),
        auth_plugin: Some("mysql_native_password".into()),
        ..HandshakeResponse::default()
    };
    let mut out = BytesMut::new();
    mysql::write_packet(&mut out, 1, |o| hello.encode(o)).unwrap();
    stream.write_all(&out).await.unwrap();
    let ok = read_packet(&mut stream, &mut buf).await.unwrap();
    assert_eq!(ok.first(), Some(0x00), "{:?}", ok.payload);
    let l = login(&server, 0);
    assert!(l.ok, "{l:?}");
    assert_eq!(l.capabilities & CLIENT_DEPRECATE_EOF, 0);

    out.clear();
    mysql::encode_packet(0, b"\x03select 5", &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    let mut packets = Vec::new();
    for _ in 0..5 {
        packets.push(read_packet(&mut stream, &mut buf).await.unwrap());
    }
    assert_eq!(&packets[0].payload[..], [1]);
    let eof = |p: &mysql::Packet| p.first() == Some(0xFE) && p.payload.len() == 5;
    assert!(eof(&packets[2]), "{:?}", packets[2].payload);
    let row = TextRow::decode(&packets[3].payload, 1).unwrap();
    assert_eq!(row.get(0), Some(Some(&b"5"[..])));
    assert!(eof(&packets[4]), "{:?}", packets[4].payload);
    assert!(
        server
            .queries()
            .iter()
            .any(|q| q == "SELECT @@max_allowed_packet")
    );
}

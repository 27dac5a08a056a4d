//! MySQL connections end to end against a real MariaDB server that the
//! tests start (`mariadbd` in a temp dir), with real clients: the
//! `mariadb` command-line client, `mariadb-dump`, PyMySQL, and a raw
//! client built from hoop's own codecs for the binary protocol (prepared
//! statements), which none of the others speak.

#[path = "postgres_common/mod.rs"]
mod common;
mod mysql_common;

use std::io::Write;
use std::process::Stdio;

use common::{HOOP_USER, Proxy, Setup, stderr, stdout};
use hoop_tests::harness::Conn;
use hoop_tests::mysql::{
    APP_DB, MariaDb, OTHER_DB, mysql_at, mysql_command, mysqldump_command, python_mysql_client,
};
use mysql_common::{RawMy, my_conn, q, q_ok};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread")]
async fn mysql_client_logs_in_without_a_password_and_statements_are_audited() {
    let db = MariaDb::start().unwrap();
    let s = Setup::start(&[my_conn("shop", &db)]).await;
    let proxy_target = s.connect("shop");
    // Watch what the client side sees.
    let proxy = Proxy::start(proxy_target.addr).await.unwrap();
    let port = proxy.addr.port();

    assert_eq!(
        q_ok(port, "select current_user(), database()"),
        "app@%\tappdb"
    );
    q_ok(
        port,
        "create table t (id int primary key, name varchar(50)); insert into t values (1, 'a'), (2, 'b')",
    );
    assert_eq!(q_ok(port, "select count(*) from t"), "2");
    // Multi-statement queries come back as several results.
    assert_eq!(q_ok(port, "select 1; select 2"), "1\n2");
    // `hoop exec` speaks the protocol itself.
    let out = s.agent.run_hoop(
        Some(&s.token),
        &[
            "exec",
            "shop",
            "-i",
            "select count(*) as n from t; select 'x' as y",
            "-o",
            "csv",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "n\n2\ny\nx");
    let out = s.agent.run_hoop(
        Some(&s.token),
        &["exec", "shop", "-i", "select * from nope"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("ERROR 1146"), "{}", stderr(&out));

    for (up, down) in proxy.recorded() {
        for bytes in [&up, &down] {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains(db.app_password()),
                "the password reached the client side"
            );
        }
    }
    let ev = s.wait_audit("the insert's statement event", |evs| {
        evs.iter()
            .find(|e| {
                e["event"] == "statement"
                    && e["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("insert into t"))
            })
            .cloned()
    });
    assert_eq!(ev["user"], HOOP_USER);
    assert_eq!(ev["connection"], "shop");
    assert_eq!(ev["rows"], 2, "{ev:#}");
    assert_eq!(ev["outcome"], "ok");
    let end = s.wait_event("session_end", |e| e["connection"] == "shop");
    assert_eq!(end["client_user"], "alice", "{end:#}");
    assert_eq!(end["database"], APP_DB);
    assert!(end["bytes_up"].as_u64().unwrap() > 0, "{end:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_backend_password_and_unlisted_database_give_clear_errors() {
    let db = MariaDb::start().unwrap();
    let wrong = Conn::mysql("wrong", db.addr()).extra(&format!(
        "user = {:?}\ndatabase = {APP_DB:?}\npassword = {{ value = \"not-the-password\" }}\ntls = \"disable\"",
        db.app_user()
    ));
    let listed = my_conn("shop", &db).extra(&format!("databases = [{OTHER_DB:?}]"));
    let s = Setup::start(&[wrong, listed]).await;

    let c = s.connect("wrong");
    let out = q(c.addr.port(), "select 1");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("ERROR 1045"), "{err}");
    assert!(
        err.contains("hoop could not log in to the database of connection \"wrong\""),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");

    let c = s.connect("shop");
    let out = mysql_at(
        "127.0.0.1",
        c.addr.port(),
        "alice",
        "mysql",
        &["-N", "-B", "-e", "select 1"],
    );
    let err = stderr(&out);
    assert!(err.contains("ERROR 1044"), "{err}");
    assert!(
        err.contains("not available through connection \"shop\""),
        "{err}"
    );
    // A listed database works, at login and with USE.
    let out = mysql_at(
        "127.0.0.1",
        c.addr.port(),
        "alice",
        OTHER_DB,
        &["-N", "-B", "-e", "select database()"],
    );
    assert_eq!(stdout(&out), OTHER_DB, "{}", stderr(&out));
    let out = q(c.addr.port(), "use mysql");
    assert!(stderr(&out).contains("ERROR 1044"), "{}", stderr(&out));
    assert_eq!(
        q_ok(c.addr.port(), &format!("use {OTHER_DB}; select database()")),
        OTHER_DB
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guardrails_refuse_and_the_session_goes_on() {
    let db = MariaDb::start().unwrap();
    db.sql(APP_DB, "create table t (id int); insert into t values (1)")
        .unwrap();
    let deny = "[[connection.deny]]\npattern = \"(?i)\\\\bdrop\\\\s+table\\\\b\"\nmessage = \"DROP TABLE is not allowed through hoop\"";
    let ro = Conn::mysql("ro", db.addr()).extra(&format!(
        "user = {:?}\ndatabase = {APP_DB:?}\npassword = {{ value = {:?} }}\ntls = \"disable\"\nread_only = true",
        db.app_user(),
        db.app_password()
    ));
    let s = Setup::start(&[my_conn("shop", &db).extra(deny), ro]).await;

    let c = s.connect("shop");
    // Statements from stdin, one command each: the refused one gets an
    // error and the next runs in the same session.
    let mut child = mysql_command("127.0.0.1", c.addr.port(), "alice", APP_DB)
        .args(["-N", "-B", "--force"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"drop table t;\nselect count(*) from t;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(err.contains("ERROR 1142"), "{err}");
    assert!(
        err.contains("DROP TABLE is not allowed through hoop"),
        "{err}"
    );
    assert_eq!(stdout(&out), "1", "{err}");
    s.wait_audit("the refusal", |evs| {
        evs.iter()
            .find(|e| e["event"] == "statement_refused" && e["kind"] == "query")
            .cloned()
    });

    let c = s.connect("ro");
    assert_eq!(q_ok(c.addr.port(), "select count(*) from t"), "1");
    let out = q(c.addr.port(), "insert into t values (2)");
    assert!(
        stderr(&out).contains("this connection is read-only"),
        "{}",
        stderr(&out)
    );
    assert_eq!(db.sql(APP_DB, "select count(*) from t").unwrap(), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn pymysql_scenarios_dump_and_port_probe() {
    let db = MariaDb::start().unwrap();
    let s = Setup::start(&[my_conn("shop", &db)]).await;
    let c = s.connect("shop");
    let port = c.addr.port();

    // A port probe that connects and closes does not disturb the tunnel.
    for _ in 0..3 {
        drop(TcpStream::connect(c.addr).await.unwrap());
    }
    for scenario in ["basic", "error", "large", "kill"] {
        let out = python_mysql_client("127.0.0.1", port, "alice", APP_DB, scenario)
            .unwrap()
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{scenario}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    // LOAD DATA LOCAL INFILE is off unless the connection allows it.
    let out = python_mysql_client("127.0.0.1", port, "alice", APP_DB, "infile")
        .unwrap()
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));

    q_ok(
        port,
        "create table d (id int primary key, v text); insert into d values (1, 'x')",
    );
    let out = mysqldump_command("127.0.0.1", port, "alice")
        .arg(APP_DB)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let dump = stdout(&out);
    assert!(dump.contains("CREATE TABLE `d`"), "{dump}");
    assert!(dump.contains("INSERT INTO `d` VALUES"), "{dump}");
    assert!(dump.contains("(1,'x')"), "{dump}");
}

const MASK: &str = r#"
[connection.mask]
detectors = "all"
strategy = "partial"
[[connection.mask.column]]
pattern = "people.ssn*"
strategy = "redact"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn text_and_binary_rows_and_errors_are_masked() {
    let db = MariaDb::start().unwrap();
    db.sql(
        APP_DB,
        "create table people (id int primary key, email varchar(100) unique, note text, ssn varchar(11), ssn_num bigint, doc json,
            card_num bigint unsigned, card_dec decimal(20, 0), amount decimal(8, 2));
         insert into people values
           (1, 'maria@example.com', 'card 4242 4242 4242 4242 on file', '123-45-6789', 123456789, '{\"mail\": \"maria@example.com\"}',
            4242424242424242, 4242424242424242, 12.50),
           (2, 'none', 'order ORD-2024-000123', null, null, '{\"n\": 2}', 42, 42, 0.99);
         create view people_v as select * from people;
         create table others (id int, ssn varchar(20));
         insert into others values (1, 'not-a-secret');",
    )
    .unwrap();
    let s = Setup::start(&[my_conn("shop", &db).extra(MASK)]).await;
    let c = s.connect("shop");
    let port = c.addr.port();

    let text = q_ok(
        port,
        "select id, email, note, ssn, ssn_num, doc from people order by id",
    );
    for raw in [
        "maria@example.com",
        "4242 4242 4242 4242",
        "123-45-6789",
        "123456789",
    ] {
        assert!(!text.contains(raw), "{raw} in {text}");
    }
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("1\tm****@example.com\tcard **** **** **** 4242 on file\t"),
        "{text}"
    );
    assert_eq!(
        lines[1],
        "2\tnone\torder ORD-2024-000123\tNULL\tNULL\t{\"n\": 2}"
    );

    // Binary rows (a prepared statement): strings masked, a bigint that a
    // column rule hides is NULL.
    let mut raw = RawMy::connect(port).await;
    let (_, rows) = raw
        .prepared_rows(
            "select email, note, ssn_num, id, card_num, card_dec, amount from people order by id",
        )
        .await;
    assert_eq!(rows[0][0].as_deref(), Some(&b"m****@example.com"[..]));
    assert_eq!(
        rows[0][1].as_deref(),
        Some(&b"card **** **** **** 4242 on file"[..])
    );
    assert_eq!(rows[0][2], None);
    assert_eq!(rows[1][0].as_deref(), Some(&b"none"[..]));
    // Binary numbers are read as decimal text: a card number in a BIGINT
    // or DECIMAL cannot hold a marker and arrives as NULL; plain numbers
    // pass as they are.
    assert_eq!(rows[0][3].as_deref(), Some(&1i32.to_le_bytes()[..]));
    assert_eq!(rows[0][4], None, "bigint card number");
    assert_eq!(rows[0][5], None, "decimal card number");
    assert_eq!(rows[0][6].as_deref(), Some(&b"12.50"[..]));
    assert_eq!(rows[1][4].as_deref(), Some(&42u64.to_le_bytes()[..]));
    assert_eq!(rows[1][5].as_deref(), Some(&b"42"[..]));

    // Renaming a column does not take it out of its rule: the server
    // reports the real column (people.ssn) with the alias.
    let aliased = q_ok(
        port,
        "select ssn as x, ssn_num as y from people where id = 1",
    );
    assert!(!aliased.contains("123-45-6789"), "{aliased}");
    assert!(!aliased.contains("123456789"), "{aliased}");
    assert!(aliased.contains("REDACTED"), "{aliased}");
    // A view names itself as the column's table, not people: the rule
    // then matches by the column alone.
    let viewed = q_ok(port, "select ssn as x from people_v where id = 1");
    assert!(viewed.contains("REDACTED"), "{viewed}");
    // A base table the rule does not name keeps its values.
    assert_eq!(q_ok(port, "select ssn from others").trim(), "not-a-secret");

    // A duplicate-key error carries the value.
    let out = q(
        port,
        "insert into people (id, email) values (3, 'maria@example.com')",
    );
    let err = stderr(&out);
    // The client echoes its own statement; the server's message is masked.
    let line = err
        .lines()
        .find(|l| l.contains("ERROR 1062"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(!line.contains("maria@example.com"), "{line}");
    assert!(
        line.contains("Duplicate entry 'm****@example.com' for key 'email'"),
        "{line}"
    );

    let ev = s.wait_audit("an execute with a nulled column", |evs| {
        evs.iter()
            .find(|e| {
                e["event"] == "statement"
                    && e["kind"] == "execute"
                    && e["masked"]["nulled"]
                        .as_array()
                        .is_some_and(|n| n.iter().any(|c| c == "ssn_num"))
            })
            .cloned()
    });
    assert!(ev["masked"]["values"].as_u64().unwrap() >= 2, "{ev:#}");
    let audit = std::fs::read_to_string(s.agent.data_dir().join("audit/audit.jsonl")).unwrap();
    assert!(!audit.contains("4242 4242 4242 4242"));
}

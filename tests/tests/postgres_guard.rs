//! Deny rules on a PostgreSQL connection, in the simple and extended
//! protocols (the session stays usable, the refused statement never
//! reaches the server's statement log), and the `statement*` audit events.

mod postgres_common;

use hoop_tests::harness::TempDir;
use hoop_tests::pg::{APP_DB, PgCluster, connect_tokio, pgbench_at, python_code};
use postgres_common::*;
use serde_json::json;
use tokio_postgres::error::SqlState;

const DROP_RULE: &str = r"(?i)\bdrop\s+table\b";
const DROP_MESSAGE: &str = "DROP TABLE is not allowed through hoop";

fn deny_drop() -> String {
    format!("[[connection.deny]]\npattern = {DROP_RULE:?}\nmessage = {DROP_MESSAGE:?}")
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_rule_in_simple_and_extended_protocols() {
    let pg = logging_cluster();
    let s = Setup::start(&[pg_conn("db", &pg).extra(&deny_drop())]).await;
    let c = s.connect("db");
    psql_ok(&c, "create table t (x int); insert into t values (1)");

    // psql, one statement per Query: the refusal is an ERROR with the
    // rule's message and hint, and the next statement runs.
    let dir = TempDir::new("hoop-guard");
    let script = dir.path().join("s.sql");
    std::fs::write(
        &script,
        "select 'one';\ndrop table t /* deny-1 */;\nselect 'two';\n",
    )
    .unwrap();
    let out = psql(
        &c,
        APP_DB,
        &[
            "-At",
            "-v",
            "ON_ERROR_STOP=0",
            "-f",
            script.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "one\ntwo");
    let err = stderr(&out);
    assert!(err.contains(&format!("ERROR:  {DROP_MESSAGE}")), "{err}");
    assert!(
        err.contains(&format!("HINT:  refused by hoop guardrail {DROP_RULE}")),
        "{err}"
    );
    // A Query holding several statements is refused whole.
    let out = psql(
        &c,
        APP_DB,
        &["-c", "select 1 /* deny-2 */; DROP\n  TABLE t"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // tokio-postgres: Parse refused, at prepare and at query; the
    // connection carries on after each.
    let client = connect_tokio("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, None)
        .await
        .unwrap();
    let e = client
        .prepare("drop table t /* deny-3 */")
        .await
        .unwrap_err();
    assert_refused(e, DROP_MESSAGE, DROP_RULE);
    assert_eq!(
        client
            .query_one("select 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    let e = client
        .query("Drop Table t /* deny-4 */", &[])
        .await
        .unwrap_err();
    assert_refused(e, DROP_MESSAGE, DROP_RULE);
    let e = client
        .simple_query("drop table t /* deny-5 */")
        .await
        .unwrap_err();
    assert_refused(e, DROP_MESSAGE, DROP_RULE);
    assert_eq!(
        client
            .query_one("select count(*) from t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        1
    );

    // A raw extended batch: everything up to Sync is discarded after the
    // refused Parse (the select's results never come), one error, one
    // ReadyForQuery; then the next batch runs.
    let (mut raw, _) = RawPg::connect(c.addr, &[("user", CLIENT_USER), ("database", APP_DB)])
        .await
        .unwrap();
    let mut batch = fe::parse("", "drop table t /* deny-6 */");
    batch.extend(fe::bind("", "", &[]));
    batch.extend(fe::execute(""));
    batch.extend(fe::parse("", "select 'after' /* deny-7 */"));
    batch.extend(fe::bind("", "", &[]));
    batch.extend(fe::execute(""));
    batch.extend(fe::sync());
    raw.send(&batch).await.unwrap();
    let msgs = raw.until_ready().await.unwrap();
    assert_eq!(tags(&msgs), "EZ", "{msgs:?}");
    assert_eq!(msgs[0].code(), "42501");
    let msgs = raw.simple("select 'usable'").await.unwrap();
    assert_eq!(tags(&msgs), "TDCZ");
    assert_eq!(msgs[1].values(), [Some("usable".to_string())]);

    // Simple queries sent back to back: the refusal takes its turn
    // between the answers of the queries around it.
    let mut queries = fe::query("select 'before'");
    queries.extend(fe::query("drop table t /* deny-8 */"));
    queries.extend(fe::query("select 'after'"));
    raw.send(&queries).await.unwrap();
    let before = raw.until_ready().await.unwrap();
    let refused = raw.until_ready().await.unwrap();
    let after = raw.until_ready().await.unwrap();
    assert_eq!(before[1].values(), [Some("before".to_string())]);
    assert_eq!(tags(&refused), "EZ");
    assert_eq!(refused[0].fields()[&'M'], DROP_MESSAGE);
    assert_eq!(after[1].values(), [Some("after".to_string())]);

    // None of the refused statements reached the server (nor the select
    // discarded with them); the table stands.
    assert_eq!(pg.sql(APP_DB, "select count(*) from t").unwrap(), "1");
    let log = pg.log();
    for n in 1..=8 {
        let tag = format!("deny-{n}");
        assert!(!log.contains(&tag), "{tag} in the server log:\n{log}");
    }
    assert!(log.contains("select 'usable'"));

    let refused = s.wait_audit("seven refusals", |evs| {
        let r: Vec<_> = evs
            .iter()
            .filter(|e| e["event"] == "statement_refused")
            .cloned()
            .collect();
        (r.len() >= 7).then_some(r)
    });
    let kinds: Vec<_> = refused
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "query", "query", "parse", "parse", "query", "parse", "query"
        ]
    );
    for e in &refused {
        assert_eq!(e["rule"], DROP_RULE);
        assert_eq!(e["message"], DROP_MESSAGE);
        assert_eq!(e["user"], HOOP_USER);
        assert_eq!(e["connection"], "db");
    }
    assert_eq!(refused[0]["text"], "drop table t /* deny-1 */;");
}

#[tokio::test(flavor = "multi_thread")]

async fn refusal_inside_a_transaction_aborts_it() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg).extra(&deny_drop())]).await;
    let c = s.connect("db");
    psql_ok(&c, "create table t (x int)");
    // As with any server-side error, the transaction must be aborted: the
    // COMMIT rolls back and the insert is gone.
    let out = psql(
        &c,
        APP_DB,
        &[
            "-v",
            "ON_ERROR_STOP=0",
            "-c",
            "begin",
            "-c",
            "insert into t values (1)",
            "-c",
            "drop table t",
            "-c",
            "commit",
        ],
    );
    assert!(stderr(&out).contains(DROP_MESSAGE), "{}", stderr(&out));
    assert_eq!(
        pg.sql(APP_DB, "select count(*) from t").unwrap(),
        "0",
        "the insert before the refused statement was committed; psql printed:\n{}",
        stdout(&out)
    );
    assert!(stdout(&out).ends_with("ROLLBACK"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]

async fn refusal_in_an_extended_batch_rolls_back_the_batch() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg).extra(&deny_drop())]).await;
    let c = s.connect("db");
    psql_ok(&c, "create table t (x int)");
    let (mut raw, _) = RawPg::connect(c.addr, &[("user", CLIENT_USER), ("database", APP_DB)])
        .await
        .unwrap();
    // One batch (one implicit transaction): an insert, then a refused drop.
    let mut batch = fe::parse("", "insert into t values (1)");
    batch.extend(fe::bind("", "", &[]));
    batch.extend(fe::execute(""));
    batch.extend(fe::parse("", "drop table t"));
    batch.extend(fe::bind("", "", &[]));
    batch.extend(fe::execute(""));
    batch.extend(fe::sync());
    raw.send(&batch).await.unwrap();
    let msgs = raw.until_ready().await.unwrap();
    assert!(tags(&msgs).ends_with("EZ"), "{msgs:?}");
    // The client was told the batch failed: as with a server error, the
    // insert of the same batch must not have been committed.
    assert_eq!(pg.sql(APP_DB, "select count(*) from t").unwrap(), "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_audit_events() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[
        pg_conn("db", &pg),
        pg_conn("params", &pg).extra("audit_parameters = true"),
    ])
    .await;
    let c = s.connect("db");
    let with_params = s.connect("params");
    let statement = |text: &str| {
        let text = text.to_string();
        s.wait_event("statement", move |e| e["text"] == text.as_str())
    };

    // Simple protocol: who, what, rows, command tags, outcome.
    psql_ok(&c, "select g from generate_series(1, 5) g");
    let e = statement("select g from generate_series(1, 5) g");
    assert_eq!(e["kind"], "query");
    assert_eq!(e["user"], HOOP_USER);
    assert_eq!(e["connection"], "db");
    assert_eq!(e["rows"], 5);
    assert_eq!(e["commands"], json!(["SELECT 5"]));
    assert_eq!(e["outcome"], "ok");
    assert!(e["duration_us"].is_u64());
    assert!(e.get("params").is_none() && e.get("sqlstate").is_none());
    psql_ok(
        &c,
        "create table a (x int); insert into a values (1), (2), (3)",
    );
    let e = statement("create table a (x int); insert into a values (1), (2), (3)");
    assert_eq!(e["commands"], json!(["CREATE TABLE", "INSERT 0 3"]));
    assert_eq!(e["rows"], 3);
    let out = psql(&c, APP_DB, &["-c", "select 1 / 0"]);
    assert!(!out.status.success());
    let e = statement("select 1 / 0");
    assert_eq!(e["outcome"], "error");
    assert_eq!(e["sqlstate"], "22012");
    assert_eq!(e["error"], "division by zero");

    // Extended protocol: the prepared statement, then each execution by
    // name; no parameter values unless the connection asks for them.
    for (conn, audited) in [(&c, false), (&with_params, true)] {
        let client = connect_tokio("127.0.0.1", conn.addr.port(), CLIENT_USER, APP_DB, None)
            .await
            .unwrap();
        let text = format!("select $1::int4 * 2 /* audited={audited} */");
        let stmt = client.prepare(&text).await.unwrap();
        let row = client.query_one(&stmt, &[&21i32]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        let prepared = s.wait_event("statement_prepared", |e| e["text"] == text.as_str());
        let name = prepared["statement"].as_str().unwrap().to_string();
        assert!(!name.is_empty(), "{prepared}");
        let e = s.wait_event("statement", |e| {
            e["text"] == text.as_str() && e["kind"] == "execute"
        });
        assert_eq!(e["statement"], name.as_str());
        assert_eq!(e["rows"], 1);
        assert_eq!(e["commands"], json!(["SELECT 1"]));
        assert_eq!(e["outcome"], "ok");
        if audited {
            // tokio-postgres binds in binary; the agent notes the size.
            assert_eq!(e["params"], json!(["<4 bytes binary>"]));
        } else {
            assert!(e.get("params").is_none(), "{e}");
        }
        let err = client
            .query("select 10 / $1::int4", &[&0i32])
            .await
            .unwrap_err();
        assert_eq!(db_error(err).code(), &SqlState::DIVISION_BY_ZERO);
        let e = s.wait_event("statement", |e| {
            e["text"] == "select 10 / $1::int4" && e["connection"] == conn_name(audited)
        });
        assert_eq!(e["outcome"], "error");
        assert_eq!(e["sqlstate"], "22012");
    }

    // Text parameters, as pgbench binds them (-M extended).
    let dir = TempDir::new("hoop-audit");
    let script = dir.path().join("answer.sql");
    std::fs::write(&script, "\\set n 7\nselect :n::int * 6 as answer;\n").unwrap();
    let out = pgbench_at(
        "127.0.0.1",
        with_params.addr.port(),
        CLIENT_USER,
        APP_DB,
        &[
            "-n",
            "-t",
            "1",
            "-M",
            "extended",
            "-f",
            script.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let e = s.wait_event("statement", |e| {
        e["text"] == "select $1::int * 6 as answer;" && e["kind"] == "execute"
    });
    assert_eq!(e["params"], json!(["7"]));

    // In one extended batch, a statement after a failed one is skipped.
    let (mut raw, _) = RawPg::connect(c.addr, &[("user", CLIENT_USER), ("database", APP_DB)])
        .await
        .unwrap();
    let mut batch = fe::parse("", "select 1 / 0 /* first */");
    batch.extend(fe::bind("", "", &[]));
    batch.extend(fe::execute(""));
    batch.extend(fe::parse("", "select 2 /* second */"));
    batch.extend(fe::bind("", "", &[]));
    batch.extend(fe::execute(""));
    batch.extend(fe::sync());
    raw.send(&batch).await.unwrap();
    let msgs = raw.until_ready().await.unwrap();
    // 1 / 0 is folded while planning, at Bind.
    assert_eq!(tags(&msgs), "1EZ", "{msgs:?}");
    assert_eq!(statement("select 1 / 0 /* first */")["outcome"], "error");
    assert_eq!(statement("select 2 /* second */")["outcome"], "skipped");

    // The session's end names the client's user and the database.
    let end = s.wait_event("session_end", |e| e["connection"] == "db");
    assert_eq!(end["client_user"], CLIENT_USER);
    assert_eq!(end["database"], APP_DB);
}

fn conn_name(audited: bool) -> &'static str {
    if audited { "params" } else { "db" }
}

/// psycopg's pipeline mode: execute, then fetch (a Flush, no Sync yet).
const PIPELINE_PY: &str = r#"
import sys, psycopg
conn = psycopg.connect(host=sys.argv[1], port=int(sys.argv[2]), user="alice",
                       dbname="appdb", autocommit=True, connect_timeout=20)
try:
    with conn.pipeline():
        conn.execute(sys.argv[3]).fetchall()
except psycopg.Error as e:
    print(e.sqlstate)
print(conn.execute("select 1").fetchone()[0])
"#;

#[tokio::test(flavor = "multi_thread")]

async fn refusal_is_delivered_at_flush() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg).extra(
        "[[connection.deny]]\npattern = \"pg_sleep\"\nmessage = \"no sleeping through hoop\"",
    )])
    .await;
    let c = s.connect("db");
    // A server sends an error at once; a client that sends Flush and waits
    // for the answer before it sends Sync (libpq's pipeline mode, so
    // psycopg's) must get a refusal the same way.
    let (mut raw, _) = RawPg::connect(c.addr, &[("user", CLIENT_USER), ("database", APP_DB)])
        .await
        .unwrap();
    let mut batch = fe::parse("", "select pg_sleep(0)");
    batch.extend(fe::flush());
    raw.send(&batch).await.unwrap();
    let m = raw
        .read_msg()
        .await
        .expect("the refusal must come before Sync")
        .expect("the session is open");
    assert_eq!((m.tag, m.code()), (b'E', "42501".to_string()), "{m:?}");
    raw.send(&fe::sync()).await.unwrap();
    assert_eq!(tags(&raw.until_ready().await.unwrap()), "Z");

    // psycopg's pipeline mode gets the refusal (it hangs today), then the
    // connection goes on. A server error takes the same path.
    for (sql, want) in [
        ("select 1 / x from (values (0)) v(x)", "22012\n1"),
        ("select pg_sleep(0)", "42501\n1"),
    ] {
        let mut child = python_code(PIPELINE_PY, &["127.0.0.1", &c.addr.port().to_string(), sql])
            .unwrap()
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let exited = wait_for("psycopg to finish", || child.try_wait().unwrap());
        if exited.is_err() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(exited.is_ok(), "psycopg's pipeline hung on {sql:?}");
        assert_eq!(stdout(&out), want, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread")]

async fn deny_rule_is_not_dodged_by_comments() {
    let pg = logging_cluster();
    let s = Setup::start(&[pg_conn("db", &pg).extra(&deny_drop())]).await;
    let c = s.connect("db");
    psql_ok(&c, "create table t (x int)");
    // PostgreSQL reads a comment as white space: these are DROP TABLE.
    for sql in ["drop/**/table t", "drop -- \ntable t"] {
        let out = psql(&c, APP_DB, &["-c", sql]);
        assert!(
            stderr(&out).contains(DROP_MESSAGE),
            "{sql:?} was not refused: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    assert_eq!(
        pg.sql(
            APP_DB,
            "select count(*) from pg_tables where tablename = 't'"
        )
        .unwrap(),
        "1",
        "the table was dropped"
    );
}

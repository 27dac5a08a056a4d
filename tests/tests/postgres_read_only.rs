//! `read_only = true` on a PostgreSQL connection: writes, DDL and
//! attempts to lift read-only are refused with 42501 before they reach the
//! server (checked in the server's own statement log), reads work.

mod postgres_common;

use hoop_tests::harness::TempDir;
use hoop_tests::pg::{APP_DB, PgCluster, connect_tokio, psql_command};
use postgres_common::*;
use tokio_postgres::error::SqlState;

#[tokio::test(flavor = "multi_thread")]
async fn read_only_refuses_writes_before_the_backend() {
    let pg = logging_cluster();
    pg.sql(
        APP_DB,
        "create table ro (x int); insert into ro values (1), (2); alter table ro owner to app",
    )
    .unwrap();
    let s = Setup::start(&[pg_conn("db", &pg).extra("read_only = true")]).await;
    let c = s.connect("db");
    let dir = TempDir::new("hoop-ro");
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "9\n").unwrap();
    let copy_from = format!("\\copy ro from '{}' /* ro-copy */", csv.display());
    for (sql, word) in [
        ("insert into ro values (100) /* ro-insert */", "INSERT"),
        ("update ro set x = 101 /* ro-update */", "UPDATE"),
        ("delete from ro /* ro-delete */", "DELETE"),
        ("create table ro2 (x int) /* ro-create */", "CREATE"),
        ("alter table ro add column y int /* ro-alter */", "ALTER"),
        ("drop table ro /* ro-drop */", "DROP"),
        ("truncate ro /* ro-truncate */", "TRUNCATE"),
        (
            "with d as (delete from ro returning *) select * from d /* ro-cte */",
            "DELETE",
        ),
        (
            "set default_transaction_read_only = off /* ro-set */",
            "SET DEFAULT_TRANSACTION_READ_ONLY",
        ),
        ("begin read write /* ro-begin */", "READ WRITE"),
        (&copy_from, "COPY ... FROM"),
    ] {
        let out = psql(&c, APP_DB, &["-c", sql]);
        assert!(!out.status.success(), "{sql} was allowed");
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "ERROR:  this connection is read-only: {word} is not allowed through hoop"
            )),
            "{sql}: {err}"
        );
        assert!(
            err.contains("HINT:  refused by hoop guardrail read_only"),
            "{sql}: {err}"
        );
    }
    // Reads work, and the session starts read-only even when the client
    // asks otherwise (its `options` are not passed on).
    assert_eq!(
        psql_ok(&c, "select count(*), sum(x) from ro /* ro-select */"),
        "2|3"
    );
    let out = psql_command("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB)
        .env("PGOPTIONS", "-c default_transaction_read_only=off")
        .args([
            "-At",
            "-c",
            "select current_setting('default_transaction_read_only')",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "on", "{}", stderr(&out));

    // The extended protocol: refused at Parse; reads go on.
    let client = connect_tokio("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, None)
        .await
        .unwrap();
    let e = client
        .execute("update ro set x = $1 /* ro-ext-update */", &[&5i32])
        .await
        .unwrap_err();
    assert_refused(
        e,
        "this connection is read-only: UPDATE is not allowed through hoop",
        "read_only",
    );
    let e = client
        .prepare("insert into ro values ($1) /* ro-ext-insert */")
        .await
        .unwrap_err();
    assert_eq!(db_error(e).code(), &SqlState::INSUFFICIENT_PRIVILEGE);
    let row = client
        .query_one(
            "select sum(x)::int from ro where x > $1 /* ro-ext-select */",
            &[&0i32],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);

    // The server saw the reads and none of the refused statements.
    assert_eq!(
        pg.sql(APP_DB, "select count(*), sum(x) from ro").unwrap(),
        "2|3"
    );
    let log = pg.log();
    assert!(
        log.contains("ro-select") && log.contains("ro-ext-select"),
        "{log}"
    );
    for tag in [
        "ro-insert",
        "ro-update",
        "ro-delete",
        "ro-create",
        "ro-alter",
        "ro-drop",
        "ro-truncate",
        "ro-cte",
        "ro-set",
        "ro-begin",
        "ro-copy",
        "ro-ext-update",
        "ro-ext-insert",
    ] {
        assert!(!log.contains(tag), "{tag} reached the server:\n{log}");
    }
    let refused = s.wait_audit("the read-only refusals", |evs| {
        let r: Vec<_> = evs
            .iter()
            .filter(|e| e["event"] == "statement_refused")
            .cloned()
            .collect();
        (r.len() >= 13).then_some(r)
    });
    assert!(refused.iter().all(|e| e["rule"] == "read_only"));
}

#[tokio::test(flavor = "multi_thread")]

async fn read_only_cannot_be_lifted_with_a_quoted_setting_name() {
    let pg = logging_cluster();
    let s = Setup::start(&[pg_conn("db", &pg).extra("read_only = true")]).await;
    let c = s.connect("db");
    // One session: try to lift read-only with a quoted identifier (valid
    // SQL, same setting), then write a large object.
    let out = psql(
        &c,
        APP_DB,
        &[
            "-At",
            "-v",
            "ON_ERROR_STOP=0",
            "-c",
            "set \"default_transaction_read_only\" = off /* ro-quoted */",
            "-c",
            "select lo_from_bytea(0, '\\x01') /* ro-lo */",
            "-c",
            "select current_setting('default_transaction_read_only')",
        ],
    );
    let lo = pg
        .sql(APP_DB, "select count(*) from pg_largeobject_metadata")
        .unwrap();
    assert_eq!(
        lo,
        "0",
        "a read-only connection wrote a large object; psql said:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).ends_with("on"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("this connection is read-only"),
        "{}",
        stderr(&out)
    );
    assert!(!pg.log().contains("ro-quoted"));
}

#[tokio::test(flavor = "multi_thread")]

async fn read_only_refuses_select_into() {
    let pg = logging_cluster();
    let s = Setup::start(&[pg_conn("db", &pg).extra("read_only = true")]).await;
    let c = s.connect("db");
    let out = psql(
        &c,
        APP_DB,
        &["-c", "select 1 as x into copy_t /* ro-into */"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("this connection is read-only"), "{err}");
    assert!(!pg.log().contains("ro-into"), "{}", pg.log());
}

#[tokio::test(flavor = "multi_thread")]

async fn read_only_allows_reads_that_look_like_writes() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg).extra("read_only = true")]).await;
    let c = s.connect("db");
    let mut refused = Vec::new();
    for (sql, want) in [
        ("select replace('hoop', 'o', '0')", "h00p"),
        ("select 'admin' as role", "admin"),
        ("select 'nice' as comment", "nice"),
        ("show default_transaction_read_only", "on"),
    ] {
        let out = psql(&c, APP_DB, &["-At", "-c", sql]);
        if out.status.success() {
            assert_eq!(stdout(&out), want, "{sql}");
        } else {
            refused.push(format!("{sql}: {}", stderr(&out).trim()));
        }
    }
    assert!(refused.is_empty(), "reads refused:\n{}", refused.join("\n"));
}

//! PostgreSQL through the real `hoop connect` and `hoop-agent`, with real
//! clients against a real cluster: psql (`-c`, `-f`, `\copy`, `\d`),
//! pgbench (simple and prepared), tokio-postgres (extended protocol,
//! binary results), psycopg, and a million-row result. The other
//! `postgres_*.rs` files cover sessions over time (cancel, NOTIFY, backend
//! loss, probes), logins, deny rules and audit, and read-only.

mod postgres_common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use hoop_tests::harness::TempDir;
use hoop_tests::pg::{
    APP_DB, PgCluster, connect_tokio, pg_bin_dir, pgbench_at, psql_command, python_client,
    run_checked,
};
use postgres_common::*;

#[tokio::test(flavor = "multi_thread")]
async fn psql_commands_files_copy_and_describe() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    let port = c.addr.port();

    // No password, and the agent's login is the connection's own; the
    // backend's application_name names the hoop user, then the client's.
    assert_eq!(
        psql_ok(
            &c,
            "select current_user, current_database(), application_name \
             from pg_stat_activity where pid = pg_backend_pid()"
        ),
        format!("app|appdb|hoop:{HOOP_USER} psql")
    );
    // sslmode=prefer works (the agent answers SSLRequest with N); require
    // is refused by the client itself, since the loopback leg has no TLS.
    let prefer = run_checked(
        psql_command("127.0.0.1", port, CLIENT_USER, APP_DB)
            .env("PGSSLMODE", "prefer")
            .args(["-At", "-c", "select 'prefer ok'"]),
    )
    .unwrap();
    assert_eq!(prefer.trim(), "prefer ok");
    let require = psql_command("127.0.0.1", port, CLIENT_USER, APP_DB)
        .env("PGSSLMODE", "require")
        .args(["-c", "select 1"])
        .output()
        .unwrap();
    assert!(!require.status.success());
    assert!(
        stderr(&require).contains("server does not support SSL"),
        "{}",
        stderr(&require)
    );

    // Startup settings the client chose reach the backend; notices come
    // back to the client.
    let out = run_checked(
        psql_command("127.0.0.1", port, CLIENT_USER, APP_DB)
            .env("PGCLIENTENCODING", "LATIN1")
            .args(["-At", "-c", "show client_encoding"])
            .args(["-c", "do $$ begin raise notice 'hello %', 42; end $$"])
            .stderr(Stdio::piped()),
    )
    .unwrap();
    assert_eq!(out.trim(), "LATIN1\nDO");
    let out = psql(
        &c,
        APP_DB,
        &["-c", "do $$ begin raise notice 'hello %', 42; end $$"],
    );
    assert!(
        stderr(&out).contains("NOTICE:  hello 42"),
        "{}",
        stderr(&out)
    );

    // -f: a script of several statements, each its own Query.
    let dir = TempDir::new("hoop-psql");
    let script = dir.path().join("setup.sql");
    std::fs::write(
        &script,
        "create table items (id int primary key, name text not null);\n\
         insert into items select g, 'seed ' || g from generate_series(1, 3) g;\n\
         select count(*) from items;\n",
    )
    .unwrap();
    let out = psql(&c, APP_DB, &["-At", "-f", script.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "CREATE TABLE\nINSERT 0 3\n3");

    // \copy in and out (COPY FROM STDIN / TO STDOUT under the hood), with
    // quoting, commas, newlines and non-ASCII that must survive unchanged.
    let csv_in = dir.path().join("in.csv");
    let csv_out = dir.path().join("out.csv");
    let mut data = String::new();
    for i in 100..10_100 {
        data.push_str(&format!("{i},\"name \"\"{i}\"\", é\nline two\"\n"));
    }
    std::fs::write(&csv_in, &data).unwrap();
    let out = psql(
        &c,
        APP_DB,
        &[
            "-At",
            "-c",
            &format!("\\copy items from '{}' with (format csv)", csv_in.display()),
            "-c",
            &format!(
                "\\copy (select * from items where id >= 100 order by id) to '{}' with (format csv)",
                csv_out.display()
            ),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "COPY 10000\nCOPY 10000");
    assert!(
        std::fs::read_to_string(&csv_out).unwrap() == data,
        "\\copy out differs from what went in"
    );
    assert_eq!(
        pg.sql(APP_DB, "select count(*), sum(id) from items")
            .unwrap(),
        format!("10003|{}", 6 + (100..10_100).sum::<i64>())
    );

    // \d runs psql's catalog queries.
    let out = psql(&c, APP_DB, &["-c", "\\d items", "-c", "\\d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "Table \"public.items\"",
        "integer",
        "text",
        "not null",
        "\"items_pkey\" PRIMARY KEY, btree (id)",
        "public | items | table | app",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    // pg_isready logs in as any client does.
    let ready = std::process::Command::new(pg_bin_dir().join("pg_isready"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            CLIENT_USER,
        ])
        .output()
        .unwrap();
    assert!(ready.status.success(), "{}", stdout(&ready));
}

#[tokio::test(flavor = "multi_thread")]
async fn pgbench_simple_and_prepared() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    let port = c.addr.port();
    // -i runs DDL, a client-side COPY of 100,000 rows and VACUUM.
    let init = pgbench_at(
        "127.0.0.1",
        port,
        CLIENT_USER,
        APP_DB,
        &["-i", "-s", "1", "-q"],
    );
    assert!(init.status.success(), "{}", stderr(&init));
    assert_eq!(
        pg.sql(APP_DB, "select count(*) from pgbench_accounts")
            .unwrap(),
        "100000"
    );
    for mode in ["simple", "prepared"] {
        let out = pgbench_at(
            "127.0.0.1",
            port,
            CLIENT_USER,
            APP_DB,
            &["-c", "2", "-j", "2", "-t", "50", "-M", mode],
        );
        let text = stdout(&out);
        assert!(out.status.success(), "{mode}: {}{text}", stderr(&out));
        assert!(
            text.contains(&format!("query mode: {mode}")),
            "{mode}: {text}"
        );
        assert!(
            text.contains("number of transactions actually processed: 100/100"),
            "{mode}: {text}"
        );
        assert!(
            text.contains("number of failed transactions: 0 "),
            "{mode}: {text}"
        );
    }
    // Every transaction of the last run really ran: each adds one history
    // row (a run starts by truncating the table).
    assert_eq!(
        pg.sql(APP_DB, "select count(*) from pgbench_history")
            .unwrap(),
        "100"
    );
    // The prepared run reached the backend as named statements.
    assert!(
        s.events("statement")
            .iter()
            .any(|e| e["kind"] == "execute" && e["statement"] != ""),
        "no execute of a named statement audited"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokio_postgres_extended_protocol_binary_results() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    let client = connect_tokio("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, None)
        .await
        .unwrap();

    let row = client
        .query_one(
            "select current_user::text, current_setting('application_name')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "app");
    assert_eq!(
        row.get::<_, String>(1),
        format!("hoop:{HOOP_USER} hoop-tests")
    );

    // Binary parameters in, binary results out, one named statement
    // executed many times.
    let stmt = client
        .prepare(
            "select $1::int4 + 1, $2::int8 * 2, $3::text || '!', $4::bytea, \
             $5::float8 / 2, not $6::bool, array_append($7::int4[], 4), null::text",
        )
        .await
        .unwrap();
    for i in 0..20i32 {
        let bytes: Vec<u8> = vec![0, 1, 255, i as u8];
        let row = client
            .query_one(
                &stmt,
                &[
                    &i,
                    &(1i64 << 40),
                    &"héllo 🐘",
                    &bytes,
                    &3.0f64,
                    &true,
                    &vec![1i32, 2, 3],
                ],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), i + 1);
        assert_eq!(row.get::<_, i64>(1), 1i64 << 41);
        assert_eq!(row.get::<_, String>(2), "héllo 🐘!");
        assert_eq!(row.get::<_, Vec<u8>>(3), bytes);
        assert_eq!(row.get::<_, f64>(4), 1.5);
        assert!(!row.get::<_, bool>(5));
        assert_eq!(row.get::<_, Vec<i32>>(6), vec![1, 2, 3, 4]);
        assert_eq!(row.get::<_, Option<String>>(7), None);
    }

    // Many rows, summed on both sides.
    let rows = client
        .query(
            "select g::int8, repeat('x', g % 100) from generate_series(1, $1) g",
            &[&50_000i32],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 50_000);
    let sum: i64 = rows.iter().map(|r| r.get::<_, i64>(0)).sum();
    assert_eq!(sum, 50_000 * 50_001 / 2);
    let text_len: usize = rows.iter().map(|r| r.get::<_, &str>(1).len()).sum();
    assert_eq!(text_len, (1..=50_000).map(|g| g % 100).sum::<usize>());

    // Transactions: a rollback leaves nothing, a commit keeps its rows.
    client
        .batch_execute("create table tk (id int, v text)")
        .await
        .unwrap();
    let mut client = client;
    let insert = "insert into tk values ($1, $2)";
    let tx = client.transaction().await.unwrap();
    for i in 0..100i32 {
        tx.execute(insert, &[&i, &format!("v{i}")]).await.unwrap();
    }
    tx.rollback().await.unwrap();
    let tx = client.transaction().await.unwrap();
    for i in 0..10i32 {
        tx.execute(insert, &[&i, &format!("v{i}")]).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(pg.sql(APP_DB, "select count(*) from tk").unwrap(), "10");

    // A server error in the extended protocol, then the session goes on.
    let err = client.query("select 1 / $1", &[&0i32]).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO)
    );
    let err = client.prepare("selec 1").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::SYNTAX_ERROR)
    );
    // The simple protocol on the same connection (text results).
    let msgs = client
        .simple_query("select 'simple', 2 + 2; select 'second'")
        .await
        .unwrap();
    let values: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(values, ["simple,4", "second"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn psycopg_scenarios() {
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    let run = |scenario: &str| -> serde_json::Value {
        let mut cmd =
            python_client("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, scenario).unwrap();
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{scenario}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let basic = run("basic");
    assert_eq!(basic["user"], "app");
    assert_eq!(basic["database"], APP_DB);
    assert_eq!(basic["ssl"], false);
    assert_eq!(basic["many_rows"], 20_000);
    assert_eq!(
        basic["prepared"],
        serde_json::json!(["alpha", "beta", "gamma \u{1f418} 'quoted' \\"])
    );
    let copy = run("copy");
    assert_eq!(copy["rows_out"], 20_000);
    assert_eq!(copy["binary_rows"], 20_000);
    let error = run("error");
    assert_eq!(
        error["sqlstates"],
        serde_json::json!(["22012", "42601", "22P02"])
    );
    assert_eq!(run("pipeline")["count"], 500);
    let notify = run("notify");
    assert_eq!(notify["channel"], "hoop_test");
    // psycopg's cancel: a CancelRequest on a new connection to the hoop
    // port, carrying the key the agent handed out.
    let cancel = run("cancel");
    assert_eq!(cancel["sqlstate"], "57014");
    assert!(cancel["seconds"].as_f64().unwrap() < 30.0, "{cancel}");
    assert_eq!(cancel["after"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_million_rows() {
    const N: u64 = 1_000_000;
    let pg = PgCluster::start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    let mut child = psql_command("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB)
        .args([
            "-At",
            "-c",
            "select g, md5(g::text) from generate_series(1, 1000000) g",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Count as it streams; keep only the first and last lines.
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let (mut lines, mut bytes, mut sum) = (0u64, 0u64, 0u64);
    let (mut first, mut last) = (String::new(), String::new());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        lines += 1;
        bytes += line.len() as u64;
        let (g, md5) = line.trim_end().split_once('|').expect("g|md5");
        sum += g.parse::<u64>().unwrap();
        assert_eq!(md5.len(), 32);
        if lines == 1 {
            first = line.clone();
        }
        std::mem::swap(&mut last, &mut line);
        line.clear();
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(lines, N);
    assert_eq!(sum, N * (N + 1) / 2);
    let digits: u64 = (1..=N).map(|g| g.to_string().len() as u64).sum();
    assert_eq!(bytes, digits + N * (1 + 32 + 1));
    assert_eq!(first, "1|c4ca4238a0b923820dcc509a6f75849b\n");
    assert_eq!(last, "1000000|8155bc545f84d9652f1012ef2bdfb6eb\n");
    let ev = s.wait_event("statement", |e| {
        e["text"]
            .as_str()
            .unwrap_or("")
            .contains("generate_series(1, 1000000)")
    });
    assert_eq!(ev["rows"], N);
    assert_eq!(ev["commands"], serde_json::json!(["SELECT 1000000"]));
    assert_eq!(ev["outcome"], "ok");
}

/// Over TLS to the backend, the last client write of a COPY (its
/// CopyDone) used to wait in the TLS buffer for a flush that never came,
/// and `pgbench -i` hung about every second run. Several runs, each with a
/// deadline.
#[tokio::test(flavor = "multi_thread")]
async fn copy_in_completes_over_backend_tls() {
    let pg = PgCluster::builder().ssl().start().unwrap();
    let s = Setup::start(&[pg_conn("db", &pg)]).await;
    let c = s.connect("db");
    for run in 0..4 {
        let mut child =
            hoop_tests::pg::pgbench_command("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB)
                .args(["-i", "-s", "1", "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("pgbench -i run {run} did not finish through hoop over TLS");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert!(status.success(), "run {run}");
    }
    assert_eq!(
        pg.sql(APP_DB, "select count(*) from pgbench_accounts")
            .unwrap(),
        "100000"
    );
}

//! The PostgreSQL harness on its own, straight at throwaway clusters (no
//! hoop): logins per authentication method, TLS, pgbench, tokio-postgres,
//! the psycopg client's scenarios, restart, stop and teardown.

use std::process::Output;

use hoop_tests::pg::{
    self, APP_DB, APP_USER, AppAuth, OTHER_DB, PgCluster, SUPERUSER, psql_command, run_checked,
};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `query` as `app` with its password; asserts success.
fn app_query(pg: &PgCluster, db: &str, query: &str) -> String {
    let out = pg.psql(APP_USER, pg.app_password(), db, &["-At", "-c", query]);
    assert!(out.status.success(), "{query}: {}", stderr(&out));
    stdout(&out)
}

/// The `method=` of the server's `connection authenticated` log lines for `user`.
fn auth_methods(pg: &PgCluster, user: &str) -> Vec<String> {
    let needle = format!("identity=\"{user}\" method=");
    pg.log()
        .lines()
        .filter_map(|l| l.split(&needle).nth(1))
        .map(|m| m.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn scram_login_roles_and_databases() {
    let pg = PgCluster::start().unwrap();
    assert_eq!(pg.app_auth(), AppAuth::Scram);
    assert_eq!(pg.addr().to_string(), format!("127.0.0.1:{}", pg.port()));
    assert_eq!(
        app_query(&pg, APP_DB, "select current_user, current_database()"),
        "app|appdb"
    );
    // app owns both databases and can create tables in them.
    app_query(
        &pg,
        OTHER_DB,
        "create table t (x int); insert into t values (1)",
    );
    assert_eq!(
        pg.sql(
            "postgres",
            "select string_agg(datname || ':' || pg_get_userbyid(datdba), ',' order by datname) \
             from pg_database where datname like '%db'"
        )
        .unwrap(),
        "appdb:app,otherdb:app"
    );
    // The password is stored as SCRAM and SCRAM is what the server asked for.
    assert!(
        pg.sql(
            "postgres",
            "select rolpassword from pg_authid where rolname = 'app'"
        )
        .unwrap()
        .starts_with("SCRAM-SHA-256$")
    );
    assert_eq!(auth_methods(&pg, APP_USER), ["scram-sha-256"; 2]);

    let wrong = pg.psql(APP_USER, "not-the-password", APP_DB, &["-c", "select 1"]);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("password authentication failed for user \"app\""),
        "{}",
        stderr(&wrong)
    );
    // The superuser's password is not app's.
    let swapped = pg.psql(SUPERUSER, pg.app_password(), APP_DB, &["-c", "select 1"]);
    assert!(!swapped.status.success());

    // Without a password, psql fails at once instead of prompting.
    let none = pg::psql_at(
        "127.0.0.1",
        pg.port(),
        APP_USER,
        APP_DB,
        &["-c", "select 1"],
    );
    assert!(!none.status.success());
    assert!(
        stderr(&none).contains("no password supplied"),
        "{}",
        stderr(&none)
    );

    assert_eq!(
        pg.url_for(APP_USER, APP_DB),
        format!(
            "postgresql://app:{}@127.0.0.1:{}/appdb",
            pg.app_password(),
            pg.port()
        )
    );
    let by_url = run_checked(
        psql_command("127.0.0.1", pg.port(), APP_USER, APP_DB)
            // A connection string as -d overrides the -h/-p/-U/-d given before.
            .args(["-d", &pg.url_for(APP_USER, OTHER_DB)])
            .args(["-At", "-c", "select current_database()"]),
    )
    .unwrap();
    assert_eq!(by_url.trim(), OTHER_DB);
}

#[test]
fn md5_cluster() {
    let pg = PgCluster::builder().md5().start().unwrap();
    assert_eq!(pg.app_auth(), AppAuth::Md5);
    assert_eq!(app_query(&pg, APP_DB, "select current_user"), "app");
    assert!(
        pg.sql(
            "postgres",
            "select rolpassword from pg_authid where rolname = 'app'"
        )
        .unwrap()
        .starts_with("md5")
    );
    assert_eq!(auth_methods(&pg, APP_USER), ["md5"]);
    // The superuser still logs in with SCRAM.
    assert_eq!(auth_methods(&pg, SUPERUSER), ["scram-sha-256"; 2]);
    let wrong = pg.psql(APP_USER, "wrong", APP_DB, &["-c", "select 1"]);
    assert!(!wrong.status.success());
}

#[test]
fn cleartext_cluster() {
    let pg = PgCluster::builder().cleartext().start().unwrap();
    assert_eq!(app_query(&pg, APP_DB, "select 7 * 6"), "42");
    assert_eq!(auth_methods(&pg, APP_USER), ["password"]);
}

#[test]
fn ssl_cluster_verify_full() {
    let pg = PgCluster::builder().ssl().start().unwrap();
    let ca = pg.ca_path().expect("a CA for a TLS cluster").to_owned();
    assert!(
        std::fs::read_to_string(&ca)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    let query = "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()";

    // verify-full checks the chain and that 127.0.0.1 / localhost is in
    // the certificate.
    for host in ["127.0.0.1", "localhost"] {
        let mut c = psql_command(host, pg.port(), APP_USER, APP_DB);
        c.env("PGPASSWORD", pg.app_password())
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", &ca)
            .args(["-At", "-c", query]);
        let out = run_checked(&mut c).unwrap();
        assert!(out.trim().starts_with("t|TLSv1."), "{host}: {out}");
    }
    // pg.psql does the same.
    assert!(app_query(&pg, APP_DB, query).starts_with("t|"));

    // Plain TCP is refused: the server only has hostssl lines.
    let plain = pg::psql_at(
        "127.0.0.1",
        pg.port(),
        APP_USER,
        APP_DB,
        &["-c", "select 1"],
    );
    assert!(!plain.status.success());
    assert!(
        stderr(&plain).contains("no encryption"),
        "{}",
        stderr(&plain)
    );

    // A CA that did not sign the server's certificate fails verification.
    let other = PgCluster::builder().ssl().start().unwrap();
    let mut c = psql_command("127.0.0.1", pg.port(), APP_USER, APP_DB);
    c.env("PGPASSWORD", pg.app_password())
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", other.ca_path().unwrap())
        .args(["-c", "select 1"]);
    let err = run_checked(&mut c).unwrap_err().to_string();
    assert!(err.contains("certificate verify failed"), "{err}");
}

#[test]
fn pgbench_init_and_select_only() {
    let pg = PgCluster::start().unwrap();
    let pw = pg.app_password();
    let init = pg.pgbench(APP_USER, pw, APP_DB, &["-i", "-s", "1", "-q"]);
    assert!(init.status.success(), "{}", stderr(&init));
    assert_eq!(
        app_query(&pg, APP_DB, "select count(*) from pgbench_accounts"),
        "100000"
    );
    let run = pg.pgbench(APP_USER, pw, APP_DB, &["-S", "-c", "2", "-t", "200", "-n"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let out = stdout(&run);
    assert!(
        out.contains("number of transactions actually processed: 400/400"),
        "{out}"
    );
    assert!(out.contains("number of failed transactions: 0"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokio_postgres_binary_results() {
    let pg = PgCluster::start().unwrap();
    let client = pg.client(APP_USER, APP_DB).await.unwrap();
    // tokio-postgres asks for every result column in binary.
    let row = client
        .query_one(
            "select $1::int4 + 1, $2::text || '!', '\\x00ff10'::bytea, 1.5::float8, \
             array[1, 2, 3]::int8[], current_user::text",
            &[&41i32, &"hi"],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(row.get::<_, String>(1), "hi!");
    assert_eq!(row.get::<_, Vec<u8>>(2), vec![0x00, 0xff, 0x10]);
    assert_eq!(row.get::<_, f64>(3), 1.5);
    assert_eq!(row.get::<_, Vec<i64>>(4), vec![1, 2, 3]);
    assert_eq!(row.get::<_, String>(5), "app");

    let rows = client
        .query("select g from generate_series(1, 10000) g", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 10000);
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(0) as i64).sum::<i64>(),
        10000 * 10001 / 2
    );

    let err = pg::connect_tokio("127.0.0.1", pg.port(), APP_USER, APP_DB, Some("wrong"))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("password authentication failed"),
        "{err:#}"
    );
}

#[test]
fn python_client_scenarios() {
    let pg = PgCluster::builder()
        .setting("log_statement", "'all'")
        .start()
        .unwrap();
    let run = |scenario: &str| -> serde_json::Value {
        let mut c = pg::python_client("127.0.0.1", pg.port(), APP_USER, APP_DB, scenario).unwrap();
        c.env("PGPASSWORD", pg.app_password());
        let out = run_checked(&mut c).unwrap_or_else(|e| panic!("{scenario}: {e:#}"));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["scenario"], scenario);
        v
    };

    let basic = run("basic");
    assert_eq!(basic["user"], "app");
    assert_eq!(basic["database"], "appdb");
    assert!(basic["server_version_num"].as_i64().unwrap() >= 150000);
    assert_eq!(basic["ssl"], false);
    assert_eq!(
        basic["prepared"],
        serde_json::json!(["alpha", "beta", "gamma \u{1f418} 'quoted' \\"])
    );
    assert_eq!(basic["binary_row"][2], "1.50");
    assert_eq!(basic["binary_row"][5], "0001ff");
    assert_eq!(basic["many_rows"], 20000);
    // psycopg bound the parameters on the server (extended protocol), and
    // prepare=True made a named statement.
    let log = pg.log();
    assert!(
        log.contains("execute <unnamed>: select id, name from items where id >= $1 and name <> $2"),
        "{log}"
    );
    let named: Vec<&str> = log
        .lines()
        .filter(|l| l.ends_with(": select name from items where id = $1"))
        .filter_map(|l| l.split("execute ").nth(1)?.split(':').next())
        .collect();
    assert_eq!(named.len(), 3, "{log}");
    assert!(
        named
            .iter()
            .all(|n| *n == named[0] && n.starts_with("_pg3_"))
    );

    let copy = run("copy");
    assert_eq!(copy["rows_in"], 20000);
    assert_eq!(copy["rows_out"], 20000);
    assert_eq!(copy["binary_rows"], 20000);
    assert!(copy["text_bytes_out"].as_u64().unwrap() > 20000 * 10);

    let error = run("error");
    assert_eq!(
        error["sqlstates"],
        serde_json::json!(["22012", "42601", "22P02"])
    );
    assert_eq!(error["after"], 42);

    let pipeline = run("pipeline");
    assert_eq!(pipeline["count"], 500);
    assert_eq!(pipeline["value"], "v499");

    let notify = run("notify");
    assert_eq!(notify["channel"], "hoop_test");
    assert_eq!(notify["pid_matches"], true);

    let cancel = run("cancel");
    assert_eq!(cancel["sqlstate"], "57014");
    assert!(cancel["seconds"].as_f64().unwrap() < 30.0, "{cancel}");

    // A failure is an exit status and an error on stderr.
    let mut c = pg::python_client("127.0.0.1", pg.port(), APP_USER, APP_DB, "basic").unwrap();
    c.env("PGPASSWORD", "wrong");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("password authentication failed"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_cuts_sessions_and_keeps_data() {
    let mut pg = PgCluster::start().unwrap();
    let port = pg.port();
    let client = pg.client(APP_USER, APP_DB).await.unwrap();
    client
        .batch_execute("create table kept (x int); insert into kept values (7)")
        .await
        .unwrap();

    pg.restart().unwrap();
    assert_eq!(pg.port(), port);
    // The old session is gone; a new one sees the data.
    assert!(client.simple_query("select 1").await.is_err());
    let client = pg.client(APP_USER, APP_DB).await.unwrap();
    let x: i32 = client
        .query_one("select x from kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(x, 7);

    // Stopped: connections are refused. Restarted: back on the same port.
    pg.stop().unwrap();
    let refused = std::net::TcpStream::connect(pg.addr()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    pg.restart().unwrap();
    assert_eq!(app_query(&pg, APP_DB, "select x from kept"), "7");
}

#[test]
fn drop_stops_the_server_and_removes_its_directory() {
    let pg = PgCluster::builder()
        .setting("max_connections", "42")
        .start()
        .unwrap();
    assert_eq!(pg.sql("postgres", "show max_connections").unwrap(), "42");
    let (addr, dir) = (pg.addr(), pg.dir().to_owned());
    assert!(dir.join("data/PG_VERSION").exists());
    drop(pg);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn clusters_side_by_side() {
    let a = PgCluster::start().unwrap();
    let b = PgCluster::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.app_password(), b.app_password());
    // Each cluster's password is its own.
    let cross = b.psql(APP_USER, a.app_password(), APP_DB, &["-c", "select 1"]);
    assert!(!cross.status.success());
}

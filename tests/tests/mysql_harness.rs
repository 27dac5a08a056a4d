//! The MariaDB harness on its own, straight at the servers (no hoop):
//! throwaway servers, the machine's shared server, the `mariadb` client,
//! `mariadb-dump`, PyMySQL's scenarios, TLS, restart and teardown.

use std::process::Output;

use hoop_tests::mysql::{
    self, APP_DB, APP_USER, MariaDb, OTHER_DB, ROOT, SHARED_PORT, Tls, mysql_command,
    mysqldump_command,
};
use hoop_tests::pg::run_checked;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `query` as the app user with its password (`-N -B -e`); asserts
/// success.
fn app_query(db: &MariaDb, database: &str, query: &str) -> String {
    let out = db.mysql(
        db.app_user(),
        db.app_password(),
        database,
        &["-N", "-B", "-e", query],
    );
    assert!(out.status.success(), "{query}: {}", stderr(&out));
    stdout(&out)
}

/// Asserts that `out` failed with the server's error `code`.
fn assert_error(out: &Output, code: u16) {
    assert!(!out.status.success(), "succeeded: {}", stdout(out));
    assert!(
        stderr(out).contains(&format!("ERROR {code} ")),
        "want error {code}: {}",
        stderr(out)
    );
}

#[test]
fn throwaway_server_logins() {
    let db = MariaDb::start().unwrap();
    assert!(!db.is_shared());
    assert_eq!(db.tls(), Tls::Off);
    assert_eq!(db.addr().to_string(), format!("127.0.0.1:{}", db.port()));
    assert_ne!(db.port(), SHARED_PORT);
    assert_eq!((db.app_user(), db.app_db()), (APP_USER, APP_DB));
    assert!(db.log().contains("ready for connections"), "{}", db.log());

    assert_eq!(
        app_query(&db, APP_DB, "select current_user(), database()"),
        "app@%\tappdb"
    );
    app_query(
        &db,
        OTHER_DB,
        "create table t (x int); insert into t values (1)",
    );
    assert_eq!(db.sql(OTHER_DB, "select x from t").unwrap(), "1");
    assert_eq!(
        db.sql(
            "mysql",
            "select plugin from mysql.user where user = 'app' and host = '%'"
        )
        .unwrap(),
        "mysql_native_password"
    );
    assert_eq!(
        db.sql("mysql", "select @@character_set_server, @@have_ssl")
            .unwrap(),
        "utf8mb4\tDISABLED"
    );

    let wrong = db.mysql(APP_USER, "not-the-password", APP_DB, &["-e", "select 1"]);
    assert_error(&wrong, 1045);
    assert!(stderr(&wrong).contains("(using password: YES)"));
    // No password: no prompt, just the same refusal.
    let none = mysql::mysql_at(
        "127.0.0.1",
        db.port(),
        APP_USER,
        APP_DB,
        &["-e", "select 1"],
    );
    assert_error(&none, 1045);
    assert!(stderr(&none).contains("(using password: NO)"));
    // Root has no TCP account, with or without its password.
    let root = db.mysql(ROOT, db.root_password(), "mysql", &["-e", "select 1"]);
    assert_error(&root, 1045);

    assert_eq!(
        db.url_for(APP_USER, APP_DB),
        format!(
            "mysql://app:{}@127.0.0.1:{}/appdb",
            db.app_password(),
            db.port()
        )
    );
}

#[test]
fn mysqldump_round_trip() {
    let db = MariaDb::start().unwrap();
    app_query(
        &db,
        APP_DB,
        "create table items (id int primary key, name varchar(50)); \
         insert into items values (1, 'alpha'), (2, 'b\\'eta \u{1f42c}')",
    );
    let mut dump = mysqldump_command("127.0.0.1", db.port(), APP_USER);
    db.direct_env(&mut dump, db.app_password());
    dump.args(["--single-transaction", "--skip-comments", APP_DB]);
    let sql = run_checked(&mut dump).unwrap();
    assert!(sql.contains("CREATE TABLE `items`"), "{sql}");
    assert!(sql.contains("(2,'b\\'eta \u{1f42c}')"), "{sql}");

    // The dump restores into the other database.
    let path = db.dir().unwrap().join("dump.sql");
    std::fs::write(&path, &sql).unwrap();
    let mut restore = mysql_command("127.0.0.1", db.port(), APP_USER, OTHER_DB);
    db.direct_env(&mut restore, db.app_password());
    restore.stdin(std::fs::File::open(&path).unwrap());
    run_checked(&mut restore).unwrap();
    assert_eq!(
        app_query(
            &db,
            OTHER_DB,
            "select group_concat(name order by id) from items"
        ),
        "alpha,b'eta \u{1f42c}"
    );
}

#[test]
fn pymysql_scenarios() {
    let db = MariaDb::start().unwrap();
    let run = |scenario: &str, extra: &[&str]| -> serde_json::Value {
        let mut c = db
            .python(APP_USER, db.app_password(), APP_DB, scenario)
            .unwrap();
        c.args(extra);
        let out = run_checked(&mut c).unwrap_or_else(|e| panic!("{scenario}: {e:#}"));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["scenario"], scenario);
        v
    };

    let basic = run("basic", &[]);
    assert_eq!(basic["user"], "app@%");
    assert_eq!(basic["database"], "appdb");
    assert!(
        basic["version"].as_str().unwrap().contains("MariaDB"),
        "{basic}"
    );
    assert_eq!(basic["ssl"], "");
    assert_eq!(
        basic["names"],
        serde_json::json!(["alpha", "beta", "gamma \u{1f42c} 'quoted' \\"])
    );
    assert_eq!(
        basic["data_hex"],
        serde_json::json!(["0001ff", "62657461", ""])
    );
    assert_eq!(
        basic["multi"],
        serde_json::json!([[[1]], [[2, "two"]], {"affected": 1}, [[4]]])
    );

    let error = run("error", &[]);
    assert_eq!(error["codes"], serde_json::json!([1064, 1146, 1062]));
    assert_eq!(error["after"], 42);

    let large = run("large", &["20000"]);
    assert_eq!(large["rows"], 20000);
    assert_eq!(large["unbuffered_rows"], 20000);
    assert_eq!(large["sum"], 20000 * 20001 / 2);

    let kill = run("kill", &[]);
    assert_eq!(kill["code"], 1317);
    assert!(kill["seconds"].as_f64().unwrap() < 30.0, "{kill}");

    let infile = run("infile", &[]);
    assert_eq!(infile["rows"], 1000);
    assert_eq!(infile["max_body"], "row 999 \u{e9}");

    // A failure is an exit status and the error code on stderr.
    let out = db
        .python(APP_USER, "wrong", APP_DB, "basic")
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("[1045]"), "{}", stderr(&out));
}

#[test]
fn shared_server_user_and_databases() {
    let db = MariaDb::shared().unwrap();
    assert!(db.is_shared());
    assert_eq!(db.port(), SHARED_PORT);
    assert!(db.dir().is_none());
    let (user, app_db, other) = (
        db.app_user().to_string(),
        db.app_db().to_string(),
        db.other_db().to_string(),
    );
    assert!(user.starts_with("hoop_") && user != APP_USER, "{user}");
    assert_eq!(
        app_query(&db, &app_db, "select current_user(), database()"),
        format!("{user}@%\t{app_db}")
    );
    app_query(&db, &other, "create table t (x int)");
    let wrong = db.mysql(&user, "wrong", &app_db, &["-e", "select 1"]);
    assert_error(&wrong, 1045);
    // Another user's database is out of reach.
    let second = MariaDb::shared().unwrap();
    assert_ne!(second.app_user(), user);
    let cross = db.mysql(
        &user,
        db.app_password(),
        second.app_db(),
        &["-e", "select 1"],
    );
    assert_error(&cross, 1044);

    // Drop removes the user and both databases.
    let count = format!(
        "select (select count(*) from mysql.user where user = '{user}') + \
         (select count(*) from information_schema.schemata \
          where schema_name in ('{app_db}', '{other}'))"
    );
    assert_eq!(second.sql("mysql", &count).unwrap(), "3");
    drop(db);
    assert_eq!(second.sql("mysql", &count).unwrap(), "0");
}

#[test]
fn tls_required_server() {
    let db = MariaDb::builder().tls().start().unwrap();
    assert_eq!(db.tls(), Tls::Required);
    let ca = db.ca_path().expect("a CA for a TLS server").to_owned();
    let query = "show session status like 'Ssl_version'";

    // Verifies the chain and that 127.0.0.1 / localhost is in the certificate.
    for host in ["127.0.0.1", "localhost"] {
        let mut c = mysql_command(host, db.port(), APP_USER, APP_DB);
        c.env("MYSQL_PWD", db.app_password())
            .args(mysql::client_tls_args(&ca))
            .args(["-N", "-B", "-e", query]);
        let out = run_checked(&mut c).unwrap();
        assert!(
            out.trim().starts_with("Ssl_version\tTLSv1."),
            "{host}: {out}"
        );
    }
    assert!(app_query(&db, APP_DB, query).starts_with("Ssl_version\tTLSv1."));

    // Plain TCP is refused, even with the right password (MariaDB says
    // only "access denied"); root's socket still works.
    let plain = mysql_command("127.0.0.1", db.port(), APP_USER, APP_DB)
        .env("MYSQL_PWD", db.app_password())
        .args(["-e", "select 1"])
        .output()
        .unwrap();
    assert_error(&plain, 1045);
    assert_eq!(
        db.sql("mysql", "select @@require_secure_transport")
            .unwrap(),
        "1"
    );

    // PyMySQL verifies with the same CA.
    let mut py = db
        .python(APP_USER, db.app_password(), APP_DB, "basic")
        .unwrap();
    let basic: serde_json::Value = serde_json::from_str(&run_checked(&mut py).unwrap()).unwrap();
    assert!(
        basic["ssl"].as_str().unwrap().starts_with("TLSv1."),
        "{basic}"
    );

    // A CA that did not sign the server's certificate fails verification.
    let other = hoop_tests::pg::TestCerts::generate("hoop-tests other CA").unwrap();
    let other_ca = db.dir().unwrap().join("other-ca.crt");
    std::fs::write(&other_ca, other.ca_pem).unwrap();
    let mut c = mysql_command("127.0.0.1", db.port(), APP_USER, APP_DB);
    c.env("MYSQL_PWD", db.app_password())
        .args(mysql::client_tls_args(&other_ca))
        .args(["-e", "select 1"]);
    let err = format!("{:#}", run_checked(&mut c).unwrap_err());
    assert!(err.contains("ERROR 2026"), "{err}");
}

#[test]
fn tls_optional_server() {
    let db = MariaDb::builder().tls_optional().start().unwrap();
    assert_eq!(db.tls(), Tls::Optional);
    // Both: TLS with verification (db.mysql adds it) and plain TCP.
    assert!(
        app_query(&db, APP_DB, "show session status like 'Ssl_version'")
            .starts_with("Ssl_version\tTLSv1.")
    );
    let plain = mysql::mysql_at(
        "127.0.0.1",
        db.port(),
        APP_USER,
        APP_DB,
        &["-N", "-B", "-e", "show session status like 'Ssl_version'"],
    );
    // No password given: only proves the server took a plain connection.
    assert_error(&plain, 1045);
    let mut c = mysql_command("127.0.0.1", db.port(), APP_USER, APP_DB);
    c.env("MYSQL_PWD", db.app_password()).args([
        "-N",
        "-B",
        "-e",
        "show session status like 'Ssl_version'",
    ]);
    assert_eq!(run_checked(&mut c).unwrap().trim(), "Ssl_version");
}

#[test]
fn restart_stop_and_drop() {
    let mut db = MariaDb::builder()
        .option("max_connections", "42")
        .start()
        .unwrap();
    assert_eq!(db.sql("mysql", "select @@max_connections").unwrap(), "42");
    app_query(
        &db,
        APP_DB,
        "create table kept (x int); insert into kept values (7)",
    );
    let port = db.port();
    db.restart().unwrap();
    assert_eq!(db.port(), port);
    assert_eq!(app_query(&db, APP_DB, "select x from kept"), "7");

    db.stop().unwrap();
    let refused = std::net::TcpStream::connect(db.addr()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    db.restart().unwrap();
    assert_eq!(app_query(&db, APP_DB, "select x from kept"), "7");

    let (addr, dir) = (db.addr(), db.dir().unwrap().to_owned());
    assert!(dir.join("data/mysql").exists());
    drop(db);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn a_server_that_cannot_start_says_why() {
    let err = MariaDb::builder()
        .option("no_such_option", "1")
        .start()
        .err()
        .expect("mariadbd refuses an unknown option");
    let err = format!("{err:#}");
    assert!(err.contains("mariadbd exited while starting"), "{err}");
    // The end of the server's error log says what was wrong.
    assert!(err.contains("unknown variable 'no_such_option=1'"), "{err}");
}

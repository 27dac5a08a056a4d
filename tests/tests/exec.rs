//! `hoop exec` against a real PostgreSQL through the agent, and
//! `hoop-agent dev --postgres`.

use std::io::Write;
use std::process::Stdio;

use hoop_tests::harness::{Agent, Conn, TempDir};
use hoop_tests::issuer::TestIssuer;
use hoop_tests::pg::PgCluster;
use hoop_tests::servers;

fn pg_conn(cluster: &PgCluster) -> Conn {
    Conn::postgres("db", cluster.addr()).extra(&format!(
        "user = \"app\"\ndatabase = \"appdb\"\npassword = {{ value = \"{}\" }}\ntls = \"disable\"\n\
         [[connection.deny]]\npattern = \"(?i)\\\\bdrop\\\\s+table\\\\b\"\nmessage = \"DROP TABLE is not allowed through hoop\"\n",
        cluster.app_password()
    ))
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_prints_tables_json_and_csv_and_fails_with_the_backend_message() {
    let cluster = PgCluster::start().unwrap();
    let issuer = TestIssuer::start().await.unwrap();
    let echo = servers::echo().await.unwrap();
    let agent = Agent::start(issuer.url(), &[pg_conn(&cluster), Conn::tcp("raw", echo)]).unwrap();
    let token = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 600)
        .unwrap();
    let exec = |args: &[&str]| agent.run_hoop(Some(&token), &[&["exec", "db"], args].concat());

    let out = exec(&[
        "-i",
        "select 1 as n, 'a,b' as s, null as z union all select 2, 'c\"d', 'x' order by n",
        "-o",
        "csv",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "n,s,z\n1,\"a,b\",\n2,\"c\"\"d\",x\n");

    let out = exec(&[
        "-i",
        "select g as n from generate_series(1,3) g",
        "-o",
        "json",
    ]);
    let (stdout, _) = text(&out);
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"n":"1"}),
            serde_json::json!({"n":"2"}),
            serde_json::json!({"n":"3"})
        ]
    );

    let out = exec(&[
        "-i",
        "create table t(a int); insert into t values (1),(2); select a, current_user as who from t order by a",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("a | who") && stdout.contains("1 | app") && stdout.contains("(2 rows)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("CREATE TABLE") && stderr.contains("INSERT 0 2"),
        "{stderr}"
    );

    // Errors: non-zero exit with the backend's message and SQLSTATE.
    let out = exec(&["-i", "select 1/0"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("division by zero") && stderr.contains("22012"),
        "{stderr}"
    );

    // Guardrails apply to hoop exec like to any client.
    let out = exec(&["-i", "drop table t"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("DROP TABLE is not allowed through hoop") && stderr.contains("42501"),
        "{stderr}"
    );
    assert_eq!(cluster.sql("appdb", "select count(*) from t").unwrap(), "2");

    // SQL from a file and from standard input.
    let dir = TempDir::new("hoop-exec");
    let file = dir.path().join("q.sql");
    std::fs::write(&file, "select 40 + 2 as answer;").unwrap();
    let out = exec(&["-f", file.to_str().unwrap(), "-o", "csv"]);
    assert_eq!(text(&out).0, "answer\n42\n");
    let mut child = agent
        .hoop(Some(&token))
        .args(["exec", "db", "-", "-o", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"select 'from stdin' as src")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "src\nfrom stdin\n");

    // A database the connection does not offer, and a non-database connection.
    let out = exec(&["-d", "otherdb", "-i", "select 1"]);
    assert!(
        text(&out).1.contains("\"otherdb\" is not available"),
        "{}",
        text(&out).1
    );
    let out = agent.run_hoop(Some(&token), &["exec", "raw", "-i", "select 1"]);
    assert!(text(&out).1.contains("type tcp"), "{}", text(&out).1);

    // Every statement is in the audit log with who ran it.
    let mut agent = agent;
    agent.stop();
    let stmts: Vec<serde_json::Value> = agent
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "statement")
        .collect();
    let div = stmts
        .iter()
        .find(|e| e["text"] == "select 1/0")
        .expect("audited");
    assert_eq!(div["user"], "alice@example.com");
    assert_eq!(div["sqlstate"], "22012");
    assert_eq!(div["outcome"], "error");
    let ins = stmts
        .iter()
        .find(|e| {
            e["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("create table t")
        })
        .unwrap();
    assert_eq!(ins["rows"], 4, "{ins}"); // INSERT 2 + SELECT 2
    assert!(
        agent
            .audit()
            .iter()
            .any(|e| e["event"] == "statement_refused" && e["text"] == "drop table t")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_agent_serves_a_postgres_url() {
    let cluster = PgCluster::start().unwrap();
    let url = format!(
        "db=postgres://app:{}@{}/appdb",
        cluster.app_password(),
        cluster.addr()
    );
    let mut child = std::process::Command::new(hoop_tests::harness::bin("hoop-agent"))
        .args(["dev", "--listen", "127.0.0.1:0", "--postgres", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut fields = std::collections::HashMap::new();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("ready:") {
            break;
        }
        if let Some((k, v)) = line.split_once(": ") {
            fields.entry(k.to_string()).or_insert(v.to_string());
        }
    }
    assert!(
        fields["connection"].starts_with("db postgres"),
        "{fields:?}"
    );
    assert!(
        !fields.values().any(|v| v.contains(cluster.app_password())),
        "the password is printed"
    );
    let secret = fields["client-credentials"]
        .strip_prefix("hoop-ci ")
        .unwrap()
        .to_string();
    let cli = TempDir::new("hoop-devpg");
    let hoop = || {
        let mut c = std::process::Command::new(hoop_tests::harness::bin("hoop"));
        c.env("HOOP_CONFIG_DIR", cli.path())
            .env("HOOP_TOKEN_STORE", "file")
            .env_remove("HOOP_TOKEN")
            .env_remove("HOOP_AGENT")
            .env_remove("HOOP_AGENT_FINGERPRINT");
        c
    };
    let out = hoop()
        .args([
            "login",
            "--agent",
            &fields["agent"],
            "--fingerprint",
            &fields["fingerprint"],
            "--client-credentials",
            "--client-id",
            "hoop-ci",
        ])
        .env("HOOP_CLIENT_SECRET", &secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hoop()
        .args(["exec", "db", "-i", "select current_user", "-o", "csv"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "current_user\napp\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = child.kill();
    let _ = child.wait();
}

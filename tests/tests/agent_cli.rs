//! `hoop-agent init`, `check`, `run` and `audit verify` as an operator uses
//! them.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use hoop_tests::harness::{Agent, Conn, Connect, TempDir, bin};
use hoop_tests::issuer::TestIssuer;
use hoop_tests::servers;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn agent_cmd(args: &[&str]) -> std::process::Output {
    Command::new(bin("hoop-agent")).args(args).output().unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn init_writes_private_keys_0600_and_refuses_to_overwrite() {
    let dir = TempDir::new("hoop-init");
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = agent_cmd(&["init", "--data-dir", d, "--san", "agent.example.com"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fp = agent_cmd(&["fingerprint", "--data-dir", d]);
    let fp = String::from_utf8_lossy(&fp.stdout).trim().to_string();
    assert!(fp.starts_with("SHA256:") && fp.len() == 71, "{fp}");
    assert!(
        stdout.contains(&format!(
            "hoop trust agent.example.com:8443 --fingerprint {fp}"
        )),
        "{stdout}"
    );
    for key in ["ca.key", "agent.key", "reset.key"] {
        let mode = std::fs::metadata(data.join("tls").join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let again = agent_cmd(&["init", "--data-dir", d]);
    assert!(!again.status.success());
    assert!(text(&again).contains("--force"), "{}", text(&again));
    let fp2 = agent_cmd(&["fingerprint", "--data-dir", d]);
    assert_eq!(
        String::from_utf8_lossy(&fp2.stdout).trim(),
        fp,
        "identity unchanged"
    );
    let forced = agent_cmd(&["init", "--data-dir", d, "--force"]);
    assert!(forced.status.success());
    let fp3 = agent_cmd(&["fingerprint", "--data-dir", d]);
    assert_ne!(String::from_utf8_lossy(&fp3.stdout).trim(), fp);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_bad_keys_and_probes_backends() {
    let issuer = TestIssuer::start().await.unwrap();
    let echo = servers::echo().await.unwrap();
    let dead = servers::closed_port();
    let dir = TempDir::new("hoop-check");
    let data = dir.path().join("data");
    assert!(
        agent_cmd(&["init", "--data-dir", data.to_str().unwrap()])
            .status
            .success()
    );
    let cfg = dir.path().join("agent.toml");
    let base = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[[issuer]]\nurl = {:?}\naudience = \"hoop\"\n\
         [[connection]]\nname = \"echo\"\ntype = \"tcp\"\naddress = \"{echo}\"\nallow_groups = [\"eng\"]\n",
        data.display().to_string(),
        issuer.url()
    );
    std::fs::write(&cfg, &base).unwrap();
    let out = agent_cmd(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("ok    connection echo (tcp): {echo} answers")),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("signing key"), "{}", text(&out));

    // A backend that does not answer fails the check, and says which.
    std::fs::write(
        &cfg,
        format!("{base}\n[[connection]]\nname = \"dead\"\ntype = \"tcp\"\naddress = \"{dead}\"\nallow_groups = [\"eng\"]\n"),
    )
    .unwrap();
    let out = agent_cmd(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("FAIL  connection dead (tcp): {dead}")),
        "{}",
        text(&out)
    );

    // An unknown key: named, with its line, by both check and run.
    std::fs::write(
        &cfg,
        base.replace("audience = ", "audiense = \"x\"\naudience = "),
    )
    .unwrap();
    for sub in ["check", "run"] {
        let out = agent_cmd(&[sub, "--config", cfg.to_str().unwrap()]);
        assert!(!out.status.success());
        let t = text(&out);
        assert!(t.contains("audiense") && t.contains("line 5"), "{sub}: {t}");
    }

    // A bad value: named by its key path.
    std::fs::write(&cfg, base.replace(&echo.to_string(), "no-port-here")).unwrap();
    let out = agent_cmd(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("connection[0].address"),
        "{}",
        text(&out)
    );

    // A missing file.
    let out = agent_cmd(&["run", "--config", "/nonexistent/agent.toml"]);
    assert!(
        text(&out).contains("cannot read /nonexistent/agent.toml"),
        "{}",
        text(&out)
    );
}

#[test]
fn run_without_init_says_to_init() {
    let dir = TempDir::new("hoop-noinit");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[[issuer]]\nurl = \"https://idp.example.com\"\naudience = \"hoop\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let out = agent_cmd(&["run", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("run `hoop-agent init --data-dir"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_survives_kill_9_and_verify_names_tampering() {
    let issuer = TestIssuer::start().await.unwrap();
    let echo = servers::echo().await.unwrap();
    let mut agent = Agent::start(issuer.url(), &[Conn::tcp("echo", echo)]).unwrap();
    let token = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 600)
        .unwrap();
    {
        let connect = Connect::start(&agent, &token, "echo").unwrap();
        for i in 0..20u8 {
            let mut s = tokio::net::TcpStream::connect(connect.addr).await.unwrap();
            s.write_all(&[i; 100]).await.unwrap();
            s.shutdown().await.unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back).await.unwrap();
            assert_eq!(back.len(), 100);
        }
    }
    // Session ends are recorded as relays finish; wait until all 20 are on
    // disk (the writer syncs within a few milliseconds), then crash the agent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while agent
        .audit()
        .iter()
        .filter(|e| e["event"] == "session_end")
        .count()
        < 20
    {
        assert!(std::time::Instant::now() < deadline, "{:#?}", agent.audit());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    agent.kill9();
    let d = agent.data_dir();
    let d = d.to_str().unwrap();
    let out = agent_cmd(&["audit", "verify", "--data-dir", d]);
    assert!(out.status.success(), "{}", text(&out));

    // Restart after the crash: the chain continues.
    agent.start_again().unwrap();
    let _ = agent.run_hoop(Some(&token), &["connections"]);
    agent.stop();
    let out = agent_cmd(&["audit", "verify", "--data-dir", d]);
    assert!(out.status.success(), "{}", text(&out));
    let events = agent.audit();
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "agent_start")
            .count(),
        2
    );

    // Edit one event: verify fails and names the line after it.
    let path = agent.data_dir().join("audit/audit.jsonl");
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let victim = lines
        .iter()
        .position(|l| l.contains("\"session_end\""))
        .unwrap();
    let edited = original.replacen(
        lines[victim],
        &lines[victim].replace("\"bytes_up\":", "\"bytes_up\":1"),
        1,
    );
    std::fs::write(&path, edited).unwrap();
    let out = agent_cmd(&["audit", "verify", "--data-dir", d]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("audit.jsonl:{}:", victim + 2)),
        "{}",
        text(&out)
    );
}

//! `ssh` connections end to end: a real OpenSSH server started by the
//! test (its own host key; the agent's key is the only authorized one),
//! the real agent, and the real `ssh`, `scp` and `sftp` clients through
//! `hoop ssh` and `hoop connect`, which hold no key for the host.

#[path = "postgres_common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{Setup, Tmux, stderr, stdout};
use hoop_tests::harness::{Conn, Connect};
use hoop_tests::sshd::Sshd;

/// An `ssh` connection to `sshd` as root with the agent's key.
fn ssh_conn(name: &str, sshd: &Sshd, extra: &str) -> Conn {
    Conn {
        kind: "ssh".into(),
        ..Conn::tcp(name, sshd.addr)
    }
    .extra(&format!(
        "user = \"root\"\nprivate_key = {{ file = {:?} }}\nhost_key = {:?}\n{extra}",
        sshd.client_key.display().to_string(),
        sshd.host_key
    ))
}

/// ssh options every client here uses: no user config, never prompt.
const QUIET: [&str; 6] = [
    "-F",
    "/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "LogLevel=ERROR",
];

/// `hoop ssh NAME -- ARGS`.
fn hoop_ssh(s: &Setup, name: &str, args: &[&str]) -> Output {
    s.agent
        .hoop(Some(&s.token))
        .args(["ssh", name, "--"])
        .args(QUIET)
        .args(args)
        .output()
        .expect("run hoop ssh")
}

/// Whether this CPU has the AES and carry-less multiply instructions the
/// agent looks for before offering the caller only AES-GCM.
fn cpu_has_aes() -> bool {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = info
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .unwrap_or("");
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    has("aes") && (has("pclmulqdq") || has("pmull"))
}

/// The known-hosts file `hoop connect` manages for this agent's caller.
fn known_hosts(s: &Setup) -> PathBuf {
    s.agent.dir.path().join("cli").join("known_hosts")
}

/// `ssh`-family options for a `hoop connect` port.
fn client_opts(s: &Setup, name: &str, c: &Connect, port_flag: &str) -> Vec<String> {
    let mut v: Vec<String> = QUIET.iter().map(|s| s.to_string()).collect();
    v.extend([
        port_flag.to_string(),
        c.addr.port().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts(s).display()),
        "-o".into(),
        format!("HostKeyAlias=hoop-{name}"),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
    ]);
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_relays_output_and_exit_status_and_is_audited() {
    let sshd = Sshd::start().unwrap();
    let s = Setup::start(&[ssh_conn("web", &sshd, "")]).await;
    let out = hoop_ssh(
        &s,
        "web",
        &["echo hello from $(hostname); echo oops >&2; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert!(stdout(&out).starts_with("hello from"), "{}", stdout(&out));
    assert!(stderr(&out).contains("oops"), "{}", stderr(&out));
    let ev = s.wait_event("ssh_request", |e| e["request"] == "exec");
    assert_eq!(ev["user"], common::HOOP_USER);
    assert!(ev["command"].as_str().unwrap().contains("echo hello"));
    let end = s.wait_event("ssh_channel_end", |e| e["request"] == "exec");
    assert_eq!(end["exit_status"], 3);
    // The agent logged in with its key, and hung up when the caller left.
    common::wait_for("the agent's connection to sshd to close", || {
        sshd.log().contains("Closing connection to").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", sshd.log()));
    assert!(sshd.log().contains("Accepted publickey for root"));
    // Clients set to one cipher find it offered. With AES instructions the
    // agent offers only AES-GCM, so a default ssh (chacha20-poly1305 first)
    // negotiates aes128-gcm, and one that insists on ChaCha20 is told so.
    let aes = cpu_has_aes();
    for cipher in ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"] {
        let out = hoop_ssh(&s, "web", &["-c", cipher, "echo", cipher]);
        assert_eq!(stdout(&out).trim(), cipher, "{}", stderr(&out));
    }
    let chacha = "chacha20-poly1305@openssh.com";
    // -v: with LogLevel=ERROR ssh prints the negotiation failure only as
    // debug output.
    let out = hoop_ssh(&s, "web", &["-v", "-c", chacha, "echo", chacha]);
    if aes {
        assert!(!out.status.success(), "{}", stdout(&out));
        assert!(
            stderr(&out).contains("no matching cipher found"),
            "{}",
            stderr(&out)
        );
    } else {
        assert_eq!(stdout(&out).trim(), chacha, "{}", stderr(&out));
    }
    let out = hoop_ssh(&s, "web", &["-v", "true"]);
    let expected = if aes {
        "aes128-gcm@openssh.com"
    } else {
        chacha
    };
    assert!(
        stderr(&out).contains(&format!("cipher: {expected}")),
        "{}",
        stderr(&out)
    );
    // The banner says who and that it is recorded; hoop ssh adds nothing.
    let out = s
        .agent
        .hoop(Some(&s.token))
        .args([
            "ssh",
            "web",
            "--",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "true",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "hoop: alice@example.com on web, signed in through the tunnel; this session is audited and recorded"
    );
    let end = s.wait_event("session_end", |_| true);
    assert_eq!(end["outcome"], "ok", "{end}");
    assert!(end["bytes_down"].as_u64().unwrap() > 0, "{end}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deny_rule_refuses_an_exec_command_before_the_host_sees_it() {
    let sshd = Sshd::start().unwrap();
    let victim = sshd.dir.path().join("victim");
    std::fs::write(&victim, "still here").unwrap();
    let conn = ssh_conn(
        "web",
        &sshd,
        "[[connection.deny]]\npattern = '^\\s*rm\\s'\nmessage = \"rm is not allowed through hoop\"\n",
    );
    let s = Setup::start(&[conn]).await;
    let cmd = format!("rm -f {}", victim.display());
    let out = hoop_ssh(&s, "web", &[&cmd]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("rm is not allowed through hoop"),
        "{}",
        stderr(&out)
    );
    assert!(victim.exists(), "the refused command ran");
    let ev = s.wait_event("ssh_request", |e| e["outcome"] == "refused");
    assert_eq!(ev["command"], cmd.as_str());
    assert_eq!(ev["rule"], "^\\s*rm\\s");
    // Other commands still run.
    let out = hoop_ssh(&s, "web", &["cat", &victim.display().to_string()]);
    assert_eq!(stdout(&out), "still here", "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_host_key_mismatch_is_refused_naming_both_keys() {
    let sshd = Sshd::start().unwrap();
    let other = sshd.dir.path().join("other_ed25519");
    let kg = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(kg.success());
    let wrong = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let conn = Conn {
        kind: "ssh".into(),
        ..Conn::tcp("web", sshd.addr)
    }
    .extra(&format!(
        "user = \"root\"\nprivate_key = {{ file = {:?} }}\nhost_key = {:?}\n",
        sshd.client_key.display().to_string(),
        wrong.trim()
    ));
    let s = Setup::start(&[conn]).await;
    let out = hoop_ssh(&s, "web", &["echo", "should not run"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    let fp = |pubfile: PathBuf| {
        let o = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(pubfile)
            .output()
            .unwrap();
        stdout(&o).split_whitespace().nth(1).unwrap().to_string()
    };
    let shown = fp(sshd.dir.path().join("host_ed25519.pub"));
    let expected = fp(other.with_extension("pub"));
    assert!(err.contains("host key mismatch"), "{err}");
    assert!(err.contains(&shown), "{err} lacks {shown}");
    assert!(err.contains(&expected), "{err} lacks {expected}");
    assert!(!stdout(&out).contains("should not run"));
    // The agent never logged in.
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn scp_and_sftp_work_through_the_subsystem_and_the_key_stays_with_the_agent() {
    let sshd = Sshd::start().unwrap();
    let s = Setup::start(&[ssh_conn("web", &sshd, "")]).await;
    let c = s.connect("web");
    let work = sshd.dir.path().join("files");
    std::fs::create_dir_all(&work).unwrap();
    let local = s.agent.dir.path().join("payload.bin");
    let mut data = vec![0u8; 100 * 1024 * 1024 + 123];
    hoop_tests::servers::Noise::new(7).fill(&mut data);
    std::fs::write(&local, &data).unwrap();

    // scp up and back down (modern scp speaks sftp).
    let remote = format!("root@127.0.0.1:{}", work.join("up.bin").display());
    let out = Command::new("scp")
        .args(client_opts(&s, "web", &c, "-P"))
        .arg(&local)
        .arg(&remote)
        .output()
        .unwrap();
    assert!(out.status.success(), "scp up: {}", stderr(&out));
    let back = s.agent.dir.path().join("back.bin");
    let out = Command::new("scp")
        .args(client_opts(&s, "web", &c, "-P"))
        .arg(&remote)
        .arg(&back)
        .output()
        .unwrap();
    assert!(out.status.success(), "scp down: {}", stderr(&out));
    let sum = hoop_tests::servers::sha256;
    assert_eq!(
        sum(&std::fs::read(work.join("up.bin")).unwrap()),
        sum(&data)
    );
    assert_eq!(sum(&std::fs::read(&back).unwrap()), sum(&data));

    // sftp: a listing and an upload.
    std::fs::write(work.join("listed.txt"), "x").unwrap();
    let batch = s.agent.dir.path().join("batch");
    std::fs::write(
        &batch,
        format!(
            "ls {dir}\nput {local} {dir}/put.bin\n",
            dir = work.display(),
            local = local.display()
        ),
    )
    .unwrap();
    let out = Command::new("sftp")
        .args(client_opts(&s, "web", &c, "-P"))
        .arg("-b")
        .arg(&batch)
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "sftp: {}", stderr(&out));
    assert!(stdout(&out).contains("listed.txt"), "{}", stdout(&out));
    assert_eq!(
        sum(&std::fs::read(work.join("put.bin")).unwrap()),
        sum(&data)
    );
    s.wait_event("ssh_request", |e| {
        e["request"] == "subsystem" && e["command"] == "sftp"
    });

    // The caller's side holds the agent's host key, never the host's key
    // nor the agent's private key for the host.
    let private = std::fs::read_to_string(&sshd.client_key).unwrap();
    let body: String = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let kh = std::fs::read_to_string(known_hosts(&s)).unwrap();
    assert!(kh.starts_with("hoop-web ssh-ed25519 "), "{kh}");
    let host_b64 = sshd.host_key.split_whitespace().nth(1).unwrap();
    assert!(!kh.contains(host_b64), "{kh}");
    for entry in walk(&s.agent.dir.path().join("cli")) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).replace('\n', "");
        assert!(
            !text.contains(&body[..40]),
            "{} holds the key",
            entry.display()
        );
    }
    assert!(!c.stderr.all().contains(&body[..40]));
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interactive_shell_with_a_pty_and_a_resize_is_recorded() {
    let sshd = Sshd::start().unwrap();
    let issuer = hoop_tests::issuer::TestIssuer::start().await.unwrap();
    let agent = hoop_tests::harness::Agent::start_env(
        issuer.url(),
        &[ssh_conn("web", &sshd, "")],
        "auditor_group = \"audit\"",
        "",
        &[],
    )
    .unwrap();
    let token = issuer
        .token_for(common::HOOP_USER, &["eng"], "hoop", 3600)
        .unwrap();
    let s = Setup {
        issuer,
        agent,
        token,
    };
    let tmux = Tmux {
        socket: s.agent.dir.path().join("tmux.sock"),
        session: "hoop",
    };
    // hoop's environment (agent address, pin, token, config dir) for the
    // tmux server, which the shell inside inherits.
    let hoop = s.agent.hoop(Some(&s.token));
    let mut start = tmux.cmd();
    for (k, v) in hoop.get_envs() {
        match v {
            Some(v) => start.env(k, v),
            None => start.env_remove(k),
        };
    }
    let line = format!(
        "{} ssh web -- -F /dev/null -o BatchMode=yes -o LogLevel=ERROR; sleep 30",
        hoop_tests::harness::bin("hoop").display()
    );
    let out = start
        .args([
            "new-session",
            "-d",
            "-s",
            "hoop",
            "-x",
            "100",
            "-y",
            "30",
            &line,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "tmux: {}", stderr(&out));
    tmux.run(&[
        "send-keys",
        "-t",
        "hoop",
        "export PS1='remote''$ '",
        "Enter",
    ]);
    tmux.wait_for("remote$");
    tmux.run(&[
        "send-keys",
        "-t",
        "hoop",
        "tty; stty size; echo marker-$((6*7))",
        "Enter",
    ]);
    let screen = tmux.wait_for("marker-42");
    assert!(screen.contains("/dev/pts/"), "{screen}");
    assert!(screen.contains("30 100"), "{screen}");
    tmux.run(&["resize-window", "-t", "hoop", "-x", "120", "-y", "40"]);
    tmux.keys(&["stty size", "Enter"]);
    tmux.wait_for("40 120");
    tmux.keys(&["exit 0", "Enter"]);

    let end = s.wait_event("ssh_channel_end", |e| e["request"] == "shell");
    let rel = end["recording"].as_str().expect("a recording").to_string();
    let start_ev = s.wait_event("ssh_request", |e| e["request"] == "shell");
    assert_eq!(start_ev["recording"], rel.as_str());
    let path = s.agent.data_dir().join(&rel);
    assert!(rel.starts_with("recordings/"), "{rel}");
    assert!(
        rel.contains(end["session"].as_str().unwrap()),
        "{rel} names the session"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 100);
    assert_eq!(header["height"], 30);
    let events: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let joined = |kind: &str| {
        events
            .iter()
            .filter(|e| e[1] == kind)
            .map(|e| e[2].as_str().unwrap().to_string())
            .collect::<String>()
    };
    assert!(joined("o").contains("marker-42"), "{text}");
    assert!(joined("i").contains("echo marker-$((6*7))"), "{text}");
    assert!(joined("r").contains("120x40"), "{text}");
    let times: Vec<f64> = events.iter().map(|e| e[0].as_f64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "timestamps go forward"
    );

    let name = rel
        .strip_prefix("recordings/")
        .and_then(|r| r.strip_suffix(".cast"))
        .unwrap();
    check_sessions_and_replay(&s, name);
}

/// `ssh -N -L PORT:TARGET` through `c`, until dropped.
struct Forward(std::process::Child);

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn forward(s: &Setup, name: &str, c: &Connect, target: std::net::SocketAddr) -> (Forward, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("ssh")
        .args(client_opts(s, name, c, "-p"))
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("127.0.0.1:{port}:{target}"))
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    (Forward(child), port)
}

/// Sends `msg` through the forward and reads what comes back; `None` when
/// the forward closes without answering.
async fn echo_via(port: u16, msg: &[u8]) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    tcp.write_all(msg).await.ok()?;
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(common::WAIT, tcp.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(buf)
}

#[tokio::test(flavor = "multi_thread")]
async fn local_forwarding_works_only_when_the_connection_allows_it() {
    let sshd = Sshd::start().unwrap();
    let echo = hoop_tests::servers::echo().await.unwrap();
    let s = Setup::start(&[
        ssh_conn("open", &sshd, "allow_port_forwarding = true"),
        ssh_conn("closed", &sshd, ""),
    ])
    .await;

    let c = s.connect("open");
    let (_fwd, port) = forward(&s, "open", &c, echo);
    let got = common::wait_for("the -L forward to echo", || {
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| rt.block_on(echo_via(port, b"ping through -L")))
    })
    .unwrap();
    assert_eq!(got, b"ping through -L");
    s.wait_event("ssh_request", |e| {
        e["request"] == "direct-tcpip" && e["outcome"] == "ok"
    });

    let c2 = s.connect("closed");
    let (_fwd2, port2) = forward(&s, "closed", &c2, echo);
    let refused = s.wait_audit("a refused direct-tcpip", |evs| {
        let rt = tokio::runtime::Handle::current();
        let answer = tokio::task::block_in_place(|| rt.block_on(echo_via(port2, b"x")));
        assert!(
            answer.is_none(),
            "a forward went through a closed connection"
        );
        evs.iter()
            .find(|e| e["request"] == "direct-tcpip" && e["outcome"] == "refused")
            .cloned()
    });
    assert_eq!(refused["connection"], "closed");
    assert_eq!(refused["rule"], "allow_port_forwarding");
}

/// `hoop sessions -o json` and `hoop replay` as the Setup's user, another
/// user, and an auditor.
fn check_sessions_and_replay(s: &Setup, recording: &str) {
    let out = s
        .agent
        .run_hoop(Some(&s.token), &["sessions", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let mine = list.as_array().unwrap();
    assert_eq!(mine.len(), 1, "{list}");
    assert_eq!(mine[0]["recording"], recording);
    assert_eq!(mine[0]["user"], common::HOOP_USER);
    assert_eq!(mine[0]["request"], "shell");

    let out = s.agent.run_hoop(
        Some(&s.token),
        &["replay", recording, "--speed", "50", "--idle-limit", "0.1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("marker-42"), "{}", stdout(&out));

    let bob = s
        .issuer
        .token_for("bob@example.com", &["eng"], "hoop", 3600)
        .unwrap();
    let out = s.agent.run_hoop(Some(&bob), &["sessions", "-o", "json"]);
    assert_eq!(stdout(&out).trim(), "[]", "{}", stderr(&out));
    let out = s.agent.run_hoop(Some(&bob), &["replay", recording]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no recording"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("marker-42"));

    let carol = s
        .issuer
        .token_for("carol@example.com", &["audit"], "hoop", 3600)
        .unwrap();
    let out = s.agent.run_hoop(Some(&carol), &["sessions"]);
    assert!(stdout(&out).contains(recording), "{}", stdout(&out));
    let out = s
        .agent
        .run_hoop(Some(&carol), &["replay", recording, "--speed", "50"]);
    assert!(stdout(&out).contains("marker-42"), "{}", stderr(&out));
    s.wait_event("recording_fetched", |e| {
        e["user"] == "bob@example.com" && e["outcome"] == "refused"
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dev_agent_serves_ssh_and_trusts_the_first_host_key() {
    use std::io::{BufRead, BufReader};
    let sshd = Sshd::start().unwrap();
    let dir = hoop_tests::harness::TempDir::new("hoop-dev-ssh");
    let data = dir.path().join("data");
    let mut child = Command::new(hoop_tests::harness::bin("hoop-agent"))
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--idp-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--ssh")
        .arg(format!("web=root@{}", sshd.addr))
        .arg("--ssh-key")
        .arg(&sshd.client_key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout_pipe = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut fields = std::collections::HashMap::new();
    loop {
        let line = rx
            .recv_timeout(hoop_tests::harness::READY_TIMEOUT)
            .expect("hoop-agent dev says ready");
        if line.starts_with("ready:") {
            break;
        }
        if let Some((k, v)) = line.split_once(": ") {
            fields.entry(k.to_string()).or_insert(v.to_string());
        }
    }
    assert!(
        fields["connection"].starts_with(&format!("web ssh {}", sshd.addr)),
        "{fields:?}"
    );
    let secret = fields["client-credentials"]
        .strip_prefix("hoop-ci ")
        .unwrap();
    let tokens: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/token", fields["idp"]))
        .basic_auth("hoop-ci", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let out = Command::new(hoop_tests::harness::bin("hoop"))
        .env("HOOP_AGENT", &fields["agent"])
        .env("HOOP_AGENT_FINGERPRINT", &fields["fingerprint"])
        .env("HOOP_CONFIG_DIR", dir.path().join("cli"))
        .env("HOOP_TOKEN", token)
        .args(["ssh", "web", "--"])
        .args(QUIET)
        .args(["echo", "dev-ok"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "dev-ok", "{}", stderr(&out));
    let learnt = std::fs::read_to_string(data.join("ssh_known_hosts")).unwrap();
    let host_b64 = sshd.host_key.split_whitespace().nth(1).unwrap();
    assert!(learnt.contains(host_b64), "{learnt}");
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_forwarding_is_refused() {
    let sshd = Sshd::start().unwrap();
    let s = Setup::start(&[ssh_conn("web", &sshd, "")]).await;
    // A real ssh-agent for the caller, so that `ssh -A` asks to forward it.
    let sock = s.agent.dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for("ssh-agent's socket", || sock.exists().then_some(())).unwrap();
    let out = s
        .agent
        .hoop(Some(&s.token))
        .env("SSH_AUTH_SOCK", &sock)
        .args(["ssh", "web", "--"])
        .args(QUIET)
        .args(["-A", "echo agent=${SSH_AUTH_SOCK:-none}"])
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(stdout(&out).trim(), "agent=none", "{}", stderr(&out));
    let ev = s.wait_event("ssh_request", |e| e["request"] == "auth-agent");
    assert_eq!(ev["outcome"], "refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_hosts_file_checks_the_host_key() {
    let sshd = Sshd::start().unwrap();
    let kh = sshd.dir.path().join("agent_known_hosts");
    std::fs::write(
        &kh,
        format!("[127.0.0.1]:{} {}\n", sshd.addr.port(), sshd.host_key),
    )
    .unwrap();
    let empty = sshd.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let conn = |name: &str, file: &std::path::Path| {
        Conn {
            kind: "ssh".into(),
            ..Conn::tcp(name, sshd.addr)
        }
        .extra(&format!(
            "user = \"root\"\nprivate_key = {{ file = {:?} }}\nknown_hosts = {:?}\n",
            sshd.client_key.display().to_string(),
            file.display().to_string()
        ))
    };
    let s = Setup::start(&[conn("known", &kh), conn("unknown", &empty)]).await;
    let out = hoop_ssh(&s, "known", &["echo", "known-ok"]);
    assert_eq!(stdout(&out).trim(), "known-ok", "{}", stderr(&out));
    let out = hoop_ssh(&s, "unknown", &["echo", "should not run"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("has no key for it"),
        "{}",
        stderr(&out)
    );
    // No trust on first use unless asked: the file stays empty.
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn record_input_false_keeps_what_the_caller_types_out_of_the_recording() {
    let sshd = Sshd::start().unwrap();
    let s = Setup::start(&[
        ssh_conn("typed", &sshd, ""),
        ssh_conn("blind", &sshd, "record_input = false"),
    ])
    .await;
    for name in ["typed", "blind"] {
        let mut child = s
            .agent
            .hoop(Some(&s.token))
            .args(["ssh", name, "--"])
            .args(QUIET)
            .arg("read x; echo got-it")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"typed-secret\n").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(stdout(&out).trim(), "got-it");
        let end = s.wait_event("ssh_channel_end", |e| e["connection"] == name);
        let rec = end["recording"].as_str().unwrap();
        let text = std::fs::read_to_string(s.agent.data_dir().join(rec)).unwrap();
        assert!(text.contains("got-it"), "{text}");
        assert_eq!(
            text.contains("typed-secret"),
            name == "typed",
            "{name}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_logs_in_to_the_host_with_a_stored_password() {
    use hoop_tests::sshd::PasswordUser;
    // sshd checks passwords against /etc/shadow, so the test needs a real
    // system user with a password: only root can make one.
    let user = match PasswordUser::create().unwrap() {
        Ok(u) => u,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let sshd = Sshd::start_with_passwords().unwrap();
    let pw_file = sshd.dir.path().join("host_password");
    std::fs::write(&pw_file, format!("{}\n", user.password)).unwrap();
    // Not derived from the right one, so that each can be looked for alone.
    let wrong = format!("Wrong-{}-{}", std::process::id(), user.password.len());
    let conn = |name: &str, password: &str| {
        Conn {
            kind: "ssh".into(),
            ..Conn::tcp(name, sshd.addr)
        }
        .extra(&format!(
            "user = {:?}\npassword = {password}\nhost_key = {:?}\n",
            user.name, sshd.host_key
        ))
    };
    let s = Setup::start_env(
        &[
            conn(
                "pw",
                &format!("{{ file = {:?} }}", pw_file.display().to_string()),
            ),
            conn("badpw", "{ env = \"HOOP_TEST_SSH_PASSWORD\" }"),
        ],
        &[("HOOP_TEST_SSH_PASSWORD", &wrong)],
    )
    .await;

    // The command runs on the host as that user, and its exit status comes
    // back; the caller gave no password (BatchMode forbids prompting).
    let out = hoop_ssh(&s, "pw", &["id -un; echo home=$HOME; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(user.name.as_str()), "{text}");
    assert_eq!(
        lines.next(),
        Some(format!("home=/home/{}", user.name).as_str())
    );
    let end = s.wait_event("ssh_channel_end", |e| e["connection"] == "pw");
    assert_eq!(end["exit_status"], 7, "{end}");
    common::wait_for("sshd to log the password login", || {
        sshd.log()
            .contains(&format!("Accepted password for {}", user.name))
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", sshd.log()));

    // A wrong stored password: the caller is told the host refused the
    // agent's login, and nothing runs.
    let bad = hoop_ssh(&s, "badpw", &["echo should not run"]);
    assert_ne!(bad.status.code(), Some(0));
    assert!(!stdout(&bad).contains("should not run"));
    let err = stderr(&bad);
    assert!(
        err.contains(&format!(
            "refused the agent's login as {:?}; check the connection's key or password",
            user.name
        )),
        "{err}"
    );
    common::wait_for("sshd to log the refused password", || {
        sshd.log()
            .contains(&format!("Failed password for {}", user.name))
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", sshd.log()));
    let failed = s.wait_event("session_end", |e| e["connection"] == "badpw");
    assert_eq!(failed["outcome"], "error", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused the agent's login")),
        "{failed}"
    );

    // Neither password ever reaches the caller's side, the audit log, the
    // recordings or the agent's own log.
    for (what, text) in [
        ("hoop's stdout", stdout(&out) + &stdout(&bad)),
        ("hoop's stderr", stderr(&out) + &err),
        ("the agent's log", s.agent.log.all()),
    ] {
        for pw in [&user.password, &wrong] {
            assert!(!text.contains(pw.as_str()), "{what} holds a password");
        }
    }
    let mut files = walk(&s.agent.dir.path().join("cli"));
    files.extend(walk(&s.agent.data_dir()));
    assert!(
        files.iter().any(|f| f.ends_with("audit.jsonl")),
        "{files:?}"
    );
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        for pw in [&user.password, &wrong] {
            assert!(
                !text.contains(pw.as_str()),
                "{} holds a password",
                f.display()
            );
        }
    }
}

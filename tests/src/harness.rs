//! Starts the real `hoop-agent` and `hoop` binaries on free ports for
//! end-to-end tests, and tears them down. Readiness is read from what the
//! processes print, never guessed with sleeps.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};

/// How long a process may take to say it is ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of a workspace binary, next to the test executable's directory
/// (`target/<profile>/`), or under `$HOOP_BIN_DIR`.
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("HOOP_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/test-xxxx -> target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let mut r = [0u8; 8];
        aws_lc_rs::rand::fill(&mut r).expect("random");
        let p = std::env::temp_dir().join(format!("{prefix}-{}", hex::encode(r)));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Collected output of a child, plus a way to wait for a line.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn all(&self) -> String {
        self.0.lock().map(|v| v.join("\n")).unwrap_or_default()
    }
    fn push(&self, l: String) {
        if let Ok(mut v) = self.0.lock() {
            v.push(l);
        }
    }
}

/// Reads `stream` line by line into `lines`, sending each line to `tx`.
fn pump(stream: impl Read + Send + 'static, lines: Lines, tx: Option<mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            lines.push(line.clone());
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    });
}

/// Waits for a line matching `f`, returning what `f` extracted.
fn wait_line<T>(
    rx: &mpsc::Receiver<String>,
    what: &str,
    mut f: impl FnMut(&str) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(v) = f(&line) {
                    return Ok(v);
                }
            }
            Err(_) => bail!("timed out or process exited while waiting for {what}"),
        }
    }
}

/// One `[[connection]]` of the agent config.
#[derive(Clone, Debug)]
pub struct Conn {
    pub name: String,
    pub address: String,
    pub allow_users: Vec<String>,
    pub allow_groups: Vec<String>,
    /// The `type` key: `tcp`, `postgres`, `mysql` or `http`.
    pub kind: String,
    /// TOML written after the keys above, inside this connection: more
    /// keys first, then any sub-tables (`[[connection.deny]]`).
    pub extra: String,
}

impl Conn {
    pub fn tcp(name: &str, address: impl ToString) -> Conn {
        Conn {
            name: name.into(),
            address: address.to_string(),
            allow_users: vec![],
            allow_groups: vec!["eng".into()],
            kind: "tcp".into(),
            extra: String::new(),
        }
    }
    /// A `type = "postgres"` connection; give its `user`, `database`,
    /// `password` and the rest with [`Conn::extra`].
    pub fn postgres(name: &str, address: impl ToString) -> Conn {
        Conn {
            kind: "postgres".into(),
            ..Conn::tcp(name, address)
        }
    }
    pub fn mysql(name: &str, address: impl ToString) -> Conn {
        Conn {
            kind: "mysql".into(),
            ..Conn::tcp(name, address)
        }
    }
    /// A `type = "http"` connection forwarding to `url`; add headers,
    /// rules and masking with [`Conn::extra`].
    pub fn http(name: &str, url: &str) -> Conn {
        Conn {
            kind: "http".into(),
            address: String::new(),
            ..Conn::tcp(name, "").extra(&format!("url = {url:?}"))
        }
    }
    /// A `type = "kubernetes"` connection to the API server at `url`;
    /// give its `token`, `ca` and the rest with [`Conn::extra`].
    pub fn kubernetes(name: &str, url: &str) -> Conn {
        Conn {
            kind: "kubernetes".into(),
            ..Conn::http(name, url)
        }
    }
    /// Appends `toml` (lines of `key = value`, then sub-tables) to this
    /// connection's table.
    pub fn extra(mut self, toml: &str) -> Conn {
        self.extra.push_str(toml);
        if !self.extra.ends_with('\n') {
            self.extra.push('\n');
        }
        self
    }
    pub fn users(mut self, users: &[&str]) -> Conn {
        self.allow_users = users.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn groups(mut self, groups: &[&str]) -> Conn {
        self.allow_groups = groups.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// A running `hoop-agent run`.
pub struct Agent {
    child: Option<Child>,
    /// Extra environment of the agent process (kept across restarts).
    env: Vec<(String, String)>,
    pub dir: TempDir,
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub config: PathBuf,
    pub log: Lines,
}

impl Agent {
    /// `hoop-agent init` in a fresh dir, a config trusting `issuer_url`
    /// with audience `hoop`, then `run`.
    pub fn start(issuer_url: &str, conns: &[Conn]) -> anyhow::Result<Agent> {
        Self::start_with(issuer_url, conns, "")
    }

    /// Like [`Agent::start`], with extra TOML appended to the `[[issuer]]`.
    pub fn start_with(
        issuer_url: &str,
        conns: &[Conn],
        issuer_extra: &str,
    ) -> anyhow::Result<Agent> {
        Self::start_full(issuer_url, conns, "", issuer_extra)
    }

    /// Like [`Agent::start_with`], with extra top-level TOML as well.
    pub fn start_full(
        issuer_url: &str,
        conns: &[Conn],
        top_extra: &str,
        issuer_extra: &str,
    ) -> anyhow::Result<Agent> {
        Self::start_env(issuer_url, conns, top_extra, issuer_extra, &[])
    }

    /// Like [`Agent::start_full`], with extra environment variables for
    /// the agent process (e.g. a backend password read with `{ env = .. }`).
    pub fn start_env(
        issuer_url: &str,
        conns: &[Conn],
        top_extra: &str,
        issuer_extra: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Agent> {
        let dir = TempDir::new("hoop-agent");
        let data = dir.path().join("data");
        let out = Command::new(bin("hoop-agent"))
            .args(["init", "--data-dir"])
            .arg(&data)
            .output()?;
        if !out.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let fp = Command::new(bin("hoop-agent"))
            .args(["fingerprint", "--data-dir"])
            .arg(&data)
            .output()?;
        let fingerprint = String::from_utf8(fp.stdout)?.trim().to_string();
        let mut toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{top_extra}\n\n[[issuer]]\nurl = {:?}\naudience = \"hoop\"\n{issuer_extra}\n",
            data.display().to_string(),
            issuer_url
        );
        for c in conns {
            // An http connection takes `url` (in `extra`) instead.
            let address = if c.address.is_empty() {
                String::new()
            } else {
                format!("address = {:?}\n", c.address)
            };
            toml.push_str(&format!(
                "\n[[connection]]\nname = {:?}\ntype = {:?}\n{address}allow_users = {:?}\nallow_groups = {:?}\n{}",
                c.name, c.kind, c.allow_users, c.allow_groups, c.extra
            ));
        }
        let config = dir.path().join("agent.toml");
        std::fs::write(&config, toml)?;
        let mut agent = Agent {
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir,
            addr: "127.0.0.1:0".parse()?,
            fingerprint,
            config,
            log: Lines::default(),
        };
        agent.spawn()?;
        Ok(agent)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        // After the first start, keep the same UDP port so clients can
        // reconnect to the restarted agent.
        if self.addr.port() != 0 {
            let text = std::fs::read_to_string(&self.config)?;
            let text = text.replacen(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"{}\"", self.addr),
                1,
            );
            std::fs::write(&self.config, text)?;
        }
        let mut child = Command::new(bin("hoop-agent"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, rx) = mpsc::channel();
        pump(
            child.stderr.take().context("stderr")?,
            self.log.clone(),
            Some(tx),
        );
        self.child = Some(child);
        let addr = wait_line(&rx, "the agent to listen", |l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v.get("fields")?
                .get("listen")?
                .as_str()?
                .parse::<SocketAddr>()
                .ok()
        })
        .with_context(|| format!("agent log:\n{}", self.log.all()))?;
        self.addr = addr;
        Ok(())
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same address and identity.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.spawn()
    }

    /// The audit log's lines, parsed.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let path = self.data_dir().join("audit").join("audit.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// A `hoop` command set up for this agent.
    pub fn hoop(&self, token: Option<&str>) -> Command {
        let mut c = Command::new(bin("hoop"));
        c.env("HOOP_AGENT", self.addr.to_string())
            .env("HOOP_AGENT_FINGERPRINT", &self.fingerprint)
            .env("HOOP_CONFIG_DIR", self.dir.path().join("cli"))
            .env_remove("HOOP_TOKEN")
            .env_remove("HOOP_AGENT_CA")
            .stdin(Stdio::null());
        if let Some(t) = token {
            c.env("HOOP_TOKEN", t);
        }
        c
    }

    /// Runs `hoop ARGS` to completion.
    pub fn run_hoop(&self, token: Option<&str>, args: &[&str]) -> Output {
        self.hoop(token).args(args).output().expect("run hoop")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A running `hoop connect NAME -p 0`.
pub struct Connect {
    child: Child,
    pub addr: SocketAddr,
    pub stderr: Lines,
}

impl Connect {
    pub fn start(agent: &Agent, token: &str, name: &str) -> anyhow::Result<Connect> {
        Self::start_cmd(agent.hoop(Some(token)), name)
    }

    pub fn start_cmd(mut cmd: Command, name: &str) -> anyhow::Result<Connect> {
        let mut child = cmd
            .args(["connect", name, "-p", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = Lines::default();
        let (etx, erx) = mpsc::channel();
        pump(
            child.stderr.take().context("stderr")?,
            stderr.clone(),
            Some(etx),
        );
        let (tx, rx) = mpsc::channel();
        pump(
            child.stdout.take().context("stdout")?,
            Lines::default(),
            Some(tx),
        );
        let addr = wait_line(&rx, "hoop connect to be ready", parse_ready).map_err(|e| {
            // Give the stderr pump a moment to collect the error line.
            let _ = erx.recv_timeout(Duration::from_secs(2));
            anyhow::anyhow!("{e}; stderr: {}", stderr.all())
        })?;
        Ok(Connect {
            child,
            addr,
            stderr,
        })
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Extracts the address from `NAME (TYPE) is ready on ADDR; ...`.
pub fn parse_ready(line: &str) -> Option<SocketAddr> {
    let rest = line.split(" is ready on ").nth(1)?;
    rest.split(';').next()?.trim().parse().ok()
}

impl Drop for Connect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

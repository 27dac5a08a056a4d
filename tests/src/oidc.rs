//! A real OpenID Connect provider for login tests: `oidc-provider` on Node
//! (`tests/oidc/server.mjs`), and a browser stand-in (`tests/oidc/drive.mjs`)
//! that clicks through its sign-in, consent and device pages with plain
//! HTTP form posts.
//!
//! The provider knows two clients: [`CLI_CLIENT_ID`] (public, PKCE S256
//! required, redirect `http://127.0.0.1:<any port>/callback`, code, refresh
//! and device grants) and [`CI_CLIENT_ID`] (client credentials, secret
//! [`OidcProvider::ci_secret`]). Every access token is an RS256 JWT for
//! audience [`AUDIENCE`] with `email` and `groups` claims; any login name
//! signs in (`alice` is alice@example.com in `eng`, `bob` is
//! bob@example.com in `sales`, others have no groups).
//!
//! Quirk: as OpenID Connect Core §11 says, the provider drops
//! `offline_access` (and so issues no refresh token) from an authorization
//! request without `prompt=consent`. The device flow has no such rule.
//!
//! `node_modules` comes from `npm ci` in `tests/oidc`; CI runs it, and
//! [`OidcProvider::start`] runs it once when it is missing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, bail};

use crate::harness::READY_TIMEOUT;

/// The public client `hoop login` uses.
pub const CLI_CLIENT_ID: &str = "hoop-cli";
/// The confidential client-credentials client, for non-interactive callers.
pub const CI_CLIENT_ID: &str = "hoop-ci";
/// `hoop-ci`'s secret unless [`OidcProvider::start_with_secret`] says otherwise.
pub const DEFAULT_CI_SECRET: &str = "hoop-ci-test-secret";
/// `aud` of every access token: what the agent's `[[issuer]] audience` expects.
pub const AUDIENCE: &str = "hoop";
/// The resource indicator the access tokens are for (the default resource,
/// so a client need not send it).
pub const RESOURCE: &str = "urn:hoop";
/// Path of the loopback redirect URI registered for [`CLI_CLIENT_ID`].
pub const CALLBACK_PATH: &str = "/callback";

/// `tests/oidc`.
pub fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

/// Makes sure `tests/oidc/node_modules` holds the locked packages, running
/// `npm ci` when they are missing. Safe to call from many test processes
/// at once: each installs into a private directory and renames it into
/// place, and the first rename wins.
pub fn ensure_installed() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| install().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn installed(dir: &Path) -> bool {
    dir.join("node_modules/oidc-provider/package.json").exists()
}

fn install() -> anyhow::Result<()> {
    let dir = oidc_dir();
    if installed(&dir) {
        return check_version(&dir);
    }
    let mut r = [0u8; 6];
    aws_lc_rs::rand::fill(&mut r).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let tmp = dir.join(format!(".npm-ci-{}-{}", std::process::id(), hex::encode(r)));
    std::fs::create_dir_all(&tmp)?;
    let result = (|| {
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(dir.join(f), tmp.join(f)).with_context(|| format!("copy {f}"))?;
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&tmp)
            .stdin(Stdio::null())
            .output()
            .context("cannot run npm (the OIDC tests need Node.js 20+ and npm on PATH)")?;
        if !out.status.success() {
            bail!(
                "`npm ci` in {} failed:\n{}{}",
                dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        match std::fs::rename(tmp.join("node_modules"), dir.join("node_modules")) {
            Ok(()) => Ok(()),
            // Another test process got there first.
            Err(_) if installed(&dir) => check_version(&dir),
            Err(e) => Err(e).context("move node_modules into place"),
        }
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Fails when the installed oidc-provider is not the one `package.json`
/// pins (an old `node_modules` after a version bump).
fn check_version(dir: &Path) -> anyhow::Result<()> {
    let read = |p: PathBuf| -> anyhow::Result<serde_json::Value> {
        let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
        Ok(serde_json::from_str(&text)?)
    };
    let want = read(dir.join("package.json"))?["dependencies"]["oidc-provider"].clone();
    let have = read(dir.join("node_modules/oidc-provider/package.json"))?["version"].clone();
    if want != have {
        bail!(
            "{} holds oidc-provider {have} but package.json pins {want}: run `npm ci` there",
            dir.join("node_modules").display()
        );
    }
    Ok(())
}

/// A running `node tests/oidc/server.mjs` on a free port. Dropping it kills
/// the process; its state (sessions, codes, refresh tokens) is in memory
/// and dies with it.
pub struct OidcProvider {
    child: Option<Child>,
    url: String,
    port: u16,
    access_ttl_secs: u64,
    ci_secret: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl OidcProvider {
    /// Starts the provider with access tokens that live `access_ttl_secs`
    /// seconds (refresh tokens live a day).
    pub fn start(access_ttl_secs: u64) -> anyhow::Result<OidcProvider> {
        Self::start_with_secret(access_ttl_secs, DEFAULT_CI_SECRET)
    }

    /// Like [`OidcProvider::start`], with `ci_secret` as `hoop-ci`'s secret.
    pub fn start_with_secret(
        access_ttl_secs: u64,
        ci_secret: &str,
    ) -> anyhow::Result<OidcProvider> {
        ensure_installed()?;
        let mut p = OidcProvider {
            child: None,
            url: String::new(),
            port: 0,
            access_ttl_secs,
            ci_secret: ci_secret.to_string(),
            log: Arc::default(),
        };
        p.spawn()?;
        Ok(p)
    }

    /// Starts node, once more if the first start does not come up: on a
    /// loaded machine node has been seen to print its first warning and then
    /// nothing for the whole ready timeout.
    fn spawn(&mut self) -> anyhow::Result<()> {
        match self.spawn_once() {
            Ok(()) => Ok(()),
            Err(first) => {
                self.stop();
                self.spawn_once()
                    .map_err(|e| e.context(format!("second start, after: {first:#}")))
            }
        }
    }

    fn spawn_once(&mut self) -> anyhow::Result<()> {
        let mut child = Command::new("node")
            .arg("server.mjs")
            .args(["--port", &self.port.to_string()])
            .args(["--access-ttl", &self.access_ttl_secs.to_string()])
            .args(["--ci-secret", &self.ci_secret])
            .current_dir(oidc_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run node (the OIDC tests need Node.js 20+ on PATH)")?;
        let stderr = child.stderr.take().context("stderr")?;
        let stdout = child.stdout.take().context("stdout")?;
        self.child = Some(child);
        let log = self.log.clone();
        let log_pump = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut l) = log.lock() {
                    l.push(line);
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("ISSUER=") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx.recv_timeout(READY_TIMEOUT).map_err(|_| {
            self.stop();
            // The process is gone, so its stderr ends: collect all of it.
            let _ = log_pump.join();
            anyhow::anyhow!(
                "oidc-provider did not print its ISSUER line; its log:\n{}",
                self.log()
            )
        })?;
        self.port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in issuer {url}"))?;
        self.url = url;
        Ok(())
    }

    /// The issuer URL, `http://127.0.0.1:PORT` (no trailing slash): the
    /// tokens' `iss` and the agent's `[[issuer]] url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `hoop-ci`'s client secret.
    pub fn ci_secret(&self) -> &str {
        &self.ci_secret
    }

    /// What the provider wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|v| v.join("\n")).unwrap_or_default()
    }

    /// Kills the provider: from now on connections to [`OidcProvider::url`]
    /// are refused ("identity provider down").
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a fresh provider on the same address after [`OidcProvider::stop`]
    /// (or kills the running one first). It has a new signing key and none of
    /// the old sessions, codes or refresh tokens.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last page a browser-stand-in run ended on.
#[derive(Clone, Debug)]
pub struct Page {
    /// Its HTTP status.
    pub status: u16,
    /// Its URL: for `login` and `abort`, the CLI's callback URL with the
    /// query the provider sent (`code`, `state`, `iss`, or `error`).
    pub url: String,
    /// Its body.
    pub body: String,
}

impl Page {
    /// The value of query parameter `name` in [`Page::url`].
    pub fn query(&self, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(&self.url).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Runs `node drive.mjs ARGS` and parses what it printed.
fn drive(args: &[&str]) -> anyhow::Result<Page> {
    ensure_installed()?;
    let out = Command::new("node")
        .arg("drive.mjs")
        .args(args)
        .current_dir(oidc_dir())
        .stdin(Stdio::null())
        .output()
        .context("cannot run node (the OIDC tests need Node.js 20+ on PATH)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "drive.mjs {} failed ({}):\n{}{stdout}",
            args.first().copied().unwrap_or_default(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let parse = || -> Option<Page> {
        let (head, body) = stdout.split_once("\n\n")?;
        let mut lines = head.lines();
        let status = lines.next()?.strip_prefix("STATUS ")?.parse().ok()?;
        let url = lines.next()?.strip_prefix("URL ")?.to_string();
        Some(Page {
            status,
            url,
            body: body.to_string(),
        })
    };
    parse().with_context(|| format!("drive.mjs printed something unexpected:\n{stdout}"))
}

/// Plays a browser given `authorize_url` (as `hoop login --no-browser`
/// prints it): signs in as `user`, consents, and follows the redirects to
/// the loopback callback, whose answer it returns.
pub fn drive_login(authorize_url: &str, user: &str) -> anyhow::Result<Page> {
    drive(&["login", authorize_url, user])
}

/// Opens `authorize_url` and clicks "Cancel" on the sign-in page: the
/// callback receives `error=access_denied`. Returns the callback's answer.
pub fn drive_abort(authorize_url: &str) -> anyhow::Result<Page> {
    drive(&["abort", authorize_url])
}

/// Approves a device login: opens `verification_uri` (plain or
/// `verification_uri_complete`), enters `user_code` if asked, checks the
/// confirmation page shows it, confirms, signs in as `user` and consents.
/// Returns the "Sign-in Success" page.
pub fn drive_device(verification_uri: &str, user_code: &str, user: &str) -> anyhow::Result<Page> {
    drive(&["device", verification_uri, user_code, user])
}

/// Like [`drive_device`] up to the confirmation page, then clicks "Abort":
/// the device's next poll gets `access_denied`.
pub fn drive_device_deny(verification_uri: &str, user_code: &str) -> anyhow::Result<Page> {
    drive(&["device-deny", verification_uri, user_code])
}

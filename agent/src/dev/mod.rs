//! `hoop-agent dev`: everything on one machine for trying hoop out, like
//! `vault server -dev`. A throwaway CA, a built-in development OpenID
//! Connect provider ([`idp`]) that approves a fixed dev user without a
//! password, and an agent trusting it, with connections taken from flags.
//!
//! Because anyone who can reach the provider is signed in, both listeners
//! must be on loopback unless `--allow-non-loopback` says otherwise.
//!
//! What it prints on stdout is meant for people and scripts alike: after
//! the banner come `key: value` lines (see [`print_ready`]), ending with a
//! line starting `ready:`.

pub mod idp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::json;

use crate::config::{AgentConfig, split_host_port};
use crate::identity::{self, IdentityPaths};

/// `hoop-agent dev` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// UDP address of the agent.
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// TCP address of the development identity provider; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub idp_listen: SocketAddr,
    /// Keep the agent's identity and audit log in DIR across runs
    /// [default: a temporary directory, removed on exit].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A raw TCP backend callers may open as NAME (repeatable).
    #[arg(long = "tcp", value_name = "NAME=HOST:PORT", value_parser = parse_named)]
    pub tcp: Vec<Named>,
    /// A PostgreSQL backend callers may open as NAME (repeatable); the
    /// agent logs in with the URL's user and password.
    #[arg(long = "postgres", value_name = "NAME=postgres://USER:PASS@HOST:PORT/DB", value_parser = parse_postgres)]
    pub postgres: Vec<DbUrl>,
    /// A MySQL or MariaDB backend callers may open as NAME (repeatable);
    /// the agent logs in with the URL's user and password.
    #[arg(long = "mysql", value_name = "NAME=mysql://USER:PASS@HOST:PORT/DB", value_parser = parse_mysql)]
    pub mysql: Vec<DbUrl>,
    /// An HTTP backend callers may open as NAME (repeatable): the agent
    /// forwards each request to URL (`http://` or `https://`, verified
    /// with the system's roots), with an optional base path.
    #[arg(long = "http", value_name = "NAME=URL", value_parser = parse_http)]
    pub http: Vec<HttpUrl>,
    /// An SSH host callers may open as NAME (repeatable); the agent logs
    /// in as USER with `--ssh-key` and trusts the host's key on first use
    /// (remembered in the data dir). Port 22 when left out.
    #[arg(long = "ssh", value_name = "NAME=USER@HOST:PORT", value_parser = parse_ssh)]
    pub ssh: Vec<SshTarget>,
    /// The private key (OpenSSH format) the agent logs in to the `--ssh`
    /// hosts with; callers never see it.
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// A Kubernetes API server callers may open as NAME (repeatable):
    /// `https://HOST:PORT`, with the token from `--kube-token-file`
    /// injected and the CA from `--kube-ca` (else the system's roots).
    #[arg(long = "kubernetes", value_name = "NAME=URL", value_parser = parse_http)]
    pub kubernetes: Vec<HttpUrl>,
    /// The service-account token the agent sends to the `--kubernetes`
    /// API servers, read at each request; callers never see it.
    #[arg(long = "kube-token-file", value_name = "FILE")]
    pub kube_token_file: Option<PathBuf>,
    /// The CA certificate (PEM) of the `--kubernetes` API servers.
    #[arg(long = "kube-ca", value_name = "FILE")]
    pub kube_ca: Option<PathBuf>,
    /// Mask results of the `--postgres`, `--mysql` or `--http` connection NAME (repeatable) with
    /// the demo profile: every built-in detector, `partial` strategy, and
    /// whole-value rules for `*password*`, `*secret*` and `*ssn*` columns
    /// (JSON keys, for `--http`).
    #[arg(long = "mask", value_name = "NAME")]
    pub mask: Vec<String>,
    /// Email of the dev user every sign-in is approved as.
    #[arg(long, default_value = "dev@example.com", value_name = "EMAIL")]
    pub user: String,
    /// Groups of the dev user and of the `hoop-ci` service identity; every
    /// connection is open to them. Comma-separated or repeated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "dev",
        value_name = "GROUP"
    )]
    pub groups: Vec<String>,
    /// Lifetime of access and ID tokens, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub token_ttl: u64,
    /// Least seconds between two polls of a device code.
    #[arg(long, default_value_t = 5, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(0..=60))]
    pub device_interval: u64,
    /// Extra DNS name or IP address for the agent certificate (repeatable),
    /// for clients on other machines.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// Allow `--listen` or `--idp-listen` beyond loopback. Anyone who can
    /// reach the provider is signed in without a password.
    #[arg(long)]
    pub allow_non_loopback: bool,
}

/// `NAME=postgres://user:pass@host:port/db` from `--postgres`, or
/// `NAME=mysql://...` from `--mysql`.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    /// `postgres` or `mysql`.
    pub scheme: &'static str,
    pub name: String,
    pub address: String,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={}://{}:***@{}/{}",
            self.name, self.scheme, self.user, self.address, self.database
        )
    }
}

/// Parses `NAME=postgres://USER:PASS@HOST:PORT/DB` (port default 5432,
/// database default the user).
pub fn parse_postgres(s: &str) -> Result<DbUrl, String> {
    parse_db_url(s, "postgres", &["postgres", "postgresql"], 5432)
}

/// Parses `NAME=mysql://USER:PASS@HOST:PORT/DB` (port default 3306,
/// database default the user).
pub fn parse_mysql(s: &str) -> Result<DbUrl, String> {
    parse_db_url(s, "mysql", &["mysql", "mariadb"], 3306)
}

fn parse_db_url(
    s: &str,
    scheme: &'static str,
    schemes: &[&str],
    default_port: u16,
) -> Result<DbUrl, String> {
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME={scheme}://USER:PASS@HOST:PORT/DB"))?;
    let u = url::Url::parse(url).map_err(|e| format!("{name}: not a URL: {e}"))?;
    if !schemes.contains(&u.scheme()) {
        return Err(format!("{name}: the URL must start with {scheme}://"));
    }
    let host = u
        .host_str()
        .ok_or_else(|| format!("{name}: the URL has no host"))?;
    let port = u.port().unwrap_or(default_port);
    let user = url::form_urlencoded::parse(u.username().as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default();
    if user.is_empty() {
        return Err(format!("{name}: the URL has no user"));
    }
    let password = u
        .password()
        .map(|p| {
            url::form_urlencoded::parse(p.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let database = u.path().trim_start_matches('/');
    Ok(DbUrl {
        scheme,
        name: name.to_string(),
        address: if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        },
        database: if database.is_empty() {
            user.clone()
        } else {
            database.to_string()
        },
        user,
        password,
    })
}

/// `NAME=URL` from `--http`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub name: String,
    pub url: String,
    /// `host:port` the URL points at.
    pub address: String,
}

/// Parses `NAME=http(s)://HOST[:PORT][/BASE]`.
pub fn parse_http(s: &str) -> Result<HttpUrl, String> {
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=URL (e.g. api=http://127.0.0.1:8000)"))?;
    let u = crate::config::http::parse_backend_url(url).map_err(|e| format!("{name}: {e}"))?;
    let address = crate::config::http::url_address(&u)
        .ok_or_else(|| format!("{name}: {url:?} has no port"))?;
    Ok(HttpUrl {
        name: name.to_string(),
        url: url.to_string(),
        address,
    })
}

/// `NAME=USER@HOST:PORT` from `--ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub name: String,
    pub user: String,
    /// `host:port`.
    pub address: String,
}

/// Parses `NAME=USER@HOST[:PORT]` (port 22 when left out).
pub fn parse_ssh(s: &str) -> Result<SshTarget, String> {
    let bad = || format!("{s:?} is not NAME=USER@HOST:PORT (e.g. web=deploy@10.0.0.5:22)");
    let (name, rest) = s.split_once('=').ok_or_else(bad)?;
    let (user, host) = rest.rsplit_once('@').ok_or_else(bad)?;
    if name.is_empty() || user.is_empty() || host.is_empty() {
        return Err(bad());
    }
    let address = if split_host_port(host).is_ok() {
        host.to_string()
    } else if host.starts_with('[') || !host.contains(':') {
        format!("{host}:22")
    } else {
        return Err(bad());
    };
    split_host_port(&address).map_err(|e| format!("{name}: {e}"))?;
    Ok(SshTarget {
        name: name.to_string(),
        user: user.to_string(),
        address,
    })
}

/// `NAME=HOST:PORT` from a connection flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub address: String,
}

/// Parses `NAME=HOST:PORT`.
pub fn parse_named(s: &str) -> Result<Named, String> {
    let (name, address) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=HOST:PORT"))?;
    split_host_port(address)?;
    Ok(Named {
        name: name.to_string(),
        address: address.to_string(),
    })
}

/// Refuses listeners beyond loopback unless allowed.
pub fn check_listen(args: &DevArgs) -> anyhow::Result<()> {
    for (flag, addr) in [("--listen", args.listen), ("--idp-listen", args.idp_listen)] {
        if !addr.ip().is_loopback() && !args.allow_non_loopback {
            bail!(
                "{flag} {addr} is not a loopback address. The dev agent signs in anyone who can \
                 reach it as {} without a password, so it listens only on 127.0.0.1 or ::1 unless \
                 you pass --allow-non-loopback",
                args.user
            );
        }
    }
    // The provider's issuer URL is plain http, which the agent accepts
    // only on loopback; a wildcard bind is advertised as loopback.
    let ip = args.idp_listen.ip();
    if !ip.is_loopback() && !ip.is_unspecified() {
        bail!(
            "--idp-listen {}: the dev identity provider's issuer URL is plain http, which the agent \
             accepts only on loopback; listen on 127.0.0.1, or on 0.0.0.0 to be reachable from \
             elsewhere too",
            args.idp_listen
        );
    }
    Ok(())
}

/// The address a local client dials for a bound address (loopback for a
/// wildcard).
fn dialable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// The agent configuration: one issuer (the dev provider), and every
/// connection open to the dev groups.
pub fn agent_config(args: &DevArgs, data_dir: &Path, issuer: &str) -> anyhow::Result<AgentConfig> {
    let connections: Vec<_> = args
        .tcp
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": "tcp",
                "address": t.address,
                "allow_groups": args.groups,
            })
        })
        .chain(args.postgres.iter().chain(&args.mysql).map(|p| {
            json!({
                "name": p.name,
                "type": p.scheme,
                "address": p.address,
                "user": p.user,
                "database": p.database,
                // In memory only; dev mode never writes it anywhere.
                "password": { "value": p.password },
                "tls": "prefer",
                "allow_groups": args.groups,
                "mask": if args.mask.contains(&p.name) { demo_mask() } else { json!({}) },
            })
        }))
        .chain(args.http.iter().map(|h| {
            json!({
                "name": h.name,
                "type": "http",
                "address": h.address,
                "url": h.url,
                "allow_groups": args.groups,
                "mask": if args.mask.contains(&h.name) { demo_mask() } else { json!({}) },
            })
        }))
        .chain(args.kubernetes.iter().map(|k| {
            let mut c = json!({
                "name": k.name,
                "type": "kubernetes",
                "address": k.address,
                "url": k.url,
                "token": { "file": args.kube_token_file.clone().unwrap_or_default() },
                "allow_groups": args.groups,
            });
            if let Some(ca) = &args.kube_ca {
                c["ca"] = json!(ca);
            }
            c
        }))
        .chain(args.ssh.iter().map(|t| {
            json!({
                "name": t.name,
                "type": "ssh",
                "address": t.address,
                "user": t.user,
                "private_key": { "file": args.ssh_key.clone().unwrap_or_default() },
                // Dev mode: the first key each host shows is remembered in
                // <data_dir>/ssh_known_hosts and required from then on.
                "trust_first_use": true,
                "allow_groups": args.groups,
            })
        }))
        .collect();
    let mut cfg: AgentConfig = serde_json::from_value(json!({
        "listen": args.listen.to_string(),
        // Set below: a path need not be UTF-8.
        "data_dir": "",
        "issuer": [{
            "url": issuer,
            "audience": idp::AUDIENCE,
            "client_id": idp::CLI_CLIENT_ID,
        }],
        "connection": connections,
    }))
    .context("cannot build the dev agent's configuration")?;
    cfg.data_dir = data_dir.to_owned();
    let mut problems = Vec::new();
    if args.user.trim().is_empty() {
        problems.push("--user: must not be empty".to_string());
    }
    if args.groups.is_empty() || args.groups.iter().any(|g| g.trim().is_empty()) {
        problems.push("--groups: give one or more non-empty group names".to_string());
    }
    if !args.ssh.is_empty() && args.ssh_key.is_none() {
        problems.push(
            "--ssh-key: the --ssh connections need the private key the agent logs in with"
                .to_string(),
        );
    }
    if args.ssh.is_empty() && args.ssh_key.is_some() {
        problems.push("--ssh-key: no --ssh connection uses it".to_string());
    }
    if !args.kubernetes.is_empty() && args.kube_token_file.is_none() {
        problems.push(
            "--kube-token-file: the --kubernetes connections need the token the agent sends"
                .to_string(),
        );
    }
    if args.kubernetes.is_empty() && (args.kube_token_file.is_some() || args.kube_ca.is_some()) {
        problems
            .push("--kube-token-file, --kube-ca: no --kubernetes connection uses them".to_string());
    }
    for m in &args.mask {
        if !args
            .postgres
            .iter()
            .chain(&args.mysql)
            .any(|p| &p.name == m)
            && !args.http.iter().any(|h| &h.name == m)
        {
            problems.push(format!(
                "--mask {m}: no --postgres, --mysql or --http connection is named {m:?}"
            ));
        }
    }
    if let Err(found) = cfg.validate() {
        // Name the flag rather than the config key it became, in the order
        // the connections were made above (a database URL without its
        // password).
        let flags: Vec<String> = args
            .tcp
            .iter()
            .map(|t| format!("--tcp {}={}", t.name, t.address))
            .chain(
                args.postgres
                    .iter()
                    .chain(&args.mysql)
                    .map(|p| format!("--{} {}", p.scheme, p.name)),
            )
            .chain(
                args.http
                    .iter()
                    .map(|h| format!("--http {}={}", h.name, h.url)),
            )
            .chain(
                args.kubernetes
                    .iter()
                    .map(|k| format!("--kubernetes {}={}", k.name, k.url)),
            )
            .chain(
                args.ssh
                    .iter()
                    .map(|t| format!("--ssh {}={}@{}", t.name, t.user, t.address)),
            )
            .collect();
        for p in found {
            let flag = flags.iter().enumerate().find_map(|(i, f)| {
                let rest = p.strip_prefix(&format!("connection[{i}]."))?;
                Some(format!("{f}: {rest}"))
            });
            problems.push(flag.unwrap_or(p));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(cfg)
}

/// The masking profile `--mask` turns on.
fn demo_mask() -> serde_json::Value {
    json!({
        "detectors": "all",
        "strategy": "partial",
        "column": [
            { "pattern": "*password*", "strategy": "redact", "name": "password" },
            { "pattern": "*secret*", "strategy": "redact", "name": "secret" },
            { "pattern": "*ssn*", "strategy": "redact", "name": "ssn" },
        ],
    })
}

/// The data directory: the user's, kept, or a temporary one removed when
/// this is dropped.
struct DataDir {
    path: PathBuf,
    throwaway: bool,
}

impl DataDir {
    fn new(kept: Option<PathBuf>) -> anyhow::Result<DataDir> {
        if let Some(path) = kept {
            std::fs::create_dir_all(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            return Ok(DataDir {
                path,
                throwaway: false,
            });
        }
        let mut r = [0u8; 8];
        aws_lc_rs::rand::fill(&mut r)
            .map_err(|_| anyhow::anyhow!("the random generator failed"))?;
        let path = std::env::temp_dir().join(format!("hoop-dev-{}", hex::encode(r)));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(DataDir {
            path,
            throwaway: true,
        })
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.throwaway {
            match std::fs::remove_dir_all(&self.path) {
                Ok(()) => {
                    tracing::info!(dir = %self.path.display(), "removed the throwaway data dir")
                }
                Err(e) => {
                    tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove the throwaway data dir")
                }
            }
        }
    }
}

/// Makes the identity unless a kept data dir already has one; returns the
/// CA fingerprint.
fn ensure_identity(dir: &Path, sans: &[String]) -> anyhow::Result<String> {
    if IdentityPaths::new(dir).cert().exists() {
        return Ok(identity::fingerprint(dir)?.to_string());
    }
    Ok(identity::init(dir, sans, false)?.fingerprint.to_string())
}

/// Runs the dev agent until SIGINT or SIGTERM.
pub async fn run(mut args: DevArgs) -> anyhow::Result<()> {
    check_listen(&args)?;
    if args.tcp.is_empty()
        && args.postgres.is_empty()
        && args.mysql.is_empty()
        && args.http.is_empty()
        && args.kubernetes.is_empty()
        && args.ssh.is_empty()
    {
        // Nothing to reach yet: offer a built-in echo service so that the
        // quick start (login, connect, type) works out of the box.
        let addr = start_echo().await?;
        args.tcp.push(Named {
            name: "echo".into(),
            address: addr.to_string(),
        });
    }
    let data = DataDir::new(args.data_dir.clone())?;
    let fingerprint = ensure_identity(&data.path, &args.sans)?;
    let provider = idp::start(
        args.idp_listen,
        idp::Settings {
            user: args.user.clone(),
            groups: args.groups.clone(),
            token_ttl: args.token_ttl,
            device_interval: args.device_interval,
        },
    )
    .await?;
    let cfg = agent_config(&args, &data.path, provider.issuer())?;
    if args.allow_non_loopback
        && !(args.listen.ip().is_loopback() && args.idp_listen.ip().is_loopback())
    {
        tracing::warn!(
            "the dev agent listens beyond loopback: anyone who can reach it is signed in as {} without a password",
            args.user
        );
    }
    let ready = Ready {
        args: &args,
        fingerprint: &fingerprint,
        issuer: provider.issuer(),
        ci_secret: provider.ci_secret(),
        data_dir: &data.path,
        throwaway: data.throwaway,
    };
    crate::cmd::serve_with(cfg, crate::cmd::shutdown_signal(), |addr| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the agent.
        let _ = out.write_all(ready.text(addr).as_bytes());
        let _ = out.flush();
    })
    .await?;
    drop(provider);
    drop(data);
    Ok(())
}

/// A loopback TCP echo service for the demo `echo` connection.
async fn start_echo() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

/// What the ready message tells.
struct Ready<'a> {
    args: &'a DevArgs,
    fingerprint: &'a str,
    issuer: &'a str,
    ci_secret: &'a str,
    data_dir: &'a Path,
    throwaway: bool,
}

impl Ready<'_> {
    /// The banner and what to run, for the agent bound to `bound`.
    ///
    /// The machine-readable part is one `key: value` line each, in this
    /// order:
    ///
    /// ```text
    /// agent: 127.0.0.1:8443                    (an address a local hoop dials)
    /// fingerprint: SHA256:<64 hex>
    /// idp: http://127.0.0.1:PORT               (the issuer URL, no trailing slash)
    /// user: dev@example.com groups=dev[,more]
    /// client-credentials: hoop-ci <secret>
    /// connection: NAME tcp HOST:PORT           (one per connection, or `connections: none ...`)
    /// data-dir: DIR (throwaway, removed on exit) | DIR (kept)
    /// ```
    ///
    /// then instructions for people, and last a line starting `ready:`.
    fn text(&self, bound: SocketAddr) -> String {
        use std::fmt::Write as _;
        let args = self.args;
        let agent = dialable(bound);
        let (idp, secret, fp) = (self.issuer, self.ci_secret, self.fingerprint);
        let ci = idp::CI_CLIENT_ID;
        let rule = "#".repeat(78);
        let mut s = String::new();
        let _ = writeln!(s, "{rule}");
        let _ = writeln!(
            s,
            "##  hoop-agent DEVELOPMENT MODE: never use it in production."
        );
        let _ = writeln!(
            s,
            "##  - a built-in, in-memory identity provider approves every sign-in as"
        );
        let _ = writeln!(s, "##    {} without a password;", args.user);
        let _ = writeln!(
            s,
            "##  - the CA and certificate are throwaway; tokens live in memory only."
        );
        if args.allow_non_loopback {
            let _ = writeln!(
                s,
                "##  - WARNING: --allow-non-loopback: anyone who can reach it gets in."
            );
        }
        let _ = writeln!(s, "{rule}");
        let _ = writeln!(s, "agent: {agent}");
        let _ = writeln!(s, "fingerprint: {fp}");
        let _ = writeln!(s, "idp: {idp}");
        let _ = writeln!(s, "user: {} groups={}", args.user, args.groups.join(","));
        let _ = writeln!(s, "client-credentials: {ci} {secret}");
        if args.tcp.is_empty()
            && args.postgres.is_empty()
            && args.mysql.is_empty()
            && args.http.is_empty()
            && args.kubernetes.is_empty()
            && args.ssh.is_empty()
        {
            let _ = writeln!(s, "connections: none (add --tcp NAME=HOST:PORT)");
        }
        for t in &args.tcp {
            let _ = writeln!(s, "connection: {} tcp {}", t.name, t.address);
        }
        for p in args.postgres.iter().chain(&args.mysql) {
            let _ = writeln!(
                s,
                "connection: {} {} {} (as {}, database {}){}",
                p.name,
                p.scheme,
                p.address,
                p.user,
                p.database,
                if args.mask.contains(&p.name) {
                    ", results masked"
                } else {
                    ""
                }
            );
        }
        for t in &args.ssh {
            let _ = writeln!(
                s,
                "connection: {} ssh {} (as {}, host key trusted on first use)",
                t.name, t.address, t.user
            );
        }
        for k in &args.kubernetes {
            let _ = writeln!(s, "connection: {} kubernetes {}", k.name, k.url);
        }
        for h in &args.http {
            let _ = writeln!(
                s,
                "connection: {} http {}{}",
                h.name,
                h.url,
                if args.mask.contains(&h.name) {
                    " (responses masked)"
                } else {
                    ""
                }
            );
        }
        let dir = self.data_dir.display();
        if self.throwaway {
            let _ = writeln!(s, "data-dir: {dir} (throwaway, removed on exit)");
        } else {
            let _ = writeln!(s, "data-dir: {dir} (kept)");
        }
        if agent != bound {
            let _ = writeln!(s, "(the agent listens on UDP {bound})");
        }
        let name = args
            .postgres
            .first()
            .map(|p| p.name.as_str())
            .or_else(|| args.http.first().map(|h| h.name.as_str()))
            .or_else(|| args.kubernetes.first().map(|k| k.name.as_str()))
            .or_else(|| args.ssh.first().map(|t| t.name.as_str()))
            .or_else(|| args.tcp.first().map(|t| t.name.as_str()))
            .unwrap_or("NAME");
        let login = format!("hoop login --agent {agent} --fingerprint {fp}");
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Sign in (a browser opens; add --device on a machine without one), then connect:"
        );
        let _ = writeln!(s, "  {login}");
        let _ = writeln!(s, "  hoop connect {name}");
        let _ = writeln!(s);
        let _ = writeln!(s, "As the {ci} service account:");
        let _ = writeln!(
            s,
            "  HOOP_CLIENT_SECRET={secret} {login} --client-credentials --client-id {ci}"
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "Or with a token fetched by hand:");
        let _ = writeln!(
            s,
            "  export HOOP_TOKEN=\"$(curl -s -u {ci}:{secret} -d grant_type=client_credentials {idp}/token \
             | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p')\""
        );
        let _ = writeln!(
            s,
            "  HOOP_AGENT={agent} HOOP_AGENT_FINGERPRINT={fp} hoop connect {name}"
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "Device sign-ins are approved at {idp}/device");
        let _ = writeln!(s, "ready: press Ctrl-C to stop");
        s
    }
}

#[cfg(test)]
mod tests;

//! Throwaway PostgreSQL 15 clusters for end-to-end tests, and the clients
//! that talk to them: psql, pgbench, tokio-postgres and psycopg 3.
//!
//! [`PgCluster::start`] runs `initdb` in a fresh temporary directory and
//! `pg_ctl -w start` on a free loopback port (no fixed ports, no sleeps:
//! `pg_ctl -w` returns once the server accepts connections). Every cluster
//! has the superuser [`SUPERUSER`] and the login role [`APP_USER`], each
//! with a random password, and two databases owned by `app`: [`APP_DB`] and
//! [`OTHER_DB`]. The builder picks how `app` authenticates (SCRAM, md5 or
//! cleartext) and whether the server speaks only TLS. Dropping the cluster
//! stops it (`pg_ctl -m immediate`) and removes its directory; a small
//! guard process does the same if the test process dies without dropping
//! it (a runner's SIGKILL, Ctrl-C), so no server outlives its test.
//!
//! The server logs every connection with its authentication method
//! (`log_connections`), so a test can read [`PgCluster::log`] to see how a
//! client (the agent) really logged in.
//!
//! The binaries come from `/usr/lib/postgresql/15/bin` (or `$HOOP_PG_BIN`):
//! Debian's `/usr/bin/psql` wrapper costs ~20 ms a start. Run as root, the
//! server runs as the `postgres` user (`initdb` refuses root); run as
//! anyone else, it runs as that user.
//!
//! The client commands ([`psql_command`], [`pgbench_command`],
//! [`python_client`]) start from a clean libpq environment: no inherited
//! `PG*` variables, no password file, `PGSSLMODE=disable` and
//! `PGGSSENCMODE=disable` unless the caller sets them, and `-w` so psql
//! fails instead of prompting. That makes "connects through hoop with no
//! password" a real assertion.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::harness::TempDir;

/// The bootstrap superuser.
pub const SUPERUSER: &str = "postgres";
/// The application login role, owner of [`APP_DB`] and [`OTHER_DB`].
pub const APP_USER: &str = "app";
/// The application database.
pub const APP_DB: &str = "appdb";
/// A second database `app` owns, for "which database may this user reach" tests.
pub const OTHER_DB: &str = "otherdb";

/// How many times [`PgClusterBuilder::start`] picks a new port when the one
/// it picked was taken before the server could bind it.
const PORT_ATTEMPTS: usize = 5;

/// libpq's environment variables, removed from every client command so the
/// developer's shell cannot change what a test does.
const LIBPQ_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGSSLMODE",
    "PGREQUIRESSL",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGGSSENCMODE",
    "PGCHANNELBINDING",
    "PGREQUIREAUTH",
    "PGTARGETSESSIONATTRS",
    "PGCONNECT_TIMEOUT",
    "PGCLIENTENCODING",
    "PGDATA",
    "PSQLRC",
];

/// How the `app` role proves its password to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppAuth {
    /// `scram-sha-256`, the default.
    Scram,
    /// `md5`: the password is stored as an md5 hash (`password_encryption = md5`).
    Md5,
    /// `password`: sent in clear text (stored as SCRAM).
    Cleartext,
}

impl AppAuth {
    /// The `pg_hba.conf` method, which is also what the server log's
    /// `connection authenticated: ... method=` says.
    pub fn hba_method(self) -> &'static str {
        match self {
            AppAuth::Scram => "scram-sha-256",
            AppAuth::Md5 => "md5",
            AppAuth::Cleartext => "password",
        }
    }
}

/// Directory of the PostgreSQL binaries: `$HOOP_PG_BIN` or
/// `/usr/lib/postgresql/15/bin`.
pub fn pg_bin_dir() -> PathBuf {
    std::env::var_os("HOOP_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

fn pg_bin(name: &str) -> PathBuf {
    pg_bin_dir().join(name)
}

/// A free loopback port: bound, then released. Someone else may take it
/// before we bind it again, which [`PgClusterBuilder::start`] retries.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut r = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut r).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(hex::encode(r))
}

/// `Some((uid, gid))` of `postgres` when we are root and so must hand the
/// cluster to that user; `None` when the server can run as ourselves.
fn server_owner() -> anyhow::Result<Option<(u32, u32)>> {
    static OWNER: OnceLock<Result<Option<(u32, u32)>, String>> = OnceLock::new();
    let owner = OWNER.get_or_init(|| {
        let find = || -> anyhow::Result<Option<(u32, u32)>> {
            // /proc/self belongs to our effective uid.
            if std::fs::metadata("/proc/self")?.uid() != 0 {
                return Ok(None);
            }
            let id = |flag: &str| -> anyhow::Result<u32> {
                let out = Command::new("id").args([flag, SUPERUSER]).output()?;
                if !out.status.success() {
                    bail!("running as root needs a `{SUPERUSER}` user to run the server as");
                }
                Ok(String::from_utf8(out.stdout)?.trim().parse()?)
            };
            Ok(Some((id("-u")?, id("-g")?)))
        };
        find().map_err(|e| format!("{e:#}"))
    });
    owner.clone().map_err(anyhow::Error::msg)
}

/// A command that runs `prog` as the server's owner, in `dir`.
fn as_owner(prog: &Path, dir: &Path) -> anyhow::Result<Command> {
    let mut c = if server_owner()?.is_some() {
        let mut c = Command::new("runuser");
        c.args(["-u", SUPERUSER, "--"]).arg(prog);
        c
    } else {
        Command::new(prog)
    };
    for v in LIBPQ_ENV {
        c.env_remove(v);
    }
    c.current_dir(dir).stdin(Stdio::null());
    Ok(c)
}

/// Writes `path` with `mode`, owned by the server's owner.
fn write_owned(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = server_owner()? {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// A fresh CA and a server certificate it signed for `127.0.0.1` and
/// `localhost`, in PEM: what a TLS test server needs (PostgreSQL here,
/// MariaDB in [`crate::mysql`]).
pub struct TestCerts {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCerts {
    /// `ca_name` starts the CA's common name; a random suffix follows.
    pub fn generate(ca_name: &str) -> anyhow::Result<TestCerts> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        // A name of its own: OpenSSL looks issuers up by name, and another
        // server's CA of the same name would fail with "EVP lib" rather
        // than "certificate verify failed".
        ca.distinguished_name
            .push(DnType::CommonName, format!("{ca_name} {}", random_hex(4)?));
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;

        let key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])?;
        server
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.use_authority_key_identifier_extension = true;
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = server.signed_by(&key, &Issuer::from_params(&ca, &ca_key))?;
        Ok(TestCerts {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Options for a [`PgCluster`]; [`PgCluster::builder`] makes one.
#[derive(Clone, Debug)]
pub struct PgClusterBuilder {
    auth: AppAuth,
    ssl: bool,
    settings: Vec<(String, String)>,
}

impl PgClusterBuilder {
    /// `app` authenticates with md5: `password_encryption = md5` for the
    /// whole cluster (so an `ALTER ROLE ... PASSWORD` later is md5 too) and
    /// an `md5` line in `pg_hba.conf`. The superuser stays SCRAM.
    pub fn md5(mut self) -> Self {
        self.auth = AppAuth::Md5;
        self
    }

    /// `app` authenticates with a cleartext password (`password` method).
    pub fn cleartext(mut self) -> Self {
        self.auth = AppAuth::Cleartext;
        self
    }

    /// The server speaks TLS only (`ssl = on`, `hostssl` lines and no
    /// `host` lines), with a certificate for `127.0.0.1` and `localhost`
    /// from a fresh CA at [`PgCluster::ca_path`].
    pub fn ssl(mut self) -> Self {
        self.ssl = true;
        self
    }

    /// Adds `name = value` to `postgresql.conf` (value as written there,
    /// quoted when it is a string: `.setting("work_mem", "'8MB'")`).
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Creates and starts the cluster (about a second).
    pub fn start(self) -> anyhow::Result<PgCluster> {
        let dir = TempDir::new("hoop-pg");
        if let Some((uid, gid)) = server_owner()? {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let guard = spawn_guard(dir.path())?;
        let mut pg = PgCluster {
            guard,
            superuser_password: random_hex(16)?,
            app_password: random_hex(16)?,
            auth: self.auth,
            ca: None,
            port: 0,
            running: false,
            dir,
        };
        pg.initdb()?;
        if self.ssl {
            pg.ca = Some(pg.write_certs()?);
        }
        pg.configure(&self)?;
        pg.start_on_free_port()?;
        pg.create_roles()?;
        Ok(pg)
    }
}

/// A running throwaway cluster; see the module docs.
pub struct PgCluster {
    guard: Child,
    superuser_password: String,
    app_password: String,
    auth: AppAuth,
    ca: Option<PathBuf>,
    port: u16,
    running: bool,
    // Last, so the directory goes after Drop has stopped the server.
    dir: TempDir,
}

impl PgCluster {
    /// A cluster where `app` logs in with SCRAM over plain TCP.
    pub fn start() -> anyhow::Result<PgCluster> {
        Self::builder().start()
    }

    /// Options: [`PgClusterBuilder::md5`], [`PgClusterBuilder::ssl`], ...
    pub fn builder() -> PgClusterBuilder {
        PgClusterBuilder {
            auth: AppAuth::Scram,
            ssl: false,
            settings: Vec::new(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn initdb(&self) -> anyhow::Result<()> {
        let pwfile = self.dir.path().join("pw");
        write_owned(&pwfile, self.superuser_password.as_bytes(), 0o600)?;
        let out = as_owner(&pg_bin("initdb"), self.dir.path())?
            .arg("-D")
            .arg(self.data())
            .args(["-U", SUPERUSER])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-N",
            ])
            .output()
            .with_context(|| format!("cannot run {}", pg_bin("initdb").display()))?;
        let _ = std::fs::remove_file(&pwfile);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::write(self.dir.path().join("initdb.log"), &text);
        if !out.status.success() {
            bail!("initdb failed ({}):\n{text}", out.status);
        }
        Ok(())
    }

    /// A CA and a server certificate for `127.0.0.1` and `localhost`;
    /// returns the CA's path.
    fn write_certs(&self) -> anyhow::Result<PathBuf> {
        let certs = TestCerts::generate("hoop-tests PostgreSQL CA")?;
        let d = self.dir.path();
        write_owned(&d.join("server.key"), certs.key_pem.as_bytes(), 0o600)?;
        write_owned(&d.join("server.crt"), certs.cert_pem.as_bytes(), 0o644)?;
        write_owned(&d.join("ca.crt"), certs.ca_pem.as_bytes(), 0o644)?;
        Ok(d.join("ca.crt"))
    }

    fn configure(&self, opts: &PgClusterBuilder) -> anyhow::Result<()> {
        let d = self.dir.path().display();
        let mut conf = format!(
            "\n# hoop-tests\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\n\
             fsync = off\nlog_connections = on\n"
        );
        if opts.auth == AppAuth::Md5 {
            conf.push_str("password_encryption = md5\n");
        }
        if opts.ssl {
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\n"
            ));
        }
        for (k, v) in &opts.settings {
            conf.push_str(&format!("{k} = {v}\n"));
        }
        let path = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str(&conf);
        std::fs::write(&path, text)?;

        let host = if opts.ssl { "hostssl" } else { "host" };
        let mut hba = String::from("local all all scram-sha-256\n");
        if opts.auth != AppAuth::Scram {
            hba.push_str(&format!(
                "{host} all {APP_USER} 127.0.0.1/32 {}\n",
                opts.auth.hba_method()
            ));
        }
        hba.push_str(&format!("{host} all all 127.0.0.1/32 scram-sha-256\n"));
        std::fs::write(self.data().join("pg_hba.conf"), hba)?;
        Ok(())
    }

    /// Runs `pg_ctl ARGS` as the server's owner; on failure, the error has
    /// pg_ctl's output and the server log.
    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = as_owner(&pg_bin("pg_ctl"), self.dir.path())?
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60"])
            .args(args)
            .output()
            .with_context(|| format!("cannot run {}", pg_bin("pg_ctl").display()))?;
        if !out.status.success() {
            bail!(
                "pg_ctl {} failed ({}):\n{}{}\nserver log:\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
        Ok(())
    }

    fn port_opt(&self) -> String {
        format!("-p {}", self.port)
    }

    fn start_on_free_port(&mut self) -> anyhow::Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.port = free_port()?;
            let log_len = std::fs::metadata(self.log_path()).map_or(0, |m| m.len() as usize);
            match self.pg_ctl(&["-o", &self.port_opt(), "start"]) {
                Ok(()) => {
                    self.running = true;
                    return Ok(());
                }
                Err(e) => {
                    let log = self.log();
                    let clash = log
                        .get(log_len..)
                        .unwrap_or(&log)
                        .contains("could not bind");
                    if !clash || attempt >= PORT_ATTEMPTS {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn create_roles(&self) -> anyhow::Result<()> {
        let pw = &self.app_password;
        let out = self.psql(
            SUPERUSER,
            &self.superuser_password,
            "postgres",
            &[
                "-q",
                "-c",
                &format!("create role {APP_USER} login password '{pw}'"),
                // CREATE DATABASE cannot share a -c with other statements.
                "-c",
                &format!("create database {APP_DB} owner {APP_USER}"),
                "-c",
                &format!("create database {OTHER_DB} owner {APP_USER}"),
            ],
        );
        if !out.status.success() {
            bail!(
                "creating roles and databases failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, what an agent's connection points at.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The cluster's directory (data directory, log, certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How `app` authenticates.
    pub fn app_auth(&self) -> AppAuth {
        self.auth
    }

    /// `postgres`'s password (always SCRAM).
    pub fn superuser_password(&self) -> &str {
        &self.superuser_password
    }

    /// `app`'s password.
    pub fn app_password(&self) -> &str {
        &self.app_password
    }

    /// The password of [`SUPERUSER`] or [`APP_USER`]; `None` for others.
    pub fn password_for(&self, user: &str) -> Option<&str> {
        match user {
            SUPERUSER => Some(&self.superuser_password),
            APP_USER => Some(&self.app_password),
            _ => None,
        }
    }

    /// The CA that signed the server certificate, for `sslrootcert`;
    /// `None` unless built with [`PgClusterBuilder::ssl`].
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// `postgresql://USER:PASSWORD@127.0.0.1:PORT/DB`, with the password
    /// when [`PgCluster::password_for`] knows it. No TLS parameters: with
    /// [`PgClusterBuilder::ssl`], add `?sslmode=...` as the client needs.
    pub fn url_for(&self, user: &str, db: &str) -> String {
        let auth = match self.password_for(user) {
            Some(pw) => format!("{user}:{pw}"),
            None => user.to_string(),
        };
        format!("postgresql://{auth}@127.0.0.1:{}/{db}", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The `method=` of each `connection authenticated` line the server
    /// logged for `user`, in order: how that user really logged in.
    pub fn auth_methods(&self, user: &str) -> Vec<String> {
        let needle = format!("identity=\"{user}\" method=");
        self.log()
            .lines()
            .filter_map(|l| l.split(&needle).nth(1))
            .map(|m| m.split_whitespace().next().unwrap_or_default().to_string())
            .collect()
    }

    /// Runs psql straight at the cluster as `user` with `password`:
    /// `-X -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p PORT -U USER -d DB ARGS`.
    /// On a TLS cluster, with `sslmode=verify-full` and the cluster's CA.
    pub fn psql(&self, user: &str, password: &str, db: &str, args: &[&str]) -> Output {
        let mut c = psql_command("127.0.0.1", self.port, user, db);
        self.direct_env(&mut c, password);
        c.args(args).output().expect("run psql")
    }

    /// Runs `query` as the superuser in `db` (`psql -At -c`) and returns
    /// its output, trimmed; fails with psql's error.
    pub fn sql(&self, db: &str, query: &str) -> anyhow::Result<String> {
        let mut c = psql_command("127.0.0.1", self.port, SUPERUSER, db);
        self.direct_env(&mut c, &self.superuser_password);
        c.args(["-At", "-c", query]);
        Ok(run_checked(&mut c)?.trim().to_string())
    }

    /// Runs pgbench straight at the cluster as `user` with `password`.
    pub fn pgbench(&self, user: &str, password: &str, db: &str, args: &[&str]) -> Output {
        let mut c = pgbench_command("127.0.0.1", self.port, user, db);
        self.direct_env(&mut c, password);
        c.args(args).output().expect("run pgbench")
    }

    /// Connects tokio-postgres (no TLS) straight to the cluster as `user`
    /// with its [`PgCluster::password_for`]. Fails on a TLS-only cluster.
    pub async fn client(&self, user: &str, db: &str) -> anyhow::Result<tokio_postgres::Client> {
        connect_tokio("127.0.0.1", self.port, user, db, self.password_for(user)).await
    }

    /// Sets the password and, on a TLS cluster, `verify-full` with our CA.
    pub fn direct_env(&self, c: &mut Command, password: &str) {
        c.env("PGPASSWORD", password);
        if let Some(ca) = &self.ca {
            c.env("PGSSLMODE", "verify-full").env("PGSSLROOTCERT", ca);
        }
    }

    /// `pg_ctl restart -m fast`: every session is cut, then the server is
    /// back on the same port. Also starts a cluster after [`PgCluster::stop`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.running = true;
        self.pg_ctl(&["-m", "fast", "-o", &self.port_opt(), "restart"])
    }

    /// `pg_ctl stop -m fast`: the backend is down (connections refused)
    /// until [`PgCluster::restart`].
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.pg_ctl(&["-m", "fast", "stop"])?;
        self.running = false;
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
        }
        let _ = self.guard.kill();
        let _ = self.guard.wait();
    }
}

/// A process that stops the server and removes its directory when this
/// process dies without dropping the cluster (a SIGKILL from a test
/// runner's timeout, Ctrl-C, panic=abort): a shell in its own process
/// group, ignoring signals, waiting for EOF on a pipe only we hold.
/// [`PgCluster`]'s `Drop` cleans up itself and kills the guard.
fn spawn_guard(dir: &Path) -> anyhow::Result<Child> {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"trap '' INT HUP TERM; read line; "$@" >/dev/null 2>&1; rm -rf "$HOOP_PG_DIR""#)
        .arg("hoop-pg-guard");
    if server_owner()?.is_some() {
        c.args(["runuser", "-u", SUPERUSER, "--"]);
    }
    c.arg(pg_bin("pg_ctl"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-m", "immediate", "-w", "stop"])
        .env("HOOP_PG_DIR", dir)
        .env_remove("PGDATA")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    c.spawn().context("spawn the cluster's cleanup guard (sh)")
}

/// A clean libpq environment on `c` (see the module docs).
fn libpq_env(c: &mut Command) {
    for v in LIBPQ_ENV {
        c.env_remove(v);
    }
    c.env("PGPASSFILE", "/nonexistent/hoop-tests-pgpass")
        .env("PGSSLMODE", "disable")
        .env("PGGSSENCMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "20")
        .stdin(Stdio::null());
}

/// `psql -X -w -v ON_ERROR_STOP=1 -h HOST -p PORT -U USER -d DB` with a
/// clean libpq environment and no password: add `.env("PGPASSWORD", ..)`,
/// `.env("PGSSLMODE", "prefer")` and the like, then the arguments.
pub fn psql_command(host: &str, port: u16, user: &str, db: &str) -> Command {
    let mut c = Command::new(pg_bin("psql"));
    libpq_env(&mut c);
    c.args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-h", host])
        .args(["-p", &port.to_string(), "-U", user, "-d", db]);
    c
}

/// Runs psql at `host:port` (a local `hoop connect` port) with no password:
/// [`psql_command`] plus `args`.
pub fn psql_at(host: &str, port: u16, user: &str, db: &str, args: &[&str]) -> Output {
    psql_command(host, port, user, db)
        .args(args)
        .output()
        .expect("run psql")
}

/// pgbench at `host:port` as `user` on `db` (given as `PG*` variables) with
/// a clean libpq environment and no password; add the arguments.
pub fn pgbench_command(host: &str, port: u16, user: &str, db: &str) -> Command {
    let mut c = Command::new(pg_bin("pgbench"));
    libpq_env(&mut c);
    c.env("PGHOST", host)
        .env("PGPORT", port.to_string())
        .env("PGUSER", user)
        .env("PGDATABASE", db);
    c
}

/// Runs pgbench at `host:port` with no password.
pub fn pgbench_at(host: &str, port: u16, user: &str, db: &str, args: &[&str]) -> Output {
    pgbench_command(host, port, user, db)
        .args(args)
        .output()
        .expect("run pgbench")
}

/// Runs `cmd`; returns its stdout, or fails with its status and output.
pub fn run_checked(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{:?} failed ({}):\n{}{stdout}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// Connects tokio-postgres without TLS and drives the connection on a
/// spawned task. `password` is `None` through hoop.
pub async fn connect_tokio(
    host: &str,
    port: u16,
    user: &str,
    db: &str,
    password: Option<&str>,
) -> anyhow::Result<tokio_postgres::Client> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(user)
        .dbname(db)
        .application_name("hoop-tests")
        .connect_timeout(std::time::Duration::from_secs(20));
    if let Some(pw) = password {
        config.password(pw);
    }
    let (client, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("tokio-postgres connect to {host}:{port} as {user}"))?;
    tokio::spawn(conn);
    Ok(client)
}

/// `tests/py`: `requirements.txt` and `pg_client.py`.
pub fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py")
}

/// The Python of a venv with `tests/py/requirements.txt` installed
/// (psycopg 3), made once per machine under `target/test-venv/<hash>`,
/// where the hash covers the requirements and the base Python's version.
/// Safe to call from many test processes at once: each builds in a private
/// directory and renames it into place; the first rename wins.
pub fn python_env() -> anyhow::Result<PathBuf> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| make_venv().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn venv_root() -> PathBuf {
    // target/<profile>/deps/test-xxxx -> target
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("test-venv")))
        .unwrap_or_else(|| std::env::temp_dir().join("hoop-test-venv"))
}

fn make_venv() -> anyhow::Result<PathBuf> {
    let reqs = py_dir().join("requirements.txt");
    let base = run_checked(
        Command::new("python3").args(["-c", "import sys; print(sys.version, sys.executable)"]),
    )
    .context("the Python client tests need python3 on PATH")?;
    let mut key = std::fs::read(&reqs).with_context(|| format!("read {}", reqs.display()))?;
    key.extend_from_slice(base.as_bytes());
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key);
    let root = venv_root();
    let dir = root.join(&hex::encode(hash.as_ref())[..16]);
    let ready = |d: &Path| d.join(".hoop-ready").exists();
    if ready(&dir) {
        return Ok(dir.join("bin/python"));
    }
    std::fs::create_dir_all(&root)?;
    let tmp = root.join(format!(".tmp-{}-{}", std::process::id(), random_hex(6)?));
    let result = (|| {
        run_checked(Command::new("python3").args(["-m", "venv"]).arg(&tmp))
            .context("python3 -m venv")?;
        let py = tmp.join("bin/python");
        run_checked(
            Command::new(&py)
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(["--no-input", "-r"])
                .arg(&reqs)
                .stdin(Stdio::null()),
        )
        .context("pip install -r tests/py/requirements.txt")?;
        std::fs::write(tmp.join(".hoop-ready"), "")?;
        // A venv keeps working when moved as long as it is run by its
        // bin/python (only the pip-installed scripts' shebangs go stale).
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(()),
            Err(_) if ready(&dir) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("move the venv to {}", dir.display())),
        }
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    Ok(dir.join("bin/python"))
}

/// `python pg_client.py HOST PORT USER DB SCENARIO` in the test venv, with
/// a clean libpq environment and no password (add `PGPASSWORD` to go
/// straight at a cluster). Scenarios: `basic`, `copy`, `error`,
/// `pipeline`, `notify`, `cancel`; each prints one JSON object on success
/// and exits non-zero with the error on stderr otherwise. See
/// `tests/py/pg_client.py`.
pub fn python_client(
    host: &str,
    port: u16,
    user: &str,
    db: &str,
    scenario: &str,
) -> anyhow::Result<Command> {
    let mut c = Command::new(python_env()?);
    libpq_env(&mut c);
    c.arg(py_dir().join("pg_client.py"))
        .args([host, &port.to_string(), user, db, scenario]);
    Ok(c)
}

/// `python -c CODE ARGS...` in the test venv (psycopg 3 importable), with a
/// clean libpq environment and no password: for a one-off driver behaviour
/// that `pg_client.py` has no scenario for.
pub fn python_code(code: &str, args: &[&str]) -> anyhow::Result<Command> {
    let mut c = Command::new(python_env()?);
    libpq_env(&mut c);
    c.arg("-c").arg(code).args(args);
    Ok(c)
}

//! MariaDB servers for end-to-end tests, and the clients that talk to
//! them: the `mariadb` command-line client, `mariadb-dump` and PyMySQL.
//!
//! Two ways to get a server, both with an application user that logs in
//! with `mysql_native_password` and a random password, and two databases
//! that user may use:
//!
//! - [`MariaDb::start`] / [`MariaDb::builder`]: a throwaway `mariadbd`
//!   (`mariadb-install-db` in a fresh temporary directory, then the server
//!   on a free loopback port; about 2 s here). The user is [`APP_USER`],
//!   the databases [`APP_DB`] and [`OTHER_DB`], and `root@localhost` gets a
//!   random password too (the root accounts reachable over TCP are
//!   removed). The builder adds TLS ([`MariaDbBuilder::tls`]) and server
//!   options. Dropping it kills the server and removes its directory.
//! - [`MariaDb::shared`]: the machine's own server on 127.0.0.1:3306 (root
//!   with an empty password, as this machine kind runs one), with a
//!   uniquely named user and two databases, dropped again on drop. Cheaper,
//!   but it cannot be restarted or given options, and it fails with a clear
//!   message when that server is not there.
//!
//! Either way, a small guard process undoes the work (kills the server, or
//! drops the user and databases) if the test process dies without dropping
//! the [`MariaDb`] (a runner's SIGKILL, Ctrl-C).
//!
//! Authentication: MariaDB 10.11 has no server-side `caching_sha2_password`
//! (that plugin is MySQL 8's; MariaDB ships only its client half), so every
//! user here logs in with `mysql_native_password`, which is also what the
//! server's handshake proposes. Testing `caching_sha2_password` needs a
//! MySQL server, which this machine kind does not have.
//!
//! Run as root, `mariadbd` runs as the `mysql` user (`--user=mysql`); run
//! as anyone else, it runs as that user.
//!
//! The client commands ([`mysql_command`], [`mysqldump_command`],
//! [`python_mysql_client`]) read no option files (`--no-defaults`), drop
//! the `MYSQL_*` environment (so no inherited `MYSQL_PWD`), connect over
//! TCP even to `localhost`, never prompt for a password and do not ask for
//! TLS: through hoop no password is needed, which makes "connects with no
//! password" a real assertion. To go straight at a server, set `MYSQL_PWD`
//! (as [`MariaDb::mysql`] does).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::harness::TempDir;
use crate::pg::{TestCerts, free_port, py_dir, python_env, random_hex, run_checked};

/// The administrative user ([`MariaDb::sql`] runs as it).
pub const ROOT: &str = "root";
/// The application user of a throwaway server (see [`MariaDb::app_user`]).
pub const APP_USER: &str = "app";
/// The application database of a throwaway server.
pub const APP_DB: &str = "appdb";
/// A second database `app` may use, for "which database may this user
/// reach" tests.
pub const OTHER_DB: &str = "otherdb";
/// Where [`MariaDb::shared`] finds the machine's server.
pub const SHARED_PORT: u16 = 3306;

/// How long `mariadbd` may take to say "ready for connections".
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times [`MariaDbBuilder::start`] picks a new port when the one
/// it picked was taken before the server could bind it.
const PORT_ATTEMPTS: usize = 5;

/// The file in a throwaway server's directory that tells its guard which
/// process group to kill.
const GUARD_PIDS: &str = "guard.pids";

/// The OS user a root test process hands the server to.
const SERVER_USER: &str = "mysql";

/// Environment variables the MariaDB and MySQL clients read, removed from
/// every client command so the developer's shell cannot change a test.
const CLIENT_ENV: &[&str] = &[
    "MYSQL_PWD",
    "MYSQL_HOST",
    "MYSQL_TCP_PORT",
    "MYSQL_UNIX_PORT",
    "MYSQL_HOME",
    "MYSQL_HISTFILE",
    "MYSQL_HISTIGNORE",
    "MYSQL_PS1",
    "MYSQL_GROUP_SUFFIX",
    "MYSQL_TEST_LOGIN_FILE",
    "MYSQL_DEBUG",
    "MARIADB_HOME",
    "LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN",
    "LIBMYSQL_PLUGINS",
    "LIBMYSQL_PLUGIN_DIR",
    "MARIADB_PLUGIN_DIR",
    "HOOP_MYSQL_CA",
];

/// The clients' character set. Without an option file they would use
/// utf8mb3, which cannot carry 4-byte characters; Debian's client config
/// says utf8mb4.
const UTF8MB4: &str = "--default-character-set=utf8mb4";

/// Server options every throwaway server gets: small and fast rather than
/// durable, and the character set Debian's packaged server uses.
const SERVER_OPTS: &[&str] = &[
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=4M",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
];

/// Whether and how a throwaway server speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// No TLS (`have_ssl = DISABLED`), the default.
    Off,
    /// TLS offered; plain TCP still accepted.
    Optional,
    /// TLS offered and `require_secure_transport = ON`: plain TCP logins
    /// fail, with error 1045 as for a wrong password (the root socket
    /// still works).
    Required,
}

/// A server binary: `/usr/sbin/NAME` or `/usr/bin/NAME` (Debian's
/// places), else `NAME` from `PATH`.
fn server_bin(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Whether `name` is an executable on `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            std::fs::metadata(d.join(name)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

/// The client programs present and the flags their flavour needs.
struct Clients {
    client: &'static str,
    dump: &'static str,
    /// MariaDB's clients (`--skip-ssl`) rather than Oracle MySQL's
    /// (`--ssl-mode=DISABLED`; MySQL 8 dropped `--skip-ssl`).
    mariadb: bool,
}

fn clients() -> &'static Clients {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    CLIENTS.get_or_init(|| {
        let (client, dump) = if on_path("mariadb") {
            ("mariadb", "mariadb-dump")
        } else {
            ("mysql", "mysqldump")
        };
        let version = Command::new(client)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        // `mysql` may be MariaDB's too (Debian links it to `mariadb`); an
        // unknown or missing client counts as MariaDB's, whose error then
        // names the missing program.
        let mariadb = version.contains("MariaDB") || !version.contains("Ver ");
        let dump = if mariadb && !on_path(dump) {
            "mysqldump"
        } else {
            dump
        };
        Clients {
            client,
            dump,
            mariadb,
        }
    })
}

/// The flag that turns TLS off for the client present.
fn no_tls_flag() -> &'static str {
    if clients().mariadb {
        "--skip-ssl"
    } else {
        "--ssl-mode=DISABLED"
    }
}

/// Client arguments for TLS that verifies the server's certificate against
/// `ca` and its name against the host given with `-h`. Put them after
/// [`mysql_command`]'s own arguments: the last TLS flag wins.
pub fn client_tls_args(ca: &Path) -> Vec<OsString> {
    let mut ca_arg = OsString::from("--ssl-ca=");
    ca_arg.push(ca);
    if clients().mariadb {
        vec!["--ssl".into(), ca_arg, "--ssl-verify-server-cert".into()]
    } else {
        vec!["--ssl-mode=VERIFY_IDENTITY".into(), ca_arg]
    }
}

/// A clean client environment on `c` (see the module docs).
fn client_env(c: &mut Command) {
    for v in CLIENT_ENV {
        c.env_remove(v);
    }
    c.stdin(Stdio::null());
}

/// `mariadb --no-defaults --protocol=TCP -h HOST -P PORT -u USER
/// --database=DB --connect-timeout=20 --default-character-set=utf8mb4
/// --skip-ssl` (or `mysql ... --ssl-mode=DISABLED`) with a clean environment, no password and stdin
/// from `/dev/null`: add `.env("MYSQL_PWD", ..)`, [`client_tls_args`], a
/// `.stdin(..)` and the like, then the arguments (`-N -B -e QUERY`).
pub fn mysql_command(host: &str, port: u16, user: &str, db: &str) -> Command {
    let mut c = Command::new(clients().client);
    client_env(&mut c);
    c.arg("--no-defaults")
        .args(["--protocol=TCP", "-h", host, "-P", &port.to_string()])
        .args(["-u", user, &format!("--database={db}")])
        .args(["--connect-timeout=20", UTF8MB4, no_tls_flag()]);
    c
}

/// Runs the client at `host:port` (a local `hoop connect` port) with no
/// password: [`mysql_command`] plus `args`.
pub fn mysql_at(host: &str, port: u16, user: &str, db: &str, args: &[&str]) -> Output {
    mysql_command(host, port, user, db)
        .args(args)
        .output()
        .expect("run the mysql client")
}

/// `mariadb-dump --no-defaults --protocol=TCP -h HOST -P PORT -u USER
/// --default-character-set=utf8mb4 --skip-ssl` (or `mysqldump`, as for [`mysql_command`]) with a clean
/// environment and no password; add options, then the database name(s).
pub fn mysqldump_command(host: &str, port: u16, user: &str) -> Command {
    let mut c = Command::new(clients().dump);
    client_env(&mut c);
    c.arg("--no-defaults")
        .args(["--protocol=TCP", "-h", host, "-P", &port.to_string()])
        .args(["-u", user, UTF8MB4, no_tls_flag()]);
    c
}

/// `python mysql_client.py HOST PORT USER DB SCENARIO` in the test venv
/// (PyMySQL), with a clean environment and no password: set `MYSQL_PWD` to
/// go straight at a server, and `HOOP_MYSQL_CA` to a CA file for TLS with
/// verification. Scenarios: `basic`, `error`, `large` (an optional row
/// count may follow as one more argument), `kill`, `infile`; each prints
/// one JSON object on success and exits non-zero with the error on stderr
/// otherwise. See `tests/py/mysql_client.py`.
pub fn python_mysql_client(
    host: &str,
    port: u16,
    user: &str,
    db: &str,
    scenario: &str,
) -> anyhow::Result<Command> {
    let mut c = Command::new(python_env()?);
    client_env(&mut c);
    c.arg(py_dir().join("mysql_client.py"))
        .args([host, &port.to_string(), user, db, scenario]);
    Ok(c)
}

/// `Some((uid, gid))` of `mysql` when we are root and so must hand the
/// server's directory to that user; `None` when the server runs as us.
fn server_owner() -> anyhow::Result<Option<(u32, u32)>> {
    static OWNER: OnceLock<Result<Option<(u32, u32)>, String>> = OnceLock::new();
    let owner = OWNER.get_or_init(|| {
        let find = || -> anyhow::Result<Option<(u32, u32)>> {
            // /proc/self belongs to our effective uid.
            if std::fs::metadata("/proc/self")?.uid() != 0 {
                return Ok(None);
            }
            let id = |flag: &str| -> anyhow::Result<u32> {
                let out = Command::new("id").args([flag, SERVER_USER]).output()?;
                if !out.status.success() {
                    bail!("running as root needs a `{SERVER_USER}` user to run mariadbd as");
                }
                Ok(String::from_utf8(out.stdout)?.trim().parse()?)
            };
            Ok(Some((id("-u")?, id("-g")?)))
        };
        find().map_err(|e| format!("{e:#}"))
    });
    owner.clone().map_err(anyhow::Error::msg)
}

/// Writes `path` with `mode`, owned by the server's user.
fn write_owned(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = server_owner()? {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// A process that runs `script` (with `args` as `$@`) when this process
/// dies without dropping the [`MariaDb`]: a shell in its own process group,
/// ignoring signals, waiting for EOF on a pipe only we hold. The `Drop`
/// cleans up itself, then kills the guard.
fn spawn_guard(script: &str, args: &[&str], env: &[(&str, &Path)]) -> anyhow::Result<Child> {
    let mut c = Command::new("sh");
    client_env(&mut c);
    c.arg("-c")
        .arg(format!("trap '' INT HUP TERM; read line; {script}"))
        .arg("hoop-mysql-guard")
        .args(args)
        .envs(env.iter().copied())
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("spawn the MariaDB cleanup guard (sh)")
}

/// The last `n` lines of `log`.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Options for a throwaway [`MariaDb`]; [`MariaDb::builder`] makes one.
#[derive(Clone, Debug)]
pub struct MariaDbBuilder {
    tls: Tls,
    options: Vec<String>,
}

impl MariaDbBuilder {
    /// The server speaks TLS only ([`Tls::Required`]), with a certificate
    /// for `127.0.0.1` and `localhost` from a fresh CA at
    /// [`MariaDb::ca_path`].
    pub fn tls(mut self) -> Self {
        self.tls = Tls::Required;
        self
    }

    /// Like [`MariaDbBuilder::tls`], but plain TCP is still accepted
    /// ([`Tls::Optional`]).
    pub fn tls_optional(mut self) -> Self {
        self.tls = Tls::Optional;
        self
    }

    /// Adds a server option: `.option("max_connections", "20")` becomes
    /// `--max_connections=20` on `mariadbd`'s command line.
    pub fn option(mut self, name: &str, value: &str) -> Self {
        self.options.push(format!("--{name}={value}"));
        self
    }

    /// Creates and starts the server (about 2 s).
    pub fn start(self) -> anyhow::Result<MariaDb> {
        let dir = TempDir::new("hoop-mysql");
        // The socket and pid file live here, next to the data directory
        // and a private tmpdir.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        std::fs::create_dir(dir.path().join("tmp"))?;
        if let Some((uid, gid)) = server_owner()? {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
            std::os::unix::fs::chown(dir.path().join("tmp"), Some(uid), Some(gid))?;
        }
        // Before anything runs in the directory; what the guard kills is
        // listed in GUARD_PIDS as it starts and stops.
        let guard = spawn_guard(
            r#"kill -KILL $(cat "$HOOP_MYSQL_DIR/guard.pids") 2>/dev/null; sleep 1; rm -rf "$HOOP_MYSQL_DIR""#,
            &[],
            &[("HOOP_MYSQL_DIR", dir.path())],
        )?;
        let mut server = Server {
            child: None,
            args: Vec::new(),
            log: Arc::default(),
            guard,
            dir,
        };
        server.install()?;
        let ca = match self.tls {
            Tls::Off => None,
            Tls::Optional | Tls::Required => Some(server.write_certs(self.tls)?),
        };
        server.args.extend(self.options);
        let mut db = MariaDb {
            app_user: APP_USER.into(),
            app_db: APP_DB.into(),
            other_db: OTHER_DB.into(),
            app_password: random_hex(16)?,
            root_password: random_hex(16)?,
            port: 0,
            tls: self.tls,
            ca,
            guard: None,
            server: Some(server),
        };
        db.start_on_free_port()?;
        db.create_users()?;
        Ok(db)
    }
}

/// A throwaway server's process, arguments, log and directory.
struct Server {
    child: Option<Child>,
    /// Options after the fixed ones: TLS, the builder's.
    args: Vec<String>,
    /// Everything `mariadbd` wrote to stderr (its error log), all runs.
    log: Arc<Mutex<String>>,
    /// Kills what [`GUARD_PIDS`] lists and removes the directory if the
    /// test process dies without dropping us.
    guard: Child,
    // Last, so the directory goes after the server.
    dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = self.guard.kill();
        let _ = self.guard.wait();
    }
}

impl Server {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `--user=mysql` when we are root, the data directory and the tmpdir:
    /// what `mariadb-install-db` and `mariadbd` both need.
    ///
    /// A tmpdir of its own, because a starting `mariadbd` deletes every
    /// `#sql*` file in its tmpdir: in the shared `/tmp`, servers starting
    /// side by side (or the machine's own server) lose their temporary
    /// tables, and `mariadb-install-db` fails with "Unknown table
    /// 'mysql.tmp_user_sys'".
    fn base_args(&self) -> anyhow::Result<Vec<String>> {
        let mut args: Vec<String> = server_owner()?
            .map(|_| format!("--user={SERVER_USER}"))
            .into_iter()
            .collect();
        args.push(format!("--datadir={}", self.data().display()));
        args.push(format!(
            "--tmpdir={}",
            self.dir.path().join("tmp").display()
        ));
        Ok(args)
    }

    /// Tells the guard which process group to kill: `Some(pgid)` while one
    /// runs, `None` once it has been waited for (so a pid never goes stale).
    fn guard_pgid(&self, pgid: Option<u32>) -> anyhow::Result<()> {
        let text = pgid.map(|p| format!("-{p}\n")).unwrap_or_default();
        std::fs::write(self.dir.path().join(GUARD_PIDS), text).context("write guard.pids")
    }

    fn install(&self) -> anyhow::Result<()> {
        let prog = server_bin("mariadb-install-db");
        // A group of its own (the script and its bootstrap mariadbd), for
        // the guard.
        let child = Command::new(&prog)
            .arg("--no-defaults")
            .args(self.base_args()?)
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(SERVER_OPTS)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot run {}", prog.display()))?;
        self.guard_pgid(Some(child.id()))?;
        let out = child.wait_with_output()?;
        self.guard_pgid(None)?;
        if !out.status.success() {
            bail!(
                "mariadb-install-db failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// A CA and a server certificate for `127.0.0.1` and `localhost`;
    /// returns the CA's path.
    fn write_certs(&mut self, tls: Tls) -> anyhow::Result<PathBuf> {
        let certs = TestCerts::generate("hoop-tests MariaDB CA")?;
        let d = self.dir.path();
        write_owned(&d.join("server.key"), certs.key_pem.as_bytes(), 0o600)?;
        write_owned(&d.join("server.crt"), certs.cert_pem.as_bytes(), 0o644)?;
        write_owned(&d.join("ca.crt"), certs.ca_pem.as_bytes(), 0o644)?;
        for (opt, file) in [
            ("--ssl-ca", "ca.crt"),
            ("--ssl-cert", "server.crt"),
            ("--ssl-key", "server.key"),
        ] {
            self.args.push(format!("{opt}={}", d.join(file).display()));
        }
        if tls == Tls::Required {
            self.args.push("--require-secure-transport=ON".into());
        }
        Ok(d.join("ca.crt"))
    }

    /// Starts `mariadbd` on `port` and waits for "ready for connections".
    /// `Err(Clash)` when the port was taken; otherwise the error has the
    /// tail of the server's log.
    fn spawn(&mut self, port: u16) -> Result<(), SpawnError> {
        let prog = server_bin("mariadbd");
        let d = self.dir.path();
        let mut child = Command::new(&prog)
            .arg("--no-defaults")
            .args(self.base_args()?)
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .args(SERVER_OPTS)
            .args(&self.args)
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Out of the test's process group: the guard, not a runner's
            // group kill, decides when it goes.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot run {}", prog.display()))?;
        self.guard_pgid(Some(child.id()))?;
        let start = self.log().len();
        let rx = pump_log(child.stderr.take().context("mariadbd stderr")?, &self.log);
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let outcome = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("ready for connections") => break Ok(()),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    break Err(format!(
                        "mariadbd did not start within {}s",
                        START_TIMEOUT.as_secs()
                    ));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err("mariadbd exited while starting".to_string());
                }
            }
        };
        let Err(what) = outcome else {
            return Ok(());
        };
        self.kill();
        let log = self.log();
        let run = log.get(start..).unwrap_or(&log);
        if run.contains("Address already in use") {
            return Err(SpawnError::Clash);
        }
        Err(SpawnError::Other(anyhow::anyhow!(
            "{what} (port {port}); the end of its error log:\n{}",
            tail(run, 30)
        )))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = self.guard_pgid(None);
        }
    }

    /// SIGTERM, then wait: a clean shutdown.
    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            run_checked(Command::new("kill").args(["-TERM", &c.id().to_string()]))?;
            c.wait()?;
            self.guard_pgid(None)?;
        }
        Ok(())
    }

    /// `mariadb -S SOCKET -u root` with `MYSQL_PWD` set to `password`.
    fn root_client(&self, password: &str) -> Command {
        let mut c = Command::new(clients().client);
        client_env(&mut c);
        c.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["--protocol=SOCKET", "-u", ROOT, UTF8MB4])
            .env("MYSQL_PWD", password);
        c
    }
}

enum SpawnError {
    /// The port was taken: try another.
    Clash,
    Other(anyhow::Error),
}

impl From<anyhow::Error> for SpawnError {
    fn from(e: anyhow::Error) -> Self {
        SpawnError::Other(e)
    }
}

impl From<std::io::Error> for SpawnError {
    fn from(e: std::io::Error) -> Self {
        SpawnError::Other(e.into())
    }
}

/// Appends each line of the server's stderr to `log` and sends it on the
/// returned channel, which disconnects when the server exits.
fn pump_log(stderr: ChildStderr, log: &Arc<Mutex<String>>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let log = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut l) = log.lock() {
                l.push_str(&line);
                l.push('\n');
            }
            // Nobody listens once the server is up; keep logging.
            let _ = tx.send(line);
        }
    });
    rx
}

/// A MariaDB server with an application user and databases; see the
/// module docs.
pub struct MariaDb {
    app_user: String,
    app_db: String,
    other_db: String,
    app_password: String,
    /// Empty for [`MariaDb::shared`] (the machine's root has none).
    root_password: String,
    port: u16,
    tls: Tls,
    ca: Option<PathBuf>,
    /// [`MariaDb::shared`]'s guard (a throwaway server's is in [`Server`]).
    guard: Option<Child>,
    /// `None` for [`MariaDb::shared`]. Last, so its directory goes after
    /// Drop has killed the server.
    server: Option<Server>,
}

impl MariaDb {
    /// A throwaway server without TLS.
    pub fn start() -> anyhow::Result<MariaDb> {
        Self::builder().start()
    }

    /// Options for a throwaway server: [`MariaDbBuilder::tls`], ...
    pub fn builder() -> MariaDbBuilder {
        MariaDbBuilder {
            tls: Tls::Off,
            options: Vec::new(),
        }
    }

    /// A fresh user and two fresh databases (`NAME` and `NAME_other`) on
    /// the machine's server at 127.0.0.1:3306, reached as root with an
    /// empty password; dropped again on drop. Fails, saying so, when that
    /// server is not there or root cannot log in.
    pub fn shared() -> anyhow::Result<MariaDb> {
        let addr = SocketAddr::from(([127, 0, 0, 1], SHARED_PORT));
        if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            bail!(
                "MariaDb::shared needs the machine's MariaDB server on {addr} (root, empty \
                 password), but connecting failed: {e}; start it, or use MariaDb::start() \
                 for a throwaway server"
            );
        }
        let name = format!("hoop_{}", random_hex(6)?);
        let mut db = MariaDb {
            app_user: name.clone(),
            app_db: name.clone(),
            other_db: format!("{name}_other"),
            app_password: random_hex(16)?,
            root_password: String::new(),
            port: SHARED_PORT,
            tls: Tls::Off,
            ca: None,
            guard: None,
            server: None,
        };
        db.sql("mysql", "select 1").with_context(|| {
            format!("MariaDb::shared logs in to {addr} as root with an empty password")
        })?;
        // The guard first: if we die between the two, nothing is left.
        let mut drop = mysql_command("127.0.0.1", SHARED_PORT, ROOT, "mysql");
        drop.args(["-e", &db.drop_sql()]);
        let argv: Vec<String> = std::iter::once(drop.get_program())
            .chain(drop.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        db.guard = Some(spawn_guard(r#""$@" >/dev/null 2>&1"#, &argv, &[])?);
        db.create_users()?;
        Ok(db)
    }

    fn start_on_free_port(&mut self) -> anyhow::Result<()> {
        let server = self
            .server
            .as_mut()
            .context("a shared server cannot start")?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            match server.spawn(port) {
                Ok(()) => {
                    self.port = port;
                    break;
                }
                Err(SpawnError::Clash) if attempt < PORT_ATTEMPTS => {}
                Err(SpawnError::Clash) => bail!("{PORT_ATTEMPTS} ports in a row were taken"),
                Err(SpawnError::Other(e)) => return Err(e),
            }
        }
        Ok(())
    }

    fn kill_guard(&mut self) {
        if let Some(mut g) = self.guard.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
    }

    fn create_users(&self) -> anyhow::Result<()> {
        let (user, pw) = (&self.app_user, &self.app_password);
        let mut sql = String::new();
        if self.server.is_some() {
            // Root keeps only its socket account, now with a password: the
            // TCP ones have none and any local user could reach them.
            sql.push_str(&format!(
                "DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost'; \
                 DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost'; \
                 FLUSH PRIVILEGES; \
                 ALTER USER root@localhost IDENTIFIED BY '{}'; ",
                self.root_password
            ));
        }
        sql.push_str(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('{pw}'); \
             CREATE DATABASE `{0}`; CREATE DATABASE `{1}`; \
             GRANT ALL ON `{0}`.* TO '{user}'@'%'; GRANT ALL ON `{1}`.* TO '{user}'@'%';",
            self.app_db, self.other_db
        ));
        // Root's password changes inside this batch: log in with the old one.
        let mut c = self.root_command("mysql", "");
        c.args(["-e", &sql]);
        run_checked(&mut c).context("creating the app user and databases")?;
        Ok(())
    }

    /// What undoes [`MariaDb::shared`]: the user's sessions, the user, the
    /// databases. `lock_wait_timeout` bounds a wait on a session's locks.
    fn drop_sql(&self) -> String {
        format!(
            "SET SESSION lock_wait_timeout = 10; KILL CONNECTION USER '{0}'; \
             DROP USER IF EXISTS '{0}'@'%'; \
             DROP DATABASE IF EXISTS `{1}`; DROP DATABASE IF EXISTS `{2}`;",
            self.app_user, self.app_db, self.other_db
        )
    }

    /// A root client: over the socket with `root_password` for a throwaway
    /// server, over TCP without a password for the shared one.
    fn root_command(&self, db: &str, root_password: &str) -> Command {
        match &self.server {
            Some(s) => {
                let mut c = s.root_client(root_password);
                c.arg(format!("--database={db}"));
                c
            }
            None => mysql_command("127.0.0.1", SHARED_PORT, ROOT, db),
        }
    }

    /// Runs `query` (one or more statements) as root in `db` (`-N -B -e`)
    /// and returns its output, tab-separated and trimmed; fails with the
    /// client's error.
    pub fn sql(&self, db: &str, query: &str) -> anyhow::Result<String> {
        let mut c = self.root_command(db, &self.root_password);
        c.args(["-N", "-B", "-e", query]);
        Ok(run_checked(&mut c)?.trim().to_string())
    }

    /// Runs the client straight at the server as `user` with `password`:
    /// [`mysql_command`] on 127.0.0.1 plus `args`. On a TLS server, with
    /// [`client_tls_args`] and the server's CA.
    pub fn mysql(&self, user: &str, password: &str, db: &str, args: &[&str]) -> Output {
        let mut c = mysql_command("127.0.0.1", self.port, user, db);
        self.direct_env(&mut c, password);
        c.args(args).output().expect("run the mysql client")
    }

    /// Sets `MYSQL_PWD` and, on a TLS server, adds [`client_tls_args`]
    /// with the server's CA: for [`mysql_command`] and
    /// [`mysqldump_command`] pointed straight at this server.
    pub fn direct_env(&self, c: &mut Command, password: &str) {
        c.env("MYSQL_PWD", password);
        if let Some(ca) = &self.ca {
            c.args(client_tls_args(ca));
        }
    }

    /// [`python_mysql_client`] straight at this server as `user` with
    /// `password` (and, on a TLS server, `HOOP_MYSQL_CA`).
    pub fn python(
        &self,
        user: &str,
        password: &str,
        db: &str,
        scenario: &str,
    ) -> anyhow::Result<Command> {
        let mut c = python_mysql_client("127.0.0.1", self.port, user, db, scenario)?;
        c.env("MYSQL_PWD", password);
        if let Some(ca) = &self.ca {
            c.env("HOOP_MYSQL_CA", ca);
        }
        Ok(c)
    }

    /// The server's TCP port on 127.0.0.1 ([`SHARED_PORT`] when shared).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, what an agent's connection points at.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Whether this is [`MariaDb::shared`].
    pub fn is_shared(&self) -> bool {
        self.server.is_none()
    }

    /// The application user: [`APP_USER`], or a unique name when shared.
    pub fn app_user(&self) -> &str {
        &self.app_user
    }

    /// The application database: [`APP_DB`], or a unique name when shared.
    pub fn app_db(&self) -> &str {
        &self.app_db
    }

    /// The second database the app user may use: [`OTHER_DB`], or a unique
    /// name when shared.
    pub fn other_db(&self) -> &str {
        &self.other_db
    }

    /// The application user's password (`mysql_native_password`).
    pub fn app_password(&self) -> &str {
        &self.app_password
    }

    /// Root's password: random on a throwaway server (socket only), empty
    /// on the shared one.
    pub fn root_password(&self) -> &str {
        &self.root_password
    }

    /// How the server speaks TLS.
    pub fn tls(&self) -> Tls {
        self.tls
    }

    /// The CA that signed the server's certificate; `None` without TLS.
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// The throwaway server's directory (data, socket, certificates);
    /// `None` when shared.
    pub fn dir(&self) -> Option<&Path> {
        self.server.as_ref().map(|s| s.dir.path())
    }

    /// `mysql://USER:PASSWORD@127.0.0.1:PORT/DB` for the app user (with
    /// its password) or any other (without one).
    pub fn url_for(&self, user: &str, db: &str) -> String {
        let auth = if user == self.app_user {
            format!("{user}:{}", self.app_password)
        } else {
            user.to_string()
        };
        format!("mysql://{auth}@127.0.0.1:{}/{db}", self.port)
    }

    /// What the throwaway server wrote to its error log so far (every
    /// start); empty when shared.
    pub fn log(&self) -> String {
        self.server.as_ref().map(Server::log).unwrap_or_default()
    }

    /// Shuts the throwaway server down cleanly: connections are refused
    /// until [`MariaDb::restart`].
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let server = self
            .server
            .as_mut()
            .context("a shared server cannot stop")?;
        server.stop()
    }

    /// Stops the throwaway server (if running) and starts it again on the
    /// same port: every session is cut, the data stays.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let port = self.port;
        let server = self
            .server
            .as_mut()
            .context("a shared server cannot restart")?;
        server.stop()?;
        match server.spawn(port) {
            Ok(()) => Ok(()),
            Err(SpawnError::Clash) => bail!("port {port} was taken while the server was down"),
            Err(SpawnError::Other(e)) => Err(e),
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // A throwaway server goes with `Server`'s own Drop.
        if self.server.is_none() {
            let _ = self.sql("mysql", &self.drop_sql());
            // Last: if we die before this, the guard only drops again
            // (IF EXISTS).
            self.kill_guard();
        }
    }
}

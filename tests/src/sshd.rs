//! A throwaway OpenSSH server on a free port: its own host key, a key pair
//! for the agent (whose public half is the only authorized key), root
//! logins by key only, the internal sftp server. Torn down on drop.
//! [`Sshd::start_with_passwords`] also takes password logins, for a
//! throwaway system user made by [`PasswordUser::create`].

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::harness::{READY_TIMEOUT, TempDir};

/// A running `sshd -D`.
pub struct Sshd {
    child: Child,
    pub dir: TempDir,
    pub addr: SocketAddr,
    /// The host's public key line (`ssh-ed25519 AAAA... comment`).
    pub host_key: String,
    /// The private key the agent logs in with.
    pub client_key: PathBuf,
}

fn keygen(path: &Path) -> anyhow::Result<()> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hoop-test", "-f"])
        .arg(path)
        .output()
        .context("ssh-keygen")?;
    if !out.status.success() {
        bail!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl Sshd {
    pub fn start() -> anyhow::Result<Sshd> {
        Self::start_opts(false)
    }

    /// Like [`Sshd::start`], and password logins are accepted too (checked
    /// against `/etc/shadow`: sshd runs without PAM). Root still logs in by
    /// key only.
    pub fn start_with_passwords() -> anyhow::Result<Sshd> {
        Self::start_opts(true)
    }

    fn start_opts(passwords: bool) -> anyhow::Result<Sshd> {
        let password_auth = if passwords { "yes" } else { "no" };
        let dir = TempDir::new("hoop-sshd");
        let d = dir.path();
        let host = d.join("host_ed25519");
        let client = d.join("agent_ed25519");
        keygen(&host)?;
        keygen(&client)?;
        std::fs::copy(d.join("agent_ed25519.pub"), d.join("authorized_keys"))?;
        // Privilege separation needs it; create if missing, never remove it.
        std::fs::create_dir_all("/run/sshd")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {auth}\n\
                 PidFile {pid}\nUsePAM no\nStrictModes no\nPasswordAuthentication {password_auth}\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 Subsystem sftp internal-sftp\nAllowTcpForwarding yes\nAcceptEnv LANG LC_*\n\
                 LogLevel VERBOSE\n",
                host = host.display(),
                auth = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            ),
        )?;
        let log = std::fs::File::create(d.join("sshd.log"))?;
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("/usr/sbin/sshd")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let host_key = std::fs::read_to_string(d.join("host_ed25519.pub"))?
            .trim()
            .to_string();
        let mut sshd = Sshd {
            child,
            dir,
            addr,
            host_key,
            client_key: client,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = sshd.child.try_wait() {
                bail!("sshd exited ({status}): {}", sshd.log());
            }
            if Instant::now() > deadline {
                bail!("sshd did not listen on {addr}: {}", sshd.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sshd)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway system user with a password, for password logins to
/// [`Sshd::start_with_passwords`]: made with `useradd` and `chpasswd`, so
/// only root can make one. Removed (with its home) on drop.
pub struct PasswordUser {
    pub name: String,
    pub password: String,
}

/// The prefix of [`PasswordUser`] names; the rest is the creating process's id.
const PASSWORD_USER_PREFIX: &str = "hooppw";

impl PasswordUser {
    /// Makes the user, or says why it cannot (`Err` of the outer result
    /// for a failure, `Ok(Err(reason))` when this is not the place to try:
    /// not root, or no `useradd`).
    pub fn create() -> anyhow::Result<Result<PasswordUser, String>> {
        let uid = Command::new("id").arg("-u").output().context("id -u")?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Ok(Err(
                "making a system user with a password needs root (useradd, chpasswd)".into(),
            ));
        }
        for tool in ["useradd", "chpasswd", "userdel"] {
            let found = ["/usr/sbin", "/sbin", "/usr/bin"]
                .iter()
                .any(|d| Path::new(d).join(tool).exists());
            if !found {
                return Ok(Err(format!("{tool} is not installed (package passwd)")));
            }
        }
        sweep_stale_users();
        // One name per test process, so that runs side by side do not meet.
        let name = format!("{PASSWORD_USER_PREFIX}{}", std::process::id());
        let _ = userdel(&name);
        let mut r = [0u8; 12];
        aws_lc_rs::rand::fill(&mut r).expect("random");
        let password = format!("Pw-{}", hex::encode(r));
        // useradd takes a lock on /etc/passwd: another run may hold it.
        let mut tries = 0;
        loop {
            let out = Command::new("useradd")
                .args([
                    "--create-home",
                    "--shell",
                    "/bin/sh",
                    "--comment",
                    "hoop test",
                ])
                .arg(&name)
                .output()
                .context("useradd")?;
            if out.status.success() {
                break;
            }
            tries += 1;
            if tries >= 20 {
                bail!("useradd {name}: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let user = PasswordUser { name, password };
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("chpasswd")?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().context("chpasswd stdin")?;
            writeln!(stdin, "{}:{}", user.name, user.password)?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "chpasswd for {}: {}",
                user.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Ok(user))
    }
}

impl Drop for PasswordUser {
    fn drop(&mut self) {
        if let Err(e) = userdel(&self.name) {
            eprintln!("could not remove the test user {}: {e}", self.name);
        }
    }
}

/// `userdel --force --remove NAME`, retried while another run holds the
/// lock on /etc/passwd.
fn userdel(name: &str) -> anyhow::Result<()> {
    let mut last = String::new();
    for _ in 0..20 {
        let out = Command::new("userdel")
            .args(["--force", "--remove", name])
            .output()
            .context("userdel")?;
        // 6: no such user.
        if out.status.success() || out.status.code() == Some(6) {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("userdel {name}: {last}")
}

/// Removes the users earlier test processes made and could not remove
/// (killed before their drop ran): those whose process is gone.
fn sweep_stale_users() {
    let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
        return;
    };
    for line in passwd.lines() {
        let name = line.split(':').next().unwrap_or_default();
        let Some(pid) = name.strip_prefix(PASSWORD_USER_PREFIX) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = userdel(name);
        }
    }
}

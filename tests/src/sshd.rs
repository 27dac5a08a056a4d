//! A throwaway OpenSSH server on a free port: its own host key, a key pair
//! for the agent (whose public half is the only authorized key), root
//! logins by key only, the internal sftp server. Torn down on drop.

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
                 PidFile {pid}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
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

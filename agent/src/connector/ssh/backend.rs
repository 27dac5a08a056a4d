//! The agent's own SSH connection to the host: TCP, the host key checked
//! against the connection's `host_key` or `known_hosts` (or learnt when
//! `trust_first_use` says so), then login with the stored key or password.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};

use crate::config::{ConnectionConfig, split_host_port, ssh::parse_host_key};

/// How long the host may take to answer TCP and the SSH handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A logged-in connection to the host.
pub type Backend = client::Handle<HostCheck>;

/// What the host's key must be.
#[derive(Clone)]
enum Expect {
    Key(PublicKey),
    KnownHosts(PathBuf),
    FirstUse(PathBuf),
}

/// Checks the host's key; leaves the reason for a refusal in `problem`.
pub struct HostCheck {
    connection: String,
    host: String,
    port: u16,
    expect: Expect,
    problem: Arc<Mutex<Option<String>>>,
}

fn describe(key: &PublicKey) -> String {
    format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256))
}

impl HostCheck {
    fn check(&self, key: &PublicKey) -> Result<(), String> {
        let name = &self.connection;
        let shown = describe(key);
        let addr = format!("{}:{}", self.host, self.port);
        match &self.expect {
            Expect::Key(want) if want.key_data() == key.key_data() => Ok(()),
            Expect::Key(want) => Err(format!(
                "host key mismatch: the host at {addr} showed {shown}, but connection {name:?} \
                 expects {} (host_key); the agent refused to log in. If the host's key changed \
                 on purpose, update host_key in the agent's configuration",
                describe(want)
            )),
            Expect::KnownHosts(path) | Expect::FirstUse(path) => {
                match russh::keys::check_known_hosts_path(&self.host, self.port, key, path) {
                    Ok(true) => Ok(()),
                    Ok(false) if matches!(self.expect, Expect::FirstUse(_)) => {
                        if let Some(dir) = path.parent() {
                            let _ = std::fs::create_dir_all(dir);
                        }
                        russh::keys::known_hosts::learn_known_hosts_path(
                            &self.host, self.port, key, path,
                        )
                        .map_err(|e| {
                            format!(
                                "cannot remember the key of {addr} in {}: {e}",
                                path.display()
                            )
                        })?;
                        tracing::warn!(connection = %name, host = %addr, key = %shown, file = %path.display(), "trusted the host's key on first use");
                        Ok(())
                    }
                    Ok(false) => Err(format!(
                        "the host at {addr} showed {shown}, and {} has no key for it; the agent \
                         refused to log in. Add the host's key to known_hosts",
                        path.display()
                    )),
                    Err(_) => {
                        let known = russh::keys::known_hosts::known_host_keys_path(
                            &self.host, self.port, path,
                        )
                        .unwrap_or_default()
                        .iter()
                        .map(|(_, k)| describe(k))
                        .collect::<Vec<_>>()
                        .join(", ");
                        Err(format!(
                            "host key mismatch: the host at {addr} showed {shown}, but {} expects \
                             {known}; the agent refused to log in",
                            path.display()
                        ))
                    }
                }
            }
        }
    }
}

impl client::Handler for HostCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => self.check(key),
            russh::keys::PublicKeyOrCertificate::Certificate(_) => Err(format!(
                "the host of {:?} showed a host certificate; give its plain key instead",
                self.connection
            )),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut p) = self.problem.lock() {
                    *p = Some(e);
                }
                Ok(false)
            }
        }
    }
}

/// Connects and logs in. The error is safe to show the caller: it never
/// holds the credential.
pub async fn connect(cfg: &ConnectionConfig, data_dir: &Path) -> Result<Backend, String> {
    let (host, port) = split_host_port(&cfg.address)?;
    let expect = match (&cfg.host_key, &cfg.known_hosts) {
        (Some(k), _) => Expect::Key(parse_host_key(k)?),
        (None, Some(p)) if cfg.trust_first_use => Expect::FirstUse(p.clone()),
        (None, Some(p)) => Expect::KnownHosts(p.clone()),
        (None, None) => Expect::FirstUse(data_dir.join("ssh_known_hosts")),
    };
    let problem = Arc::new(Mutex::new(None));
    let check = HostCheck {
        connection: cfg.name.clone(),
        host: host.to_string(),
        port,
        expect,
        problem: problem.clone(),
    };
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(&cfg.address),
    )
    .await
    .map_err(|_| format!("the host at {} did not answer in time", cfg.address))?
    .map_err(|e| format!("cannot reach the host at {}: {e}", cfg.address))?;
    let _ = tcp.set_nodelay(true);
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        nodelay: true,
        window_size: 8 * 1024 * 1024,
        preferred: russh::Preferred {
            // The agent's own leg: AES-GCM first. Hosts run on CPUs with
            // AES instructions, where it costs the agent and sshd a
            // fraction of ChaCha20-Poly1305 per byte (scp through hoop was
            // CPU-bound on the agent's two ciphers). The caller's leg
            // keeps whatever the caller's ssh prefers.
            cipher: std::borrow::Cow::Borrowed(&[
                russh::cipher::AES_128_GCM,
                russh::cipher::AES_256_GCM,
                russh::cipher::CHACHA20_POLY1305,
                russh::cipher::AES_256_CTR,
                russh::cipher::AES_192_CTR,
                russh::cipher::AES_128_CTR,
            ]),
            ..Default::default()
        },
        ..Default::default()
    });
    let handshake =
        tokio::time::timeout(CONNECT_TIMEOUT, client::connect_stream(config, tcp, check)).await;
    let mut handle = match handshake {
        Err(_) => {
            return Err(format!(
                "the host at {} did not finish the SSH handshake in time",
                cfg.address
            ));
        }
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            let p = problem.lock().ok().and_then(|mut p| p.take());
            return Err(
                p.unwrap_or_else(|| format!("SSH handshake with {} failed: {e}", cfg.address))
            );
        }
    };
    let user = cfg.user.clone().unwrap_or_default();
    let auth = if let Some(key_ref) = &cfg.private_key {
        let text = key_ref.resolve()?;
        let key = russh::keys::decode_secret_key(text.expose(), None).map_err(|e| {
            format!(
                "the private_key of {:?} is not a usable OpenSSH key: {e}",
                cfg.name
            )
        })?;
        let hash = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(|e| e.to_string())?
                .flatten()
        } else {
            None
        };
        handle
            .authenticate_publickey(&user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
    } else if let Some(pw) = &cfg.password {
        let pw = pw.resolve()?;
        handle.authenticate_password(&user, pw.expose()).await
    } else {
        return Err(format!("connection {:?} has no credential", cfg.name));
    };
    match auth {
        Ok(r) if r.success() => Ok(handle),
        Ok(_) => Err(format!(
            "the host at {} refused the agent's login as {user:?}; check the connection's key or password",
            cfg.address
        )),
        Err(e) => Err(format!("login to {} failed: {e}", cfg.address)),
    }
}

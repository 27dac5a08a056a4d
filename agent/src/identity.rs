//! The agent's TLS identity: a private CA and an agent certificate signed
//! by it, made once by `hoop-agent init` and loaded by `run`.
//!
//! Layout under the data dir: `tls/ca.pem`, `tls/ca.key`, `tls/agent.pem`,
//! `tls/agent.key`, and `tls/reset.key` (the QUIC stateless-reset secret,
//! kept so that a restarted agent can tell clients their old connection is
//! gone instead of leaving them to time out). Keys are written 0600.
//!
//! `tls/mask.key` holds the masking engine's HMAC key (the `hash`
//! strategy). It is made by `init` or on the first `run` that needs it, and
//! `init --force` keeps it, so hashed values stay comparable across a
//! certificate rotation.

use std::fs::{self, OpenOptions};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hoop_tunnel::Fingerprint;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// Names always put in the agent certificate besides the `--san` ones, so
/// a local `hoop` can reach a local agent.
pub const DEFAULT_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Why the identity could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "{0} already exists; pass --force to replace the agent's identity (every hoop client must then trust the new fingerprint)"
    )]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no agent identity in {0}; run `hoop-agent init --data-dir {0}` first")]
    Missing(PathBuf),
    #[error("{path}: not a usable PEM file ({reason})")]
    BadPem { path: PathBuf, reason: String },
    #[error("cannot make certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("invalid --san {0:?}")]
    BadSan(String),
}

/// Paths of the identity files.
#[derive(Debug, Clone)]
pub struct IdentityPaths {
    pub dir: PathBuf,
}

impl IdentityPaths {
    pub fn new(data_dir: &Path) -> Self {
        IdentityPaths {
            dir: data_dir.join("tls"),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("agent.pem")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("agent.key")
    }
    pub fn reset_key(&self) -> PathBuf {
        self.dir.join("reset.key")
    }
    pub fn mask_key(&self) -> PathBuf {
        self.dir.join("mask.key")
    }
    pub fn ssh_host_key(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key")
    }
}

/// What `init` made.
#[derive(Debug)]
pub struct Created {
    pub fingerprint: Fingerprint,
    pub sans: Vec<String>,
    pub paths: IdentityPaths,
}

/// Makes the CA, the agent certificate and the reset secret.
pub fn init(data_dir: &Path, extra_sans: &[String], force: bool) -> Result<Created, IdentityError> {
    let paths = IdentityPaths::new(data_dir);
    if !force {
        for p in [paths.ca_cert(), paths.ca_key(), paths.cert(), paths.key()] {
            if p.exists() {
                return Err(IdentityError::Exists(p));
            }
        }
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| IdentityError::Io { path, source }
    };
    fs::create_dir_all(&paths.dir).map_err(io(&paths.dir))?;
    #[cfg(unix)]
    fs::set_permissions(&paths.dir, fs::Permissions::from_mode(0o700)).map_err(io(&paths.dir))?;

    let mut sans: Vec<String> = Vec::new();
    for s in extra_sans.iter().map(String::as_str).chain(DEFAULT_SANS) {
        let s = s.trim();
        if s.is_empty() || s.contains(char::is_whitespace) || s.contains('/') {
            return Err(IdentityError::BadSan(s.to_string()));
        }
        if !sans.iter().any(|x| x == s) {
            sans.push(s.to_string());
        }
    }

    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "hoop-agent CA");
    dn.push(DnType::OrganizationName, "hoop");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    // A day of slack for clients whose clock runs behind.
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(sans.clone())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "hoop-agent");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = ca_params.not_before;
    params.not_after = now + time::Duration::days(825);
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer)?;

    let mut reset = [0u8; 32];
    aws_lc_rs::rand::fill(&mut reset).map_err(|_| IdentityError::Io {
        path: paths.reset_key(),
        source: std::io::Error::other("random generator failed"),
    })?;

    write_file(&paths.ca_key(), ca_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&paths.key(), key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&paths.reset_key(), hex::encode(reset).as_bytes(), 0o600)?;
    write_file(&paths.ca_cert(), ca_cert.pem().as_bytes(), 0o644)?;
    mask_key(data_dir)?;
    ssh_host_key(data_dir)?;
    write_file(&paths.cert(), cert.pem().as_bytes(), 0o644)?;

    Ok(Created {
        fingerprint: Fingerprint::of(ca_cert.der()),
        sans,
        paths,
    })
}

/// Writes a file atomically (temp file, then rename) with `mode`; the
/// temp file is created with that mode so a key is never world-readable.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), IdentityError> {
    let err = |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(mode);
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

/// A loaded identity, ready for the QUIC server.
pub struct Identity {
    /// Agent certificate followed by the CA certificate.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub fingerprint: Fingerprint,
    pub reset_key: [u8; 32],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .field("key", &"***")
            .finish()
    }
}

/// Loads what `init` made.
pub fn load(data_dir: &Path) -> Result<Identity, IdentityError> {
    let paths = IdentityPaths::new(data_dir);
    if !paths.cert().exists() {
        return Err(IdentityError::Missing(data_dir.to_owned()));
    }
    let ca = load_cert(&paths.ca_cert())?;
    let leaf = load_cert(&paths.cert())?;
    let key_path = paths.key();
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| IdentityError::BadPem {
        path: key_path.clone(),
        reason: e.to_string(),
    })?;
    let reset_path = paths.reset_key();
    let reset_key = match fs::read_to_string(&reset_path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| IdentityError::BadPem {
                path: reset_path.clone(),
                reason: "expected 64 hex digits".into(),
            })?,
        Err(source) => {
            return Err(IdentityError::Io {
                path: reset_path,
                source,
            });
        }
    };
    Ok(Identity {
        fingerprint: Fingerprint::of(ca.as_ref()),
        chain: vec![leaf, ca],
        key,
        reset_key,
    })
}

/// The masking key: read from `tls/mask.key`, or made (32 random bytes,
/// hex, 0600) when the file does not exist yet.
pub fn mask_key(data_dir: &Path) -> Result<[u8; 32], IdentityError> {
    let path = IdentityPaths::new(data_dir).mask_key();
    match fs::read_to_string(&path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or(IdentityError::BadPem {
                path,
                reason: "expected 64 hex digits".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            aws_lc_rs::rand::fill(&mut key).map_err(|_| IdentityError::Io {
                path: path.clone(),
                source: std::io::Error::other("random generator failed"),
            })?;
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            write_file(&path, hex::encode(key).as_bytes(), 0o600)?;
            Ok(key)
        }
        Err(source) => Err(IdentityError::Io { path, source }),
    }
}

/// The agent's SSH host key (ed25519, OpenSSH format): read from
/// `tls/ssh_host_ed25519_key`, or made (0600) when it does not exist yet.
/// Callers' `ssh` clients see it when they reach an `ssh` connection.
pub fn ssh_host_key(data_dir: &Path) -> Result<russh::keys::PrivateKey, IdentityError> {
    use russh::keys::ssh_key::{LineEnding, private::Ed25519Keypair};
    let path = IdentityPaths::new(data_dir).ssh_host_key();
    match fs::read_to_string(&path) {
        Ok(text) => {
            russh::keys::PrivateKey::from_openssh(text.trim()).map_err(|e| IdentityError::BadPem {
                path,
                reason: e.to_string(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            aws_lc_rs::rand::fill(&mut seed).map_err(|_| IdentityError::Io {
                path: path.clone(),
                source: std::io::Error::other("random generator failed"),
            })?;
            let key = russh::keys::PrivateKey::from(Ed25519Keypair::from_seed(&seed));
            let text = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| IdentityError::BadPem {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            write_file(&path, text.as_bytes(), 0o600)?;
            Ok(key)
        }
        Err(source) => Err(IdentityError::Io { path, source }),
    }
}

/// The CA fingerprint clients pin.
pub fn fingerprint(data_dir: &Path) -> Result<Fingerprint, IdentityError> {
    let paths = IdentityPaths::new(data_dir);
    if !paths.ca_cert().exists() {
        return Err(IdentityError::Missing(data_dir.to_owned()));
    }
    Ok(Fingerprint::of(load_cert(&paths.ca_cert())?.as_ref()))
}

fn load_cert(path: &Path) -> Result<CertificateDer<'static>, IdentityError> {
    CertificateDer::from_pem_file(path).map_err(|e| IdentityError::BadPem {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load_and_refuse_overwrite() {
        let dir = tempdir();
        let made = init(&dir, &["agent.example.com".into()], false).unwrap();
        assert!(made.sans.contains(&"agent.example.com".to_string()));
        let loaded = load(&dir).unwrap();
        assert_eq!(loaded.fingerprint, made.fingerprint);
        assert_eq!(loaded.chain.len(), 2);
        #[cfg(unix)]
        for p in [
            made.paths.key(),
            made.paths.ca_key(),
            made.paths.reset_key(),
        ] {
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        let again = init(&dir, &[], false).unwrap_err();
        assert!(again.to_string().contains("--force"), "{again}");
        let forced = init(&dir, &[], true).unwrap();
        assert_ne!(forced.fingerprint, made.fingerprint);
        assert_eq!(fingerprint(&dir).unwrap(), forced.fingerprint);
        let dbg = format!("{:?}", load(&dir).unwrap());
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_identity_says_run_init() {
        let dir = tempdir();
        let err = load(&dir).unwrap_err().to_string();
        assert!(err.contains("hoop-agent init"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    fn tempdir() -> PathBuf {
        let mut r = [0u8; 8];
        aws_lc_rs::rand::fill(&mut r).unwrap();
        let d = std::env::temp_dir().join(format!("hoop-id-{}", hex::encode(r)));
        fs::create_dir_all(&d).unwrap();
        d
    }
}

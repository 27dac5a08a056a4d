//! Where the CLI keeps its settings (`config.toml` under the user's config
//! dir, or `$HOOP_CONFIG_DIR`), and how it decides which agent to talk to
//! and how to trust it: flags, then environment, then saved settings.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hoop_tunnel::{Fingerprint, Pin};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// The settings file.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<SavedAgent>,
}

/// A trusted agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SavedAgent {
    /// `host:port` (UDP).
    pub address: String,
    /// `SHA256:<hex>` of the agent's CA certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Path of the agent's CA certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

/// The settings directory.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("HOOP_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::config_dir()
        .map(|d| d.join("hoop"))
        .context("cannot find a config directory; set HOOP_CONFIG_DIR")
}

fn settings_path(dir: &Path) -> PathBuf {
    dir.join("config.toml")
}

impl Settings {
    pub fn load(dir: &Path) -> anyhow::Result<Settings> {
        let path = settings_path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = settings_path(dir);
        let text = toml::to_string_pretty(self)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// Agent selection given on the command line or in the environment.
#[derive(Debug, Clone, Default)]
pub struct AgentArgs {
    pub address: Option<String>,
    pub fingerprint: Option<String>,
    pub ca: Option<PathBuf>,
}

/// The agent to use and how to trust it.
#[derive(Debug, Clone)]
pub struct Target {
    pub address: String,
    pub pin: Pin,
}

/// Parses a pin from its two possible sources.
pub fn parse_pin(fingerprint: Option<&str>, ca: Option<&Path>) -> anyhow::Result<Option<Pin>> {
    match (fingerprint, ca) {
        (Some(_), Some(_)) => bail!("give either a fingerprint or a CA file, not both"),
        (Some(fp), None) => Ok(Some(Pin::Fingerprint(fp.parse::<Fingerprint>()?))),
        (None, Some(path)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read CA file {}", path.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
            if certs.is_empty() {
                bail!("{} holds no certificate", path.display());
            }
            Ok(Some(Pin::Ca(certs)))
        }
        (None, None) => Ok(None),
    }
}

impl AgentArgs {
    /// Resolves flags and environment against the saved settings.
    pub fn resolve(&self, saved: &Settings) -> anyhow::Result<Target> {
        let saved_agent = saved.agent.as_ref();
        let address = match (&self.address, saved_agent) {
            (Some(a), _) => a.clone(),
            (None, Some(s)) => s.address.clone(),
            (None, None) => bail!(
                "no agent configured: run `hoop trust HOST:PORT --fingerprint SHA256:...` \
                 (the line `hoop-agent init` printed), or set HOOP_AGENT and HOOP_AGENT_FINGERPRINT"
            ),
        };
        if let Some(pin) = parse_pin(self.fingerprint.as_deref(), self.ca.as_deref())? {
            return Ok(Target { address, pin });
        }
        match saved_agent {
            Some(s) if s.address == address => {
                let pin = parse_pin(s.fingerprint.as_deref(), s.ca.as_deref())?
                    .context("the saved agent has no pin; run `hoop trust` again")?;
                Ok(Target { address, pin })
            }
            _ => bail!(
                "no pin for agent {address}: pass --fingerprint SHA256:<hex> (from `hoop-agent fingerprint` \
                 on the agent) or --ca FILE, or save it with `hoop trust {address} --fingerprint ...`"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn flags_beat_saved_and_saved_pin_needs_same_address() {
        let saved = Settings {
            agent: Some(SavedAgent {
                address: "a:1".into(),
                fingerprint: Some(FP.into()),
                ca: None,
            }),
        };
        let t = AgentArgs::default().resolve(&saved).unwrap();
        assert_eq!(t.address, "a:1");
        let other = AgentArgs {
            address: Some("b:2".into()),
            ..Default::default()
        };
        let err = other.resolve(&saved).unwrap_err().to_string();
        assert!(err.contains("no pin for agent b:2"), "{err}");
        let with_pin = AgentArgs {
            address: Some("b:2".into()),
            fingerprint: Some(FP.into()),
            ca: None,
        };
        assert_eq!(with_pin.resolve(&saved).unwrap().address, "b:2");
    }

    #[test]
    fn nothing_configured_says_what_to_run() {
        let err = AgentArgs::default()
            .resolve(&Settings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("hoop trust"), "{err}");
    }

    #[test]
    fn bad_fingerprint_is_explained() {
        let args = AgentArgs {
            address: Some("a:1".into()),
            fingerprint: Some("abc".into()),
            ca: None,
        };
        let err = format!("{:#}", args.resolve(&Settings::default()).unwrap_err());
        assert!(err.contains("SHA256:<64 hex digits>"), "{err}");
    }
}

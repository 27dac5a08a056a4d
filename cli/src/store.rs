//! Where `hoop login` keeps tokens: the OS keyring when one is reachable,
//! otherwise a file readable only by the user (0600) under the config dir,
//! saying so once when it falls back.
//!
//! The keyring is chosen deliberately per platform rather than left to a
//! crate default: the kernel keyutils store on Linux (no D-Bus needed, so
//! it also works on headless boxes that have a session keyring), the
//! Keychain on macOS, the Credential Manager on Windows. Kernel keyrings do
//! not survive a reboot; then `hoop login` is needed again.
//! `HOOP_TOKEN_STORE=file` (or `keyring`) forces one backend.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use keyring_core::{CredentialStore, Entry};
use serde::{Deserialize, Serialize};

const SERVICE: &str = "hoop";

/// Tokens from one sign-in, for one agent.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenSet {
    pub issuer: String,
    pub client_id: String,
    pub token_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds.
    pub expires_at: u64,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How the tokens were obtained: `browser`, `device` or `client_credentials`.
    pub grant: String,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("access_token", &"***")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("expires_at", &self.expires_at)
            .field("grant", &self.grant)
            .finish()
    }
}

/// Which backend holds the tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    Keyring,
    File,
}

/// The token store.
pub struct TokenStore {
    file: PathBuf,
    keyring: Option<Arc<CredentialStore>>,
    /// Why there is no keyring, for the fallback notice.
    keyring_error: Option<String>,
}

fn platform_store() -> Result<Arc<CredentialStore>, String> {
    #[cfg(target_os = "linux")]
    {
        // Without a session keyring of its own (a login session, or
        // `keyctl session`), a process falls back to the shared
        // `_uid_ses.<uid>` keyring, where keys stored by one process were
        // measured not to be found by the next. Use the file then.
        use linux_keyutils::{KeyRing, KeyRingIdentifier};
        let session = KeyRing::from_special_id(KeyRingIdentifier::Session, false)
            .and_then(|k| k.metadata())
            .map_err(|e| format!("no kernel session keyring ({e})"))?;
        if session.get_description().starts_with("_uid_ses.") {
            return Err(
                "no kernel session keyring for this login (start one with `keyctl session`)".into(),
            );
        }
        linux_keyutils_keyring_store::Store::new()
            .map(|s| s as Arc<CredentialStore>)
            .map_err(|e| e.to_string())
    }
    #[cfg(target_os = "macos")]
    {
        apple_native_keyring_store::keychain::Store::new()
            .map(|s| s as Arc<CredentialStore>)
            .map_err(|e| e.to_string())
    }
    #[cfg(target_os = "windows")]
    {
        windows_native_keyring_store::Store::new()
            .map(|s| s as Arc<CredentialStore>)
            .map_err(|e| e.to_string())
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    {
        Err("no OS keyring support on this platform".to_string())
    }
}

impl TokenStore {
    /// Opens the store under the config dir.
    pub fn open(config_dir: &Path) -> anyhow::Result<TokenStore> {
        let mode = std::env::var("HOOP_TOKEN_STORE").unwrap_or_default();
        let (keyring, keyring_error) = match mode.as_str() {
            "file" => (None, Some("HOOP_TOKEN_STORE=file".to_string())),
            "" | "auto" | "keyring" => match platform_store() {
                Ok(s) => (Some(s), None),
                Err(e) if mode == "keyring" => {
                    bail!("HOOP_TOKEN_STORE=keyring, but the OS keyring is not reachable: {e}")
                }
                Err(e) => (None, Some(e)),
            },
            other => bail!("HOOP_TOKEN_STORE must be auto, keyring or file, not {other:?}"),
        };
        Ok(TokenStore {
            file: config_dir.join("tokens.json"),
            keyring,
            keyring_error,
        })
    }

    fn entry(&self, agent: &str) -> Option<Entry> {
        let store = self.keyring.as_ref()?;
        Entry::new_in_store(store, SERVICE, &format!("tokens:{agent}")).ok()
    }

    /// The tokens saved for `agent`, if any.
    pub fn load(&self, agent: &str) -> anyhow::Result<Option<TokenSet>> {
        if let Some(entry) = self.entry(agent) {
            match entry.get_password() {
                Ok(json) => {
                    return serde_json::from_str(&json).map(Some).context(
                        "the tokens in the OS keyring are unreadable; run `hoop login` again",
                    );
                }
                Err(keyring_core::Error::NoEntry) => {}
                Err(e) => tracing::debug!(error = %e, "keyring read failed; trying the file store"),
            }
        }
        Ok(self.read_file()?.remove(agent))
    }

    /// Saves tokens; returns where they went and, when the keyring could
    /// not be used, why.
    pub fn save(&self, agent: &str, tokens: &TokenSet) -> anyhow::Result<(Where, Option<String>)> {
        let json = serde_json::to_string(tokens)?;
        let mut why_not = self.keyring_error.clone();
        if let Some(entry) = self.entry(agent) {
            // Some kernel keyrings accept a key they will not hand back
            // (no session keyring to search from): read it back before
            // trusting it, and fall back to the file otherwise.
            match entry
                .set_password(&json)
                .and_then(|()| entry.get_password())
            {
                Ok(back) if back == json => {
                    // Do not leave an older copy in the file.
                    self.remove_from_file(agent)?;
                    return Ok((Where::Keyring, None));
                }
                Ok(_) => {
                    let _ = entry.delete_credential();
                    why_not = Some("the keyring returned something else than was stored".into());
                }
                Err(e) => {
                    let _ = entry.delete_credential();
                    why_not = Some(e.to_string());
                }
            }
        }
        let mut all = self.read_file()?;
        all.insert(agent.to_string(), tokens.clone());
        self.write_file(&all)?;
        Ok((Where::File, why_not))
    }

    /// Removes the tokens for `agent` from every backend; returns them.
    pub fn remove(&self, agent: &str) -> anyhow::Result<Option<TokenSet>> {
        let mut found = None;
        if let Some(entry) = self.entry(agent) {
            if let Ok(json) = entry.get_password() {
                found = serde_json::from_str(&json).ok();
            }
            let _ = entry.delete_credential();
        }
        let from_file = self.remove_from_file(agent)?;
        Ok(found.or(from_file))
    }

    pub fn file_path(&self) -> &Path {
        &self.file
    }

    fn remove_from_file(&self, agent: &str) -> anyhow::Result<Option<TokenSet>> {
        let mut all = self.read_file()?;
        let old = all.remove(agent);
        if old.is_some() {
            self.write_file(&all)?;
        }
        Ok(old)
    }

    fn read_file(&self) -> anyhow::Result<BTreeMap<String, TokenSet>> {
        match std::fs::read_to_string(&self.file) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is unreadable; delete it and run `hoop login`",
                    self.file.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.file.display())),
        }
    }

    fn write_file(&self, all: &BTreeMap<String, TokenSet>) -> anyhow::Result<()> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        if all.is_empty() {
            match std::fs::remove_file(&self.file) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot remove {}", self.file.display()));
                }
            }
        }
        let tmp = self.file.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(all)?.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.file)
            .with_context(|| format!("cannot write {}", self.file.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenSet {
        TokenSet {
            issuer: "https://idp".into(),
            client_id: "hoop-cli".into(),
            token_endpoint: "https://idp/token".into(),
            revocation_endpoint: None,
            access_token: "access-secret".into(),
            refresh_token: Some("refresh-secret".into()),
            expires_at: 10,
            scopes: vec![],
            grant: "browser".into(),
        }
    }

    #[test]
    fn debug_hides_tokens() {
        let d = format!("{:?}", sample());
        assert!(!d.contains("secret"), "{d}");
    }

    #[test]
    fn file_store_round_trip_is_private() {
        let mut r = [0u8; 8];
        aws_lc_rs::rand::fill(&mut r).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "hoop-store-{}",
            r.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        let store = TokenStore {
            file: dir.join("tokens.json"),
            keyring: None,
            keyring_error: Some("test".into()),
        };
        assert_eq!(store.load("a:1").unwrap(), None);
        let (w, why) = store.save("a:1", &sample()).unwrap();
        assert_eq!(w, Where::File);
        assert_eq!(why.as_deref(), Some("test"));
        assert_eq!(store.load("a:1").unwrap(), Some(sample()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.file_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(store.remove("a:1").unwrap(), Some(sample()));
        assert!(!store.file_path().exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

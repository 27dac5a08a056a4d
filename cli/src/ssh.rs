//! `ssh` connections on the client side: the agent's SSH host key goes in
//! a known-hosts file hoop manages, under an alias per connection, so the
//! user's `ssh` checks it like any host and nobody learns to ignore a
//! host-key warning.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// `<config dir>/known_hosts`.
pub fn known_hosts_path() -> anyhow::Result<PathBuf> {
    Ok(crate::settings::config_dir()?.join("known_hosts"))
}

/// The name `ssh` checks the key under, whatever the local port.
pub fn alias(connection: &str) -> String {
    format!("hoop-{connection}")
}

/// Writes (or replaces) the alias's entry in the known-hosts file.
pub fn remember_host_key(path: &Path, connection: &str, key: &str) -> anyhow::Result<()> {
    let alias = alias(connection);
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut text: String = old
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(alias.as_str()))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{alias} {}\n", key.trim()));
    if text == old {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The options that make `ssh` reach the local port and check the
/// agent's key from the managed file.
pub fn options(connection: &str, local: SocketAddr, known_hosts: &Path) -> Vec<String> {
    vec![
        "-p".into(),
        local.port().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o".into(),
        format!("HostKeyAlias={}", alias(connection)),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
    ]
}

/// The line `hoop connect` prints.
pub fn command_line(connection: &str, local: SocketAddr, known_hosts: Option<&Path>) -> String {
    match known_hosts {
        Some(k) => {
            let opts = options(connection, local, k)
                .into_iter()
                .map(|o| shell_quote(&o))
                .collect::<Vec<_>>()
                .join(" ");
            format!("ssh {opts} {}", local.ip())
        }
        None => format!("ssh -p {} {}", local.port(), local.ip()),
    }
}

/// Splits `hoop ssh` arguments into ssh options (before the destination)
/// and the remote command (after it).
pub fn split_args(args: &[String]) -> (Vec<String>, Vec<String>) {
    // ssh's options that take a value.
    const WITH_VALUE: &str = "BbcDEeFIiJLlmOoPpQRSWw";
    let mut opts = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if !a.starts_with('-') || a == "-" {
            break;
        }
        opts.push(a.clone());
        if a.len() == 2 && a[1..].chars().all(|c| WITH_VALUE.contains(c)) && i + 1 < args.len() {
            opts.push(args[i + 1].clone());
            i += 1;
        }
        i += 1;
    }
    (opts, args[i..].to_vec())
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_=./:@,+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_options_from_command() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (o, c) = split_args(&v(&["-v", "-L", "8080:x:80", "uname", "-a"]));
        assert_eq!(o, v(&["-v", "-L", "8080:x:80"]));
        assert_eq!(c, v(&["uname", "-a"]));
        let (o, c) = split_args(&v(&["ls"]));
        assert!(o.is_empty());
        assert_eq!(c, v(&["ls"]));
    }

    #[test]
    fn replaces_the_alias_entry() {
        let dir = std::env::temp_dir().join(format!("hoop-kh-{}", std::process::id()));
        let path = dir.join("known_hosts");
        let _ = std::fs::remove_file(&path);
        remember_host_key(&path, "web", "ssh-ed25519 AAAA1").unwrap();
        remember_host_key(&path, "db", "ssh-ed25519 BBBB").unwrap();
        remember_host_key(&path, "web", "ssh-ed25519 AAAA2").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "hoop-db ssh-ed25519 BBBB\nhoop-web ssh-ed25519 AAAA2\n"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

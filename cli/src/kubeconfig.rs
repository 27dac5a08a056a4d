//! The kubeconfig `hoop connect` writes for a `kubernetes` connection:
//! one file per connection (0600) under hoop's config dir, pointing
//! kubectl at the local port over plain HTTP, as `kubectl proxy` does.
//! It holds no credential: the agent injects the cluster's token, and
//! the loopback leg is only reachable from this machine.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where the kubeconfig of connection `name` lives.
pub fn path(name: &str) -> anyhow::Result<PathBuf> {
    Ok(crate::settings::config_dir()?
        .join("kube")
        .join(format!("{name}.kubeconfig")))
}

/// The address kubectl dials for a listener on `local`: a listener on
/// every address (`--bind 0.0.0.0` or `::`) is reached on the loopback
/// of its family, which the agent also requires as the `Host`.
pub fn server_addr(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// The kubeconfig text: a cluster, user and context named after the
/// connection, the context current, with `namespace` as its default.
pub fn render(name: &str, local: SocketAddr, namespace: Option<&str>) -> String {
    let local = server_addr(local);
    // JSON strings are YAML double-quoted scalars: names like `true` or
    // `1.2` stay strings.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let id = q(&format!("hoop-{name}"));
    let ns = namespace
        .map(|n| format!("    namespace: {}\n", q(n)))
        .unwrap_or_default();
    format!(
        "# Written by `hoop connect {name}`; rewritten at each connect. No credentials:\n\
         # the hoop agent adds the cluster's token to each request.\n\
         apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {id}\n\
         \x20 cluster:\n\
         \x20   server: {server}\n\
         users:\n\
         - name: {id}\n\
         \x20 user: {{}}\n\
         contexts:\n\
         - name: {ctx}\n\
         \x20 context:\n\
         \x20   cluster: {id}\n\
         \x20   user: {id}\n\
         {ns}\
         current-context: {ctx}\n",
        server = q(&format!("http://{local}")),
        ctx = q(name),
    )
}

/// Writes the kubeconfig of `name` (0600, its folder 0700) and returns
/// its path.
pub fn write(name: &str, local: SocketAddr, namespace: Option<&str>) -> anyhow::Result<PathBuf> {
    let path = path(name)?;
    write_at(&path, &render(name, local, namespace))?;
    Ok(path)
}

fn write_at(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().context("kubeconfig path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    // Write a fresh file and rename it over the old one, so a kubectl
    // reading it never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The line to paste into a shell: `export KUBECONFIG='...'`.
pub fn export_line(path: &Path) -> String {
    let p = path.display().to_string();
    if p.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+@%:".contains(&b))
    {
        format!("export KUBECONFIG={p}")
    } else {
        format!("export KUBECONFIG='{}'", p.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_kubeconfig_without_credentials() {
        let text = render("prod-k8s", "127.0.0.1:8002".parse().unwrap(), Some("apps"));
        assert!(text.contains("server: \"http://127.0.0.1:8002\""), "{text}");
        assert!(text.contains("current-context: \"prod-k8s\""), "{text}");
        assert!(text.contains("namespace: \"apps\""), "{text}");
        assert!(!text.contains("token:"), "{text}");
        let text = render("true", "127.0.0.1:1".parse().unwrap(), None);
        assert!(text.contains("current-context: \"true\""), "{text}");
        assert!(!text.contains("namespace:"), "{text}");
        let text = render("k", "0.0.0.0:8002".parse().unwrap(), None);
        assert!(text.contains("server: \"http://127.0.0.1:8002\""), "{text}");
        let text = render("k", "[::]:8002".parse().unwrap(), None);
        assert!(text.contains("server: \"http://[::1]:8002\""), "{text}");
    }

    #[test]
    fn export_lines_are_quoted_when_needed() {
        assert_eq!(
            export_line(Path::new("/home/a/.config/hoop/kube/k.kubeconfig")),
            "export KUBECONFIG=/home/a/.config/hoop/kube/k.kubeconfig"
        );
        assert_eq!(
            export_line(Path::new("/tmp/it's here/k")),
            "export KUBECONFIG='/tmp/it'\\''s here/k'"
        );
    }
}

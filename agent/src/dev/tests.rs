use clap::Parser;

use super::*;

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: DevArgs,
}

fn args(argv: &[&str]) -> Result<DevArgs, clap::Error> {
    Wrap::try_parse_from(std::iter::once("dev").chain(argv.iter().copied())).map(|w| w.args)
}

#[test]
fn defaults_are_loopback_and_dev() {
    let a = args(&[]).unwrap();
    assert_eq!(a.listen, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(a.idp_listen, "127.0.0.1:0".parse().unwrap());
    assert_eq!(a.user, "dev@example.com");
    assert_eq!(a.groups, vec!["dev"]);
    assert_eq!(a.token_ttl, 600);
    assert_eq!(a.device_interval, 5);
    assert!(a.data_dir.is_none() && !a.allow_non_loopback && a.tcp.is_empty());
    check_listen(&a).unwrap();

    let a = args(&[
        "--groups",
        "a,b",
        "--groups",
        "c",
        "--tcp",
        "db=localhost:5432",
    ])
    .unwrap();
    assert_eq!(a.groups, vec!["a", "b", "c"]);
    assert_eq!(
        a.tcp,
        vec![Named {
            name: "db".into(),
            address: "localhost:5432".into()
        }]
    );
    assert!(args(&["--tcp", "db"]).is_err());
    assert!(args(&["--tcp", "db=localhost"]).is_err());
    assert!(args(&["--token-ttl", "0"]).is_err());
}

#[test]
fn non_loopback_needs_the_flag() {
    for argv in [
        &["--listen", "0.0.0.0:0"][..],
        &["--idp-listen", "0.0.0.0:0"],
        &["--listen", "[::]:8443"],
        &["--listen", "192.0.2.1:8443"],
    ] {
        let err = check_listen(&args(argv).unwrap()).unwrap_err().to_string();
        assert!(
            err.contains("not a loopback address") && err.contains("--allow-non-loopback"),
            "{err}"
        );
    }
    check_listen(&args(&["--listen", "0.0.0.0:0", "--allow-non-loopback"]).unwrap()).unwrap();
    check_listen(&args(&["--listen", "[::1]:0"]).unwrap()).unwrap();
    // The provider's plain-http issuer must be reachable on loopback.
    let err =
        check_listen(&args(&["--idp-listen", "192.0.2.1:0", "--allow-non-loopback"]).unwrap())
            .unwrap_err()
            .to_string();
    assert!(err.contains("plain http"), "{err}");
}

#[test]
fn config_trusts_the_provider_and_opens_connections_to_the_groups() {
    let a = args(&["--tcp", "echo=127.0.0.1:7", "--tcp", "db=[::1]:5432"]).unwrap();
    let cfg = agent_config(&a, Path::new("/tmp/x"), "http://127.0.0.1:5556").unwrap();
    assert_eq!(cfg.data_dir, Path::new("/tmp/x"));
    assert_eq!(cfg.issuers.len(), 1);
    assert_eq!(cfg.issuers[0].url, "http://127.0.0.1:5556");
    assert_eq!(cfg.issuers[0].audience, "hoop");
    assert_eq!(cfg.issuers[0].client_id, "hoop-cli");
    assert_eq!(cfg.connections.len(), 2);
    assert_eq!(cfg.connections[1].address, "[::1]:5432");
    assert!(cfg.connections.iter().all(|c| c.allow_groups == ["dev"]));
    assert!(cfg.warnings().is_empty());

    let a = args(&["--tcp", "Bad Name=127.0.0.1:7", "--tcp", "ok=127.0.0.1:8"]).unwrap();
    let err = agent_config(&a, Path::new("/x"), "http://127.0.0.1:1")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--tcp Bad Name=127.0.0.1:7: name:"),
        "{err}"
    );
    let a = args(&["--tcp", "a=127.0.0.1:7", "--tcp", "a=127.0.0.1:8"]).unwrap();
    let err = agent_config(&a, Path::new("/x"), "http://127.0.0.1:1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("--tcp a=127.0.0.1:8: name:"), "{err}");
    let a = args(&["--user", " ", "--groups", ""]).unwrap();
    let err = agent_config(&a, Path::new("/x"), "http://127.0.0.1:1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("--user") && err.contains("--groups"), "{err}");
}

#[test]
fn wildcard_listen_is_dialled_on_loopback() {
    assert_eq!(
        dialable("0.0.0.0:8443".parse().unwrap()),
        "127.0.0.1:8443".parse().unwrap()
    );
    assert_eq!(
        dialable("[::]:1".parse().unwrap()),
        "[::1]:1".parse().unwrap()
    );
    assert_eq!(
        dialable("127.0.0.1:9".parse().unwrap()),
        "127.0.0.1:9".parse().unwrap()
    );
}

#[test]
fn throwaway_data_dir_is_removed_and_kept_one_reused() {
    let d = DataDir::new(None).unwrap();
    let path = d.path.clone();
    let fp = ensure_identity(&path, &[]).unwrap();
    assert!(fp.starts_with("SHA256:"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    // A second start on the same dir keeps the CA users already trust.
    assert_eq!(ensure_identity(&path, &[]).unwrap(), fp);
    drop(d);
    assert!(!path.exists());

    let kept = std::env::temp_dir().join(format!("hoop-dev-kept-{}", std::process::id()));
    drop(DataDir::new(Some(kept.clone())).unwrap());
    assert!(kept.exists());
    let _ = std::fs::remove_dir_all(&kept);
}

#[test]
fn ready_text_is_machine_readable() {
    let a = args(&["--tcp", "echo=127.0.0.1:7", "--groups", "dev,ops"]).unwrap();
    let ready = Ready {
        args: &a,
        fingerprint: "SHA256:ab",
        issuer: "http://127.0.0.1:5556",
        ci_secret: "s3cret",
        data_dir: Path::new("/tmp/d"),
        throwaway: true,
    };
    let text = ready.text("127.0.0.1:8443".parse().unwrap());
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| !k.contains(' '))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [
            "agent",
            "fingerprint",
            "idp",
            "user",
            "client-credentials",
            "connection",
            "data-dir",
            "ready"
        ]
    );
    for line in [
        "agent: 127.0.0.1:8443",
        "fingerprint: SHA256:ab",
        "idp: http://127.0.0.1:5556",
        "user: dev@example.com groups=dev,ops",
        "client-credentials: hoop-ci s3cret",
        "connection: echo tcp 127.0.0.1:7",
        "data-dir: /tmp/d (throwaway, removed on exit)",
        "  hoop login --agent 127.0.0.1:8443 --fingerprint SHA256:ab",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }
    assert!(text.contains("DEVELOPMENT MODE"), "{text}");
    assert!(text.lines().last().unwrap().starts_with("ready:"));
    // A wildcard bind is told as loopback, with the real bind beside it.
    let text = ready.text("0.0.0.0:9".parse().unwrap());
    assert!(text.contains("agent: 127.0.0.1:9\n"), "{text}");
    assert!(
        text.contains("(the agent listens on UDP 0.0.0.0:9)"),
        "{text}"
    );
}

#[test]
fn mask_turns_on_the_demo_profile_for_a_postgres_connection() {
    let a = args(&[
        "--postgres",
        "raw=postgres://app:pw@127.0.0.1:5432/app",
        "--postgres",
        "demo=postgres://app:pw@127.0.0.1:5432/app",
        "--mask",
        "demo",
    ])
    .unwrap();
    let cfg = agent_config(&a, Path::new("/tmp/x"), "http://127.0.0.1:1").unwrap();
    let demo = cfg.connection("demo").unwrap();
    assert!(demo.mask.is_enabled());
    assert_eq!(demo.mask.columns.len(), 3);
    assert!(!cfg.connection("raw").unwrap().mask.is_enabled());
    // The demo profile is a valid masking configuration.
    crate::mask::Masker::new(&demo.mask, [0; 32]).unwrap();

    let a = args(&["--tcp", "echo=127.0.0.1:7", "--mask", "echo"]).unwrap();
    let err = agent_config(&a, Path::new("/tmp/x"), "http://127.0.0.1:1")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--mask echo: no --postgres, --mysql or --http connection"),
        "{err}"
    );
}

#[test]
fn mysql_urls_become_mysql_connections() {
    let a = args(&[
        "--mysql",
        "shop=mysql://app:p%40ss@127.0.0.1/shopdb",
        "--mask",
        "shop",
    ])
    .unwrap();
    assert_eq!(a.mysql[0].address, "127.0.0.1:3306");
    assert_eq!(a.mysql[0].password, "p@ss");
    assert!(!format!("{:?}", a.mysql[0]).contains("p@ss"));
    let cfg = agent_config(&a, Path::new("/tmp/x"), "http://127.0.0.1:1").unwrap();
    let shop = cfg.connection("shop").unwrap();
    assert_eq!(shop.kind, crate::config::ConnectionKind::Mysql);
    assert_eq!(shop.database.as_deref(), Some("shopdb"));
    assert!(shop.mask.is_enabled());
    assert!(args(&["--mysql", "shop=postgres://a:b@h/d"]).is_err());
}

#[test]
fn http_urls_become_http_connections() {
    let a = args(&[
        "--http",
        "api=http://127.0.0.1:8000/v1",
        "--http",
        "ext=https://api.example.com",
        "--mask",
        "api",
    ])
    .unwrap();
    assert_eq!(a.http[0].address, "127.0.0.1:8000");
    assert_eq!(a.http[1].address, "api.example.com:443");
    let cfg = agent_config(&a, Path::new("/tmp/x"), "http://127.0.0.1:1").unwrap();
    let api = cfg.connection("api").unwrap();
    assert_eq!(api.kind, crate::config::ConnectionKind::Http);
    assert_eq!(api.url.as_deref(), Some("http://127.0.0.1:8000/v1"));
    assert_eq!(api.allow_groups, vec!["dev"]);
    assert!(api.mask.is_enabled());
    assert!(!cfg.connection("ext").unwrap().mask.is_enabled());
    for bad in [
        "api",
        "api=ftp://x",
        "api=http://user:pw@x",
        "api=127.0.0.1:80",
    ] {
        assert!(args(&["--http", bad]).is_err(), "{bad}");
    }
    let ready = Ready {
        args: &a,
        fingerprint: "SHA256:ab",
        issuer: "http://127.0.0.1:5556",
        ci_secret: "s",
        data_dir: Path::new("/tmp/d"),
        throwaway: true,
    };
    let text = ready.text("127.0.0.1:8443".parse().unwrap());
    for line in [
        "connection: api http http://127.0.0.1:8000/v1 (responses masked)",
        "connection: ext http https://api.example.com",
        "  hoop connect api",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }
}

#[test]
fn ssh_targets_become_ssh_connections_with_the_key() {
    let a = args(&[
        "--ssh",
        "web=deploy@10.0.0.5:2200",
        "--ssh",
        "db=root@db.internal",
        "--ssh-key",
        "/keys/agent_ed25519",
    ])
    .unwrap();
    assert_eq!(
        a.ssh[1],
        SshTarget {
            name: "db".into(),
            user: "root".into(),
            address: "db.internal:22".into()
        }
    );
    let cfg = agent_config(&a, Path::new("/tmp/d"), "http://127.0.0.1:1").unwrap();
    let web = cfg.connection("web").unwrap();
    assert_eq!(web.kind, crate::config::ConnectionKind::Ssh);
    assert_eq!(web.address, "10.0.0.5:2200");
    assert_eq!(web.user.as_deref(), Some("deploy"));
    assert!(web.trust_first_use);
    assert_eq!(
        web.private_key,
        Some(crate::config::SecretRef::File {
            file: "/keys/agent_ed25519".into()
        })
    );
    assert!(parse_ssh("web=10.0.0.5:22").is_err());

    let no_key = args(&["--ssh", "web=deploy@10.0.0.5:22"]).unwrap();
    let e = agent_config(&no_key, Path::new("/tmp/d"), "http://127.0.0.1:1").unwrap_err();
    assert!(e.to_string().contains("--ssh-key"), "{e}");
}

#[test]
fn kubernetes_urls_become_kubernetes_connections_with_the_token() {
    let a = args(&[
        "--kubernetes",
        "k8s=https://10.0.0.1:6443",
        "--kube-token-file",
        "/run/token",
        "--kube-ca",
        "/run/ca.pem",
    ])
    .unwrap();
    let cfg = agent_config(&a, Path::new("/tmp/d"), "http://127.0.0.1:1").unwrap();
    let k = cfg.connection("k8s").unwrap();
    assert_eq!(k.kind, crate::config::ConnectionKind::Kubernetes);
    assert_eq!(k.address, "10.0.0.1:6443");
    assert_eq!(
        k.token,
        Some(crate::config::SecretRef::File {
            file: "/run/token".into()
        })
    );
    assert_eq!(k.ca.as_deref(), Some(Path::new("/run/ca.pem")));

    let no_token = args(&["--kubernetes", "k8s=https://10.0.0.1:6443"]).unwrap();
    let e = agent_config(&no_token, Path::new("/tmp/d"), "http://127.0.0.1:1").unwrap_err();
    assert!(e.to_string().contains("--kube-token-file"), "{e}");
    let stray = args(&["--kube-ca", "/run/ca.pem"]).unwrap();
    let e = agent_config(&stray, Path::new("/tmp/d"), "http://127.0.0.1:1").unwrap_err();
    assert!(e.to_string().contains("--kube-ca"), "{e}");
    // A problem with the connection names the flag it came from, after
    // the connections of the other kinds.
    let cleartext = args(&[
        "--tcp",
        "echo=127.0.0.1:7",
        "--kubernetes",
        "k8s=http://10.0.0.1:8080",
        "--kube-token-file",
        "/run/token",
    ])
    .unwrap();
    let e = agent_config(&cleartext, Path::new("/tmp/d"), "http://127.0.0.1:1")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--kubernetes k8s=http://10.0.0.1:8080: url:"),
        "{e}"
    );
}

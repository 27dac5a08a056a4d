//! The `hoop-agent` subcommands, as library functions so tests can drive
//! them in-process.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::audit::{self, AuditLog, Event};
use crate::config::{AgentConfig, split_host_port};
use crate::identity;
use crate::mask::Masker;
use crate::server::{self, Shared};
use crate::token::Verifier;

/// `hoop-agent init`.
pub fn init(data_dir: &Path, sans: &[String], force: bool) -> anyhow::Result<()> {
    let made = identity::init(data_dir, sans, force)?;
    let host = sans.first().map_or("127.0.0.1", String::as_str);
    println!("Agent identity written to {}", made.paths.dir.display());
    println!("  certificate names: {}", made.sans.join(", "));
    println!("  CA fingerprint:    {}", made.fingerprint);
    println!();
    println!("On each machine that will use this agent, run:");
    println!(
        "  hoop trust {host}:{} --fingerprint {}",
        crate::config::DEFAULT_LISTEN
            .rsplit(':')
            .next()
            .unwrap_or("8443"),
        made.fingerprint
    );
    println!("(use the agent's real address and UDP port if they differ)");
    Ok(())
}

/// `hoop-agent fingerprint`.
pub fn fingerprint(data_dir: &Path) -> anyhow::Result<()> {
    println!("{}", identity::fingerprint(data_dir)?);
    Ok(())
}

/// `hoop-agent audit verify`.
pub fn audit_verify(data_dir: &Path) -> anyhow::Result<()> {
    let path = audit::log_path(data_dir);
    if !path.exists() {
        bail!(
            "no audit log at {}; is --data-dir the agent's data_dir?",
            path.display()
        );
    }
    let report = audit::verify(&path)?;
    println!(
        "{}: {} events, chain intact; head {}",
        path.display(),
        report.lines,
        report.head
    );
    Ok(())
}

/// `hoop-agent check`: validates the config and probes what it points at.
/// Returns an error when anything is wrong, after reporting everything.
pub async fn check(config: &Path) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(config)?;
    println!("{}: configuration is valid", config.display());
    for w in cfg.warnings() {
        println!("warning: {w}");
    }
    let mut failures = 0;
    match identity::load(&cfg.data_dir) {
        Ok(id) => println!("ok    identity: CA fingerprint {}", id.fingerprint),
        Err(e) => {
            failures += 1;
            println!("FAIL  identity: {e}");
        }
    }
    let verifier = Verifier::new(&cfg.issuers)?;
    for (url, result) in verifier.warm_up().await {
        match result {
            Ok(n) => println!("ok    issuer {url}: {n} signing key(s)"),
            Err(e) => {
                failures += 1;
                println!("FAIL  issuer {url}: {e}");
            }
        }
    }
    for c in &cfg.connections {
        let probe = async {
            let (host, port) = split_host_port(&c.address).map_err(std::io::Error::other)?;
            tokio::net::TcpStream::connect((host, port)).await
        };
        match tokio::time::timeout(Duration::from_secs(3), probe).await {
            Ok(Ok(_)) => println!(
                "ok    connection {} ({}): {} answers",
                c.name, c.kind, c.address
            ),
            Ok(Err(e)) => {
                failures += 1;
                println!(
                    "FAIL  connection {} ({}): {}: {e}",
                    c.name, c.kind, c.address
                );
            }
            Err(_) => {
                failures += 1;
                println!(
                    "FAIL  connection {} ({}): {} did not answer within 3s",
                    c.name, c.kind, c.address
                );
            }
        }
    }
    if failures > 0 {
        bail!("{failures} check(s) failed");
    }
    Ok(())
}

/// `hoop-agent run`: serves until SIGINT or SIGTERM.
pub async fn run(config: &Path) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(config)?;
    serve(cfg, shutdown_signal()).await
}

/// Serves a validated configuration until `shutdown` completes. The TLS
/// identity is loaded from `cfg.data_dir`.
pub async fn serve(
    cfg: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with(cfg, shutdown, |_| {}).await
}

/// Like [`serve`], calling `on_listen` with the bound UDP address once the
/// agent listens (the real port when `listen` asked for port 0).
pub async fn serve_with(
    cfg: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
    on_listen: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    for w in cfg.warnings() {
        tracing::warn!("{w}");
    }
    let tls = identity::load(&cfg.data_dir)?;
    let maskers = build_maskers(&cfg)?;
    let (endpoint, sizes) = server::bind(cfg.listen, &tls)
        .with_context(|| format!("cannot listen on UDP {}", cfg.listen))?;
    if sizes.capped() {
        tracing::warn!(
            recv = sizes.recv,
            send = sizes.send,
            "the kernel capped the UDP buffers; bulk throughput will suffer. Raise the cap with: {}",
            hoop_tunnel::transport::SYSCTL_HINT
        );
    }
    let (audit_log, audit_thread) = AuditLog::open(&cfg.data_dir)?;
    let verifier = Verifier::new(&cfg.issuers)?;
    let listen = endpoint.local_addr()?;
    audit_log.record(Event::AgentStart {
        version: env!("CARGO_PKG_VERSION").into(),
        listen: listen.to_string(),
    });
    tracing::info!(
        %listen,
        fingerprint = %tls.fingerprint,
        connections = cfg.connections.len(),
        "hoop-agent listening (UDP)"
    );
    on_listen(listen);
    let warm = verifier.clone();
    tokio::spawn(async move {
        for (url, result) in warm.warm_up().await {
            match result {
                Ok(n) => tracing::info!(issuer = %url, keys = n, "issuer keys loaded"),
                Err(e) => {
                    tracing::warn!(issuer = %url, error = %e, "cannot load issuer keys yet; will retry when a token arrives")
                }
            }
        }
    });
    let shared = Arc::new(Shared::new(cfg, verifier, audit_log.clone()).with_maskers(maskers));
    server::serve(endpoint, shared, shutdown).await;
    drop(audit_log);
    tracing::info!("hoop-agent stopped");
    let _ = tokio::task::spawn_blocking(move || audit_thread.join()).await;
    Ok(())
}

/// One compiled masking engine per connection that masks anything, with
/// the agent's masking key (made on first use).
fn build_maskers(cfg: &AgentConfig) -> anyhow::Result<HashMap<String, Arc<Masker>>> {
    let masked: Vec<_> = cfg
        .connections
        .iter()
        .filter(|c| c.mask.is_enabled())
        .collect();
    if masked.is_empty() {
        return Ok(HashMap::new());
    }
    let key = identity::mask_key(&cfg.data_dir)?;
    masked
        .into_iter()
        .map(|c| {
            let m = Masker::new(&c.mask, key)
                .with_context(|| format!("connection {:?}: masking", c.name))?;
            Ok((c.name.clone(), Arc::new(m)))
        })
        .collect()
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so a signal sent as soon as
/// the agent says it listens stops it cleanly instead of killing it. Call it
/// inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async fn recv(s: Option<Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        async move {
            tokio::select! {
                () = recv(term) => {}
                () = recv(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

//! `kube-api`: runs the stand-in Kubernetes API server
//! ([`hoop_tests::kube_api`]) as a process, for the benchmark and manual
//! testing.
//!
//! Prints `URL=https://127.0.0.1:PORT`, `CA=<pem file>`, `TOKEN=<token>`
//! on stdout, then serves until SIGINT or SIGTERM. `GET /__stats` (no
//! token) answers `{"served": N, ...}`.

use std::io::Write as _;

use hoop_tests::kube_api::KubeApi;

const USAGE: &str = "usage: kube-api [--token TOKEN]

Starts the stand-in Kubernetes API server on 127.0.0.1 (random port), prints URL=, CA= and
TOKEN=, then serves until SIGINT or SIGTERM.

  --token TOKEN   the bearer token it requires [default: a random one]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut token = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--token" => token = args.next(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let token = match token {
        Some(t) => t,
        None => {
            let mut b = [0u8; 16];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| anyhow::anyhow!("no randomness"))?;
            hex::encode(b)
        }
    };
    let api = KubeApi::start(&token).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "URL={}", api.url())?;
    writeln!(out, "CA={}", api.ca_path.display())?;
    writeln!(out, "TOKEN={token}")?;
    out.flush()?;
    drop(out);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

//! `hoop-test-issuer`: runs the in-process test OpenID Connect issuer as a process.
//!
//! Prints `ISSUER=<url>` and `TOKEN=<jwt>` on stdout, then serves discovery and JWKS until
//! SIGINT or SIGTERM. For benchmark scripts and manual testing.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use hoop_tests::issuer::TestIssuer;

const USAGE: &str =
    "usage: hoop-test-issuer [--user EMAIL] [--groups G1,G2] [--audience AUD] [--ttl-secs N]

Starts an OpenID Connect issuer on 127.0.0.1 (random port), prints ISSUER=<url> and
TOKEN=<jwt>, then serves until SIGINT or SIGTERM.

  --user EMAIL      sub and email of the token [default: bench@example.com]
  --groups LIST     comma-separated groups claim, may be empty [default: eng]
  --audience AUD    aud claim [default: hoop]
  --ttl-secs N      seconds until the token expires [default: 86400]";

/// The token to print.
struct Args {
    user: String,
    groups: Vec<String>,
    audience: String,
    ttl_secs: u64,
}

/// Parses `--flag value` and `--flag=value`; `None` means `--help` was asked for.
fn parse_args(mut argv: impl Iterator<Item = String>) -> anyhow::Result<Option<Args>> {
    let mut args = Args {
        user: "bench@example.com".into(),
        groups: vec!["eng".into()],
        audience: "hoop".into(),
        ttl_secs: 86_400,
    };
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--user" | "--groups" | "--audience" | "--ttl-secs" => {}
            _ => bail!("unknown argument {flag}\n\n{USAGE}"),
        }
        let value = match inline {
            Some(value) => value,
            None => argv
                .next()
                .with_context(|| format!("{flag} needs a value"))?,
        };
        match flag.as_str() {
            "--user" => args.user = value,
            "--groups" => {
                let groups = value.split(',').filter(|g| !g.is_empty());
                args.groups = groups.map(str::to_owned).collect();
            }
            "--audience" => args.audience = value,
            _ => {
                args.ttl_secs = value
                    .parse()
                    .with_context(|| format!("--ttl-secs {value:?}"))?
            }
        }
    }
    Ok(Some(args))
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("listen for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("listen for ctrl-c")?;
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let Some(args) = parse_args(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let mut issuer = TestIssuer::start().await?;
    let groups: Vec<&str> = args.groups.iter().map(String::as_str).collect();
    let token = issuer.token_for(&args.user, &groups, &args.audience, args.ttl_secs)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ISSUER={}", issuer.url())?;
    writeln!(stdout, "TOKEN={token}")?;
    stdout.flush()?;
    drop(stdout);
    shutdown_signal().await?;
    issuer.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("hoop-test-issuer: {err:#}");
        std::process::exit(1);
    }
}

//! `hoop`: argument parsing and error reporting; the work is in the modules.

mod args;
mod client;
mod connect;
mod exec;
mod exec_mysql;
mod kubeconfig;
mod login;
mod oidc;
mod replay;
mod session;
mod settings;
mod ssh;
mod store;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use args::{Cli, Cmd, Output};
use client::AgentClient;
use settings::{AgentArgs, SavedAgent, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // One thread: a client relays a handful of connections, and every
    // hand-off between worker threads costs latency on each round trip
    // (measured: p50 round trip 90 us against 104-128 us with two workers).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hoop: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            // Quietly stop when the reader of our output went away.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("hoop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn agent_args(cli_agent: &args::AgentOpts) -> AgentArgs {
    AgentArgs {
        address: cli_agent.agent.clone(),
        fingerprint: cli_agent.fingerprint.clone(),
        ca: cli_agent.ca.clone(),
    }
}

fn client(cli_agent: &args::AgentOpts) -> anyhow::Result<AgentClient> {
    let dir = settings::config_dir()?;
    let saved = Settings::load(&dir)?;
    let target = agent_args(cli_agent).resolve(&saved)?;
    let tokens = session::TokenSource::for_agent(&dir, &target.address)?.map(Arc::new);
    Ok(AgentClient::new(target, tokens)?)
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Login {
            device,
            client_credentials,
            client_id,
            client_secret,
            no_browser,
            redirect_port,
        } => {
            let dir = settings::config_dir()?;
            let saved = Settings::load(&dir)?;
            let args = agent_args(&cli.agent);
            let target = args.resolve(&saved)?;
            // Remember the agent when it was named on the command line or
            // in the environment; a saved one stays as it is.
            let save = args.address.as_ref().map(|address| SavedAgent {
                address: address.clone(),
                fingerprint: args.fingerprint.clone(),
                ca: args
                    .ca
                    .as_ref()
                    .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())),
            });
            login::login(
                target,
                save,
                login::LoginOpts {
                    device,
                    client_credentials,
                    client_id,
                    client_secret,
                    no_browser,
                    redirect_port,
                },
            )
            .await?;
        }
        Cmd::Logout => {
            let dir = settings::config_dir()?;
            let saved = Settings::load(&dir)?;
            let target = agent_args(&cli.agent).resolve(&saved)?;
            login::logout(&target.address).await?;
        }
        Cmd::Completions { shell } => {
            std::io::stdout().write_all(&args::completions(shell))?;
        }
        Cmd::Trust { address } => {
            let pin = settings::parse_pin(cli.agent.fingerprint.as_deref(), cli.agent.ca.as_deref())?
                .context("give the agent's pin: --fingerprint SHA256:<hex> (printed by `hoop-agent init`) or --ca FILE")?;
            let dir = settings::config_dir()?;
            let mut saved = Settings::load(&dir)?;
            let ca = cli
                .agent
                .ca
                .as_ref()
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
            let target = settings::Target {
                address: address.clone(),
                pin,
            };
            // Check the pin before saving it.
            let probe = AgentClient::new(target, None)?;
            let login = probe
                .discover()
                .await
                .with_context(|| format!("not saved: could not verify the agent at {address}"))?;
            saved.agent = Some(SavedAgent {
                address: address.clone(),
                fingerprint: cli.agent.fingerprint.clone(),
                ca,
            });
            let path = saved.save(&dir)?;
            println!(
                "Trusting the agent at {address} (identity verified; it signs people in with {}). Saved to {}",
                login.issuer,
                path.display()
            );
        }
        Cmd::Connections { output } => {
            let client = client(&cli.agent)?;
            let list = client.list_connections().await;
            client.shutdown().await;
            let list = list?;
            let mut out = std::io::stdout().lock();
            match output {
                Output::Json => write_json(&mut out, &list)?,
                Output::Table => {
                    if list.is_empty() {
                        writeln!(out, "You may not use any connection on this agent.")?;
                    } else {
                        let w = list.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
                        writeln!(out, "{:<w$}  {:<10}  PORT", "NAME", "TYPE")?;
                        for c in &list {
                            writeln!(out, "{:<w$}  {:<10}  {}", c.name, c.kind, c.default_port)?;
                        }
                    }
                }
            }
        }
        Cmd::Exec {
            name,
            input,
            file,
            stdin: _,
            database,
            output,
        } => {
            let sql = match (input, file) {
                (Some(sql), _) => sql,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                (None, None) => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                        .context("cannot read SQL from standard input")?;
                    s
                }
            };
            let client = Arc::new(client(&cli.agent)?);
            let result = exec::run(client.clone(), &name, database.as_deref(), &sql, output).await;
            client.shutdown().await;
            result?;
        }
        Cmd::Whoami { output } => {
            let client = client(&cli.agent)?;
            let id = client.identity().await;
            client.shutdown().await;
            let id = id?;
            let mut out = std::io::stdout().lock();
            match output {
                Output::Json => write_json(&mut out, &id)?,
                Output::Table => {
                    let expires = humantime_like(id.expires_at);
                    writeln!(out, "user:    {}", id.user)?;
                    writeln!(out, "groups:  {}", id.groups.join(", "))?;
                    writeln!(out, "issuer:  {}", id.issuer)?;
                    writeln!(out, "expires: {expires}")?;
                }
            }
        }
        Cmd::Connect {
            name,
            port,
            bind,
            command,
        } => {
            let client = Arc::new(client(&cli.agent)?);
            let code = connect::run(
                client.clone(),
                connect::ConnectOpts {
                    name,
                    port,
                    bind,
                    command,
                    ssh: None,
                },
            )
            .await;
            client.shutdown().await;
            return code;
        }
        Cmd::Sessions { output } => {
            let client = client(&cli.agent)?;
            let list = client.list_sessions().await;
            client.shutdown().await;
            let list = list?;
            let mut out = std::io::stdout().lock();
            match output {
                Output::Json => write_json(&mut out, &list)?,
                Output::Table => replay::table(&list, &mut out)?,
            }
        }
        Cmd::Replay {
            recording,
            speed,
            idle_limit,
        } => {
            let client = client(&cli.agent)?;
            let r = replay::run(&client, &recording, speed, idle_limit).await;
            client.shutdown().await;
            r?;
        }
        Cmd::Ssh { name, args } => {
            let client = Arc::new(client(&cli.agent)?);
            let code = connect::run(
                client.clone(),
                connect::ConnectOpts {
                    name,
                    port: Some(0),
                    bind: std::net::IpAddr::from([127, 0, 0, 1]),
                    command: Vec::new(),
                    ssh: Some(args),
                },
            )
            .await;
            client.shutdown().await;
            return code;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pretty JSON and a final newline, for `-o json`.
fn write_json(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

fn humantime_like(unix: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let when = humantime::format_rfc3339_seconds(at);
    match at.duration_since(std::time::SystemTime::now()) {
        Ok(left) => format!(
            "{when} (in {})",
            humantime::format_duration(std::time::Duration::from_secs(left.as_secs()))
        ),
        Err(_) => format!("{when} (expired)"),
    }
}

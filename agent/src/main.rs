//! `hoop-agent`: argument parsing only; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "hoop-agent", version, about = "The hoop gateway daemon")]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "HOOP_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make the agent's CA and certificate in DIR.
    Init {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// DNS name or IP address clients use to reach the agent (repeatable).
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
        /// Replace an existing identity (clients must trust the new fingerprint).
        #[arg(long)]
        force: bool,
    },
    /// Serve tunnels.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a config and probe its issuers and backends.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print the CA fingerprint clients pin.
    Fingerprint {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Run a DEVELOPMENT agent with a built-in identity provider that signs
    /// everyone in as a dev user. Never use it in production.
    Dev(Box<hoop_agent::dev::DevArgs>),
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check the hash chain of the audit log and name the first bad line.
    Verify {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.cmd {
        Cmd::Init {
            data_dir,
            sans,
            force,
        } => hoop_agent::cmd::init(&data_dir, &sans, force),
        Cmd::Fingerprint { data_dir } => hoop_agent::cmd::fingerprint(&data_dir),
        Cmd::Audit {
            cmd: AuditCmd::Verify { data_dir },
        } => hoop_agent::cmd::audit_verify(&data_dir),
        Cmd::Run { config } => block_on(hoop_agent::cmd::run(&config)),
        Cmd::Check { config } => block_on(hoop_agent::cmd::check(&config)),
        Cmd::Dev(args) => block_on(hoop_agent::dev::run(*args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hoop-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}

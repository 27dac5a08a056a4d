//! Command-line arguments of `hoop`, kept apart from `main` so completions
//! can be generated (and checked) from the same definition.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "hoop",
    version,
    about = "Reach databases, hosts and clusters through hoop-agent",
    after_help = "Environment: HOOP_AGENT, HOOP_AGENT_FINGERPRINT, HOOP_AGENT_CA, HOOP_TOKEN, HOOP_CONFIG_DIR"
)]
pub struct Cli {
    #[command(flatten)]
    pub agent: AgentOpts,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Which agent to talk to and how to trust it.
#[derive(Args, Debug, Clone)]
pub struct AgentOpts {
    /// Agent address, HOST:PORT (UDP).
    #[arg(long, global = true, env = "HOOP_AGENT", value_name = "HOST:PORT")]
    pub agent: Option<String>,
    /// SHA-256 fingerprint of the agent's CA, as `hoop-agent init` printed it.
    #[arg(
        long,
        global = true,
        env = "HOOP_AGENT_FINGERPRINT",
        value_name = "SHA256:HEX",
        conflicts_with = "ca"
    )]
    pub fingerprint: Option<String>,
    /// The agent's CA certificate (PEM), instead of a fingerprint.
    #[arg(long, global = true, env = "HOOP_AGENT_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Sign in with the agent's identity provider (browser, device code or
    /// client credentials) and remember the agent.
    Login {
        /// Use the device code flow (for machines without a browser).
        #[arg(long, conflicts_with = "client_credentials")]
        device: bool,
        /// Sign in as a service account (client id and secret).
        #[arg(long)]
        client_credentials: bool,
        /// Service account client id [env: HOOP_CLIENT_ID].
        #[arg(long, requires = "client_credentials")]
        client_id: Option<String>,
        /// Service account secret; prefer HOOP_CLIENT_SECRET, which stays out of `ps`.
        #[arg(long, requires = "client_credentials")]
        client_secret: Option<String>,
        /// Print the sign-in URL instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
        /// Fixed local port for the sign-in redirect (default: a free one).
        #[arg(long, value_name = "PORT")]
        redirect_port: Option<u16>,
    },
    /// Forget your tokens for the agent and revoke the refresh token.
    Logout,
    /// Remember an agent and its pin for later commands.
    Trust {
        /// Agent address, HOST:PORT (UDP).
        address: String,
    },
    /// List the connections you may open.
    Connections {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Open a local port that leads to a connection.
    Connect {
        /// Connection name.
        name: String,
        /// Local port (default by type: postgres 5433, mysql 3307, ssh 2222,
        /// http and kubernetes 8081, tcp 8999; 0 for a free one).
        #[arg(short, long)]
        port: Option<u16>,
        /// Local address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        /// Command to run once the port is ready; hoop exits with its status.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Open a shell (or run a command) on an ssh connection with your own
    /// `ssh`, checking the agent's host key from hoop's known-hosts file.
    Ssh {
        /// Connection name.
        name: String,
        /// ssh options, then the remote command, e.g. `-- -v uname -a`.
        #[arg(last = true, value_name = "SSH_ARGS")]
        args: Vec<String>,
    },
    /// List recorded ssh sessions: your own, or everyone's for a member
    /// of the agent's auditor group.
    Sessions {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Play a recorded ssh session back in the terminal.
    Replay {
        /// Recording name (from `hoop sessions`) or session id.
        recording: String,
        /// Playback speed: 2 plays twice as fast.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Longest pause kept, in seconds (before --speed applies).
        #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
        idle_limit: f64,
    },
    /// Run SQL on a database connection through the agent and print the
    /// results (audited and guarded like any client).
    #[command(group(clap::ArgGroup::new("source").required(true).args(["input", "file", "stdin"])))]
    Exec {
        /// Connection name.
        name: String,
        /// The SQL to run (several statements may be separated by `;`).
        #[arg(short = 'i', long = "input", value_name = "SQL")]
        input: Option<String>,
        /// Read the SQL from FILE.
        #[arg(short = 'f', long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Read the SQL from standard input.
        #[arg(value_name = "-", value_parser = clap::builder::PossibleValuesParser::new(["-"]))]
        stdin: Option<String>,
        /// Database, when the connection offers more than one.
        #[arg(short = 'd', long)]
        database: Option<String>,
        /// Output format: an aligned table, JSON lines, or CSV.
        #[arg(short, long, value_enum, default_value = "table")]
        output: ExecOutput,
    },
    /// Show who the agent says you are.
    Whoami {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Write shell completions to standard output.
    Completions { shell: clap_complete::Shell },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ExecOutput {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// Completions for `shell`, as text.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "hoop", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// File name under `completions/` for each shell we ship.
    const SHIPPED: [(clap_complete::Shell, &str); 3] = [
        (clap_complete::Shell::Bash, "hoop.bash"),
        (clap_complete::Shell::Zsh, "_hoop"),
        (clap_complete::Shell::Fish, "hoop.fish"),
    ];

    #[test]
    fn args_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Regenerate with: `for s in bash zsh fish; do hoop completions $s; done`
    /// (or `HOOP_UPDATE_COMPLETIONS=1 cargo test -p hoop-cli`).
    #[test]
    fn shipped_completions_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../completions");
        let update = std::env::var_os("HOOP_UPDATE_COMPLETIONS").is_some();
        for (shell, file) in SHIPPED {
            let path = dir.join(file);
            let fresh = completions(shell);
            if update {
                std::fs::write(&path, &fresh).unwrap();
                continue;
            }
            let shipped = std::fs::read(&path).unwrap_or_default();
            assert!(
                shipped == fresh,
                "{} is stale; run HOOP_UPDATE_COMPLETIONS=1 cargo test -p hoop-cli and commit it",
                path.display()
            );
        }
    }
}

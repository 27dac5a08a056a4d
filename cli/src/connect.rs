//! `hoop connect NAME`: a local TCP listener whose every connection becomes
//! a stream through the tunnel. With `-- CMD`, runs CMD once the port is
//! ready and exits with its status.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use hoop_proto::tunnel::{ConnectionInfo, ErrorCode};
use tokio::net::{TcpListener, TcpStream};

use crate::client::AgentClient;

/// Options of `hoop connect`.
pub struct ConnectOpts {
    pub name: String,
    pub port: Option<u16>,
    pub bind: IpAddr,
    pub command: Vec<String>,
    /// `hoop ssh`: run `ssh` with these arguments (ssh options, then the
    /// remote command) against the local port.
    pub ssh: Option<Vec<String>>,
}

/// Finds the connection among those the caller may use; when it is not
/// there, asks the agent why (unknown or forbidden) for a precise message.
async fn describe(client: &AgentClient, name: &str) -> anyhow::Result<ConnectionInfo> {
    let list = client.list_connections().await?;
    if let Some(info) = list.into_iter().find(|c| c.name == name) {
        return Ok(info);
    }
    match client.open(name, None).await {
        Err(e) => Err(e.into()),
        Ok((mut send, _recv, _)) => {
            let _ = send.reset(0u32.into());
            bail!("the agent did not list {name:?} as a connection you may use")
        }
    }
}

/// Runs `hoop connect`.
pub async fn run(client: Arc<AgentClient>, opts: ConnectOpts) -> anyhow::Result<ExitCode> {
    let info = describe(&client, &opts.name).await?;
    let port = opts.port.unwrap_or(info.default_port);
    let listener = TcpListener::bind((opts.bind, port)).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "port {port} on {} is in use; pick another with -p PORT (or -p 0 for a free one)",
                opts.bind
            )
        } else {
            anyhow::anyhow!("cannot listen on {}:{port}: {e}", opts.bind)
        }
    })?;
    let local = listener.local_addr()?;
    let known_hosts = ssh_known_hosts(&info)?;
    let kubeconfig = (info.kind == "kubernetes")
        .then(|| crate::kubeconfig::write(&info.name, local, info.namespace.as_deref()))
        .transpose()?;
    let line = match (&known_hosts, &kubeconfig) {
        (Some(k), _) => format!(
            "{} (ssh) is ready on {local}; connect with: {}   (Ctrl-C to stop)",
            info.name,
            crate::ssh::command_line(&info.name, local, Some(k))
        ),
        (None, Some(k)) => format!(
            "{} (kubernetes) is ready on {local}; point kubectl at it with: {}   (Ctrl-C to stop)",
            info.name,
            crate::kubeconfig::export_line(k)
        ),
        (None, None) => ready_line(&info, crate::kubeconfig::server_addr(local)),
    };
    if matches!(info.kind.as_str(), "http" | "kubernetes") && !local.ip().is_loopback() {
        // The agent takes requests only for localhost (a page re-binding
        // its name must not reach the credentials it adds).
        eprintln!(
            "hoop: note: {} connections answer requests only for localhost, 127.0.0.1 or [::1]; \
             other machines reaching {local} will be refused",
            info.kind
        );
    }
    let mut opts = opts;
    // `hoop ssh` runs ssh at once: the ready line would only be noise.
    let quiet = opts.ssh.is_some();
    if let Some(args) = opts.ssh.take() {
        let Some(k) = &known_hosts else {
            bail!(
                "{:?} is a {} connection, or the agent did not send its SSH host key; `hoop ssh` needs an ssh connection",
                info.name,
                info.kind
            );
        };
        let (ssh_opts, remote) = crate::ssh::split_args(&args);
        opts.command = std::iter::once("ssh".to_string())
            .chain(crate::ssh::options(&info.name, local, k))
            .chain(ssh_opts)
            .chain(std::iter::once(local.ip().to_string()))
            .chain(remote)
            .collect();
    }
    if opts.command.is_empty() {
        println!("{line}");
    } else if !quiet {
        eprintln!("{line}");
    }

    let name: Arc<str> = Arc::from(opts.name.as_str());
    let warned = Arc::new(AtomicBool::new(false));
    let refresher = tokio::spawn(keep_fresh(client.clone()));
    let accept = tokio::spawn(accept_loop(listener, client, name, warned));

    let code = if opts.command.is_empty() {
        wait_for_signal().await;
        ExitCode::SUCCESS
    } else {
        run_command(&opts.command, &info, local, kubeconfig.as_deref()).await?
    };
    accept.abort();
    refresher.abort();
    Ok(code)
}

/// For an `ssh` connection whose agent sent its host key: writes the key
/// to the managed known-hosts file and returns the file's path.
fn ssh_known_hosts(info: &ConnectionInfo) -> anyhow::Result<Option<std::path::PathBuf>> {
    match (&info.ssh_host_key, info.kind.as_str()) {
        (Some(key), "ssh") => {
            let path = crate::ssh::known_hosts_path()?;
            crate::ssh::remember_host_key(&path, &info.name, key)?;
            Ok(Some(path))
        }
        _ => Ok(None),
    }
}

/// Renews the token a minute before it expires and hands the new one to
/// the agent, so open connections outlive any single access token.
async fn keep_fresh(client: Arc<AgentClient>) {
    let Some(source) = client.tokens().cloned() else {
        return;
    };
    if !source.refreshable() {
        return;
    }
    let mut warned = false;
    loop {
        let Some(exp) = source.expires_at().await else {
            return;
        };
        let now = crate::oidc::now_unix();
        // A minute ahead, or halfway through for short-lived tokens.
        let left = exp.saturating_sub(now);
        let wake = exp.saturating_sub(crate::session::REFRESH_MARGIN.min(left / 2));
        if wake > now {
            tokio::time::sleep(std::time::Duration::from_secs(wake - now)).await;
        }
        match source.refresh().await {
            Ok(token) => {
                warned = false;
                if let Err(e) = client.push_token(token).await {
                    eprintln!("hoop: the agent did not take the refreshed token: {e}");
                }
            }
            Err(e) => {
                if !warned {
                    eprintln!("hoop: {e}");
                    warned = true;
                }
                // Try again shortly: a network blip should not end the session.
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            }
        }
    }
}

fn ready_line(info: &ConnectionInfo, local: SocketAddr) -> String {
    let (host, port) = (local.ip(), local.port());
    let example = match info.kind.as_str() {
        "postgres" => format!("psql -h {host} -p {port}"),
        "mysql" => format!("mysql -h {host} -P {port}"),
        "ssh" => format!("ssh -p {port} {host}"),
        "http" => format!("curl http://{local}/"),
        _ => format!("nc {host} {port}"),
    };
    format!(
        "{} ({}) is ready on {local}; try: {example}   (Ctrl-C to stop)",
        info.name, info.kind
    )
}

async fn accept_loop(
    listener: TcpListener,
    client: Arc<AgentClient>,
    name: Arc<str>,
    warned: Arc<AtomicBool>,
) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                tokio::spawn(serve_one(
                    client.clone(),
                    name.clone(),
                    tcp,
                    peer,
                    warned.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: say so, keep going.
                eprintln!("hoop: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_one(
    client: Arc<AgentClient>,
    name: Arc<str>,
    tcp: TcpStream,
    peer: SocketAddr,
    warned: Arc<AtomicBool>,
) {
    match client.open(&name, Some(peer)).await {
        Ok((send, recv, session)) => {
            tracing::debug!(%session, %peer, "forwarding");
            let (stats, result) = hoop_tunnel::relay::relay(tcp, send, recv).await;
            if let Err(e) = result {
                tracing::debug!(%session, error = %e, ?stats, "connection ended with an error");
            }
        }
        Err(e) => {
            // Say it once per kind of trouble, not once per TCP connection.
            let fatal = matches!(
                e.refusal().map(|w| w.code),
                Some(
                    ErrorCode::TokenExpired
                        | ErrorCode::TokenInvalid
                        | ErrorCode::Forbidden
                        | ErrorCode::UnknownConnection
                )
            );
            if !fatal || !warned.swap(true, Ordering::Relaxed) {
                eprintln!("hoop: cannot open {name} for {peer}: {e}");
            }
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

async fn run_command(
    command: &[String],
    info: &ConnectionInfo,
    local: SocketAddr,
    kubeconfig: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let (program, args) = command.split_first().context("no command given after --")?;
    // A listener on every address is reached on loopback.
    let local = crate::kubeconfig::server_addr(local);
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("HOOP_HOST", local.ip().to_string())
        .env("HOOP_PORT", local.port().to_string());
    match info.kind.as_str() {
        "postgres" => {
            cmd.env("PGHOST", local.ip().to_string())
                .env("PGPORT", local.port().to_string());
        }
        "mysql" => {
            cmd.env("MYSQL_HOST", local.ip().to_string())
                .env("MYSQL_TCP_PORT", local.port().to_string());
        }
        _ => {}
    }
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {program:?}"))?;
    // Ctrl-C reaches the child through the terminal's process group; keep
    // the tunnel up until the child has exited.
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.with_context(|| format!("waiting for {program:?}"))?,
            _ = tokio::signal::ctrl_c() => continue,
        }
    };
    Ok(exit_code_of(status))
}

fn exit_code_of(status: std::process::ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return ExitCode::from(u8::try_from(128 + sig).unwrap_or(1));
        }
    }
    ExitCode::FAILURE
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

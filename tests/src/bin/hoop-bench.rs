//! `hoop-bench`: the TCP server and load generator behind `scripts/bench.sh`.
//!
//! The same client runs directly against the server, through `ssh -N -L` and
//! through `hoop connect`, so the three sets of figures differ only in the
//! path the bytes take.
//!
//! Wire protocol of the server: every connection starts with one mode byte.
//!
//! - `e`: echo every byte back until EOF.
//! - `s`: sink; read until EOF, then answer the count of bytes received as an
//!   8-byte big-endian integer and close.
//! - `g`: generate; read an 8-byte big-endian length N, write N bytes, close.
//!
//! The server is single-threaded tokio (it must hold thousands of idle
//! connections, and one thread keeps its wake-ups predictable); the
//! client uses blocking std sockets, one at a time, so that what it measures
//! is the path and not a runtime's scheduling.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str = "\
usage:
  hoop-bench server [--listen ADDR]       (default 127.0.0.1:0; prints LISTEN=<addr>)
  hoop-bench client --addr HOST:PORT [--bytes N] [--rtt-count N] [--rtt-size N]
                    [--setup-count N]     (defaults: 1 GiB, 10000, 1 byte, 500)
  hoop-bench idle --addr HOST:PORT --count N
                                          (prints IDLE_READY, holds until stdin closes)
sizes accept a K, M or G suffix (powers of 1024)";

/// Size of every write in bulk transfers, and of the read buffers.
const CHUNK: usize = 256 * 1024;

/// How long a client waits for any single read before calling the path stuck.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hoop-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        bail!("missing command\n{USAGE}");
    };
    let mut opts = Opts::parse(rest)?;
    match command.as_str() {
        "server" => {
            let listen = opts.take("--listen")?.unwrap_or("127.0.0.1:0".into());
            opts.finish()?;
            let listen: SocketAddr = listen.parse().context("--listen")?;
            server(listen)
        }
        "client" => {
            let addr = opts.addr()?;
            let bytes = opts.size("--bytes", 1 << 30)?;
            let rtt_count = opts.size("--rtt-count", 10_000)?;
            let rtt_size = opts.size("--rtt-size", 1)?;
            let setup_count = opts.size("--setup-count", 500)?;
            opts.finish()?;
            ensure!(rtt_count > 0 && setup_count > 0, "counts must be positive");
            ensure!(
                (1..=65536).contains(&rtt_size),
                "--rtt-size must be 1..=65536"
            );
            client(
                addr,
                bytes,
                rtt_count as usize,
                rtt_size as usize,
                setup_count as usize,
            )
        }
        "idle" => {
            let addr = opts.addr()?;
            let count = opts.size("--count", 0)?;
            opts.finish()?;
            ensure!(count > 0, "--count is required and must be positive");
            idle(addr, count as usize)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// `--name value` pairs, consumed one by one so leftovers can be reported.
struct Opts(Vec<(String, String)>);

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            ensure!(
                name.starts_with("--"),
                "unexpected argument {name:?}\n{USAGE}"
            );
            let value = it.next().with_context(|| format!("{name} needs a value"))?;
            pairs.push((name.clone(), value.clone()));
        }
        Ok(Self(pairs))
    }

    fn take(&mut self, name: &str) -> Result<Option<String>> {
        let mut found = None;
        while let Some(i) = self.0.iter().position(|(n, _)| n == name) {
            ensure!(found.is_none(), "{name} given twice");
            found = Some(self.0.remove(i).1);
        }
        Ok(found)
    }

    fn addr(&mut self) -> Result<String> {
        self.take("--addr")?
            .with_context(|| format!("--addr is required\n{USAGE}"))
    }

    fn size(&mut self, name: &str, default: u64) -> Result<u64> {
        match self.take(name)? {
            None => Ok(default),
            Some(v) => parse_size(&v).with_context(|| format!("{name} {v:?}")),
        }
    }

    fn finish(self) -> Result<()> {
        match self.0.first() {
            None => Ok(()),
            Some((name, _)) => bail!("unknown option {name}\n{USAGE}"),
        }
    }
}

fn parse_size(v: &str) -> Result<u64> {
    let (digits, shift) = match v.as_bytes().last() {
        Some(b'K' | b'k') => (&v[..v.len() - 1], 10),
        Some(b'M' | b'm') => (&v[..v.len() - 1], 20),
        Some(b'G' | b'g') => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n: u64 = digits.parse().context("not a number")?;
    n.checked_mul(1 << shift).context("too large")
}

// ---------------------------------------------------------------- server

fn server(listen: SocketAddr) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("bind {listen}"))?;
        let mut out = io::stdout().lock();
        writeln!(out, "LISTEN={}", listener.local_addr()?)?;
        out.flush()?;
        drop(out);
        loop {
            let sock = match listener.accept().await {
                Ok((sock, _)) => sock,
                Err(err) => {
                    // Out of descriptors and the like: say so, let the
                    // clients' timeouts report the failure, keep serving.
                    eprintln!("hoop-bench server: accept: {err}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                if let Err(err) = serve(sock).await {
                    eprintln!("hoop-bench server: connection: {err}");
                }
            });
        }
    })
}

async fn serve(mut sock: tokio::net::TcpStream) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let mode = match sock.read_u8().await {
        Ok(mode) => mode,
        // A readiness probe (the script's "does the port accept yet")
        // connects and closes without a mode byte; that is no error.
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
        Err(err) => return Err(err),
    };
    match mode {
        b'e' => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = sock.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                sock.write_all(&buf[..n]).await?;
            }
        }
        b's' => {
            let mut buf = vec![0u8; CHUNK];
            let mut total: u64 = 0;
            loop {
                let n = sock.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            sock.write_all(&total.to_be_bytes()).await?;
        }
        b'g' => {
            let mut left = sock.read_u64().await?;
            let buf = vec![0x5a_u8; CHUNK];
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                sock.write_all(&buf[..n]).await?;
                left -= n as u64;
            }
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown mode byte {other:#04x}"),
            ));
        }
    }
    sock.shutdown().await
}

// ---------------------------------------------------------------- client

fn connect(addr: &str) -> Result<TcpStream> {
    let sock = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(sock)
}

fn client(
    addr: String,
    bytes: u64,
    rtt_count: usize,
    rtt_size: usize,
    setup_count: usize,
) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "bytes={bytes}")?;

    let up = upload(&addr, bytes).context("upload")?;
    writeln!(out, "upload_mbps={up:.1}")?;
    out.flush()?;

    let down = download(&addr, bytes).context("download")?;
    writeln!(out, "download_mbps={down:.1}")?;
    out.flush()?;

    let mut rtts = round_trips(&addr, rtt_count, rtt_size).context("round trips")?;
    rtts.sort_unstable();
    writeln!(out, "rtt_count={rtt_count}")?;
    writeln!(out, "rtt_size={rtt_size}")?;
    writeln!(
        out,
        "rtt_p50_us={:.1}",
        percentile(&rtts, 0.50) as f64 / 1e3
    )?;
    writeln!(
        out,
        "rtt_p99_us={:.1}",
        percentile(&rtts, 0.99) as f64 / 1e3
    )?;
    out.flush()?;

    let mut setups = setups(&addr, setup_count).context("connection setup")?;
    let mean = setups.iter().sum::<u64>() as f64 / setups.len() as f64;
    setups.sort_unstable();
    writeln!(out, "setup_count={setup_count}")?;
    writeln!(
        out,
        "setup_p50_ms={:.3}",
        percentile(&setups, 0.50) as f64 / 1e6
    )?;
    writeln!(
        out,
        "setup_p99_ms={:.3}",
        percentile(&setups, 0.99) as f64 / 1e6
    )?;
    writeln!(out, "setup_mean_ms={:.3}", mean / 1e6)?;
    out.flush()?;
    Ok(())
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// Writes `bytes` in 256 KiB writes and waits for the server's count, so the
/// clock stops only when the last byte has arrived at the far end.
fn upload(addr: &str, bytes: u64) -> Result<f64> {
    let buf = vec![0xa5_u8; CHUNK];
    let start = Instant::now();
    let mut sock = connect(addr)?;
    sock.write_all(b"s")?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        sock.write_all(&buf[..n])?;
        left -= n as u64;
    }
    sock.shutdown(Shutdown::Write)?;
    let mut count = [0u8; 8];
    sock.read_exact(&mut count)
        .context("reading the sink's byte count")?;
    let elapsed = start.elapsed();
    let count = u64::from_be_bytes(count);
    ensure!(
        count == bytes,
        "the server received {count} bytes of {bytes}"
    );
    Ok(mbps(bytes, elapsed))
}

fn download(addr: &str, bytes: u64) -> Result<f64> {
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    let mut sock = connect(addr)?;
    let mut request = [b'g'; 9];
    request[1..].copy_from_slice(&bytes.to_be_bytes());
    sock.write_all(&request)?;
    let mut total: u64 = 0;
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let elapsed = start.elapsed();
    ensure!(total == bytes, "received {total} bytes of {bytes}");
    Ok(mbps(bytes, elapsed))
}

/// Round trips of `size` bytes on one echo connection, in nanoseconds. The
/// first few are a warm-up (the tunnel's stream open, cold caches) and are
/// not returned.
fn round_trips(addr: &str, count: usize, size: usize) -> Result<Vec<u64>> {
    let warmup = (count / 10).min(100);
    let payload = vec![b'x'; size];
    let mut echo = vec![0u8; size];
    let mut sock = connect(addr)?;
    sock.write_all(b"e")?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let start = Instant::now();
        sock.write_all(&payload)?;
        sock.read_exact(&mut echo)?;
        let elapsed = start.elapsed();
        ensure!(echo == payload, "echo returned different bytes");
        if i >= warmup {
            samples.push(elapsed.as_nanos() as u64);
        }
    }
    sock.shutdown(Shutdown::Write)?;
    Ok(samples)
}

/// Connection setup times in nanoseconds: connect, send the mode and one
/// byte, receive the byte back, close. Through a tunnel the connect alone
/// only reaches the local listener; the echoed byte proves the far end.
fn setups(addr: &str, count: usize) -> Result<Vec<u64>> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        let mut sock = connect(addr)?;
        sock.write_all(b"e!")?;
        let mut echo = [0u8; 1];
        sock.read_exact(&mut echo)?;
        samples.push(start.elapsed().as_nanos() as u64);
        ensure!(echo == *b"!", "echo returned a different byte");
    }
    Ok(samples)
}

// ---------------------------------------------------------------- idle

/// Opens `count` echo connections, proves each one end to end with a
/// one-byte round trip, then holds them until stdin reaches EOF (SIGTERM's
/// default action closes them just as well).
fn idle(addr: String, count: usize) -> Result<()> {
    let start = Instant::now();
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        let mut sock = connect(&addr).with_context(|| format!("connection {}", i + 1))?;
        sock.write_all(b"e.")?;
        let mut echo = [0u8; 1];
        sock.read_exact(&mut echo)
            .with_context(|| format!("echo on connection {}", i + 1))?;
        conns.push(sock);
    }
    let mut out = io::stdout().lock();
    writeln!(out, "idle_open={count}")?;
    writeln!(out, "idle_open_secs={:.3}", start.elapsed().as_secs_f64())?;
    writeln!(out, "IDLE_READY")?;
    out.flush()?;
    drop(out);
    io::copy(&mut io::stdin().lock(), &mut io::sink())?;
    drop(conns);
    Ok(())
}

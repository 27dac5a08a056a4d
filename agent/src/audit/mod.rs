//! The audit log: append-only JSON lines under `<data_dir>/audit/`, each
//! carrying a sequence number, a timestamp and the SHA-256 of the previous
//! line, so any edit, removal or reordering breaks the chain.
//!
//! Events are handed to a writer thread that commits them in groups. The
//! first event after a quiet spell wakes it; it then sleeps until that
//! event is [`SYNC_INTERVAL`] (5 ms) old, takes everything queued by
//! then, encodes it, writes it and `fdatasync`s once. [`AuditLog::flush`]
//! commits at once, and so does dropping the last handle (noticed within
//! the interval). Per event this is a channel send and an encoding, with
//! no wake-up and no system call: an `fdatasync` costs 50-70 µs of CPU on
//! a virtual disk and a wake-up several µs in both threads, and with one
//! client each statement used to pay both.
//!
//! Nothing waits for the log before answering a client, so what this
//! trades is durability, bounded in time: a crash (`kill -9`, power loss)
//! loses at most the events of the last ~5 ms (more only when the writer
//! falls behind), and never damages lines already synced. A clean
//! shutdown (drop every [`AuditLog`], then join the thread) loses nothing.
//! A torn last line (no newline, or not JSON) is cut at the next start and
//! the cut is itself recorded. Timestamps are taken when an event is
//! recorded, not when it is written; they do not go backwards in the file
//! unless the clock does.

mod event;
mod verify;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

pub use event::{Event, KubeRequest, Who};
pub use verify::{VerifyError, VerifyReport, verify};

/// `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the log lives under the data dir.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("audit").join("audit.jsonl")
}

/// The longest an event waits before it is `fdatasync`ed, unless the
/// writer falls behind: the bound on what a crash loses (see the module
/// documentation). Longer saves little more (at 10,000 statements per
/// second one sync already covers ~50); shorter brings back a sync and a
/// wake-up per statement at a few hundred statements per second.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(5);

/// Encoded lines held in memory before they are written to the file even
/// though no sync is due yet (about 150 statement lines).
const WRITE_BUFFER: usize = 64 * 1024;

/// Hex SHA-256 of one line, without its newline.
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(line_digest(line))
}

fn line_digest(line: &[u8]) -> aws_lc_rs::digest::Digest {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, line)
}

/// [`line_hash`] without allocating.
fn line_hash_hex(line: &[u8]) -> [u8; 64] {
    let mut hex = [0u8; 64];
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(line_digest(line), &mut hex);
    hex
}

enum Cmd {
    /// With the time it was recorded.
    Event(Box<Event>, SystemTime),
    Flush(mpsc::Sender<()>),
}

/// Handle to the writer; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Cmd>,
    /// To wake the writer for a flush.
    writer: thread::Thread,
    /// `fdatasync`s the writer has made.
    #[cfg(test)]
    syncs: Arc<AtomicU64>,
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

struct Tail {
    seq: u64,
    /// Hex hash of the last line, or [`GENESIS`].
    prev: [u8; 64],
    recovered: Option<(u64, String)>,
}

fn genesis() -> [u8; 64] {
    let mut g = [0u8; 64];
    g.copy_from_slice(GENESIS.as_bytes());
    g
}

impl AuditLog {
    /// Opens (creating if needed) the log and starts the writer thread.
    pub fn open(data_dir: &Path) -> Result<(AuditLog, thread::JoinHandle<()>), OpenError> {
        let path = log_path(data_dir);
        let err = |source| OpenError {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(err)?;
        let tail = recover_tail(&mut file).map_err(err)?;
        let (tx, rx) = mpsc::channel();
        let syncs = Arc::new(AtomicU64::new(0));
        let recovered = tail.recovered.clone();
        let writer_syncs = syncs.clone();
        let handle = thread::Builder::new()
            .name("hoop-audit".into())
            .spawn({
                let path = path.clone();
                move || {
                    Writer {
                        file,
                        path,
                        seq: tail.seq,
                        prev: tail.prev,
                        last_ts: SystemTime::UNIX_EPOCH,
                        pending: Vec::with_capacity(WRITE_BUFFER + 4096),
                        pending_lines: 0,
                        unsynced_since: None,
                        syncs: writer_syncs,
                    }
                    .run(rx)
                }
            })
            .map_err(err)?;
        let log = AuditLog {
            tx,
            writer: handle.thread().clone(),
            #[cfg(test)]
            syncs,
        };
        // Still the first event: nobody else has the log yet.
        if let Some((dropped_bytes, reason)) = recovered {
            tracing::warn!(path = %path.display(), dropped_bytes, %reason, "cut a torn line from the end of the audit log");
            log.record(Event::AuditRecovered {
                dropped_bytes,
                reason,
            });
        }
        Ok((log, handle))
    }

    /// Queues an event. Never blocks the caller, and does not wake the
    /// writer unless it was idle.
    pub fn record(&self, event: Event) {
        let cmd = Cmd::Event(Box::new(event), SystemTime::now());
        if self.tx.send(cmd).is_err() {
            tracing::error!("audit writer is gone; event lost");
        }
    }

    /// Waits until everything queued so far is on disk.
    pub async fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Cmd::Flush(tx)).is_ok() {
            self.writer.unpark();
            let _ = tokio::task::spawn_blocking(move || rx.recv()).await;
        }
    }

    /// How many times the writer has called `fdatasync`.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

/// Finds the last intact line, cutting a torn tail.
fn recover_tail(file: &mut File) -> io::Result<Tail> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(Tail {
            seq: 0,
            prev: genesis(),
            recovered: None,
        });
    }
    // Read backwards in growing windows until two newlines (or the start)
    // bound the last complete line.
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        Read::by_ref(file).take(len - start).read_to_end(&mut buf)?;
        let mut cut = 0u64;
        let mut reason = String::new();
        // Strip a trailing fragment without a newline.
        let mut end = buf.len();
        if buf.last() != Some(&b'\n') {
            let last_nl = buf.iter().rposition(|b| *b == b'\n');
            match last_nl {
                Some(i) => end = i + 1,
                None if start == 0 => end = 0,
                None => {
                    window *= 4;
                    continue;
                }
            }
            cut = (buf.len() - end) as u64;
            reason = "last line had no newline (write interrupted)".into();
        }
        // Find the last complete line within buf[..end].
        let body = &buf[..end];
        let line_start = match body[..body.len().saturating_sub(1)]
            .iter()
            .rposition(|b| *b == b'\n')
        {
            Some(i) => Some(i + 1),
            None if start == 0 => Some(0),
            None => None,
        };
        let Some(ls) = line_start else {
            window *= 4;
            continue;
        };
        if end == 0 {
            file.set_len(start)?;
            file.sync_all()?;
            return Ok(Tail {
                seq: 0,
                prev: genesis(),
                recovered: Some((cut, reason)),
            });
        }
        let line = &body[ls..end - 1];
        match parse_seq(line) {
            Some(seq) => {
                if cut > 0 {
                    file.set_len(len - cut)?;
                    file.sync_all()?;
                }
                return Ok(Tail {
                    seq,
                    prev: line_hash_hex(line),
                    recovered: (cut > 0).then_some((cut, reason)),
                });
            }
            None => {
                // A complete but unreadable last line: also a torn write
                // (e.g. zero-filled blocks after a crash). Cut it and look
                // again; earlier damage is left for `audit verify` to report.
                let new_len = start + ls as u64;
                file.set_len(new_len)?;
                file.sync_all()?;
                let more = recover_tail(file)?;
                let dropped = (len - new_len) + more.recovered.as_ref().map_or(0, |r| r.0);
                return Ok(Tail {
                    seq: more.seq,
                    prev: more.prev,
                    recovered: Some((dropped, "last line was not a valid event".into())),
                });
            }
        }
    }
}

fn parse_seq(line: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.get("seq")?.as_u64()
}

/// The writer thread's state.
struct Writer {
    file: File,
    path: PathBuf,
    /// `seq` of the last line encoded.
    seq: u64,
    /// Hex hash of the last line encoded.
    prev: [u8; 64],
    /// Timestamp of the last line encoded.
    last_ts: SystemTime,
    /// Encoded lines, each with its newline, not yet written to the file.
    /// Reused: lines are encoded straight into it.
    pending: Vec<u8>,
    pending_lines: u64,
    /// When the oldest event not yet synced was encoded; `None` when
    /// everything is on disk.
    unsynced_since: Option<Instant>,
    syncs: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        let mut waiters: Vec<mpsc::Sender<()>> = Vec::new();
        let mut open = true;
        while open {
            match self.unsynced_since {
                // Idle: the next event (or flush) wakes us.
                None => match rx.recv() {
                    Ok(cmd) => self.handle(cmd, &mut waiters),
                    Err(_) => break,
                },
                // Let events queue up until the oldest is due; a flush
                // unparks us sooner (as may a spurious wake-up).
                Some(since) => {
                    let left = (since + SYNC_INTERVAL).saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        thread::park_timeout(left);
                    }
                }
            }
            // Take what has queued, until a flush is asked for (it waits
            // for nothing after it) or a sync falls due.
            while waiters.is_empty() && !self.sync_due() {
                match rx.try_recv() {
                    Ok(cmd) => self.handle(cmd, &mut waiters),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            // Commands arrive in order, so a flush's events are all
            // encoded by now.
            if !waiters.is_empty() || self.sync_due() {
                self.sync();
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }
        // Every handle is gone: nothing more can arrive.
        self.sync();
    }

    fn handle(&mut self, cmd: Cmd, waiters: &mut Vec<mpsc::Sender<()>>) {
        match cmd {
            Cmd::Flush(w) => waiters.push(w),
            Cmd::Event(ev, at) => self.append(&ev, at),
        }
    }

    fn sync_due(&self) -> bool {
        self.unsynced_since
            .is_some_and(|since| since.elapsed() >= SYNC_INTERVAL)
    }

    /// Encodes one event at the end of `pending` and moves the chain on.
    fn append(&mut self, ev: &Event, at: SystemTime) {
        // Threads race to the queue: one that read the clock first may
        // send second. Keep such small inversions out of the file; a clock
        // stepped back is written as it is.
        self.last_ts = match self.last_ts.duration_since(at) {
            Ok(behind) if behind < Duration::from_secs(1) => self.last_ts,
            _ => at,
        };
        let start = self.pending.len();
        let line = encode_line(
            &mut self.pending,
            ev,
            self.seq + 1,
            self.last_ts,
            &self.prev,
        );
        if let Err(e) = line {
            self.pending.truncate(start);
            tracing::error!(error = %e, "cannot encode audit event");
            return;
        }
        self.prev = line_hash_hex(&self.pending[start..]);
        self.pending.push(b'\n');
        self.seq += 1;
        self.pending_lines += 1;
        self.unsynced_since.get_or_insert_with(Instant::now);
        if self.pending.len() >= WRITE_BUFFER {
            self.write_pending();
        }
    }

    /// Hands `pending` to the kernel (not yet durable).
    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Err(e) = self.file.write_all(&self.pending) {
            // The chain goes on past the lost lines, so `audit verify`
            // will name the gap.
            let lost = self.pending_lines;
            tracing::error!(path = %self.path.display(), error = %e, lost, "audit write failed; events lost");
        }
        self.pending.clear();
        self.pending_lines = 0;
    }

    /// Writes and `fdatasync`s everything encoded so far, if anything.
    fn sync(&mut self) {
        if self.unsynced_since.take().is_none() {
            return;
        }
        self.write_pending();
        if let Err(e) = self.file.sync_data() {
            tracing::error!(path = %self.path.display(), error = %e, "audit fsync failed");
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
    }
}

/// Appends `{"seq":N,"ts":"...","prev":"...",<event fields>}` to `out`,
/// without a newline: the chain fields first, for people reading the
/// file. On error `out` may hold part of a line.
fn encode_line(
    out: &mut Vec<u8>,
    ev: &Event,
    seq: u64,
    ts: SystemTime,
    prev: &[u8; 64],
) -> serde_json::Result<()> {
    let ts = humantime::format_rfc3339_micros(ts);
    let chain = write!(out, "{{\"seq\":{seq},\"ts\":\"{ts}\",\"prev\":\"");
    chain.map_err(serde_json::Error::io)?;
    out.extend_from_slice(prev);
    out.push(b'"');
    // The event's own object follows, its opening brace turned into the
    // comma after `prev`. An event always has at least its tag.
    let brace = out.len();
    serde_json::to_writer(&mut *out, ev)?;
    if out.get(brace) != Some(&b'{') || out.len() < brace + 3 {
        return Err(serde::ser::Error::custom("event is not a non-empty object"));
    }
    out[brace] = b',';
    Ok(())
}

#[cfg(test)]
mod tests;

//! The audit log: append-only JSON lines under `<data_dir>/audit/`, each
//! carrying a sequence number, a timestamp and the SHA-256 of the previous
//! line, so any edit, removal or reordering breaks the chain.
//!
//! Events are handed to a writer thread that writes whatever has queued up
//! and then fsyncs once: a batch is as long as one fsync, so a `kill -9`
//! loses at most the events of the batch in flight and never damages
//! lines already synced. A torn last line (no newline, or not JSON) is cut
//! at the next start and the cut is itself recorded.

mod event;
mod verify;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::SystemTime;

pub use event::{Event, Who};
pub use verify::{VerifyError, VerifyReport, verify};

/// `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the log lives under the data dir.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("audit").join("audit.jsonl")
}

/// Hex SHA-256 of one line, without its newline.
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, line))
}

enum Cmd {
    Event(Box<Event>),
    Flush(mpsc::Sender<()>),
}

/// Handle to the writer; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Cmd>,
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
    prev: String,
    recovered: Option<(u64, String)>,
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
        let log = AuditLog { tx };
        if let Some((dropped_bytes, reason)) = &tail.recovered {
            tracing::warn!(path = %path.display(), dropped_bytes, %reason, "cut a torn line from the end of the audit log");
            log.record(Event::AuditRecovered {
                dropped_bytes: *dropped_bytes,
                reason: reason.clone(),
            });
        }
        let handle = thread::Builder::new()
            .name("hoop-audit".into())
            .spawn({
                let path = path.clone();
                move || writer(file, path, tail, rx)
            })
            .map_err(err)?;
        Ok((log, handle))
    }

    /// Queues an event. Never blocks the caller.
    pub fn record(&self, event: Event) {
        if self.tx.send(Cmd::Event(Box::new(event))).is_err() {
            tracing::error!("audit writer is gone; event lost");
        }
    }

    /// Waits until everything queued so far is on disk.
    pub async fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Cmd::Flush(tx)).is_ok() {
            let _ = tokio::task::spawn_blocking(move || rx.recv()).await;
        }
    }
}

/// Finds the last intact line, cutting a torn tail.
fn recover_tail(file: &mut File) -> io::Result<Tail> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(Tail {
            seq: 0,
            prev: GENESIS.to_string(),
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
                prev: GENESIS.to_string(),
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
                    prev: line_hash(line),
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

fn writer(file: File, path: PathBuf, mut tail: Tail, rx: mpsc::Receiver<Cmd>) {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    let mut waiters: Vec<mpsc::Sender<()>> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let mut wrote = false;
        for cmd in batch {
            match cmd {
                Cmd::Flush(w) => waiters.push(w),
                Cmd::Event(ev) => match encode_line(&ev, tail.seq + 1, &tail.prev) {
                    Ok(line) => {
                        if let Err(e) = out.write_all(&line).and_then(|_| out.write_all(b"\n")) {
                            tracing::error!(path = %path.display(), error = %e, "audit write failed");
                            continue;
                        }
                        tail.seq += 1;
                        tail.prev = line_hash(&line);
                        wrote = true;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode audit event"),
                },
            }
        }
        if wrote {
            if let Err(e) = out.flush().and_then(|_| out.get_ref().sync_data()) {
                tracing::error!(path = %path.display(), error = %e, "audit fsync failed");
            }
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
    let _ = out.flush();
    let _ = out.get_ref().sync_data();
}

/// `{"seq":N,"ts":"...","prev":"...",<event fields>}`: the chain fields
/// first, for people reading the file.
fn encode_line(ev: &Event, seq: u64, prev: &str) -> serde_json::Result<Vec<u8>> {
    let body = serde_json::to_vec(ev)?;
    let ts = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    let mut line = format!("{{\"seq\":{seq},\"ts\":\"{ts}\",\"prev\":\"{prev}\",").into_bytes();
    // An event always serialises to an object with at least its tag.
    line.extend_from_slice(body.get(1..).unwrap_or(b"}"));
    Ok(line)
}

#[cfg(test)]
mod tests;

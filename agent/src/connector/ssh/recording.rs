//! Terminal recordings in asciicast v2: a JSON header line, then one
//! `[seconds, "o"|"i"|"r", "text"]` line per chunk of output, input or
//! resize. Files are 0600 under `<data_dir>/recordings/`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One channel's recording.
pub struct Recorder {
    out: BufWriter<File>,
    path: PathBuf,
    start: Instant,
    /// The header, until the first event writes it: a resize before any
    /// output (kubectl sends the terminal's size first) sets its size.
    header: Option<serde_json::Value>,
    /// Bytes of an unfinished UTF-8 character, per direction.
    carry_out: Vec<u8>,
    carry_in: Vec<u8>,
    failed: bool,
}

/// What the header says about the terminal.
pub struct Header<'a> {
    pub width: u32,
    pub height: u32,
    pub term: Option<&'a str>,
    pub title: &'a str,
    pub command: Option<&'a str>,
}

impl Recorder {
    /// Creates `path` (and its folder, 0700); the header is written with
    /// the first event (or when the recorder is dropped).
    pub fn create(path: &Path, header: &Header<'_>) -> std::io::Result<Recorder> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let file = opts.open(path)?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut env = serde_json::Map::new();
        if let Some(t) = header.term {
            env.insert("TERM".into(), t.into());
        }
        let mut head = serde_json::json!({
            "version": 2,
            "width": header.width.max(1),
            "height": header.height.max(1),
            "timestamp": timestamp,
            "title": header.title,
            "env": env,
        });
        if let Some(c) = header.command {
            head["command"] = c.into();
        }
        Ok(Recorder {
            out: BufWriter::new(file),
            path: path.to_owned(),
            start: Instant::now(),
            header: Some(head),
            carry_out: Vec::new(),
            carry_in: Vec::new(),
            failed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a write failed: what follows is not recorded, and a caller
    /// that requires the recording ends the session.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Terminal output (stdout or stderr).
    pub fn output(&mut self, data: &[u8]) {
        let text = take_utf8(&mut self.carry_out, data);
        if !text.is_empty() {
            self.event("o", &text);
        }
    }

    /// What the caller typed.
    pub fn input(&mut self, data: &[u8]) {
        let text = take_utf8(&mut self.carry_in, data);
        if !text.is_empty() {
            self.event("i", &text);
        }
    }

    /// The terminal changed size.
    pub fn resize(&mut self, cols: u32, rows: u32) {
        if let Some(h) = self.header.as_mut() {
            h["width"] = cols.max(1).into();
            h["height"] = rows.max(1).into();
            return;
        }
        self.event("r", &format!("{cols}x{rows}"));
    }

    fn event(&mut self, kind: &str, text: &str) {
        if self.failed {
            return;
        }
        let t = self.start.elapsed().as_secs_f64();
        let line = serde_json::json!([(t * 1e6).round() / 1e6, kind, text]);
        let head = self.header.take();
        let written = match &head {
            Some(h) => writeln!(self.out, "{h}"),
            None => Ok(()),
        };
        if let Err(e) = written
            .and_then(|()| writeln!(self.out, "{line}"))
            .and_then(|()| self.out.flush())
        {
            // The caller decides, through `failed()`, whether the session
            // may go on unrecorded.
            tracing::warn!(path = %self.path.display(), error = %e, "recording write failed");
            self.failed = true;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // A session that showed nothing still leaves a valid recording.
        if let Some(h) = self.header.take() {
            let _ = writeln!(self.out, "{h}").and_then(|()| self.out.flush());
        }
    }
}

/// Decodes `data` after the bytes held back last time, holding back an
/// unfinished character at the end; invalid bytes become U+FFFD.
fn take_utf8(carry: &mut Vec<u8>, data: &[u8]) -> String {
    carry.extend_from_slice(data);
    let keep = match std::str::from_utf8(carry) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => carry.len() - e.valid_up_to(),
        Err(_) => {
            // Invalid in the middle; an unfinished character may still end it.
            let tail_start = carry.len().saturating_sub(3);
            (tail_start..carry.len())
                .find(|&i| {
                    std::str::from_utf8(&carry[i..])
                        .is_err_and(|e| e.valid_up_to() == 0 && e.error_len().is_none())
                })
                .map_or(0, |i| carry.len() - i)
        }
    };
    let rest = carry.split_off(carry.len() - keep);
    let text = String::from_utf8_lossy(carry).into_owned();
    *carry = rest;
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_are_kept_whole() {
        let mut c = Vec::new();
        let bytes = "é€".as_bytes();
        assert_eq!(take_utf8(&mut c, &bytes[..1]), "");
        assert_eq!(take_utf8(&mut c, &bytes[1..3]), "é");
        assert_eq!(take_utf8(&mut c, &bytes[3..]), "€");
        assert!(c.is_empty());
        assert_eq!(take_utf8(&mut c, b"a\xffb"), "a\u{fffd}b");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_is_reported() {
        let file = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let mut r = Recorder {
            out: BufWriter::new(file),
            path: "/dev/full".into(),
            start: Instant::now(),
            header: None,
            carry_out: Vec::new(),
            carry_in: Vec::new(),
            failed: false,
        };
        assert!(!r.failed());
        r.output(b"x");
        assert!(r.failed());
    }

    #[test]
    fn writes_asciicast_v2() {
        let dir = std::env::temp_dir().join(format!("hoop-rec-{}", std::process::id()));
        let path = dir.join("s.cast");
        let _ = std::fs::remove_file(&path);
        let mut r = Recorder::create(
            &path,
            &Header {
                width: 80,
                height: 24,
                term: Some("xterm"),
                title: "t",
                command: None,
            },
        )
        .unwrap();
        // A size before any output is the header's.
        r.resize(90, 20);
        r.output(b"hello\r\n");
        r.input(b"ls\r");
        r.resize(100, 30);
        drop(r);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(lines[0]["width"], 90);
        assert_eq!(lines[0]["height"], 20);
        assert_eq!(lines[1][1], "o");
        assert_eq!(lines[1][2], "hello\r\n");
        assert_eq!(lines[2][1], "i");
        assert_eq!(lines[3][2], "100x30");
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! `hoop sessions` and `hoop replay`: recorded `ssh` terminals, fetched
//! from the agent and played back with their timing.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use hoop_proto::tunnel::RecordedSession;
use tokio::io::AsyncReadExt;

use crate::client::AgentClient;

/// Largest recording `hoop replay` loads, in bytes.
const MAX_RECORDING: u64 = 512 * 1024 * 1024;

/// The table `hoop sessions` prints.
pub fn table(list: &[RecordedSession], out: &mut impl Write) -> std::io::Result<()> {
    if list.is_empty() {
        return writeln!(out, "No recorded sessions you may see.");
    }
    let w = list
        .iter()
        .map(|r| r.recording.len())
        .max()
        .unwrap_or(9)
        .max(9);
    let cw = list
        .iter()
        .map(|r| r.connection.len())
        .max()
        .unwrap_or(10)
        .max(10);
    let uw = list.iter().map(|r| r.user.len()).max().unwrap_or(4).max(4);
    writeln!(
        out,
        "{:<w$}  {:<20}  {:<uw$}  {:<cw$}  {:>9}  WHAT",
        "RECORDING", "STARTED", "USER", "CONNECTION", "BYTES"
    )?;
    for r in list {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(r.started_at);
        let what = match &r.command {
            Some(c) => format!("exec {c}"),
            None => r.request.clone(),
        };
        writeln!(
            out,
            "{:<w$}  {:<20}  {:<uw$}  {:<cw$}  {:>9}  {what}",
            r.recording,
            humantime::format_rfc3339_seconds(at).to_string(),
            r.user,
            r.connection,
            r.size
        )?;
    }
    Ok(())
}

/// One event of an asciicast v2 file.
#[derive(Debug, PartialEq)]
pub struct Frame {
    pub at: f64,
    pub kind: String,
    pub data: String,
}

/// Parses an asciicast v2 recording: the header, then the events.
pub fn parse(text: &str) -> anyhow::Result<(serde_json::Value, Vec<Frame>)> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: serde_json::Value = serde_json::from_str(lines.next().context("empty recording")?)
        .context("the recording's header is not JSON")?;
    if header["version"] != 2 {
        bail!(
            "not an asciicast v2 recording (version {})",
            header["version"]
        );
    }
    let mut frames = Vec::new();
    for (i, l) in lines.enumerate() {
        // A line cut by a crash ends the playback, not the command.
        let Ok((at, kind, data)) = serde_json::from_str::<(f64, String, String)>(l) else {
            tracing::debug!(line = i + 2, "stopped at a bad recording line");
            break;
        };
        frames.push(Frame { at, kind, data });
    }
    Ok((header, frames))
}

/// Runs `hoop replay`.
pub async fn run(
    client: &AgentClient,
    recording: &str,
    speed: f64,
    idle_limit: f64,
) -> anyhow::Result<()> {
    if !(speed.is_finite() && speed > 0.0) {
        bail!("--speed {speed}: give a positive number, e.g. 2 for twice as fast");
    }
    let (name, size, mut recv) = client.fetch_recording(recording).await?;
    if size > MAX_RECORDING {
        bail!("recording {name} is {size} bytes, more than hoop replay loads");
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    (&mut recv)
        .take(size)
        .read_to_end(&mut bytes)
        .await
        .with_context(|| format!("fetching recording {name}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let (_, frames) = parse(&text)?;
    let mut out = std::io::stdout();
    let mut last = 0.0;
    for f in frames {
        let gap = ((f.at - last).max(0.0)).min(idle_limit) / speed;
        last = f.at;
        if f.kind != "o" {
            continue;
        }
        if gap > 0.0005 {
            out.flush()?;
            tokio::time::sleep(Duration::from_secs_f64(gap)).await;
        }
        out.write_all(f.data.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_asciicast_v2_and_stops_at_a_torn_line() {
        let text = "{\"version\":2,\"width\":80,\"height\":24}\n[0.5,\"o\",\"hi\"]\n[0.7,\"i\",\"x\"]\n[0.9,\"o\",\"cut";
        let (h, frames) = parse(text).unwrap();
        assert_eq!(h["width"], 80);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            frames[0],
            Frame {
                at: 0.5,
                kind: "o".into(),
                data: "hi".into()
            }
        );
        assert!(parse("{\"version\":1}").is_err());
    }
}

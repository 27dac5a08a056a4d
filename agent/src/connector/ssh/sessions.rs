//! The index of recordings: beside each `<name>.cast` a `<name>.json`
//! says whose session it was, so `hoop sessions` and `hoop replay` can
//! show a caller their own (and an auditor everyone's).

use std::path::{Path, PathBuf};

use hoop_proto::tunnel::{Identity, RecordedSession};
use serde::{Deserialize, Serialize};

/// What `<name>.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub recording: String,
    pub session: String,
    pub connection: String,
    pub user: String,
    pub started_at: u64,
    pub request: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// The recordings folder.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

/// Writes the index entry of the recording at `cast` (0600).
pub fn write_meta(cast: &Path, meta: &Meta) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(cast.with_extension("json"))?;
    f.write_all(&serde_json::to_vec(meta).map_err(std::io::Error::other)?)?;
    Ok(())
}

/// Whether `id` may see a recording of `user`.
fn may_see(user: &str, id: &Identity, auditor_group: Option<&str>) -> bool {
    user == id.user || auditor_group.is_some_and(|g| id.groups.iter().any(|x| x == g))
}

/// A recording name is what the agent made: hex and `-N`. Anything else
/// (a path) is refused before it touches the file system.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_digit() || b == b'-')
}

fn entry(dir: &Path, meta: Meta) -> RecordedSession {
    let size = std::fs::metadata(dir.join(format!("{}.cast", meta.recording)))
        .map(|m| m.len())
        .unwrap_or(0);
    RecordedSession {
        recording: meta.recording,
        session: meta.session,
        connection: meta.connection,
        user: meta.user,
        started_at: meta.started_at,
        request: meta.request,
        command: meta.command,
        size,
    }
}

/// The recordings `id` may see, oldest first.
pub fn list(data_dir: &Path, id: &Identity, auditor_group: Option<&str>) -> Vec<RecordedSession> {
    let dir = dir(data_dir);
    let mut out: Vec<RecordedSession> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Meta>(&b).ok())
        .filter(|m| may_see(&m.user, id, auditor_group))
        .map(|m| entry(&dir, m))
        .collect();
    out.sort_by(|a, b| (a.started_at, &a.recording).cmp(&(b.started_at, &b.recording)));
    out
}

/// The file of recording `name` (or of session `name`'s first recording),
/// when `id` may see it. The error is safe to show: it says the same for
/// a recording that does not exist and one of someone else's.
pub fn find(
    data_dir: &Path,
    name: &str,
    id: &Identity,
    auditor_group: Option<&str>,
) -> Result<(PathBuf, RecordedSession), String> {
    let missing = || format!("no recording {name:?} that you may see; `hoop sessions` lists them");
    if !valid_name(name) {
        return Err(missing());
    }
    let dir = dir(data_dir);
    let meta: Meta = std::fs::read(dir.join(format!("{name}.json")))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(missing)?;
    if !may_see(&meta.user, id, auditor_group) {
        return Err(missing());
    }
    let path = dir.join(format!("{}.cast", meta.recording));
    Ok((path, entry(&dir, meta)))
}

/// Answers `FetchRecording` on its own stream: `Recording` and the
/// file's bytes, or an error. Returns the recording's session, or why it
/// was refused.
pub async fn send(
    data_dir: &Path,
    auditor_group: Option<&str>,
    id: &Identity,
    expired: bool,
    name: &str,
    mut send: quinn::SendStream,
) -> Result<String, String> {
    use hoop_proto::tunnel::{ErrorCode, Response, WireError};
    let found = if expired {
        Err("your token has expired; sign in again".to_string())
    } else {
        find(data_dir, name, id, auditor_group)
    };
    let opened = match found {
        Ok((path, info)) => tokio::fs::File::open(&path)
            .await
            .map(|f| (f, info))
            .map_err(|e| {
                (
                    ErrorCode::Internal,
                    format!("the agent cannot read recording {name:?}: {e}"),
                )
            }),
        Err(msg) => Err((ErrorCode::Forbidden, msg)),
    };
    let (mut file, info) = match opened {
        Ok(x) => x,
        Err((code, msg)) => {
            let _ = hoop_tunnel::frame::write(
                &mut send,
                &Response::Error(WireError::new(code, msg.clone())),
            )
            .await;
            let _ = send.finish();
            return Err(msg);
        }
    };
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(info.size);
    let header = Response::Recording {
        recording: info.recording,
        size,
    };
    if hoop_tunnel::frame::write(&mut send, &header).await.is_ok() {
        // A recording still being written may grow: send what `size` said.
        let mut limited = tokio::io::AsyncReadExt::take(&mut file, size);
        let _ = tokio::io::copy(&mut limited, &mut send).await;
        let _ = send.finish();
    }
    Ok(info.session)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(user: &str, groups: &[&str]) -> Identity {
        Identity {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            issuer: "https://id".into(),
            expires_at: 0,
        }
    }

    #[test]
    fn users_see_their_own_and_auditors_all() {
        let data = std::env::temp_dir().join(format!("hoop-sess-{}", std::process::id()));
        let d = dir(&data);
        std::fs::create_dir_all(&d).unwrap();
        for (name, user, at) in [("aa", "alice", 2), ("bb", "bob", 1)] {
            let cast = d.join(format!("{name}.cast"));
            std::fs::write(&cast, "{}\n").unwrap();
            let _ = std::fs::remove_file(cast.with_extension("json"));
            write_meta(
                &cast,
                &Meta {
                    recording: name.into(),
                    session: name.into(),
                    connection: "web".into(),
                    user: user.into(),
                    started_at: at,
                    request: "shell".into(),
                    command: None,
                },
            )
            .unwrap();
        }
        let alice = id("alice", &["eng"]);
        let mine = list(&data, &alice, Some("audit"));
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].size, 3);
        let auditor = id("carol", &["audit"]);
        let all = list(&data, &auditor, Some("audit"));
        assert_eq!(
            all.iter().map(|r| r.recording.as_str()).collect::<Vec<_>>(),
            ["bb", "aa"]
        );
        assert!(find(&data, "bb", &alice, Some("audit")).is_err());
        assert!(find(&data, "aa", &alice, None).is_ok());
        assert!(find(&data, "../aa", &alice, None).is_err());
        let _ = std::fs::remove_dir_all(data);
    }
}

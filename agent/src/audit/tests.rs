use std::fs;

use super::*;

fn tempdir() -> PathBuf {
    let mut r = [0u8; 8];
    aws_lc_rs::rand::fill(&mut r).unwrap();
    let d = std::env::temp_dir().join(format!("hoop-audit-{}", hex::encode(r)));
    fs::create_dir_all(&d).unwrap();
    d
}

fn who() -> Who {
    Who {
        user: "alice@example.com".into(),
        groups: vec!["eng".into()],
        issuer: "https://idp".into(),
    }
}

async fn write_events(dir: &Path, n: usize) {
    let (log, handle) = AuditLog::open(dir).unwrap();
    for i in 0..n {
        log.record(Event::Login {
            peer: format!("127.0.0.1:{i}"),
            who: who(),
        });
    }
    log.flush().await;
    drop(log);
    handle.join().unwrap();
}

#[tokio::test]
async fn chain_verifies_and_continues_across_restarts() {
    let dir = tempdir();
    write_events(&dir, 5).await;
    write_events(&dir, 3).await;
    let report = verify(&log_path(&dir)).unwrap();
    assert_eq!(report.lines, 8);
    let text = fs::read_to_string(log_path(&dir)).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("{\"seq\":1,\"ts\":\""), "{first}");
    assert!(
        first.contains(&format!("\"prev\":\"{GENESIS}\"")),
        "{first}"
    );
    assert!(first.contains("\"event\":\"login\""), "{first}");
    assert!(first.contains("\"user\":\"alice@example.com\""), "{first}");
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn tampering_is_named_by_line() {
    let dir = tempdir();
    write_events(&dir, 5).await;
    let path = log_path(&dir);
    let original = fs::read_to_string(&path).unwrap();

    // Alter line 3: line 4's prev no longer matches.
    let altered = original.replacen("127.0.0.1:2", "127.0.0.1:9", 1);
    fs::write(&path, &altered).unwrap();
    match verify(&path) {
        Err(VerifyError::Broken { line, .. }) => assert_eq!(line, 4),
        other => panic!("{other:?}"),
    }

    // Remove line 2: line 2 now has seq 3.
    let mut lines: Vec<&str> = original.lines().collect();
    lines.remove(1);
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    match verify(&path) {
        Err(VerifyError::Broken { line, reason, .. }) => {
            assert_eq!(line, 2);
            assert!(reason.contains("seq"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // Garbage line.
    fs::write(&path, original.clone() + "oops\n").unwrap();
    match verify(&path) {
        Err(VerifyError::Broken { line, .. }) => assert_eq!(line, 6),
        other => panic!("{other:?}"),
    }
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn torn_tail_is_cut_and_recorded() {
    let dir = tempdir();
    write_events(&dir, 4).await;
    let path = log_path(&dir);
    let good = fs::read(&path).unwrap();
    // Simulate kill -9 mid-write: half a line, no newline.
    let mut torn = good.clone();
    torn.extend_from_slice(b"{\"seq\":5,\"ts\":\"2026-");
    fs::write(&path, &torn).unwrap();
    assert!(matches!(
        verify(&path),
        Err(VerifyError::Broken { line: 5, .. })
    ));

    write_events(&dir, 1).await;
    let report = verify(&path).unwrap();
    // 4 old + recovery event + 1 new.
    assert_eq!(report.lines, 6);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(std::str::from_utf8(&good).unwrap()));
    let recovered = text.lines().nth(4).unwrap();
    assert!(recovered.contains("audit_recovered"), "{recovered}");
    assert!(recovered.contains("\"dropped_bytes\":20"), "{recovered}");
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn zeroed_complete_last_line_is_cut() {
    let dir = tempdir();
    write_events(&dir, 2).await;
    let path = log_path(&dir);
    let mut data = fs::read(&path).unwrap();
    data.extend_from_slice(&[0u8; 40]);
    data.push(b'\n');
    fs::write(&path, &data).unwrap();
    write_events(&dir, 1).await;
    let report = verify(&path).unwrap();
    assert_eq!(report.lines, 4);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn torn_only_line_in_file() {
    let dir = tempdir();
    let path = log_path(&dir);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, b"{\"seq\":1,\"ts").unwrap();
    write_events(&dir, 1).await;
    let report = verify(&path).unwrap();
    assert_eq!(report.lines, 2);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn many_events_from_many_tasks() {
    let dir = tempdir();
    let (log, handle) = AuditLog::open(&dir).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                log.record(Event::AuthFailed {
                    peer: format!("{t}:{i}"),
                    code: "token_invalid".into(),
                    reason: "x".into(),
                });
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    log.flush().await;
    drop(log);
    handle.join().unwrap();
    assert_eq!(verify(&log_path(&dir)).unwrap().lines, 2000);
    let _ = fs::remove_dir_all(&dir);
}

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

fn login(i: usize) -> Event {
    Event::Login {
        peer: format!("127.0.0.1:{i}"),
        who: who(),
    }
}

#[tokio::test]
async fn many_events_share_few_fsyncs() {
    let dir = tempdir();
    let (log, handle) = AuditLog::open(&dir).unwrap();
    let n: u64 = 2000;
    let started = std::time::Instant::now();
    for i in 0..n {
        log.record(login(i as usize));
    }
    log.flush().await;
    let elapsed = started.elapsed();
    let syncs = log.syncs();
    // One sync per interval at most, plus the flush's.
    let bound = elapsed.as_micros() / SYNC_INTERVAL.as_micros() + 2;
    assert!(
        u128::from(syncs) <= bound,
        "{syncs} syncs in {elapsed:?} for {n} events"
    );
    assert!(
        syncs * 10 <= n,
        "{syncs} syncs in {elapsed:?} for {n} events"
    );
    drop(log);
    handle.join().unwrap();
    assert_eq!(verify(&log_path(&dir)).unwrap().lines, n);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn events_reach_the_disk_without_a_flush() {
    let dir = tempdir();
    let (log, handle) = AuditLog::open(&dir).unwrap();
    // Nothing written: a flush has nothing to sync.
    log.flush().await;
    assert_eq!(log.syncs(), 0);
    for i in 0..10 {
        log.record(login(i));
    }
    // A burst, then silence: the writer syncs on its timer with nobody
    // asking. Lines reach the file only when a sync is due (written, then
    // fdatasynced, then counted).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.syncs() == 0 || verify(&log_path(&dir)).map(|r| r.lines).ok() != Some(10) {
        assert!(std::time::Instant::now() < deadline, "not synced");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    drop(log);
    handle.join().unwrap();
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn clean_shutdown_without_a_flush_loses_nothing() {
    let dir = tempdir();
    let (log, handle) = AuditLog::open(&dir).unwrap();
    for i in 0..500 {
        log.record(login(i));
    }
    drop(log);
    handle.join().unwrap();
    assert_eq!(verify(&log_path(&dir)).unwrap().lines, 500);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn lines_keep_their_layout() {
    let mut out = b"earlier line\n".to_vec();
    let prev = [b'a'; 64];
    encode_line(&mut out, &login(7), 42, SystemTime::now(), &prev).unwrap();
    let line = std::str::from_utf8(&out[13..]).unwrap();
    assert!(line.starts_with("{\"seq\":42,\"ts\":\"20"), "{line}");
    assert!(
        line.contains(&format!(
            "\",\"prev\":\"{}\",\"event\":\"login\",\"peer\":\"127.0.0.1:7\",",
            "a".repeat(64)
        )),
        "{line}"
    );
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["user"], "alice@example.com");
    assert_eq!(
        line_hash(line.as_bytes()).as_bytes(),
        line_hash_hex(line.as_bytes())
    );
}

/// Not a check: prints the writer thread's CPU time per event (from
/// `/proc/self/task/TID/schedstat`) with events paced as one busy client
/// and as eight would send them, and back to back; and the recording
/// thread's, sleeps included. Run alone:
/// `cargo nextest run -p hoop-agent --lib --run-ignored only writer_cpu --no-capture`
/// (a debug build: encoding costs more than in a release build).
#[cfg(target_os = "linux")]
#[test]
#[ignore = "measurement, prints figures"]
fn writer_cpu_per_event() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cpu_ns = |task: &Path| -> u64 {
        let s = fs::read_to_string(task.join("schedstat")).unwrap();
        s.split(' ').next().unwrap().parse().unwrap()
    };
    for (label, pause, n) in [
        ("1 event / 300 µs", 300, 3000),
        ("1 event / 100 µs", 100, 10_000),
        ("back to back", 0, 20_000),
    ] {
        let dir = tempdir();
        let (log, handle) = AuditLog::open(&dir).unwrap();
        // The thread names itself once it runs.
        let task = loop {
            let found = fs::read_dir("/proc/self/task")
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|t| fs::read_to_string(t.join("comm")).unwrap().trim() == "hoop-audit");
            match found {
                Some(t) => break t,
                None => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        };
        let me = Path::new("/proc/thread-self");
        let (before, me_before) = (cpu_ns(&task), cpu_ns(me));
        let started = std::time::Instant::now();
        for i in 0..n {
            // About the size of a statement line (~420 bytes).
            log.record(Event::AuthFailed {
                peer: format!("127.0.0.1:{i}"),
                code: "token_invalid".into(),
                reason: "x".repeat(300),
            });
            if pause > 0 {
                std::thread::sleep(std::time::Duration::from_micros(pause));
            }
        }
        let me_cpu = cpu_ns(me) - me_before;
        rt.block_on(log.flush());
        let (cpu, elapsed) = (cpu_ns(&task) - before, started.elapsed());
        let per_event = |ns: u64| ns as f64 / 1000.0 / n as f64;
        println!(
            "{label}: {n} events in {elapsed:.2?} ({:.0}/s); CPU per event: writer {:.1} µs, \
             recording thread {:.1} µs; {} fdatasyncs",
            n as f64 / elapsed.as_secs_f64(),
            per_event(cpu),
            per_event(me_cpu),
            log.syncs(),
        );
        drop(log);
        handle.join().unwrap();
        let _ = fs::remove_dir_all(&dir);
    }
}

#[test]
fn timestamps_are_kept_in_order_unless_the_clock_steps_back() {
    let dir = tempdir();
    let path = dir.join("log");
    let mut w = Writer {
        file: File::create(&path).unwrap(),
        path: path.clone(),
        seq: 0,
        prev: genesis(),
        last_ts: SystemTime::UNIX_EPOCH,
        pending: Vec::new(),
        pending_lines: 0,
        unsynced_since: None,
        syncs: Arc::default(),
    };
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let ms = Duration::from_millis(1);
    // A later time, a race (a thread that read the clock first sent
    // second), then a clock stepped back by a minute.
    for at in [t, t + 3 * ms, t + 2 * ms, t - Duration::from_secs(60)] {
        w.append(&login(0), at);
    }
    w.sync();
    assert_eq!(w.syncs.load(Ordering::Relaxed), 1);
    let text = fs::read_to_string(&path).unwrap();
    let ts: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["ts"].to_string())
        .collect();
    assert_eq!(
        ts,
        [
            "\"2027-01-15T08:00:00.000000Z\"",
            "\"2027-01-15T08:00:00.003000Z\"",
            "\"2027-01-15T08:00:00.003000Z\"",
            "\"2027-01-15T07:59:00.000000Z\"",
        ]
    );
    assert_eq!(verify(&path).unwrap().lines, 4);
    let _ = fs::remove_dir_all(&dir);
}

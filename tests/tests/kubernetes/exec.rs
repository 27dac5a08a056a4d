//! `kubectl exec` and `attach` through hoop: recorded, replayed, refused
//! over SPDY.

use super::*;
use common::Tmux;

/// The exec event whose recording's header names `command`.
fn exec_event(s: &Setup, command: &str) -> Value {
    s.wait_event("http_request", |e| {
        e["verb"] == "exec"
            && e["recording"].as_str().is_some_and(|r| {
                std::fs::read_to_string(s.agent.data_dir().join(r)).is_ok_and(|b| {
                    b.lines()
                        .next()
                        .and_then(|h| serde_json::from_str::<Value>(h).ok())
                        .is_some_and(|h| h["command"] == command)
                })
            })
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_over_websocket_is_recorded_and_replays() {
    let (_api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");

    assert_eq!(
        k.ok(&["exec", "web", "--", "echo", "marker-77"]),
        "marker-77\n"
    );
    let out = k.run(&["exec", "web", "--", "false"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = k.run(&["exec", "web", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = k.run(&["exec", "web", "--", "no-such-command"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("executable file not found"),
        "{}",
        text(&out.stderr)
    );

    let mut child = k
        .cmd(&["exec", "-i", "web", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"typed-input-31\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "typed-input-31\n");

    let ev = kube_event(&s, "exec", None);
    assert_eq!(ev["resource"], "pods");
    assert_eq!(ev["name"], "web");
    assert_eq!(ev["subresource"], "exec");
    assert_eq!(ev["status"], 101);
    let recording = ev["recording"].as_str().expect("a recording").to_string();
    let cast = s.agent.data_dir().join(&recording);
    let body = std::fs::read_to_string(&cast).unwrap();
    let header: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert!(body.contains("marker-77"), "{body}");

    // The exit status from the status channel, in each exec's event.
    for (command, code) in [("echo marker-77", 0), ("false", 1), ("sh -c exit 3", 3)] {
        let ev = exec_event(&s, command);
        assert_eq!(ev["exit_status"], code, "{command}: {ev}");
        assert_eq!(ev["outcome"], "ok", "{command}: {ev}");
    }
    // A command that never ran: no exit status, the API server's reason.
    let ev = exec_event(&s, "no-such-command");
    assert!(ev.get("exit_status").is_none(), "{ev}");
    assert_eq!(ev["outcome"], "error", "{ev}");
    assert!(
        ev["error"]
            .as_str()
            .is_some_and(|e| e.contains("executable file not found")),
        "{ev}"
    );

    // The cat session recorded its input and output.
    let cat = s.wait_event("http_request", |e| {
        e["verb"] == "exec" && e["recording"].is_string() && e["outcome"] == "ok" && {
            let p = s
                .agent
                .data_dir()
                .join(e["recording"].as_str().unwrap_or(""));
            std::fs::read_to_string(p).is_ok_and(|b| b.contains("\"i\",\"typed-input-31"))
        }
    });
    let name = Path::new(cat["recording"].as_str().unwrap())
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let out = s
        .agent
        .run_hoop(Some(&s.token), &["sessions", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recording"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not in {list}"));
    assert_eq!(entry["request"], "exec");
    assert_eq!(entry["command"], "cat");
    let out = s.agent.run_hoop(
        Some(&s.token),
        &["replay", &name, "--speed", "50", "--idle-limit", "0.1"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("typed-input-31"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spdy_exec_is_refused_with_a_way_forward() {
    let (_api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");
    let out = k
        .cmd(&["exec", "web", "--", "echo", "hi"])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("kubectl 1.30 or later"), "{err}");
    let ev = s.wait_event("http_request", |e| e["verb"] == "exec");
    assert_eq!(ev["outcome"], "refused");
    assert_eq!(ev["rule"], "recording");
    assert!(ev.get("recording").is_none(), "{ev}");
    let recordings = s.agent.data_dir().join("recordings");
    assert!(
        files_under(&recordings).is_empty(),
        "nothing to record, nothing kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn interactive_exec_with_a_tty_resizes_and_an_exit_status() {
    let (api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");
    let tmux = Tmux {
        socket: k.home.path().join("tmux.sock"),
        session: "kube",
    };
    // kubectl in a terminal of 100x30; its exit code shown after it.
    let mut start = tmux.cmd();
    start
        .env("KUBECONFIG", &k.kubeconfig)
        .env("HOME", k.home.path())
        .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
        .args(["new-session", "-d", "-s", "kube", "-x", "100", "-y", "30"])
        .arg("kubectl --request-timeout 30s exec -it web -- sh; echo kubectl-exit-$?; sleep 30");
    let out = start.output().unwrap();
    assert!(out.status.success(), "tmux: {}", text(&out.stderr));

    tmux.wait_for_line("standin$");
    tmux.keys(&["echo hello-tty-5", "Enter"]);
    // The stand-in echoes what is typed (kubectl put the terminal in raw
    // mode), then runs it.
    let screen = tmux.wait_for_line("hello-tty-5");
    assert!(screen.contains("standin$ echo hello-tty-5"), "{screen}");
    // kubectl sends the terminal's size as the stream starts.
    wait_for("the first resize at the stand-in", || {
        api.execs()
            .last()
            .is_some_and(|e| !e.resizes.is_empty())
            .then_some(())
    })
    .unwrap();
    tmux.keys(&["size", "Enter"]);
    tmux.wait_for_line("size 100x30");
    tmux.run(&["resize-window", "-t", "kube", "-x", "120", "-y", "40"]);
    // kubectl sends the new size on channel 4 when it sees SIGWINCH.
    wait_for("the resize at the stand-in", || {
        api.execs()
            .last()
            .is_some_and(|e| e.resizes.contains(&(120, 40)))
            .then_some(())
    })
    .unwrap();
    tmux.keys(&["size", "Enter"]);
    tmux.wait_for_line("size 120x40");
    tmux.keys(&["exit 7", "Enter"]);
    tmux.wait_for_line("kubectl-exit-7");

    let seen = api.execs();
    let seen = seen.last().unwrap();
    assert_eq!(seen.command, ["sh"]);
    assert!(seen.tty && seen.stdin, "{seen:?}");
    assert_eq!(seen.resizes.first(), Some(&(100, 30)), "{seen:?}");
    assert_eq!(seen.exit_code, Some(7));
    assert!(text(&seen.input).contains("echo hello-tty-5\r"), "{seen:?}");

    // The audit event: the exit status and the recording.
    let ev = s.wait_event("http_request", |e| {
        e["verb"] == "exec" && e["exit_status"].is_number()
    });
    assert_eq!(ev["exit_status"], 7, "{ev}");
    assert_eq!(ev["outcome"], "ok", "{ev}");
    assert_eq!(ev["status"], 101, "{ev}");
    let rel = ev["recording"].as_str().expect("a recording");
    let body = std::fs::read_to_string(s.agent.data_dir().join(rel)).unwrap();
    let mut lines = body.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["command"], "sh");
    assert_eq!(header["env"]["TERM"], "xterm", "{header}");

    let events: Vec<Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let joined = |kind: &str| {
        events
            .iter()
            .filter(|e| e[1] == kind)
            .map(|e| e[2].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(joined("o").concat().contains("hello-tty-5\r\n"), "{body}");
    assert!(joined("o").concat().contains("size 120x40"), "{body}");
    assert!(joined("i").concat().contains("echo hello-tty-5"), "{body}");
    let resizes = joined("r");
    // kubectl's first size is the header's when it comes before any
    // output, else the first resize event (the stand-in's prompt races it).
    assert!(
        (header["width"] == 100 && header["height"] == 30)
            || resizes.first().is_some_and(|r| r == "100x30"),
        "{header} {body}"
    );
    assert!(resizes.iter().any(|r| r == "120x40"), "{body}");

    let name = Path::new(rel).file_stem().unwrap().to_string_lossy();
    let out = s.agent.run_hoop(
        Some(&s.token),
        &["replay", &name, "--speed", "50", "--idle-limit", "0.1"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replayed = text(&out.stdout);
    assert!(
        replayed.contains("standin$ echo hello-tty-5\r\nhello-tty-5\r\n"),
        "{replayed}"
    );
    assert!(replayed.contains("size 120x40"), "{replayed}");
}

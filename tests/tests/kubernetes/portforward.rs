//! `kubectl port-forward` against the stand-in and through hoop, over
//! SPDY tunnelled in WebSocket and plain SPDY.

use super::*;

/// `kubectl port-forward pod/web :80` with `cmd` (whose stdout is taken),
/// once it listens: the child and its local port.
struct PortForward {
    child: std::process::Child,
    port: u16,
    /// What kubectl printed on stderr so far.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl PortForward {
    /// `websocket`: kubectl's default path, else
    /// `KUBECTL_PORT_FORWARD_WEBSOCKETS=false` (plain SPDY).
    async fn start(cmd: Command, websocket: bool) -> PortForward {
        Self::to_port(cmd, websocket, 80).await
    }

    /// As [`PortForward::start`], to the pod's port `remote`.
    async fn to_port(mut cmd: Command, websocket: bool, remote: u16) -> PortForward {
        cmd.args(["port-forward", "--address", "127.0.0.1", "pod/web"])
            .arg(format!(":{remote}"))
            .env(
                "KUBECTL_PORT_FORWARD_WEBSOCKETS",
                if websocket { "true" } else { "false" },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl port-forward");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let port = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let port = lines.by_ref().map_while(Result::ok).find_map(|l| {
                l.strip_prefix("Forwarding from 127.0.0.1:")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|p| p.parse::<u16>().ok())
            });
            // Keep draining ("Handling connection for 80" per connection).
            std::thread::spawn(move || lines.for_each(drop));
            port
        });
        let port = tokio::time::timeout(Duration::from_secs(30), port)
            .await
            .expect("kubectl port-forward listened")
            .unwrap();
        let Some(port) = port else {
            let _ = child.kill();
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            panic!("kubectl port-forward did not listen: {err}");
        };
        let err = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let e = err.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                e.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        PortForward {
            child,
            port,
            stderr: err,
        }
    }

    /// Sends `payload`, closes the sending side, and returns all that came
    /// back before the far end closed.
    async fn echo(&self, payload: Vec<u8>) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let round_trip = async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .expect("connect to the forwarded port");
            let (mut r, mut w) = tcp.into_split();
            let send = tokio::spawn(async move {
                w.write_all(&payload).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            send.await.unwrap();
            got
        };
        tokio::time::timeout(Duration::from_secs(60), round_trip)
            .await
            .expect("echo round trip")
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(b: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b))
}

/// 1 MiB that is not one byte repeated.
fn mebibyte() -> Vec<u8> {
    (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// An echo, 1 MiB with a checksum, and two connections at once through
/// `pf`; returns the bytes it sent.
async fn exercise(pf: &PortForward) -> u64 {
    assert_eq!(pf.echo(b"hello pod\n".to_vec()).await, b"hello pod\n");
    let big = mebibyte();
    let back = pf.echo(big.clone()).await;
    assert_eq!(back.len(), big.len());
    assert_eq!(sha256(&back), sha256(&big));
    let (a, b) = tokio::join!(pf.echo(vec![b'a'; 70_000]), pf.echo(vec![b'b'; 50_000]));
    assert!(a.len() == 70_000 && a.iter().all(|&x| x == b'a'));
    assert!(b.len() == 50_000 && b.iter().all(|&x| x == b'b'));
    10 + (1 << 20) + 70_000 + 50_000
}

/// The stand-in's record of the port-forwards once `n` data streams have
/// each ended with FIN.
fn forwarded(api: &KubeApi, n: u32) -> Vec<hoop_tests::kube_api::PortForwardSeen> {
    tokio::task::block_in_place(|| {
        wait_for("the port-forward streams to end", || {
            let all = api.portforwards();
            (all.iter().map(|p| p.finished).sum::<u32>() >= n).then_some(all)
        })
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", api.portforwards()))
}

/// One port-forward with `cmd`: the traffic of [`exercise`], then the
/// stand-in must have seen one upgraded connection over `transport` with
/// four data streams to port 80, every byte both ways.
async fn forward_once(api: &KubeApi, cmd: Command, websocket: bool, transport: &str) {
    let before = api.portforwards().len();
    let before_finished: u32 = api.portforwards().iter().map(|p| p.finished).sum();
    let pf = PortForward::start(cmd, websocket).await;
    let sent = exercise(&pf).await;
    let seen = forwarded(api, before_finished + 4);
    pf.stop();
    let seen = &seen[before..];
    assert_eq!(seen.len(), 1, "one upgraded connection: {seen:?}");
    assert_eq!(seen[0].transport, transport);
    assert_eq!(seen[0].ports, [80, 80, 80, 80]);
    assert_eq!(seen[0].bytes_in, sent);
    assert_eq!(seen[0].bytes_out, sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_against_the_stand_in_over_websocket_and_spdy() {
    let api = KubeApi::start(TOKEN).await.unwrap();
    let home = TempDir::new("hoop-kubectl-home");
    let direct = || {
        let mut c = Command::new("kubectl");
        c.args([
            "--request-timeout",
            "30s",
            "--server",
            &api.url(),
            "--token",
            TOKEN,
        ])
        .arg(format!("--certificate-authority={}", api.ca_path.display()))
        .env("KUBECONFIG", home.path().join("none"))
        .env("HOME", home.path())
        .stdin(Stdio::null());
        c
    };
    for (websocket, transport) in [(true, "websocket"), (false, "spdy")] {
        forward_once(&api, direct(), websocket, transport).await;
    }

    // A port the pod does not listen on: the error stream says so, and
    // kubectl shows it.
    let pf = PortForward::to_port(direct(), true, 81).await;
    assert_eq!(pf.echo(b"anyone?".to_vec()).await, b"");
    tokio::task::block_in_place(|| {
        wait_for("kubectl to print the error stream", || {
            let err = pf.stderr.lock().unwrap().clone();
            err.contains("error forwarding port 81 to pod web")
                .then_some(())
        })
    })
    .unwrap_or_else(|e| panic!("{e}: {}", pf.stderr.lock().unwrap()));
    pf.stop();
    assert_eq!(api.portforwards().last().unwrap().ports, [81]);
    assert_eq!(api.unauthorized(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_through_hoop_over_websocket_and_spdy() {
    let (api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");
    // kubectl's default, then plain SPDY asked for, then plain SPDY as
    // kubectl's fallback when the WebSocket upgrade is refused.
    for (websocket, transport, refuse) in [
        (true, "websocket", false),
        (false, "spdy", false),
        (true, "spdy", true),
    ] {
        if refuse {
            api.refuse_websocket_port_forward();
        }
        forward_once(&api, k.cmd(&[]), websocket, transport).await;
    }

    // The agent's token, and only it, reached the API server.
    assert_eq!(api.unauthorized(), 0);
    assert_only_token(&api, TOKEN);
    let upgrades: Vec<String> = api
        .headers_seen()
        .iter()
        .filter_map(|h| {
            h.iter()
                .find(|(k, _)| k == "upgrade")
                .map(|(_, v)| v.to_ascii_lowercase())
        })
        .collect();
    assert_eq!(upgrades, ["websocket", "spdy/3.1", "websocket", "spdy/3.1"]);

    // The audit log has each port-forward request.
    let events = s.wait_audit("four portforward events", |evs| {
        let pf: Vec<Value> = evs
            .iter()
            .filter(|e| e["event"] == "http_request" && e["verb"] == "portforward")
            .cloned()
            .collect();
        (pf.len() >= 4).then_some(pf)
    });
    let statuses: Vec<&Value> = events.iter().map(|e| &e["status"]).collect();
    assert_eq!(statuses, [101, 101, 400, 101], "{events:?}");
    for ev in &events {
        assert_eq!(ev["resource"], "pods", "{ev}");
        assert_eq!(ev["subresource"], "portforward", "{ev}");
        assert_eq!(ev["namespace"], "default", "{ev}");
        assert_eq!(ev["name"], "web", "{ev}");
        assert_eq!(ev["user"], HOOP_USER, "{ev}");
    }
}

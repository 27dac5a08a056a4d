//! Token checks, end to end: every bad token is refused with a reason the
//! user can act on, and a rotated signing key is picked up.

use hoop_tests::harness::{Agent, Conn};
use hoop_tests::issuer::{self, Alg, PublicKeyForm, TestIssuer};
use hoop_tests::servers;
use serde_json::{Value, json};

async fn setup() -> (TestIssuer, Agent) {
    let issuer = TestIssuer::start().await.unwrap();
    let echo = servers::echo().await.unwrap();
    let agent = Agent::start(issuer.url(), &[Conn::tcp("echo", echo)]).unwrap();
    (issuer, agent)
}

/// Runs `hoop whoami -o json` with `token`: Ok(identity) or Err(stderr).
fn whoami(agent: &Agent, token: Option<&str>) -> Result<Value, String> {
    let out = agent.run_hoop(token, &["whoami", "-o", "json"]);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn good_token_for_every_algorithm() {
    let (issuer, agent) = setup().await;
    let base = issuer.claims_for("alice@example.com", &["eng", "ops"], "hoop", 600);
    // Publish every key first (as issuers do before signing with a new
    // key): one refetch then serves them all.
    let kids: Vec<(Alg, String)> = Alg::ALL
        .into_iter()
        .map(|alg| (alg, issuer.add_key(alg).unwrap()))
        .collect();
    for (alg, kid) in kids {
        let token = issuer.mint(&kid, &base).unwrap();
        let id = whoami(&agent, Some(&token)).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(id["user"], "alice@example.com");
        assert_eq!(id["groups"], json!(["eng", "ops"]));
        assert_eq!(id["issuer"], issuer.url());
        assert_eq!(id["expires_at"], base["exp"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_refused_with_reasons() {
    let (issuer, agent) = setup().await;
    let kid = issuer.kids()[0].clone();
    let good = issuer.claims_for("alice@example.com", &["eng"], "hoop", 600);
    let with = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let other = TestIssuer::start().await.unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            issuer
                .mint(
                    &kid,
                    &with(json!({"exp": now() - 3600, "nbf": now() - 7200})),
                )
                .unwrap(),
            "expired",
        ),
        (
            "expired just beyond the leeway",
            issuer
                .mint(&kid, &with(json!({"exp": now() - 45})))
                .unwrap(),
            "expired",
        ),
        (
            "not yet valid",
            issuer
                .mint(&kid, &with(json!({"nbf": now() + 3600})))
                .unwrap(),
            "check this machine's clock",
        ),
        (
            "wrong issuer",
            other
                .token_for("alice@example.com", &["eng"], "hoop", 600)
                .unwrap(),
            "does not trust tokens from issuer",
        ),
        (
            "wrong audience",
            issuer
                .mint(&kid, &with(json!({"aud": "someone-else"})))
                .unwrap(),
            "not meant for this agent",
        ),
        (
            "badly signed",
            issuer.token_signed_by_stranger(&kid, &good).unwrap(),
            "signature does not verify",
        ),
        (
            "alg none",
            issuer::token_alg_none(&good).unwrap(),
            "refused",
        ),
        (
            "HS256 with the RSA public key (PEM)",
            issuer.token_hs256_with_public_key(&kid, &good).unwrap(),
            "not allowed",
        ),
        (
            "HS256 with the RSA public key (DER)",
            issuer
                .token_hs256_with_public_key_form(&kid, PublicKeyForm::SpkiDer, &good)
                .unwrap(),
            "not allowed",
        ),
        (
            "unknown kid",
            issuer::token_unknown_kid(&good).unwrap(),
            "not in the JWKS",
        ),
        (
            "truncated",
            issuer::truncate(&issuer.mint(&kid, &good).unwrap()),
            "refused",
        ),
        ("garbage", "not-a-jwt".to_string(), "not a well-formed JWT"),
        (
            "no exp",
            issuer
                .mint(&kid, &{
                    let mut c = good.clone();
                    c.as_object_mut().unwrap().remove("exp");
                    c
                })
                .unwrap(),
            "refused",
        ),
    ];
    // Sanity: the unmodified claims are accepted, so each refusal below is
    // caused by its one defect.
    assert!(whoami(&agent, Some(&issuer.mint(&kid, &good).unwrap())).is_ok());
    for (what, token, expect) in &cases {
        let err = whoami(&agent, Some(token)).expect_err(what);
        assert!(err.contains(expect), "{what}: {err}");
        assert!(
            !err.contains(token.as_str()),
            "{what}: the token is echoed back"
        );
    }
    // Each refusal is an audit event with its reason.
    let mut agent = agent;
    agent.stop();
    let failures = agent
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "auth_failed")
        .count();
    assert_eq!(failures, cases.len());
    // Refusals are logged with their reason, never with the token.
    let log = agent.log.all();
    assert!(log.contains("token refused"), "{log}");
    for (_, token, _) in &cases {
        if token.len() > 20 {
            assert!(!log.contains(token.as_str()), "agent log contains a token");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_is_accepted_and_unknown_kids_are_rate_limited() {
    let (issuer, agent) = setup().await;
    let old = issuer.kids()[0].clone();
    let claims = issuer.claims_for("alice@example.com", &["eng"], "hoop", 600);
    whoami(&agent, Some(&issuer.mint(&old, &claims).unwrap())).unwrap();
    let fetched = issuer.jwks_requests();

    // The issuer rotates: a new key signs, the old one is withdrawn.
    let new = issuer.add_key(Alg::ES256).unwrap();
    issuer.remove_key(&old);
    let id = whoami(&agent, Some(&issuer.mint(&new, &claims).unwrap())).unwrap();
    assert_eq!(id["user"], "alice@example.com");
    assert_eq!(
        issuer.jwks_requests(),
        fetched + 1,
        "one refetch for the new kid"
    );

    // A flood of made-up kids right after does not hammer the issuer.
    for _ in 0..5 {
        let err = whoami(&agent, Some(&issuer::token_unknown_kid(&claims).unwrap())).unwrap_err();
        assert!(err.contains("not in the JWKS"), "{err}");
    }
    assert_eq!(
        issuer.jwks_requests(),
        fetched + 1,
        "unknown kids are rate-limited"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_token_says_how_to_sign_in() {
    let (_issuer, agent) = setup().await;
    let err = whoami(&agent, None).unwrap_err();
    assert!(
        err.contains("not signed in") && err.contains("HOOP_TOKEN"),
        "{err}"
    );
    let out = agent.run_hoop(None, &["connect", "echo", "-p", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOOP_TOKEN"));
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_provider_down_is_reported_not_hung() {
    let (mut issuer, agent) = setup().await;
    // Let the agent load the keys as they are now (its start-up fetch may
    // still be under way), so the key added next is one it has not seen.
    let first = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 600)
        .unwrap();
    whoami(&agent, Some(&first)).unwrap();
    // A token minted with a key the agent has not seen forces a fetch.
    let kid = issuer.add_key(Alg::EdDSA).unwrap();
    let claims = issuer.claims_for("alice@example.com", &["eng"], "hoop", 600);
    let token = issuer.mint(&kid, &claims).unwrap();
    issuer.stop().await;
    let err = whoami(&agent, Some(&token)).unwrap_err();
    assert!(err.contains("cannot fetch the signing keys"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_and_user_claims_are_configurable() {
    let issuer = TestIssuer::start().await.unwrap();
    let echo = servers::echo().await.unwrap();
    let agent = Agent::start_with(
        issuer.url(),
        &[Conn::tcp("echo", echo).groups(&["platform"])],
        "user_claim = \"preferred_username\"\ngroups_claim = \"roles\"\n",
    )
    .unwrap();
    let kid = issuer.kids()[0].clone();
    let mut claims = issuer.claims_for("ci@example.com", &[], "hoop", 600);
    claims["preferred_username"] = json!("ci-bot");
    claims["roles"] = json!(["platform"]);
    let token = issuer.mint(&kid, &claims).unwrap();
    let id = whoami(&agent, Some(&token)).unwrap();
    assert_eq!(id["user"], "ci-bot");
    assert_eq!(id["groups"], json!(["platform"]));
    let out = agent.run_hoop(Some(&token), &["connections", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "echo");
}

#[tokio::test(flavor = "multi_thread")]
async fn unrefreshed_token_ends_the_tunnel_after_the_grace_period() {
    let issuer = TestIssuer::start().await.unwrap();
    let echo = servers::echo().await.unwrap();
    let agent = Agent::start_full(
        issuer.url(),
        &[Conn::tcp("echo", echo)],
        "token_grace_secs = 1",
        "leeway_secs = 0",
    )
    .unwrap();
    // A fixed HOOP_TOKEN cannot be refreshed: the agent must end the
    // tunnel once it has expired, and say why.
    let token = issuer
        .token_for("alice@example.com", &["eng"], "hoop", 3)
        .unwrap();
    let connect = hoop_tests::harness::Connect::start(&agent, &token, "echo").unwrap();
    let mut s = tokio::net::TcpStream::connect(connect.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"before expiry").await.unwrap();
    let mut buf = [0u8; 13];
    s.read_exact(&mut buf).await.unwrap();
    // Keep the connection open past expiry + grace; it is cut, not hung.
    let mut rest = Vec::new();
    let ended =
        tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the tunnel outlived its token");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !connect.stderr.all().contains("your token expired") {
        assert!(
            std::time::Instant::now() < deadline,
            "stderr: {}",
            connect.stderr.all()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        connect.stderr.all().contains("hoop login"),
        "{}",
        connect.stderr.all()
    );
    let mut agent = agent;
    agent.stop();
    assert!(agent.audit().iter().any(|e| e["event"] == "tunnel_expired"));
}

//! The real OpenID Connect provider harness (`hoop_tests::oidc`) works on
//! its own: every flow `hoop login` will use, driven as a browser would, and
//! the agent accepts the access tokens it signs.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hoop_tests::harness::{Agent, Conn};
use hoop_tests::oidc::{
    self, AUDIENCE, CALLBACK_PATH, CI_CLIENT_ID, CLI_CLIENT_ID, OidcProvider, RESOURCE,
};
use hoop_tests::servers;
use reqwest::Url;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const SCOPES: &str = "openid email profile offline_access";

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    URL_SAFE_NO_PAD.encode(b)
}

/// The decoded header and payload of a JWT (signatures are the agent's job).
fn jwt(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = || {
        let bytes = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    (part(), part())
}

/// The provider's discovery document.
async fn discovery(p: &OidcProvider) -> Value {
    reqwest::get(format!("{}/.well-known/openid-configuration", p.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn endpoint(d: &Value, name: &str) -> String {
    d[name].as_str().unwrap().to_string()
}

/// POSTs a form, returning status and JSON body.
async fn post(url: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// A one-shot loopback redirect target standing in for `hoop login`'s:
/// answers the first request with 200 and hands over its query.
async fn callback_listener() -> (String, oneshot::Receiver<HashMap<String, String>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_uri = format!("http://{}{CALLBACK_PATH}", l.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "callback request cut short");
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8(head).unwrap();
        let target = head.split(' ').nth(1).unwrap();
        let url = Url::parse(&format!("http://127.0.0.1{target}")).unwrap();
        assert_eq!(url.path(), CALLBACK_PATH);
        let body = "signed in; you may close this tab";
        let _ = s
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        let _ = tx.send(url.query_pairs().into_owned().collect());
    });
    (redirect_uri, rx)
}

/// One authorization-code attempt: its URL and what proves it is ours.
struct Attempt {
    url: String,
    redirect_uri: String,
    verifier: String,
    state: String,
    nonce: String,
    query: oneshot::Receiver<HashMap<String, String>>,
}

async fn attempt(d: &Value, extra: &[(&str, &str)]) -> Attempt {
    let (redirect_uri, query) = callback_listener().await;
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let (state, nonce) = (random_b64(16), random_b64(16));
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", CLI_CLIENT_ID),
        ("redirect_uri", redirect_uri.as_str()),
        ("scope", SCOPES),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let url = Url::parse_with_params(&endpoint(d, "authorization_endpoint"), &params)
        .unwrap()
        .to_string();
    Attempt {
        url,
        redirect_uri,
        verifier,
        state,
        nonce,
        query,
    }
}

/// Signs `user` in through the browser flow and redeems the code.
async fn login(p: &OidcProvider, d: &Value, user: &str) -> Value {
    let a = attempt(d, &[("prompt", "consent")]).await;
    let url = a.url.clone();
    let user = user.to_string();
    let page = tokio::task::spawn_blocking(move || oidc::drive_login(&url, &user))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.body, "signed in; you may close this tab");
    let q = a.query.await.unwrap();
    assert_eq!(q["state"], a.state);
    assert_eq!(q["iss"], p.url());
    assert_eq!(page.query("code").as_deref(), Some(q["code"].as_str()));
    let (status, tokens) = post(
        &endpoint(d, "token_endpoint"),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLI_CLIENT_ID),
            ("code", &q["code"]),
            ("code_verifier", &a.verifier),
            ("redirect_uri", &a.redirect_uri),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let (_, id) = jwt(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], a.nonce.as_str());
    assert_eq!(id["aud"], CLI_CLIENT_ID);
    tokens
}

/// Checks an access token for a signed-in person.
fn check_user_token(p: &OidcProvider, token: &str, email: &str, groups: Value, ttl: u64) {
    let (header, claims) = jwt(token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], p.url());
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["email"], email);
    assert_eq!(claims["groups"], groups);
    assert_eq!(claims["client_id"], CLI_CLIENT_ID);
    assert_eq!(claims["scope"], SCOPES);
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, ttl);
}

#[tokio::test(flavor = "multi_thread")]
async fn code_flow_gives_jwt_access_token_and_rotating_refresh_token() {
    let p = OidcProvider::start(600).unwrap();
    let d = discovery(&p).await;
    assert_eq!(d["issuer"], p.url());
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    let tokens = login(&p, &d, "alice").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 600);
    assert_eq!(tokens["scope"], SCOPES);
    let access = tokens["access_token"].as_str().unwrap();
    check_user_token(&p, access, "alice@example.com", json!(["eng"]), 600);
    assert_eq!(jwt(access).1["sub"], "alice");

    // Refresh: new tokens, and a new refresh token that replaces the old.
    let token_url = endpoint(&d, "token_endpoint");
    let rt1 = tokens["refresh_token"].as_str().unwrap();
    let refresh = |rt: String| {
        let token_url = token_url.clone();
        async move {
            post(
                &token_url,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", CLI_CLIENT_ID),
                    ("refresh_token", &rt),
                ],
                None,
            )
            .await
        }
    };
    let (status, again) = refresh(rt1.to_string()).await;
    assert_eq!(status, 200, "{again}");
    let rt2 = again["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt2, rt1);
    let access2 = again["access_token"].as_str().unwrap();
    assert_ne!(access2, access);
    check_user_token(&p, access2, "alice@example.com", json!(["eng"]), 600);
    // The rotated-out token is refused, and (reuse detection) so is the
    // grant behind it: the newer refresh token dies too.
    let (status, err) = refresh(rt1.to_string()).await;
    assert_eq!((status, &err["error"]), (400, &json!("invalid_grant")));
    let (status, err) = refresh(rt2).await;
    assert_eq!((status, &err["error"]), (400, &json!("invalid_grant")));

    // Revocation is switched on (`hoop logout` revokes).
    let tokens = login(&p, &d, "bob").await;
    check_user_token(
        &p,
        tokens["access_token"].as_str().unwrap(),
        "bob@example.com",
        json!(["sales"]),
        600,
    );
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    let res = reqwest::Client::new()
        .post(endpoint(&d, "revocation_endpoint"))
        .form(&[
            ("client_id", CLI_CLIENT_ID),
            ("token", &rt),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, err) = refresh(rt).await;
    assert_eq!((status, &err["error"]), (400, &json!("invalid_grant")));
}

#[tokio::test(flavor = "multi_thread")]
async fn access_ttl_is_configurable() {
    let p = OidcProvider::start(3).unwrap();
    let d = discovery(&p).await;
    let tokens = login(&p, &d, "alice").await;
    assert_eq!(tokens["expires_in"], 3);
    check_user_token(
        &p,
        tokens["access_token"].as_str().unwrap(),
        "alice@example.com",
        json!(["eng"]),
        3,
    );
}

/// OpenID Connect Core §11: without `prompt=consent` the provider drops
/// `offline_access`, so no refresh token. `hoop login` must ask for consent
/// to get one.
#[tokio::test(flavor = "multi_thread")]
async fn offline_access_needs_prompt_consent() {
    let p = OidcProvider::start(600).unwrap();
    let d = discovery(&p).await;
    let a = attempt(&d, &[]).await;
    let url = a.url.clone();
    tokio::task::spawn_blocking(move || oidc::drive_login(&url, "alice"))
        .await
        .unwrap()
        .unwrap();
    let q = a.query.await.unwrap();
    let (status, tokens) = post(
        &endpoint(&d, "token_endpoint"),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLI_CLIENT_ID),
            ("code", &q["code"]),
            ("code_verifier", &a.verifier),
            ("redirect_uri", &a.redirect_uri),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert_eq!(tokens["scope"], "openid email profile");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_sends_access_denied_to_the_callback() {
    let p = OidcProvider::start(600).unwrap();
    let d = discovery(&p).await;
    let a = attempt(&d, &[("prompt", "consent")]).await;
    let url = a.url.clone();
    let page = tokio::task::spawn_blocking(move || oidc::drive_abort(&url))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.status, 200);
    let q = a.query.await.unwrap();
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], a.state);
    assert!(!q.contains_key("code"));
    assert_eq!(page.query("error").as_deref(), Some("access_denied"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pkce_is_required() {
    let p = OidcProvider::start(600).unwrap();
    let d = discovery(&p).await;
    let (redirect_uri, query) = callback_listener().await;
    let url = Url::parse_with_params(
        &endpoint(&d, "authorization_endpoint"),
        &[
            ("response_type", "code"),
            ("client_id", CLI_CLIENT_ID),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", SCOPES),
            ("state", "s"),
        ],
    )
    .unwrap()
    .to_string();
    tokio::task::spawn_blocking(move || oidc::drive_login(&url, "alice"))
        .await
        .unwrap()
        .unwrap();
    let q = query.await.unwrap();
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].contains("PKCE"), "{q:?}");
}

/// A wrong redirect URI gets the provider's error page, and the driver
/// says what the provider said.
#[tokio::test(flavor = "multi_thread")]
async fn driver_reports_provider_errors() {
    let p = OidcProvider::start(600).unwrap();
    let d = discovery(&p).await;
    let url = Url::parse_with_params(
        &endpoint(&d, "authorization_endpoint"),
        &[
            ("response_type", "code"),
            ("client_id", CLI_CLIENT_ID),
            ("redirect_uri", "http://127.0.0.1:1/elsewhere"),
            ("scope", SCOPES),
        ],
    )
    .unwrap()
    .to_string();
    let err = tokio::task::spawn_blocking(move || oidc::drive_login(&url, "alice"))
        .await
        .unwrap()
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("redirect_uri"), "{msg}");
}

async fn device_authorization(d: &Value) -> Value {
    let (status, auth) = post(
        &endpoint(d, "device_authorization_endpoint"),
        &[("client_id", CLI_CLIENT_ID), ("scope", SCOPES)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    auth
}

async fn poll(d: &Value, auth: &Value) -> (u16, Value) {
    post(
        &endpoint(d, "token_endpoint"),
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", CLI_CLIENT_ID),
            ("device_code", auth["device_code"].as_str().unwrap()),
        ],
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn device_flow_gives_tokens() {
    let p = OidcProvider::start(600).unwrap();
    let d = discovery(&p).await;
    for (user, uri_field, email, groups) in [
        (
            "bob",
            "verification_uri_complete",
            "bob@example.com",
            json!(["sales"]),
        ),
        (
            "alice",
            "verification_uri",
            "alice@example.com",
            json!(["eng"]),
        ),
    ] {
        let auth = device_authorization(&d).await;
        assert_eq!(auth["verification_uri"], format!("{}/device", p.url()));
        let (status, pending) = poll(&d, &auth).await;
        assert_eq!(
            (status, &pending["error"]),
            (400, &json!("authorization_pending"))
        );
        let uri = auth[uri_field].as_str().unwrap().to_string();
        let code = auth["user_code"].as_str().unwrap().to_string();
        let page = tokio::task::spawn_blocking(move || oidc::drive_device(&uri, &code, user))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Sign-in Success"), "{page:?}");
        let (status, tokens) = poll(&d, &auth).await;
        assert_eq!(status, 200, "{tokens}");
        // No prompt=consent needed here: the device flow keeps offline_access.
        assert!(tokens["refresh_token"].is_string(), "{tokens}");
        check_user_token(
            &p,
            tokens["access_token"].as_str().unwrap(),
            email,
            groups,
            600,
        );
        // A device code is good for one set of tokens.
        let (status, again) = poll(&d, &auth).await;
        assert_eq!((status, &again["error"]), (400, &json!("invalid_grant")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn device_flow_denied() {
    let p = OidcProvider::start(600).unwrap();
    let d = discovery(&p).await;
    let auth = device_authorization(&d).await;
    let uri = auth["verification_uri_complete"]
        .as_str()
        .unwrap()
        .to_string();
    let code = auth["user_code"].as_str().unwrap().to_string();
    let page = tokio::task::spawn_blocking(move || oidc::drive_device_deny(&uri, &code))
        .await
        .unwrap()
        .unwrap();
    assert!(page.body.contains("interrupted"), "{page:?}");
    let (status, err) = poll(&d, &auth).await;
    assert_eq!((status, &err["error"]), (400, &json!("access_denied")));
    // The driver refuses a code the page does not show.
    let auth = device_authorization(&d).await;
    let uri = auth["verification_uri_complete"]
        .as_str()
        .unwrap()
        .to_string();
    let err = tokio::task::spawn_blocking(move || oidc::drive_device(&uri, "BCDF-GHJK", "alice"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(format!("{err:#}").contains("BCDF-GHJK"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_give_jwt_for_hoop() {
    let p = OidcProvider::start_with_secret(120, "s3cret").unwrap();
    assert_eq!(p.ci_secret(), "s3cret");
    let d = discovery(&p).await;
    let token_url = endpoint(&d, "token_endpoint");
    let grant = [("grant_type", "client_credentials")];
    let basic = post(&token_url, &grant, Some((CI_CLIENT_ID, p.ci_secret()))).await;
    let form = post(
        &token_url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CI_CLIENT_ID),
            ("client_secret", p.ci_secret()),
        ],
        None,
    )
    .await;
    for (status, tokens) in [basic, form] {
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(tokens["expires_in"], 120);
        let (header, claims) = jwt(tokens["access_token"].as_str().unwrap());
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(claims["iss"], p.url());
        assert_eq!(claims["aud"], AUDIENCE);
        assert_eq!(claims["sub"], CI_CLIENT_ID);
        assert_eq!(claims["groups"], json!(["ci"]));
        assert!(claims.get("email").is_none());
    }
    let (status, err) = post(&token_url, &grant, Some((CI_CLIENT_ID, "wrong"))).await;
    assert_eq!((status, &err["error"]), (401, &json!("invalid_client")));
    // The public client may not use this grant.
    let (status, err) = post(
        &token_url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLI_CLIENT_ID),
        ],
        None,
    )
    .await;
    assert_eq!(status, 400, "{err}");
    // Naming the resource is the same as leaving it to the default; only
    // the hoop resource is known.
    let (status, named) = post(
        &token_url,
        &[("grant_type", "client_credentials"), ("resource", RESOURCE)],
        Some((CI_CLIENT_ID, p.ci_secret())),
    )
    .await;
    assert_eq!(status, 200, "{named}");
    assert_eq!(
        jwt(named["access_token"].as_str().unwrap()).1["aud"],
        AUDIENCE
    );
    let (status, err) = post(
        &token_url,
        &[
            ("grant_type", "client_credentials"),
            ("resource", "urn:other"),
        ],
        Some((CI_CLIENT_ID, p.ci_secret())),
    )
    .await;
    assert_eq!((status, &err["error"]), (400, &json!("invalid_target")));
}

/// The agent accepts the provider's tokens (discovery, JWKS, RS256) and
/// reads the user and groups from them.
#[tokio::test(flavor = "multi_thread")]
async fn agent_accepts_provider_tokens() {
    let mut p = OidcProvider::start(600).unwrap();
    let d = discovery(&p).await;
    let echo = servers::echo().await.unwrap();
    let agent = Agent::start(p.url(), &[Conn::tcp("echo", echo)]).unwrap();

    let tokens = login(&p, &d, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    let out = agent.run_hoop(Some(access), &["whoami", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(id["user"], "alice@example.com");
    assert_eq!(id["groups"], json!(["eng"]));
    assert_eq!(id["issuer"], p.url());
    assert_eq!(id["expires_at"], jwt(access).1["exp"]);

    let (_, ci) = post(
        &endpoint(&d, "token_endpoint"),
        &[("grant_type", "client_credentials")],
        Some((CI_CLIENT_ID, p.ci_secret())),
    )
    .await;
    let out = agent.run_hoop(ci["access_token"].as_str(), &["whoami", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        id["user"], CI_CLIENT_ID,
        "no email: the agent falls back to sub"
    );
    assert_eq!(id["groups"], json!(["ci"]));

    // Down: connections are refused. Back up: a new provider on the same
    // address, with a new key.
    let url = p.url().to_string();
    p.stop();
    assert!(reqwest::get(format!("{url}/jwks")).await.is_err());
    p.restart().unwrap();
    assert_eq!(p.url(), url);
    let d = discovery(&p).await;
    let tokens = login(&p, &d, "alice").await;
    let out = agent.run_hoop(tokens["access_token"].as_str(), &["whoami", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

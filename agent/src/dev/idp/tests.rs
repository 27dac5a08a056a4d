//! The provider in-process: its tokens pass the agent's own verifier, and
//! bad requests get OAuth errors, never a panic or a hang.

use base64::Engine as _;
use serde_json::Value;

use super::*;
use crate::config::AgentConfig;
use crate::token::Verifier;

async fn provider() -> DevIdp {
    start(
        "127.0.0.1:0".parse().unwrap(),
        Settings {
            user: "dev@example.com".into(),
            groups: vec!["dev".into(), "ops".into()],
            token_ttl: 300,
            device_interval: 0,
        },
    )
    .await
    .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn verifier(issuer: &str) -> Verifier {
    let cfg = AgentConfig::parse(&format!(
        "data_dir = '/x'\n[[issuer]]\nurl = '{issuer}'\naudience = 'hoop'\n"
    ))
    .unwrap();
    Verifier::new(&cfg.issuers).unwrap()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn with_query(base: String, pairs: &[(&str, &str)]) -> url::Url {
    let mut u = url::Url::parse(&base).unwrap();
    u.query_pairs_mut().extend_pairs(pairs);
    u
}

async fn post(url: String, form: &[(&str, &str)]) -> (u16, Value) {
    let r = client().post(url).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn tokens_pass_the_agents_verifier() {
    let idp = provider().await;
    let (status, body) = post(
        format!("{}/token", idp.issuer()),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CI_CLIENT_ID),
            ("client_secret", idp.ci_secret()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("id_token").is_none(), "{body}");
    let id = verifier(idp.issuer())
        .verify(body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(id.user, "hoop-ci");
    assert_eq!(id.groups, vec!["dev", "ops"]);

    // The browser flow's access token names the dev user by email.
    let verifier_str = "x".repeat(64);
    let challenge = authorize::s256(&verifier_str);
    let url = with_query(
        format!("{}/authorize", idp.issuer()),
        &[
            ("response_type", "code"),
            ("client_id", CLI_CLIENT_ID),
            ("redirect_uri", "http://localhost:9/cb"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("nonce", "n-1"),
        ],
    );
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let (status, body) = post(
        format!("{}/token", idp.issuer()),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLI_CLIENT_ID),
            ("code", &code),
            ("redirect_uri", "http://localhost:9/cb"),
            ("code_verifier", &verifier_str),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let id = verifier(idp.issuer()).verify(access).await.unwrap();
    assert_eq!(id.user, "dev@example.com");
    let at = claims(access);
    assert_eq!(at["aud"], "hoop");
    assert_eq!(at["client_id"], CLI_CLIENT_ID);
    assert_eq!(at["scope"], DEFAULT_SCOPE);
    assert!(at["exp"].as_u64().unwrap() - at["iat"].as_u64().unwrap() == 300);
    let idt = claims(body["id_token"].as_str().unwrap());
    assert_eq!(idt["aud"], CLI_CLIENT_ID);
    assert_eq!(idt["nonce"], "n-1");
    assert_eq!(idt["email"], "dev@example.com");
}

#[tokio::test]
async fn bad_requests_get_oauth_errors() {
    let idp = provider().await;
    let token_url = format!("{}/token", idp.issuer());
    let c = client();

    // Not a form.
    let r = c
        .post(&token_url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    // Too large.
    let big = format!("grant_type=client_credentials&x={}", "a".repeat(100_000));
    let r = c
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    // Repeated parameter, bytes that are not UTF-8, unknown grant.
    for body in [
        &b"client_id=hoop-cli&client_id=hoop-cli&grant_type=x"[..],
        b"client_id=hoop-cli&grant_type=%ff%00\xff",
        b"client_id=hoop-cli&grant_type=password",
    ] {
        let r = c
            .post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{v}");
    }

    // Unknown client, and a public client with a secret: 401.
    for form in [
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
        ][..],
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLI_CLIENT_ID),
            ("client_secret", "x"),
        ],
    ] {
        let (status, body) = post(token_url.clone(), form).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
    }
    // Basic auth failures carry a challenge.
    let r = c
        .post(&token_url)
        .basic_auth(CI_CLIENT_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));

    // Each client keeps to its own grants.
    let (status, body) = post(
        token_url.clone(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLI_CLIENT_ID),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );

    // An unknown scope.
    let (status, body) = post(
        format!("{}/device/code", idp.issuer()),
        &[("client_id", CLI_CLIENT_ID), ("scope", "openid admin")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    // Wrong method and unknown path.
    let r = c.get(&token_url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let r = c
        .get(format!("{}/nope", idp.issuer()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // The HTML pages escape what they echo.
    let r = c
        .get(with_query(
            format!("{}/device", idp.issuer()),
            &[("user_code", "<script>")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("&lt;script&gt;") && !page.contains("<script>"),
        "{page}"
    );
}

#[test]
fn wildcard_binds_advertise_loopback() {
    assert_eq!(
        issuer_url("0.0.0.0:5556".parse().unwrap()),
        "http://127.0.0.1:5556"
    );
    assert_eq!(
        issuer_url("[::]:5556".parse().unwrap()),
        "http://[::1]:5556"
    );
    assert_eq!(
        issuer_url("127.0.0.2:1".parse().unwrap()),
        "http://127.0.0.2:1"
    );
}

#[test]
fn scopes_are_checked_and_deduplicated() {
    assert_eq!(check_scope(None, DEFAULT_SCOPE).unwrap(), DEFAULT_SCOPE);
    assert_eq!(
        check_scope(Some("openid  openid email"), "").unwrap(),
        "openid email"
    );
    assert_eq!(check_scope(None, "").unwrap(), "");
    assert_eq!(
        check_scope(Some("root"), "").unwrap_err().error,
        "invalid_scope"
    );
}

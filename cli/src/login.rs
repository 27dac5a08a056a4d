//! `hoop login` and `hoop logout`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hoop_proto::tunnel::{LoginSettings, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::client::AgentClient;
use crate::oidc::{self, DeviceAuthorization, OidcError, Provider, TokenResponse};
use crate::session::TokenSource;
use crate::settings::{SavedAgent, Settings, Target};
use crate::store::{TokenSet, TokenStore, Where};

/// How long the browser flow waits for the redirect.
pub const BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

/// Options of `hoop login`.
pub struct LoginOpts {
    pub device: bool,
    pub client_credentials: bool,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub no_browser: bool,
    pub redirect_port: Option<u16>,
}

/// Runs `hoop login` against `target`, then saves the agent and tokens.
pub async fn login(
    target: Target,
    save: Option<SavedAgent>,
    opts: LoginOpts,
) -> anyhow::Result<()> {
    let dir = crate::settings::config_dir()?;
    let probe = AgentClient::new(target.clone(), None)?;
    let settings = probe.discover().await.with_context(|| {
        format!(
            "cannot get the sign-in settings from the agent at {}",
            target.address
        )
    })?;
    let http = oidc::http_client()?;
    let provider = oidc::discover(&http, &settings.issuer).await.map_err(|e| {
        anyhow::anyhow!(
            "{e}\nThe agent signs people in with {}; check that it is reachable from here.",
            settings.issuer
        )
    })?;

    let (resp, grant, client_id) = if opts.client_credentials {
        let id = opts
            .client_id
            .clone()
            .or_else(|| std::env::var("HOOP_CLIENT_ID").ok())
            .context("--client-credentials needs a client id: --client-id or HOOP_CLIENT_ID")?;
        let secret = opts
            .client_secret
            .clone()
            .or_else(|| std::env::var("HOOP_CLIENT_SECRET").ok())
            .context("--client-credentials needs a client secret: HOOP_CLIENT_SECRET (or --client-secret)")?;
        let r =
            oidc::client_credentials(&http, &provider.token_endpoint, &id, &secret, None).await?;
        (r, "client_credentials", id)
    } else if opts.device {
        (
            device_flow(&http, &provider, &settings).await?,
            "device",
            settings.client_id.clone(),
        )
    } else {
        (
            browser_flow(
                &http,
                &provider,
                &settings,
                opts.no_browser,
                opts.redirect_port,
            )
            .await?,
            "browser",
            settings.client_id.clone(),
        )
    };

    let tokens = TokenSet {
        issuer: provider.issuer.clone(),
        client_id,
        token_endpoint: provider.token_endpoint.clone(),
        revocation_endpoint: provider.revocation_endpoint.clone(),
        expires_at: resp.expires_at(),
        scopes: resp
            .scope
            .as_deref()
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
        access_token: resp.access_token,
        refresh_token: resp.refresh_token,
        grant: grant.to_string(),
    };

    // The agent must accept the token before anything is saved.
    let check = AgentClient::new(
        target.clone(),
        Some(Arc::new(TokenSource::Fixed(Token::new(
            tokens.access_token.clone(),
        )))),
    )?;
    let identity = check.identity().await;
    check.shutdown().await;
    let identity =
        identity.context("the identity provider signed you in, but the agent refused the token")?;

    let store = TokenStore::open(&dir)?;
    let (place, why_not) = store.save(&target.address, &tokens)?;
    if place == Where::File {
        eprintln!(
            "hoop: no OS keyring is reachable ({}); tokens are stored in {} (readable only by you)",
            why_not.unwrap_or_else(|| "unknown reason".into()),
            store.file_path().display()
        );
    }
    if let Some(agent) = save {
        let mut saved = Settings::load(&dir)?;
        saved.agent = Some(agent);
        saved.save(&dir)?;
    }
    let groups = if identity.groups.is_empty() {
        String::new()
    } else {
        format!(" (groups: {})", identity.groups.join(", "))
    };
    let left = identity.expires_at.saturating_sub(oidc::now_unix());
    println!(
        "Signed in to {} as {}{groups}. Access token valid for {}{}.",
        target.address,
        identity.user,
        humantime::format_duration(Duration::from_secs(left)),
        if tokens.refresh_token.is_some() {
            "; hoop renews it as needed"
        } else {
            ""
        }
    );
    Ok(())
}

/// `hoop logout`: forget tokens and revoke the refresh token.
pub async fn logout(agent: &str) -> anyhow::Result<()> {
    let dir = crate::settings::config_dir()?;
    let store = TokenStore::open(&dir)?;
    let Some(tokens) = store.remove(agent)? else {
        println!("Not signed in to {agent}; nothing to do.");
        return Ok(());
    };
    match (&tokens.revocation_endpoint, &tokens.refresh_token) {
        (Some(endpoint), Some(rt)) => {
            let http = oidc::http_client()?;
            match oidc::revoke(&http, endpoint, &tokens.client_id, rt).await {
                Ok(()) => println!("Signed out of {agent}; the refresh token was revoked."),
                Err(e) => println!(
                    "Signed out of {agent} (tokens removed), but revoking the refresh token failed: {e}"
                ),
            }
        }
        (None, Some(_)) => println!(
            "Signed out of {agent} (tokens removed); the identity provider offers no revocation, so the refresh token stays valid until it expires."
        ),
        _ => println!("Signed out of {agent} (tokens removed)."),
    }
    Ok(())
}

fn scope(settings: &LoginSettings) -> String {
    if settings.scopes.is_empty() {
        "openid".into()
    } else {
        settings.scopes.join(" ")
    }
}

fn can_open_browser() -> bool {
    if cfg!(target_os = "linux") {
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    } else {
        true
    }
}

async fn browser_flow(
    http: &reqwest::Client,
    provider: &Provider,
    settings: &LoginSettings,
    no_browser: bool,
    redirect_port: Option<u16>,
) -> anyhow::Result<TokenResponse> {
    let endpoint = provider.authorization_endpoint.as_deref().context(
        "the identity provider has no authorization endpoint; use `hoop login --device`",
    )?;
    let port = redirect_port.unwrap_or(0);
    let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("port {port} on 127.0.0.1 is in use, so the sign-in redirect cannot land; choose another --redirect-port or stop what uses it")
        } else {
            anyhow::anyhow!("cannot listen on 127.0.0.1 for the sign-in redirect: {e}")
        }
    })?;
    let redirect_uri = format!(
        "http://127.0.0.1:{}/callback",
        listener.local_addr()?.port()
    );
    let (verifier, challenge) = oidc::pkce_pair();
    let state = oidc::random_string(24);
    let nonce = oidc::random_string(24);
    let mut url = url::Url::parse(endpoint).context("bad authorization endpoint")?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &settings.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &scope(settings))
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if settings.scopes.iter().any(|s| s == "offline_access") {
        // OpenID Connect Core §11: offline_access (a refresh token) is only
        // granted with prompt=consent; without it sessions could not be
        // renewed past the first access token.
        url.query_pairs_mut().append_pair("prompt", "consent");
    }
    let opened = !no_browser && can_open_browser() && webbrowser::open(url.as_str()).is_ok();
    if opened {
        eprintln!("Opened your browser to sign in. If it did not appear, open this URL:");
    } else {
        eprintln!("Open this URL in a browser to sign in:");
    }
    eprintln!("{url}");
    let callback = tokio::time::timeout(BROWSER_TIMEOUT, wait_for_callback(&listener))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "gave up waiting for the browser after {} minutes; run `hoop login` again (or `hoop login --device` on a machine without a browser)",
                BROWSER_TIMEOUT.as_secs() / 60
            )
        })??;
    let (params, mut reply) = callback;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("state").as_deref() != Some(state.as_str()) {
        reply
            .finish(
                false,
                "The sign-in response did not match this login attempt.",
            )
            .await;
        bail!(
            "the sign-in response carried the wrong state, so it was refused (possible cross-site request forgery); run `hoop login` again"
        );
    }
    if let Some(err) = get("error") {
        let desc = get("error_description");
        reply
            .finish(false, &format!("Sign-in failed: {err}."))
            .await;
        if err == "access_denied" {
            bail!(
                "sign-in was denied at the identity provider ({}); run `hoop login` again to retry",
                desc.unwrap_or(err)
            );
        }
        return Err(OidcError::Refused {
            code: err,
            description: desc,
        }
        .into());
    }
    let Some(code) = get("code") else {
        reply
            .finish(false, "The sign-in response had no code.")
            .await;
        bail!("the identity provider redirected back without a code");
    };
    let resp: Result<TokenResponse, OidcError> = oidc::post_form(
        http,
        &provider.token_endpoint,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("client_id", &settings.client_id),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            reply
                .finish(false, "Sign-in failed while exchanging the code.")
                .await;
            return Err(e.into());
        }
    };
    if let Some(id_token) = &resp.id_token {
        let got = oidc::jwt_claims(id_token)
            .and_then(|c| c.get("nonce").and_then(|n| n.as_str().map(String::from)));
        if got.as_deref() != Some(nonce.as_str()) {
            reply
                .finish(
                    false,
                    "The sign-in response did not match this login attempt.",
                )
                .await;
            bail!(
                "the ID token's nonce does not match this login attempt, so it was refused; run `hoop login` again"
            );
        }
    }
    reply
        .finish(
            true,
            "Signed in to hoop. You can close this tab and return to the terminal.",
        )
        .await;
    Ok(resp)
}

/// The browser's connection for the callback, to answer it.
struct Reply(tokio::net::TcpStream);

impl Reply {
    async fn finish(&mut self, ok: bool, message: &str) {
        let title = if ok { "Signed in" } else { "Sign-in failed" };
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>hoop: {title}</title></head>\
             <body style=\"font-family:sans-serif;margin:4em\"><h1>{title}</h1><p>{}</p></body></html>",
            html_escape(message)
        );
        let status = if ok { "200 OK" } else { "400 Bad Request" };
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n{body}",
            body.len()
        );
        let _ = self.0.write_all(resp.as_bytes()).await;
        let _ = self.0.shutdown().await;
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Serves the loopback redirect until a request for `/callback` arrives;
/// anything else (a favicon, a probe) gets a 404 and is ignored.
async fn wait_for_callback(
    listener: &TcpListener,
) -> anyhow::Result<(Vec<(String, String)>, Reply)> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = Vec::with_capacity(2048);
        let head = loop {
            let mut chunk = [0u8; 1024];
            let n = match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
                .await
            {
                Ok(Ok(n)) => n,
                _ => 0,
            };
            if n == 0 {
                break None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break Some(buf);
            }
            if buf.len() > 16 * 1024 {
                break None;
            }
        };
        let Some(head) = head else { continue };
        let line = String::from_utf8_lossy(&head);
        let target = line
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != "/callback" {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        let params = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        return Ok((params, Reply(stream)));
    }
}

async fn device_flow(
    http: &reqwest::Client,
    provider: &Provider,
    settings: &LoginSettings,
) -> anyhow::Result<TokenResponse> {
    let endpoint = provider.device_authorization_endpoint.as_deref().context(
        "the identity provider does not offer the device flow; use `hoop login` (browser) instead",
    )?;
    let auth: DeviceAuthorization = oidc::post_form(
        http,
        endpoint,
        &[
            ("client_id", &settings.client_id),
            ("scope", &scope(settings)),
        ],
        None,
    )
    .await?;
    eprintln!(
        "To sign in, open {} and enter the code: {}",
        auth.verification_uri, auth.user_code
    );
    if let Some(complete) = &auth.verification_uri_complete {
        eprintln!("Or open this URL, which carries the code: {complete}");
    }
    let tty = std::io::stderr().is_terminal();
    let spinner = tty.then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message("waiting for you to approve the sign-in...");
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    });
    if !tty {
        eprintln!("Waiting for the sign-in to be approved...");
    }
    let mut interval = Duration::from_secs(auth.interval.unwrap_or(5).max(1));
    let deadline = Instant::now() + Duration::from_secs(auth.expires_in);
    let result = loop {
        tokio::time::sleep(interval).await;
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "the code expired before the sign-in was approved; run `hoop login --device` again"
            ));
        }
        let r: Result<TokenResponse, OidcError> = oidc::post_form(
            http,
            &provider.token_endpoint,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &auth.device_code),
                ("client_id", &settings.client_id),
            ],
            None,
        )
        .await;
        match r {
            Ok(t) => break Ok(t),
            Err(OidcError::Refused { code, .. }) if code == "authorization_pending" => {}
            Err(OidcError::Refused { code, .. }) if code == "slow_down" => {
                // RFC 8628 §3.5: add 5 seconds to every later poll.
                interval += Duration::from_secs(5);
                if !tty {
                    eprintln!(
                        "The identity provider asked to poll slower; now every {}s",
                        interval.as_secs()
                    );
                }
            }
            Err(OidcError::Refused { code, .. }) if code == "expired_token" => {
                break Err(anyhow::anyhow!(
                    "the code expired before the sign-in was approved; run `hoop login --device` again"
                ));
            }
            Err(OidcError::Refused { code, .. }) if code == "access_denied" => {
                break Err(anyhow::anyhow!(
                    "the sign-in was denied; run `hoop login --device` again to retry"
                ));
            }
            Err(e) => break Err(e.into()),
        }
    };
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    result
}

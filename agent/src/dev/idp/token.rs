//! `POST /token` (RFC 6749 §4-6, RFC 8628 §3.4) and `POST /revoke`
//! (RFC 7009), with client authentication and token minting.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Map, Value, json};

use super::authorize::verify_pkce;
use super::http::{self, OAuthError, Params, Reply};
use super::store::{DeviceStatus, RefreshGrant, Subject};
use super::{CI_CLIENT_ID, CLI_CLIENT_ID, Idp, REFRESH_TTL, check_scope};
use crate::token::now_unix;

/// The device code grant type (RFC 8628 §3.4).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A client that proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// `hoop-cli`, public: it only names itself.
    Cli,
    /// `hoop-ci`, confidential: it gave the right secret.
    Ci,
}

impl Client {
    pub fn id(self) -> &'static str {
        match self {
            Client::Cli => CLI_CLIENT_ID,
            Client::Ci => CI_CLIENT_ID,
        }
    }
}

/// What a token request is granted.
struct Grant {
    client: Client,
    subject: Subject,
    scope: String,
    nonce: Option<String>,
    /// A person's grant: issue ID and refresh tokens (every grant but
    /// client credentials).
    user: bool,
}

impl Idp {
    /// Authenticates the client of a token or revocation request: HTTP
    /// Basic or form `client_id`/`client_secret`, never both.
    pub(super) fn client(
        &self,
        parts: &hyper::http::request::Parts,
        params: &Params,
    ) -> Result<Client, OAuthError> {
        let basic = http::basic_auth(parts)?;
        let form_secret = params.get("client_secret");
        let (id, secret, via_basic) = match basic {
            Some((id, secret)) => {
                if form_secret.is_some() {
                    return Err(OAuthError::invalid_request(
                        "use one client authentication method, not both Basic and client_secret",
                    ));
                }
                if params.get("client_id").is_some_and(|f| f != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id in the form differs from the Authorization header",
                    ));
                }
                (id, Some(secret).filter(|s| !s.is_empty()), true)
            }
            None => match params.get("client_id") {
                Some(id) => (id.to_string(), form_secret.map(String::from), false),
                None => {
                    return Err(OAuthError::invalid_client(
                        "client authentication failed: no client_id",
                        false,
                    ));
                }
            },
        };
        match id.as_str() {
            CLI_CLIENT_ID if secret.is_none() => Ok(Client::Cli),
            CLI_CLIENT_ID => Err(OAuthError::invalid_client(
                "hoop-cli is a public client and must not send a secret",
                via_basic,
            )),
            CI_CLIENT_ID => {
                let good = secret.as_deref().is_some_and(|s| {
                    aws_lc_rs::constant_time::verify_slices_are_equal(
                        s.as_bytes(),
                        self.ci_secret.as_bytes(),
                    )
                    .is_ok()
                });
                if good {
                    Ok(Client::Ci)
                } else {
                    Err(OAuthError::invalid_client(
                        "client authentication failed: wrong or missing secret for hoop-ci",
                        via_basic,
                    ))
                }
            }
            other => Err(OAuthError::invalid_client(
                format!("client authentication failed: unknown client {other:?}"),
                via_basic,
            )),
        }
    }

    pub(super) async fn token(&self, req: Request<Incoming>) -> Result<Reply, OAuthError> {
        let (parts, params) = http::read_form(req).await?;
        let client = self.client(&parts, &params)?;
        let grant_type = params.require("grant_type")?;
        let grant = match grant_type {
            "authorization_code" => self.code_grant(client, &params)?,
            "refresh_token" => self.refresh_grant(client, &params)?,
            DEVICE_GRANT => self.device_grant(client, &params)?,
            "client_credentials" => {
                if client != Client::Ci {
                    return Err(unauthorized(client, grant_type));
                }
                Grant {
                    client,
                    subject: self.ci_identity(),
                    scope: check_scope(params.get("scope"), "")?,
                    nonce: None,
                    user: false,
                }
            }
            other => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    format!("grant_type {other:?} is not supported"),
                ));
            }
        };
        tracing::info!(
            grant_type,
            client = client.id(),
            sub = %grant.subject.sub,
            "dev idp: tokens issued"
        );
        Ok(http::json_reply(StatusCode::OK, &self.issue(grant)?))
    }

    fn code_grant(&self, client: Client, params: &Params) -> Result<Grant, OAuthError> {
        if client != Client::Cli {
            return Err(unauthorized(client, "authorization_code"));
        }
        // Every parameter is checked before the code is spent.
        let code = params.require("code")?;
        let redirect_uri = params.require("redirect_uri")?;
        let verifier = params
            .get("code_verifier")
            .ok_or_else(|| OAuthError::invalid_request("missing parameter code_verifier (PKCE)"))?;
        // Single use: taken out whatever happens next.
        let stored = self.store().codes.take(code);
        let stored = stored.ok_or_else(|| {
            OAuthError::invalid_grant("the authorization code is unknown, expired or already used")
        })?;
        if stored.expires <= Instant::now() {
            return Err(OAuthError::invalid_grant(
                "the authorization code has expired",
            ));
        }
        if stored.client_id != client.id() {
            return Err(OAuthError::invalid_grant(
                "the authorization code was issued to another client",
            ));
        }
        if stored.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the one in the authorization request",
            ));
        }
        if !verify_pkce(verifier, &stored.code_challenge) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        Ok(Grant {
            client,
            subject: stored.subject,
            scope: stored.scope,
            nonce: stored.nonce,
            user: true,
        })
    }

    fn refresh_grant(&self, client: Client, params: &Params) -> Result<Grant, OAuthError> {
        let token = params.require("refresh_token")?;
        // Rotation: the presented token is spent whatever happens next.
        let stored = self.store().refresh.take(token).ok_or_else(|| {
            OAuthError::invalid_grant(
                "the refresh token is unknown, expired, revoked or already used",
            )
        })?;
        if stored.client_id != client.id() {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        let scope = match params.get("scope") {
            None => stored.scope,
            Some(asked) => {
                let asked = check_scope(Some(asked), "")?;
                let had: Vec<&str> = stored.scope.split(' ').collect();
                if let Some(extra) = asked.split(' ').find(|s| !had.contains(s)) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        format!("scope {extra:?} was not granted originally"),
                    ));
                }
                asked
            }
        };
        Ok(Grant {
            client,
            subject: stored.subject,
            scope,
            nonce: None,
            user: true,
        })
    }

    fn device_grant(&self, client: Client, params: &Params) -> Result<Grant, OAuthError> {
        let device_code = params.require("device_code")?;
        let now = Instant::now();
        let mut store = self.store();
        let grant = store.devices.get_mut(device_code).ok_or_else(|| {
            OAuthError::invalid_grant("the device code is unknown or already used")
        })?;
        if grant.client_id != client.id() {
            return Err(OAuthError::invalid_grant(
                "the device code was issued to another client",
            ));
        }
        if grant.expires <= now {
            store.devices.remove(device_code);
            return Err(OAuthError::new(
                "expired_token",
                "the device code has expired; start again",
            ));
        }
        let too_fast = grant
            .last_poll
            .is_some_and(|last| now.duration_since(last) < grant.interval);
        grant.last_poll = Some(now);
        if too_fast {
            grant.interval += std::time::Duration::from_secs(5);
            return Err(OAuthError::new(
                "slow_down",
                format!(
                    "polling too fast; wait at least {} s between requests",
                    grant.interval.as_secs()
                ),
            ));
        }
        match grant.status {
            DeviceStatus::Pending => Err(OAuthError::new(
                "authorization_pending",
                "the user has not approved the request yet",
            )),
            DeviceStatus::Denied => {
                store.devices.remove(device_code);
                Err(OAuthError::new(
                    "access_denied",
                    "the user denied the request",
                ))
            }
            DeviceStatus::Approved => {
                let scope = grant.scope.clone();
                store.devices.remove(device_code);
                Ok(Grant {
                    client,
                    subject: self.dev_user(),
                    scope,
                    nonce: None,
                    user: true,
                })
            }
        }
    }

    /// Mints the access token, and the ID and refresh tokens the grant
    /// calls for.
    fn issue(&self, grant: Grant) -> Result<Value, OAuthError> {
        let now = now_unix();
        let ttl = self.settings.token_ttl;
        let sign = |claims: &Value| {
            self.key
                .sign(claims)
                .map_err(|e| OAuthError::server_error(e.to_string()))
        };
        let mut access = Map::new();
        access.insert("iss".into(), json!(self.issuer));
        access.insert("sub".into(), json!(grant.subject.sub));
        access.insert("aud".into(), json!(super::AUDIENCE));
        access.insert("exp".into(), json!(now + ttl));
        access.insert("nbf".into(), json!(now));
        access.insert("iat".into(), json!(now));
        access.insert("jti".into(), json!(http::random_token(16)?));
        access.insert("client_id".into(), json!(grant.client.id()));
        access.insert("groups".into(), json!(grant.subject.groups));
        if let Some(email) = &grant.subject.email {
            access.insert("email".into(), json!(email));
        }
        if !grant.scope.is_empty() {
            access.insert("scope".into(), json!(grant.scope));
        }
        let mut body = Map::new();
        body.insert("access_token".into(), json!(sign(&Value::Object(access))?));
        body.insert("token_type".into(), json!("Bearer"));
        body.insert("expires_in".into(), json!(ttl));
        if grant.user && grant.scope.split(' ').any(|s| s == "openid") {
            let mut id = Map::new();
            id.insert("iss".into(), json!(self.issuer));
            id.insert("sub".into(), json!(grant.subject.sub));
            id.insert("aud".into(), json!(grant.client.id()));
            id.insert("exp".into(), json!(now + ttl));
            id.insert("iat".into(), json!(now));
            id.insert("auth_time".into(), json!(now));
            if let Some(email) = &grant.subject.email {
                id.insert("email".into(), json!(email));
                id.insert("email_verified".into(), json!(true));
            }
            id.insert("groups".into(), json!(grant.subject.groups));
            if let Some(nonce) = &grant.nonce {
                id.insert("nonce".into(), json!(nonce));
            }
            body.insert("id_token".into(), json!(sign(&Value::Object(id))?));
        }
        if grant.user {
            let token = http::random_token(32)?;
            self.store().refresh.insert(
                token.clone(),
                Instant::now() + REFRESH_TTL,
                RefreshGrant {
                    client_id: grant.client.id().to_string(),
                    scope: grant.scope.clone(),
                    subject: grant.subject,
                },
            );
            body.insert("refresh_token".into(), json!(token));
        }
        if !grant.scope.is_empty() {
            body.insert("scope".into(), json!(grant.scope));
        }
        Ok(Value::Object(body))
    }

    /// RFC 7009: revokes a refresh token of the calling client. Unknown
    /// tokens are not an error: the answer is 200 either way.
    pub(super) async fn revoke(&self, req: Request<Incoming>) -> Result<Reply, OAuthError> {
        let (parts, params) = http::read_form(req).await?;
        let client = self.client(&parts, &params)?;
        let token = params.require("token")?;
        let mut store = self.store();
        let owned = store
            .refresh
            .get_mut(token)
            .is_some_and(|g| g.client_id == client.id());
        if owned {
            store.refresh.remove(token);
            tracing::info!(client = client.id(), "dev idp: refresh token revoked");
        }
        Ok(http::json_reply(StatusCode::OK, &json!({})))
    }
}

fn unauthorized(client: Client, grant_type: &str) -> OAuthError {
    OAuthError::new(
        "unauthorized_client",
        format!(
            "client {} may not use grant_type {grant_type}; {}",
            client.id(),
            match client {
                Client::Cli => "client_credentials is for hoop-ci",
                Client::Ci => "hoop-ci may only use client_credentials",
            }
        ),
    )
}

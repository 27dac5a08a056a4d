//! Where a command's token comes from, and keeping it fresh: `HOOP_TOKEN`
//! as given (CI systems mint their own), or the tokens `hoop login`
//! stored, refreshed when they are within a minute of expiry.

use std::path::Path;

use hoop_proto::tunnel::Token;
use tokio::sync::Mutex;

use crate::oidc::{self, OidcError, now_unix};
use crate::store::{TokenSet, TokenStore};

/// Refresh when the access token has less than this left, in seconds.
pub const REFRESH_MARGIN: u64 = 60;

/// Why no usable token could be had.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "not signed in to {agent}: run `hoop login` (CI: set HOOP_TOKEN, or use `hoop login --client-credentials`)"
    )]
    NotSignedIn { agent: String },
    #[error("your sign-in has ended ({0}); run `hoop login` again")]
    RefreshRefused(String),
    #[error("cannot refresh your sign-in: {0}; check the network, or run `hoop login` again")]
    RefreshFailed(String),
    #[error("{0}")]
    Store(String),
}

/// A token provider for one agent.
// One of these exists per process; boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum TokenSource {
    /// `HOOP_TOKEN`: used as is, never refreshed.
    Fixed(Token),
    /// Tokens from `hoop login`, refreshed and saved back.
    Stored {
        agent: String,
        store: TokenStore,
        tokens: Mutex<TokenSet>,
        http: reqwest::Client,
    },
}

impl TokenSource {
    /// `HOOP_TOKEN` if set, else the stored tokens for `agent`, else none.
    pub fn for_agent(config_dir: &Path, agent: &str) -> anyhow::Result<Option<TokenSource>> {
        if let Some(t) = std::env::var("HOOP_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(TokenSource::Fixed(Token::new(t))));
        }
        let store = TokenStore::open(config_dir)?;
        match store.load(agent)? {
            Some(tokens) => Ok(Some(TokenSource::Stored {
                agent: agent.to_string(),
                store,
                tokens: Mutex::new(tokens),
                http: oidc::http_client()?,
            })),
            None => Ok(None),
        }
    }

    /// Expiry of the current access token (Unix seconds), when known.
    pub async fn expires_at(&self) -> Option<u64> {
        match self {
            TokenSource::Fixed(t) => oidc::jwt_claims(t.expose())
                .and_then(|c| c.get("exp").and_then(serde_json::Value::as_u64)),
            TokenSource::Stored { tokens, .. } => Some(tokens.lock().await.expires_at),
        }
    }

    /// True when this source can renew itself.
    pub fn refreshable(&self) -> bool {
        matches!(self, TokenSource::Stored { .. })
    }

    /// A token to present now, refreshed first if it is about to expire.
    pub async fn fresh(&self) -> Result<Token, SessionError> {
        match self {
            TokenSource::Fixed(t) => Ok(t.clone()),
            TokenSource::Stored { tokens, .. } => {
                let needs = tokens.lock().await.expires_at <= now_unix() + REFRESH_MARGIN;
                if needs {
                    return self.refresh().await;
                }
                Ok(Token::new(tokens.lock().await.access_token.clone()))
            }
        }
    }

    /// Gets a new access token now and saves it.
    pub async fn refresh(&self) -> Result<Token, SessionError> {
        let (agent, store, tokens, http) = match self {
            TokenSource::Fixed(t) => return Ok(t.clone()),
            TokenSource::Stored {
                agent,
                store,
                tokens,
                http,
            } => (agent, store, tokens, http),
        };
        let mut cur = tokens.lock().await;
        let resp = if cur.grant == "client_credentials" {
            let (id, secret) = match (
                std::env::var("HOOP_CLIENT_ID"),
                std::env::var("HOOP_CLIENT_SECRET"),
            ) {
                (Ok(id), Ok(secret)) if id == cur.client_id => (id, secret),
                _ => {
                    return Err(SessionError::RefreshRefused(
                        "a service-account token expired and HOOP_CLIENT_ID/HOOP_CLIENT_SECRET are not set to renew it".into(),
                    ));
                }
            };
            oidc::client_credentials(http, &cur.token_endpoint, &id, &secret, None).await
        } else {
            let Some(rt) = cur.refresh_token.clone() else {
                return Err(SessionError::RefreshRefused(
                    "the identity provider gave no refresh token".into(),
                ));
            };
            oidc::refresh(http, &cur.token_endpoint, &cur.client_id, &rt).await
        };
        let resp = resp.map_err(|e| match e {
            OidcError::Refused { .. } => SessionError::RefreshRefused(e.to_string()),
            other => SessionError::RefreshFailed(other.to_string()),
        })?;
        cur.expires_at = resp.expires_at();
        cur.access_token = resp.access_token;
        if let Some(rt) = resp.refresh_token {
            cur.refresh_token = Some(rt);
        }
        store
            .save(agent, &cur)
            .map_err(|e| SessionError::Store(format!("cannot save refreshed tokens: {e:#}")))?;
        tracing::debug!(expires_at = cur.expires_at, "refreshed the access token");
        Ok(Token::new(cur.access_token.clone()))
    }
}

//! The device authorization grant (RFC 8628): `POST /device/code` starts
//! one; `GET /device` shows a page with Approve and Deny buttons for a user
//! code, and `POST /device` records the choice. Being a dev provider, it
//! asks nobody to sign in first.

use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::http::{self, OAuthError, Params, Reply, escape_html};
use super::store::{DeviceGrant, DeviceStatus};
use super::token::Client;
use super::{DEFAULT_SCOPE, DEVICE_TTL, Idp, check_scope};

/// Letters of user codes: consonants only, so no words are spelled and
/// none are confused with digits (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// How long an expired device code is remembered, to answer
/// `expired_token` rather than `invalid_grant`.
const EXPIRED_GRACE: Duration = Duration::from_secs(600);

/// A fresh user code, 8 letters: `ABCDEFGH` (shown as `ABCD-EFGH`).
fn new_user_code() -> Result<String, OAuthError> {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| OAuthError::server_error("the random generator failed"))?;
    // 256 is not a multiple of 20; the small bias does not matter for a
    // code that lives ten minutes and is checked by a person.
    Ok(b.iter()
        .map(|x| char::from(USER_CODE_ALPHABET[usize::from(*x) % USER_CODE_ALPHABET.len()]))
        .collect())
}

/// `ABCDEFGH` → `ABCD-EFGH`.
fn display_user_code(code: &str) -> String {
    match (code.get(..4), code.get(4..)) {
        (Some(a), Some(b)) if !b.is_empty() => format!("{a}-{b}"),
        _ => code.to_string(),
    }
}

/// What a person typed → the stored form: upper case, no dashes or spaces.
pub fn normalize_user_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .take(64)
        .flat_map(char::to_uppercase)
        .collect()
}

impl Idp {
    pub(super) async fn device_authorization(
        &self,
        req: Request<Incoming>,
    ) -> Result<Reply, OAuthError> {
        let (parts, params) = http::read_form(req).await?;
        let client = self.client(&parts, &params)?;
        if client != Client::Cli {
            return Err(OAuthError::new(
                "unauthorized_client",
                "the device flow is for hoop-cli; hoop-ci uses client_credentials",
            ));
        }
        let scope = check_scope(params.get("scope"), DEFAULT_SCOPE)?;
        let device_code = http::random_token(32)?;
        let expires = Instant::now() + DEVICE_TTL;
        let interval = Duration::from_secs(self.settings.device_interval);
        let user_code = {
            let mut store = self.store();
            let mut user_code = new_user_code()?;
            // A clash among 20^8 codes is rare; try a few times.
            for _ in 0..4 {
                if store.device_for_user_code(&user_code).is_none() {
                    break;
                }
                user_code = new_user_code()?;
            }
            store
                .user_codes
                .insert(user_code.clone(), expires, device_code.clone());
            store.devices.insert(
                device_code.clone(),
                expires + EXPIRED_GRACE,
                DeviceGrant {
                    user_code: user_code.clone(),
                    client_id: client.id().to_string(),
                    scope,
                    expires,
                    interval,
                    last_poll: None,
                    status: DeviceStatus::Pending,
                },
            );
            user_code
        };
        let shown = display_user_code(&user_code);
        let verification_uri = self.url("/device");
        let complete = {
            let mut u = url::Url::parse(&verification_uri)
                .map_err(|e| OAuthError::server_error(e.to_string()))?;
            u.query_pairs_mut().append_pair("user_code", &shown);
            u.to_string()
        };
        tracing::info!(user_code = %shown, url = %complete, "dev idp: device code issued; approve it in a browser");
        Ok(http::json_reply(
            StatusCode::OK,
            &json!({
                "device_code": device_code,
                "user_code": shown,
                "verification_uri": verification_uri,
                "verification_uri_complete": complete,
                "expires_in": DEVICE_TTL.as_secs(),
                "interval": interval.as_secs(),
            }),
        ))
    }

    /// `GET /device[?user_code=...]`.
    pub(super) fn device_page(&self, req: &Request<Incoming>) -> Reply {
        let params = http::query(req).unwrap_or_default();
        let Some(typed) = params.get("user_code") else {
            return http::html_reply(StatusCode::OK, "Approve a device", ENTER_CODE_FORM);
        };
        let code = normalize_user_code(typed);
        let mut store = self.store();
        let Some((_, grant)) = store.device_for_user_code(&code) else {
            return unknown_code(typed);
        };
        if grant.status != DeviceStatus::Pending {
            return http::html_reply(
                StatusCode::OK,
                "Already decided",
                "<p>This code has already been approved or denied.</p>",
            );
        }
        let shown = escape_html(&display_user_code(&code));
        let body = format!(
            "<p>A device asks to sign in as <b>{user}</b> with code <b>{shown}</b> \
             (client <code>{client}</code>, scope <code>{scope}</code>).</p>\
             <p>Check that the code matches the one on the device.</p>\
             <form method=\"post\" action=\"/device\">\
             <input type=\"hidden\" name=\"user_code\" value=\"{shown}\">\
             <button name=\"action\" value=\"approve\">Approve</button> \
             <button name=\"action\" value=\"deny\">Deny</button></form>",
            user = escape_html(&self.settings.user),
            client = escape_html(&grant.client_id),
            scope = escape_html(&grant.scope),
        );
        http::html_reply(StatusCode::OK, "Approve a device", &body)
    }

    /// `POST /device` with `user_code` and `action=approve|deny`.
    pub(super) async fn device_decide(&self, req: Request<Incoming>) -> Reply {
        let params = match http::read_form(req).await {
            Ok((_, p)) => p,
            Err(e) => return bad(&e.description),
        };
        match self.decide(&params) {
            Ok(DeviceStatus::Approved) => http::html_reply(
                StatusCode::OK,
                "Device approved",
                "<p>Approved. You can close this page and return to your terminal.</p>",
            ),
            Ok(_) => http::html_reply(
                StatusCode::OK,
                "Device denied",
                "<p>Denied. The device will not be signed in.</p>",
            ),
            Err(Refusal::Bad(why)) => bad(why),
            Err(Refusal::Unknown) => unknown_code(params.get("user_code").unwrap_or("")),
        }
    }

    fn decide(&self, params: &Params) -> Result<DeviceStatus, Refusal> {
        let typed = params
            .get("user_code")
            .ok_or(Refusal::Bad("missing user_code"))?;
        let status = match params.get("action") {
            Some("approve") => DeviceStatus::Approved,
            Some("deny") => DeviceStatus::Denied,
            _ => return Err(Refusal::Bad("action must be approve or deny")),
        };
        let code = normalize_user_code(typed);
        let mut store = self.store();
        let (_, grant) = store.device_for_user_code(&code).ok_or(Refusal::Unknown)?;
        if grant.status != DeviceStatus::Pending {
            return Err(Refusal::Bad(
                "this code has already been approved or denied",
            ));
        }
        grant.status = status;
        // A code is decided once.
        store.user_codes.remove(&code);
        drop(store);
        tracing::info!(
            user_code = %display_user_code(&code),
            approved = (status == DeviceStatus::Approved),
            "dev idp: device code decided"
        );
        Ok(status)
    }
}

/// Why `POST /device` did nothing.
enum Refusal {
    Bad(&'static str),
    Unknown,
}

const ENTER_CODE_FORM: &str = "<form method=\"get\" action=\"/device\">\
     <label>Code shown on the device: <input name=\"user_code\" autofocus \
     autocomplete=\"off\" placeholder=\"ABCD-EFGH\"></label> \
     <button>Continue</button></form>";

fn unknown_code(typed: &str) -> Reply {
    http::html_reply(
        StatusCode::BAD_REQUEST,
        "Unknown code",
        &format!(
            "<p>The code <b>{}</b> is unknown, expired or already used.</p>{ENTER_CODE_FORM}",
            escape_html(typed)
        ),
    )
}

fn bad(message: &str) -> Reply {
    http::html_reply(
        StatusCode::BAD_REQUEST,
        "Request refused",
        &format!("<p>{}</p>", escape_html(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_consonants_and_normalise() {
        for _ in 0..100 {
            let c = new_user_code().unwrap();
            assert_eq!(c.len(), 8);
            assert!(c.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)), "{c}");
            let shown = display_user_code(&c);
            assert_eq!(shown.len(), 9);
            assert_eq!(normalize_user_code(&shown.to_lowercase()), c);
        }
        assert_eq!(normalize_user_code(" bcdf - ghjk "), "BCDFGHJK");
        assert_eq!(normalize_user_code(&"x".repeat(10_000)).len(), 64);
    }
}

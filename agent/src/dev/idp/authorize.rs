//! `GET /authorize`: the authorization code flow with PKCE (RFC 6749 §4.1,
//! RFC 7636, RFC 8252 for native apps). The dev user is approved at once.

use std::time::Instant;

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::http::{self, OAuthError, Params, Reply};
use super::store::CodeGrant;
use super::{CLI_CLIENT_ID, CODE_TTL, DEFAULT_SCOPE, Idp, check_scope};

/// Checks a redirect URI: plain `http` to a loopback literal or
/// `localhost` (any port, RFC 8252 §7.3), without fragment or user info.
pub fn check_redirect_uri(uri: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(uri).map_err(|e| format!("redirect_uri is not a URL: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "redirect_uri must use http to a loopback address (RFC 8252), not {:?}",
            parsed.scheme()
        ));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !loopback {
        return Err(
            "redirect_uri must point at 127.0.0.1, [::1] or localhost (a loopback redirect, RFC 8252)"
                .into(),
        );
    }
    if parsed.fragment().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("redirect_uri must not have a fragment or user info".into());
    }
    Ok(parsed)
}

/// A PKCE code verifier or challenge: 43 to 128 unreserved characters.
fn valid_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `BASE64URL(SHA256(verifier))`, the S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// Whether `verifier` answers `challenge`, in constant time.
pub fn verify_pkce(verifier: &str, challenge: &str) -> bool {
    valid_pkce_string(verifier)
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            s256(verifier).as_bytes(),
            challenge.as_bytes(),
        )
        .is_ok()
}

impl Idp {
    pub(super) fn authorize(&self, req: &Request<Incoming>) -> Reply {
        let params = match http::query(req) {
            Ok(p) => p,
            Err(e) => return bad_page(&e),
        };
        // Until client and redirect URI are known good, errors are shown
        // here and never redirected (RFC 6749 §4.1.2.1).
        match params.get("client_id") {
            None => return bad_page("missing parameter client_id"),
            Some(CLI_CLIENT_ID) => {}
            Some(other) => {
                return bad_page(&format!(
                    "unknown client_id {other:?}; the browser flow is for {CLI_CLIENT_ID:?}"
                ));
            }
        }
        let Some(redirect_uri) = params.get("redirect_uri") else {
            return bad_page("missing parameter redirect_uri");
        };
        let redirect = match check_redirect_uri(redirect_uri) {
            Ok(u) => u,
            Err(e) => return bad_page(&e),
        };
        let state = params.get("state");
        match self.approve(&params, redirect_uri) {
            Ok(code) => {
                tracing::info!(user = %self.settings.user, "dev idp: sign-in approved (authorization code)");
                self.redirect_with(redirect, &[("code", &code)], state)
            }
            Err(e) => self.redirect_with(
                redirect,
                &[("error", e.error), ("error_description", &e.description)],
                state,
            ),
        }
    }

    /// Checks the rest of the request and stores a code for the dev user.
    fn approve(&self, params: &Params, redirect_uri: &str) -> Result<String, OAuthError> {
        match params.get("response_type") {
            Some("code") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    "unsupported_response_type",
                    format!("response_type {other:?} is not supported; use \"code\""),
                ));
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "missing parameter response_type",
                ));
            }
        }
        match params.get("code_challenge_method") {
            Some("S256") | None => {}
            Some(m) => {
                return Err(OAuthError::invalid_request(format!(
                    "code_challenge_method {m:?} is not supported; use S256 (PKCE)"
                )));
            }
        }
        let challenge = params.get("code_challenge").ok_or_else(|| {
            OAuthError::invalid_request(
                "PKCE is required: send code_challenge and code_challenge_method=S256",
            )
        })?;
        if params.get("code_challenge_method").is_none() {
            // RFC 7636 would default to plain, which this provider refuses.
            return Err(OAuthError::invalid_request(
                "code_challenge_method is required and must be S256 (plain is not supported)",
            ));
        }
        if challenge.len() != 43 || !valid_pkce_string(challenge) {
            return Err(OAuthError::invalid_request(
                "code_challenge must be the 43-character BASE64URL(SHA256(code_verifier))",
            ));
        }
        let scope = check_scope(params.get("scope"), DEFAULT_SCOPE)?;
        let code = http::random_token(32)?;
        let expires = Instant::now() + CODE_TTL;
        self.store().codes.insert(
            code.clone(),
            expires,
            CodeGrant {
                client_id: CLI_CLIENT_ID.to_string(),
                redirect_uri: redirect_uri.to_string(),
                code_challenge: challenge.to_string(),
                nonce: params.get("nonce").map(String::from),
                scope,
                subject: self.dev_user(),
                expires,
            },
        );
        Ok(code)
    }

    /// A 302 to the client's redirect URI with `pairs`, `state` and `iss`
    /// (RFC 9207) added to its query.
    fn redirect_with(
        &self,
        mut redirect: url::Url,
        pairs: &[(&str, &str)],
        state: Option<&str>,
    ) -> Reply {
        {
            let mut q = redirect.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            if let Some(s) = state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", &self.issuer);
        }
        http::redirect(redirect.as_str())
    }
}

fn bad_page(message: &str) -> Reply {
    http::html_reply(
        StatusCode::BAD_REQUEST,
        "Sign-in request refused",
        &format!("<p>{}</p>", http::escape_html(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_loopback_http() {
        for ok in [
            "http://127.0.0.1:5000/callback",
            "http://localhost:1/",
            "http://[::1]:8080/cb?x=1",
            "http://127.1.2.3:9/",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:5000/cb",
            "http://example.com:5000/cb",
            "http://10.0.0.1:5000/cb",
            "http://127.0.0.1:5000/cb#frag",
            "http://user@127.0.0.1:5000/cb",
            "http://localhost.evil.com:5000/",
            "com.example.app:/cb",
            "not a url",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pkce_s256_matches_rfc7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge);
        assert!(verify_pkce(verifier, challenge));
        assert!(!verify_pkce(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX",
            challenge
        ));
        assert!(!verify_pkce("short", &s256("short")));
        assert!(!verify_pkce(&"a".repeat(129), &s256(&"a".repeat(129))));
    }
}

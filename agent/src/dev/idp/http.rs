//! HTTP plumbing for the dev provider: bounded bodies, strict form parsing,
//! JSON, HTML and redirect responses, and OAuth error bodies (RFC 6749 §5.2).

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

/// Largest request body read; a larger one is refused.
pub const MAX_BODY: usize = 64 * 1024;

pub type Reply = Response<Full<Bytes>>;

/// An OAuth error answered as `{error, error_description}`.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Client authentication failed through the `Authorization` header, so
    /// the answer must carry `WWW-Authenticate` (RFC 6749 §5.2).
    pub basic_challenge: bool,
}

impl OAuthError {
    /// A 400 with the given error code.
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    /// 401 `invalid_client`.
    pub fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
            basic_challenge: basic,
        }
    }

    pub fn server_error(description: impl Into<String>) -> Self {
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ..Self::new("server_error", description)
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn reply(&self) -> Reply {
        let mut r = json_reply(
            self.status,
            &json!({"error": self.error, "error_description": self.description}),
        );
        if self.basic_challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"hoop-dev\""),
            );
        }
        r
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Tokens and codes must not be cached (RFC 6749 §5.1).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

pub fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    reply(status, "application/json", bytes)
}

pub fn html_reply(status: StatusCode, title: &str, body_html: &str) -> Reply {
    let page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}\
         .warn{{background:#fee;border:1px solid #c00;padding:.5em}}</style></head>\
         <body><p class=\"warn\">hoop <b>development</b> identity provider: every request is approved \
         without a password. Never use it in production.</p><h1>{t}</h1>\n{body_html}\n</body></html>\n",
        t = escape_html(title)
    );
    reply(status, "text/html; charset=utf-8", page)
}

pub fn text_reply(status: StatusCode, text: String) -> Reply {
    reply(status, "text/plain; charset=utf-8", text)
}

/// A 302 to `location`.
pub fn redirect(location: &str) -> Reply {
    let mut r = reply(StatusCode::FOUND, "text/plain; charset=utf-8", "");
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => text_reply(
            StatusCode::BAD_REQUEST,
            "redirect_uri is not a valid header value\n".into(),
        ),
    }
}

/// Escapes text for HTML element content and quoted attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Form or query parameters, each given at most once (RFC 6749 §3.1).
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes. A repeated name is
    /// an error naming it.
    pub fn parse(input: &[u8]) -> Result<Params, String> {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(input) {
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(format!("parameter {k:?} is given more than once"));
            }
        }
        Ok(Params(map))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
    }
}

/// Reads a POSTed form: the content type must be a form and the body at
/// most [`MAX_BODY`] bytes.
pub async fn read_form(
    req: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Params), OAuthError> {
    let (parts, body) = req.into_parts();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            OAuthError::invalid_request(format!("the body is larger than {MAX_BODY} bytes"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        })?
        .to_bytes();
    let params = Params::parse(&bytes).map_err(OAuthError::invalid_request)?;
    Ok((parts, params))
}

/// The query string's parameters.
pub fn query(req: &Request<Incoming>) -> Result<Params, String> {
    Params::parse(req.uri().query().unwrap_or("").as_bytes())
}

/// Credentials in an `Authorization: Basic` header: `(client_id, secret)`,
/// each form-urlencoded (RFC 6749 §2.3.1). `Ok(None)` when there is no such
/// header.
pub fn basic_auth(
    parts: &hyper::http::request::Parts,
) -> Result<Option<(String, String)>, OAuthError> {
    use base64::Engine as _;
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Authorization header", true);
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, b64) = value.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "only Basic client authentication is supported in the Authorization header",
            true,
        ));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = raw.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((decode(id), decode(secret))))
}

/// A random URL-safe string of `bytes` random bytes.
pub fn random_token(bytes: usize) -> Result<String, OAuthError> {
    use base64::Engine as _;
    let mut b = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| OAuthError::server_error("the random generator failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_refuse_repeats_and_treat_empty_as_absent() {
        let p = Params::parse(b"a=1&b=&c=x%20y+z").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y z"));
        assert!(p.require("b").is_err());
        let e = Params::parse(b"a=1&a=2").unwrap_err();
        assert!(e.contains("\"a\""), "{e}");
        // Bytes that are not UTF-8 are replaced, not a panic.
        assert!(Params::parse(b"a=%ff%fe&\xff=1").is_ok());
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

//! Guardrails of an `http` connection, applied before a request reaches
//! the backend: `deny` rules matched against `METHOD /path`, and
//! `read_only` (only GET, HEAD and OPTIONS, and no protocol upgrades,
//! whose streams could carry anything). Upgrades to HTTP/2 (`h2c`) are
//! always refused: the requests that followed would go to the backend
//! unchecked and unaudited.
//!
//! Rules see the path percent-decoded, with runs of `/` (and `\`, which
//! some servers take for `/`) folded into one, so `/%61dmin` and `//admin`
//! cannot slip past a rule written for `/admin`. Paths with `.` or `..`
//! segments, encoded or not, are refused outright: the backend would
//! resolve them differently from the rule, and they could climb out of
//! the connection's base path.

use http::Method;
use regex::Regex;

use crate::config::DenyRule;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The deny pattern, `read_only`, or `path`.
    pub rule: String,
    pub message: String,
}

/// The guardrails of one connection.
#[derive(Debug)]
pub struct Guard {
    deny: Vec<(Regex, DenyRule)>,
    read_only: bool,
}

impl Guard {
    pub fn new(rules: &[DenyRule], read_only: bool) -> Result<Guard, regex::Error> {
        let deny = rules
            .iter()
            .map(|r| Ok((Regex::new(&r.pattern)?, r.clone())))
            .collect::<Result<_, regex::Error>>()?;
        Ok(Guard { deny, read_only })
    }

    /// Checks a request given its method, the raw path (no query) and
    /// the protocol it asks to upgrade to.
    pub fn check(
        &self,
        method: &Method,
        raw_path: &str,
        upgrade: Option<&str>,
    ) -> Result<(), Refusal> {
        self.check_as(method.as_str(), raw_path, upgrade, || {
            if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
                return Some(format!(
                    "this connection is read-only: only GET, HEAD and OPTIONS requests are allowed, not {method}"
                ));
            }
            upgrade.map(|_| {
                "this connection is read-only: protocol upgrades (WebSocket, SPDY) are not allowed"
                    .to_string()
            })
        })
    }

    /// Checks a request whose deny rules see `"{verb} {path}"` with the
    /// normalized `raw_path`; `read_only` says why a read-only
    /// connection refuses it, if it does.
    pub fn check_as(
        &self,
        verb: &str,
        raw_path: &str,
        upgrade: Option<&str>,
        read_only: impl FnOnce() -> Option<String>,
    ) -> Result<(), Refusal> {
        let path = normalize(raw_path).map_err(|message| Refusal {
            rule: "path".into(),
            message,
        })?;
        self.check_line(verb, &path, upgrade, read_only)
    }

    /// Checks a request whose deny rules see `"{verb} {path}"` as given:
    /// the method and normalized path for `http` connections, the
    /// Kubernetes verb and canonical path for `kubernetes` ones.
    pub fn check_line(
        &self,
        verb: &str,
        path: &str,
        upgrade: Option<&str>,
        read_only: impl FnOnce() -> Option<String>,
    ) -> Result<(), Refusal> {
        if let Some(p) = upgrade.filter(|p| {
            p.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .any(|t| t == "h2c" || t.starts_with("http/"))
        }) {
            return Err(Refusal {
                rule: "upgrade".into(),
                message: format!(
                    "upgrading to {p} is not allowed: requests on the upgraded connection would bypass the agent's checks and audit"
                ),
            });
        }
        let line = format!("{verb} {path}");
        for (re, rule) in &self.deny {
            if re.is_match(&line) {
                return Err(Refusal {
                    rule: rule.pattern.clone(),
                    message: rule.message.clone(),
                });
            }
        }
        if self.read_only {
            if let Some(message) = read_only() {
                return Err(Refusal {
                    rule: "read_only".into(),
                    message,
                });
            }
        }
        Ok(())
    }
}

/// The path rules match: percent-decoded, `\` read as `/`, runs of `/`
/// folded. Errors for a path that does not start with `/` or has a `.` or
/// `..` segment.
pub fn normalize(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') {
        return Err(format!("the request target {raw:?} is not a path"));
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)),
            _ => None,
        };
        match escaped {
            Some((h, l)) => {
                decoded.push(h << 4 | l);
                i += 3;
            }
            None => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut out = String::with_capacity(text.len());
    for seg in text.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err(format!(
                "the path {raw:?} has a {seg:?} segment; ask for the resolved path instead"
            ));
        }
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || text.ends_with('/') {
        out.push('/');
    }
    Ok(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(p: &str) -> DenyRule {
        DenyRule {
            pattern: p.into(),
            message: format!("no {p}"),
        }
    }

    #[test]
    fn paths_are_normalized_for_rules() {
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("//admin//users/").unwrap(), "/admin/users/");
        assert_eq!(normalize("/%61dmin").unwrap(), "/admin");
        assert_eq!(normalize("/a%2Fb").unwrap(), "/a/b");
        assert_eq!(normalize("/a\\b").unwrap(), "/a/b");
        assert_eq!(normalize("/100%").unwrap(), "/100%");
        for bad in ["/../etc", "/a/./b", "/a/%2e%2e/b", "/a/%2E", "*", "x/y", ""] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        // Dots inside names are fine.
        assert_eq!(normalize("/a..b/.well-known").unwrap(), "/a..b/.well-known");
    }

    #[test]
    fn deny_rules_see_method_and_normalized_path() {
        let g = Guard::new(&[rule("^DELETE "), rule("^[A-Z]+ /admin(/|$)")], false).unwrap();
        assert!(g.check(&Method::GET, "/users", None).is_ok());
        let r = g.check(&Method::DELETE, "/users/1", None).unwrap_err();
        assert_eq!(r.rule, "^DELETE ");
        for p in ["/admin", "//admin/x", "/%61dmin", "/admin/"] {
            assert!(g.check(&Method::GET, p, None).is_err(), "{p}");
        }
        assert!(g.check(&Method::GET, "/administrator", None).is_ok());
        assert_eq!(
            g.check(&Method::GET, "/x/../admin", None).unwrap_err().rule,
            "path"
        );
    }

    #[test]
    fn read_only_allows_only_safe_methods_and_no_upgrades() {
        let g = Guard::new(&[], true).unwrap();
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(g.check(&m, "/", None).is_ok(), "{m}");
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let r = g.check(&m, "/", None).unwrap_err();
            assert_eq!(r.rule, "read_only");
            assert!(r.message.contains(m.as_str()), "{}", r.message);
        }
        assert!(g.check(&Method::GET, "/ws", Some("websocket")).is_err());
        let open = Guard::new(&[], false).unwrap();
        assert!(open.check(&Method::GET, "/ws", Some("websocket")).is_ok());
        assert!(open.check(&Method::POST, "/exec", Some("SPDY/3.1")).is_ok());
        for h2 in ["h2c", "H2C", "websocket, h2c", "HTTP/2.0"] {
            let r = open.check(&Method::GET, "/", Some(h2)).unwrap_err();
            assert_eq!(r.rule, "upgrade", "{h2}");
        }
    }
}

//! Header rewriting between the caller and the backend: hop-by-hop
//! headers (RFC 9110 §7.6.1) end at the agent, the caller's credentials
//! never reach the backend, and injected headers replace any the caller
//! sent under the same name.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one hop, never forwarded in either direction.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// Also hop-by-hop, without a constant in `http`.
const HOP_BY_HOP_NAMES: &[&str] = &["keep-alive", "proxy-connection"];

/// The protocol a request or response asks to switch to: the `Upgrade`
/// value, when `Connection` lists `upgrade`.
pub fn upgrade_protocol(h: &HeaderMap) -> Option<String> {
    if !connection_tokens(h).any(|t| t.eq_ignore_ascii_case("upgrade")) {
        return None;
    }
    let v = h.get(header::UPGRADE)?.to_str().ok()?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The tokens of every `Connection` header.
fn connection_tokens(h: &HeaderMap) -> impl Iterator<Item = &str> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers, including those `Connection` names.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_tokens(h)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP) {
        h.remove(n);
    }
    for n in HOP_BY_HOP_NAMES {
        h.remove(*n);
    }
}

/// What the backend gets, from the caller's headers: hop-by-hop headers,
/// `Authorization`, `Host`, `Expect` and every injected name removed;
/// `Host` set to the backend's; `Upgrade` kept when the request upgrades;
/// `Accept-Encoding: identity` when the response will be masked. The
/// injected headers are added afterwards by the caller of this.
pub fn request_to_backend(
    from_client: &HeaderMap,
    host: &HeaderValue,
    upgrade: Option<&str>,
    injected: &[HeaderName],
    masking: bool,
) -> HeaderMap {
    let mut h = from_client.clone();
    strip_hop_by_hop(&mut h);
    h.remove(header::AUTHORIZATION);
    // hyper answers `100-continue` itself when the body is first read,
    // and the backend connection does not wait for one.
    h.remove(header::EXPECT);
    for n in injected {
        h.remove(n);
    }
    h.insert(header::HOST, host.clone());
    if let Some(p) = upgrade.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, p);
    }
    if masking {
        // The agent cannot mask what it cannot read.
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    h
}

/// What the caller gets, from the backend's headers. A `101` keeps its
/// `Upgrade` and `Connection: upgrade`.
pub fn response_to_client(from_backend: &mut HeaderMap, switching: bool) {
    let upgrade = switching
        .then(|| from_backend.get(header::UPGRADE).cloned())
        .flatten();
    strip_hop_by_hop(from_backend);
    if let Some(u) = upgrade {
        from_backend.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        from_backend.insert(header::UPGRADE, u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_behind() {
        let client = map(&[
            ("authorization", "Bearer caller"),
            ("proxy-authorization", "Basic x"),
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("host", "127.0.0.1:8080"),
            ("x-api-key", "caller's"),
            ("accept", "application/json"),
            ("expect", "100-continue"),
        ]);
        let host = HeaderValue::from_static("api.internal:8443");
        let out = request_to_backend(
            &client,
            &host,
            None,
            &[HeaderName::from_static("x-api-key")],
            true,
        );
        let names: Vec<_> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(out["host"], "api.internal:8443");
        assert_eq!(out["accept"], "application/json");
        assert_eq!(out["accept-encoding"], "identity");
        for gone in [
            "authorization",
            "proxy-authorization",
            "connection",
            "x-secret-hop",
            "keep-alive",
            "te",
            "transfer-encoding",
            "x-api-key",
            "expect",
        ] {
            assert!(!names.contains(&gone), "{gone} in {names:?}");
        }
    }

    #[test]
    fn upgrades_pass_both_ways() {
        let client = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "abc"),
        ]);
        assert_eq!(upgrade_protocol(&client).as_deref(), Some("websocket"));
        assert_eq!(upgrade_protocol(&map(&[("upgrade", "websocket")])), None);
        let host = HeaderValue::from_static("b:1");
        let out = request_to_backend(&client, &host, Some("websocket"), &[], false);
        assert_eq!(out["connection"], "upgrade");
        assert_eq!(out["upgrade"], "websocket");
        assert_eq!(out["sec-websocket-key"], "abc");
        assert!(out.get("accept-encoding").is_none());

        let mut back = map(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-accept", "xyz"),
        ]);
        response_to_client(&mut back, true);
        assert_eq!(back["upgrade"], "websocket");
        assert_eq!(back["connection"], "upgrade");
        let mut back = map(&[("connection", "close"), ("upgrade", "h2c"), ("x", "1")]);
        response_to_client(&mut back, false);
        assert_eq!(back.len(), 1);
    }
}

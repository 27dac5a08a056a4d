//! Header rewriting between the caller and the backend: hop-by-hop
//! headers (RFC 9110 §7.6.1) end at the agent, the caller's credentials
//! never reach the backend, and injected headers replace any the caller
//! sent under the same name. The caller's `Host` must be a loopback name
//! ([`loopback_host`]).

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

/// Checks that the request names a loopback host (`localhost`, an IPv4
/// loopback address or `[::1]`, any port) in its `Host` and in an
/// absolute-form target. The local port `hoop connect` opens speaks
/// plain HTTP and the agent adds the connection's credentials, so a web
/// page whose hostname an attacker re-binds to 127.0.0.1 (DNS
/// rebinding) could otherwise use them from the caller's browser; the
/// page's requests carry its own hostname. `kubectl proxy` refuses
/// other hosts the same way (`--accept-hosts`).
pub fn loopback_host(uri: &http::Uri, h: &HeaderMap) -> Result<(), String> {
    if h.get_all(header::HOST).iter().count() > 1 {
        return Err("the request has more than one Host header".into());
    }
    let host = h.get(header::HOST);
    if host.is_none() && uri.host().is_none() {
        return Err(
            "the request has no Host header; the agent takes only requests for localhost".into(),
        );
    }
    let named = host
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .into_iter()
        .chain(uri.authority().map(|a| a.as_str().to_string()));
    for value in named {
        if !is_loopback_authority(&value) {
            return Err(format!(
                "the request is for host {value:?}, and the agent takes only requests for localhost, \
                 127.0.0.1 or [::1] (any port): a web page re-binding its name to this machine could \
                 otherwise use this connection (as kubectl proxy refuses hosts outside --accept-hosts)"
            ));
        }
    }
    Ok(())
}

/// Refuses a request a web page sent from another site. The Host check
/// stops a page that re-binds its own name, but a page on any site can
/// still aim `fetch` or a WebSocket at `http://127.0.0.1:PORT` (browsers
/// do not apply CORS to WebSocket, nor to a simple POST), and the agent
/// would add the connection's credentials. Such requests carry `Origin`
/// (and `Sec-Fetch-Site: cross-site`): refused unless the origin is this
/// machine's loopback. With `no_origin` (kubernetes: kubectl never sends
/// one) any `Origin` is refused, as `kubectl proxy` refuses exec and
/// attach paths.
pub fn same_machine_origin(h: &HeaderMap, no_origin: bool) -> Result<(), String> {
    let refused = |o: &str| {
        format!(
            "the request comes from a web page (Origin {o:?}); the agent takes requests from \
             programs on this machine{}",
            if no_origin {
                " (kubectl sends no Origin)"
            } else {
                " and from pages served by localhost, 127.0.0.1 or [::1]"
            }
        )
    };
    for v in h.get_all(header::ORIGIN) {
        let o = String::from_utf8_lossy(v.as_bytes());
        let authority = o
            .split_once("://")
            .map(|(_, a)| a.trim_end_matches('/'))
            .filter(|a| !a.contains('/'));
        if no_origin || !authority.is_some_and(is_loopback_authority) {
            return Err(refused(&o));
        }
    }
    let cross_site = h
        .get_all("sec-fetch-site")
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return Err(refused("(another site: Sec-Fetch-Site cross-site)"));
    }
    Ok(())
}

/// Whether `host[:port]` names this machine's loopback.
fn is_loopback_authority(v: &str) -> bool {
    let v = v.rsplit_once('@').map_or(v, |(_, h)| h).trim();
    let host = if let Some(rest) = v.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once(']') else {
            return false;
        };
        if !(port.is_empty() || port.strip_prefix(':').is_some_and(is_port)) {
            return false;
        }
        return ip
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|a| a.is_loopback());
    } else {
        match v.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return false,
            None => v,
        }
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
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
    fn requests_from_pages_of_other_sites_are_refused() {
        let ok = |pairs: &[(&str, &str)], kube| same_machine_origin(&map(pairs), kube).is_ok();
        // Programs send no Origin.
        assert!(ok(&[], false));
        assert!(ok(&[], true));
        // A page served through the connection itself, or by localhost.
        assert!(ok(&[("origin", "http://127.0.0.1:8081")], false));
        assert!(ok(&[("origin", "http://localhost:3000")], false));
        assert!(ok(&[("origin", "http://[::1]:3000")], false));
        assert!(ok(&[("sec-fetch-site", "same-origin")], false));
        // Another site, an opaque origin, a cross-site fetch.
        assert!(!ok(&[("origin", "https://evil.example")], false));
        assert!(!ok(&[("origin", "null")], false));
        assert!(!ok(&[("origin", "http://127.0.0.1.evil.example")], false));
        assert!(!ok(&[("sec-fetch-site", "cross-site")], false));
        // kubectl never sends Origin: a kubernetes connection takes none.
        assert!(!ok(&[("origin", "http://127.0.0.1:8081")], true));
    }

    #[test]
    fn only_loopback_hosts_are_taken() {
        let uri: http::Uri = "/api".parse().unwrap();
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:443",
            "127.9.8.7:1",
            "[::1]",
            "[::1]:8002",
        ] {
            let h = map(&[("host", ok)]);
            assert!(loopback_host(&uri, &h).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8002",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:80",
            "0.0.0.0:8002",
            "[::]:8002",
            "[::1]x",
            "localhost:http",
            "",
        ] {
            let h = map(&[("host", bad)]);
            let e = loopback_host(&uri, &h).unwrap_err();
            assert!(e.contains("--accept-hosts"), "{e}");
        }
        assert!(loopback_host(&uri, &HeaderMap::new()).is_err());
        let mut two = map(&[("host", "127.0.0.1")]);
        two.append(header::HOST, HeaderValue::from_static("evil.example"));
        assert!(loopback_host(&uri, &two).is_err());
        // An absolute-form target names the host too.
        let abs: http::Uri = "http://evil.example/api".parse().unwrap();
        assert!(loopback_host(&abs, &map(&[("host", "localhost")])).is_err());
        let abs: http::Uri = "http://127.0.0.1:9/api".parse().unwrap();
        assert!(loopback_host(&abs, &HeaderMap::new()).is_ok());
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

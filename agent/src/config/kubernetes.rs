//! Settings of `kubernetes` connections: an `http` connection to the API
//! server with the service-account `token` injected as a bearer token,
//! the cluster's `ca`, an optional `tls_server_name`, and the `namespace`
//! `hoop connect` makes kubectl's default; and their validation.
//!
//! `url` must be `https://`, or `http://` to a loopback address only: the
//! token would otherwise cross the network in cleartext.
//!
//! `deny` patterns of a kubernetes connection match `"VERB /path"`, built
//! from the parsed request (see
//! `crate::connector::kubernetes::path::ApiRequest::path`): `VERB` is the
//! lowercase Kubernetes verb (`get`, `list`, `watch`, `create`, `update`,
//! `patch`, `delete`, `deletecollection`, `exec`, `attach`,
//! `portforward`, `log`), or the lowercase method for non-resource
//! paths; `/path` is `/api/v1` or `/apis/GROUP/VERSION`, then
//! `/namespaces/NS` when namespaced, then
//! `/RESOURCE[/NAME[/SUBRESOURCE[/...]]]`, percent-decoded, without the
//! legacy `/watch` prefix, the query or a trailing `/`. A list across all
//! namespaces has no `/namespaces/NS` part (`list /api/v1/secrets`); a
//! namespace itself is `/api/v1/namespaces/NS`.

use super::{ConnectionConfig, SecretRef};

/// Checks a `kubernetes` connection: everything an `http` connection
/// takes, plus the keys of its own.
pub(super) fn validate(c: &ConnectionConfig, key: &str, problems: &mut Vec<String>) {
    super::http::validate(c, key, problems);
    match &c.token {
        None => problems.push(format!(
            "{key}.token: a kubernetes connection needs the service-account token, e.g. \
             token = {{ file = \"/var/run/secrets/kubernetes.io/serviceaccount/token\" }}"
        )),
        Some(SecretRef::Env { env }) if env.trim().is_empty() => {
            problems.push(format!("{key}.token.env: must name a variable"));
        }
        Some(SecretRef::File { file }) if file.as_os_str().is_empty() => {
            problems.push(format!("{key}.token.file: must name a file"));
        }
        Some(_) => {}
    }
    if c.tls_ca.is_some() {
        problems.push(format!(
            "{key}.tls_ca: a kubernetes connection names the API server's CA with ca = \"/path/ca.pem\""
        ));
    }
    let parsed = c.url.as_deref().and_then(|u| url::Url::parse(u).ok());
    let https = parsed.as_ref().map(|u| u.scheme() == "https");
    if let Some(u) = parsed.as_ref().filter(|u| u.scheme() == "http") {
        if !loopback(u) {
            problems.push(format!(
                "{key}.url: {:?} is plain http, which would send the token in cleartext; \
                 use https:// (http:// only to a loopback address, e.g. kubectl proxy)",
                u.as_str()
            ));
        }
    }
    if let Some(ca) = &c.ca {
        if ca.as_os_str().is_empty() {
            problems.push(format!("{key}.ca: must name a PEM file"));
        } else if https == Some(false) {
            problems.push(format!(
                "{key}.ca: only an https:// url uses a CA; this one is http"
            ));
        }
    }
    if let Some(name) = &c.tls_server_name {
        if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
            problems.push(format!(
                "{key}.tls_server_name: {name:?} is not a DNS name or IP address"
            ));
        } else if https == Some(false) {
            problems.push(format!(
                "{key}.tls_server_name: only an https:// url uses TLS; this one is http"
            ));
        }
    }
    if let Some(ns) = &c.namespace {
        if !valid_namespace(ns) {
            problems.push(format!(
                "{key}.namespace: {ns:?} is not a namespace name (1-63 characters of a-z, 0-9 and '-', \
                 starting and ending with a letter or digit)"
            ));
        }
    }
    for (j, h) in c.headers.iter().enumerate() {
        if h.name.eq_ignore_ascii_case("authorization") {
            problems.push(format!(
                "{key}.header[{j}].name: a kubernetes connection sends its token as Authorization; \
                 remove this header"
            ));
        }
    }
}

/// Refuses the kubernetes keys on connections of other types.
pub(super) fn reject_kube_keys(c: &ConnectionConfig, key: &str, problems: &mut Vec<String>) {
    let set = [
        ("token", c.token.is_some()),
        ("ca", c.ca.is_some()),
        ("tls_server_name", c.tls_server_name.is_some()),
        ("namespace", c.namespace.is_some()),
    ];
    for (name, on) in set {
        if on {
            problems.push(format!(
                "{key}.{name}: only kubernetes connections take this; this one is type {}",
                c.kind
            ));
        }
    }
}

/// Whether `u` names this machine: `localhost`, `127.x.x.x` or `[::1]`.
fn loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// An RFC 1123 label, as Kubernetes requires of namespace names.
fn valid_namespace(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use crate::config::{AgentConfig, ConnectionKind};

    fn with_kube(body: &str) -> String {
        format!(
            "data_dir = '/x'\n[[issuer]]\nurl = 'https://id.example'\naudience = 'hoop'\n\
             [[connection]]\nname = 'k8s'\ntype = 'kubernetes'\nallow_groups = ['eng']\n{body}\n"
        )
    }

    #[test]
    fn a_kubernetes_connection_parses() {
        let cfg = AgentConfig::parse(&with_kube(
            "url = 'https://10.0.0.1:6443'\ntoken = { file = '/var/run/secrets/token' }\n\
             ca = '/etc/k8s/ca.pem'\ntls_server_name = 'kubernetes.default.svc'\nnamespace = 'apps'\n\
             read_only = true\nrecord_input = false\n\
             [[connection.deny]]\npattern = '^delete '\nmessage = 'no deletes'",
        ))
        .unwrap();
        cfg.validate().unwrap();
        let c = &cfg.connections[0];
        assert_eq!(c.kind, ConnectionKind::Kubernetes);
        assert_eq!(c.address, "10.0.0.1:6443");
        assert_eq!(c.namespace.as_deref(), Some("apps"));
        assert!(!c.record_input);
        assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
    }

    #[test]
    fn validation_names_keys() {
        let problems = |body: &str| {
            let cfg = AgentConfig::parse(&with_kube(body)).unwrap();
            cfg.validate().unwrap_err().join("\n")
        };
        let all = problems("");
        assert!(
            all.contains("connection[0].url: a kubernetes connection needs"),
            "{all}"
        );
        assert!(
            all.contains("connection[0].token: a kubernetes connection needs"),
            "{all}"
        );
        let tok = "url = 'https://x:6443'\ntoken = { env = 'T' }\n";
        for (body, key) in [
            (
                "url = 'https://x:6443'\ntoken = { env = '' }",
                "connection[0].token.env:",
            ),
            (
                &*format!("{tok}tls_ca = '/ca.pem'"),
                "connection[0].tls_ca:",
            ),
            (
                &*format!("{tok}namespace = 'Bad_NS'"),
                "connection[0].namespace:",
            ),
            (
                &*format!("{tok}tls_server_name = 'not a name'"),
                "connection[0].tls_server_name:",
            ),
            (
                "url = 'http://x:8080'\ntoken = { env = 'T' }\nca = '/ca.pem'",
                "connection[0].ca:",
            ),
            (
                "url = 'http://10.0.0.1:8080'\ntoken = { env = 'T' }",
                "connection[0].url: \"http://10.0.0.1:8080/\" is plain http",
            ),
            (
                &*format!(
                    "{tok}[[connection.header]]\nname = 'Authorization'\nvalue = {{ env = 'X' }}"
                ),
                "connection[0].header[0].name:",
            ),
            (
                &*format!("{tok}private_key = {{ env = 'K' }}"),
                "connection[0].private_key:",
            ),
            (&*format!("{tok}database = 'x'"), "connection[0].database:"),
        ] {
            let all = problems(body);
            assert!(all.contains(key), "{body}: {all}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback_and_inline_tokens_warn() {
        for url in [
            "http://127.0.0.1:8001",
            "http://localhost:8001",
            "http://[::1]:8001",
        ] {
            let cfg = AgentConfig::parse(&with_kube(&format!(
                "url = '{url}'\ntoken = {{ env = 'T' }}"
            )))
            .unwrap();
            cfg.validate().unwrap();
        }
        let cfg = AgentConfig::parse(&with_kube(
            "url = 'https://x:6443'\ntoken = { value = 'sa-token' }",
        ))
        .unwrap();
        cfg.validate().unwrap();
        let w = cfg.warnings().join("\n");
        assert!(w.contains("the token is inline"), "{w}");
        assert!(!w.contains("sa-token"), "{w}");
    }

    #[test]
    fn other_types_refuse_kubernetes_keys() {
        let text = "data_dir = '/x'\n[[issuer]]\nurl = 'https://id.example'\naudience = 'hoop'\n\
             [[connection]]\nname = 'api'\ntype = 'http'\nallow_groups = ['eng']\nurl = 'https://x'\n\
             token = { env = 'T' }\nnamespace = 'a'\n";
        let all = AgentConfig::parse(text)
            .unwrap()
            .validate()
            .unwrap_err()
            .join("\n");
        assert!(
            all.contains("connection[0].token: only kubernetes"),
            "{all}"
        );
        assert!(
            all.contains("connection[0].namespace: only kubernetes"),
            "{all}"
        );
    }
}

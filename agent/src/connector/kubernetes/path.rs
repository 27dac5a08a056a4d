//! What a Kubernetes API request is about, from its method, path and
//! query, the way the API server's own request-info parser reads them:
//!
//! - `/api/v1/...` (the core group) and `/apis/GROUP/VERSION/...`;
//! - `namespaces/NS/RESOURCE/NAME/SUBRESOURCE`, or `RESOURCE/NAME/SUB`
//!   for cluster-wide resources; `namespaces/NS` alone is the namespace
//!   object itself (with `status` and `finalize` as its subresources);
//! - the legacy `watch/` prefix makes a `get`/`list` a `watch`, and so
//!   does `watch` in the query of a request without a name (a `get` of
//!   one object ignores it, as the API server does); the query is read
//!   as Go's `URL.Query` reads it, which drops pairs with a `;` or a bad
//!   escape;
//! - every other path (`/version`, `/api`, `/apis`, `/openapi/v3`,
//!   `/healthz`, discovery of one group) is a non-resource request named
//!   only by its path, with the method as its verb.
//!
//! The path given is the normalized one (see `http::policy::normalize`),
//! so `..` never reaches here. [`ApiRequest::path`] is the canonical path
//! `deny` rules see, built from the parsed parts, so two spellings of
//! one request (`/api/v1/watch/...`, a trailing `/`) match alike.

use http::Method;

/// A parsed request. `resource` is `None` for non-resource paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `exec`, `attach`, `portforward`, `log`, or for
    /// other subresources and non-resource paths the lowercase method.
    pub verb: String,
    /// The API group (`apps`); empty for the core group.
    pub group: Option<String>,
    pub version: Option<String>,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The canonical path `deny` rules match after the verb. For a
    /// resource request: `/api/VERSION` or `/apis/GROUP/VERSION`, then
    /// `/namespaces/NS` when namespaced, then `/RESOURCE`, `/NAME`,
    /// `/SUBRESOURCE` and what follows a `proxy` subresource; never the
    /// legacy `/watch` prefix, a trailing `/` or the query. A namespace
    /// itself is `/api/v1/namespaces/NS`; a list across all namespaces
    /// has no `/namespaces/NS` (`/api/v1/secrets`). Other requests: the
    /// normalized path.
    pub path: String,
}

impl ApiRequest {
    /// Whether the request only reads: `get`, `list`, `watch`, `log`
    /// (`get` of `pods/log`), or a `GET`/`HEAD`/`OPTIONS` of a
    /// non-resource path. The `proxy` subresource reaches whatever
    /// serves behind it, so it never counts as a read.
    pub fn is_read(&self) -> bool {
        if self.subresource.as_deref() == Some("proxy") {
            return false;
        }
        match self.resource {
            Some(_) => matches!(self.verb.as_str(), "get" | "list" | "watch" | "log"),
            None => matches!(self.verb.as_str(), "get" | "head" | "options"),
        }
    }

    /// `exec` or `attach`: a terminal the agent records.
    pub fn is_terminal(&self) -> bool {
        matches!(self.verb.as_str(), "exec" | "attach")
    }
}

/// Subresources of `pods` that name their own verb (`log` only for a
/// `GET` or `HEAD`).
const STREAM_VERBS: &[&str] = &["exec", "attach", "portforward", "log"];

/// The query's pairs as the API server (Go's `URL.Query`) reads them:
/// split on `&`; a pair with a `;`, or with an escape that does not
/// decode, is dropped; `+` is a space.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.contains(';'))
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((go_unescape(k)?, go_unescape(v)?))
        })
        .collect()
}

/// Go's `QueryUnescape`: `None` for a `%` not followed by two hex digits.
fn go_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let h = hex(*b.get(i + 1)?)?;
                let l = hex(*b.get(i + 2)?)?;
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Why the agent refuses a query it could read differently from the API
/// server, if it does: a `;` (kubectl escapes it as `%3B`; Go drops the
/// pair, other readers split on it).
pub fn query_problem(query: Option<&str>) -> Option<String> {
    query.filter(|q| q.contains(';')).map(|q| {
        format!(
            "the query {q:?} has a ';', which the API server and the agent could read differently; escape it as %3B"
        )
    })
}

/// Parses a request. `path` is normalized (starts with `/`, no empty,
/// `.` or `..` segments); `query` is the raw query string.
pub fn parse(method: &Method, path: &str, query: Option<&str>) -> ApiRequest {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method_verb = method.as_str().to_ascii_lowercase();
    let (group, version, mut rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => {
            return ApiRequest {
                verb: method_verb,
                path: path.to_string(),
                ..ApiRequest::default()
            };
        }
    };
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut legacy_watch = false;
    if rest.first() == Some(&"watch") {
        legacy_watch = true;
        rest = &rest[1..];
    }
    if rest.is_empty() {
        // Discovery of the group version.
        return ApiRequest {
            verb: method_verb,
            path: path.to_string(),
            ..ApiRequest::default()
        };
    }
    let mut namespace = None;
    let mut canonical = prefix;
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = Some(rest[1].to_string());
        if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
            canonical.push_str("/namespaces/");
            canonical.push_str(rest[1]);
            rest = &rest[2..];
        }
    }
    for seg in rest {
        canonical.push('/');
        canonical.push_str(seg);
    }
    let resource = rest.first().map(|s| s.to_string());
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    // As the API server reads a bool parameter (Convert_Slice_string_To_bool):
    // the first value; only "0" and "false" (any case) are false, so an
    // empty `watch=` or a bare `watch` starts a watch.
    let watch_param = name.is_none()
        && query_pairs(query)
            .into_iter()
            .find(|(k, _)| k == "watch")
            .is_some_and(|(_, v)| !(v == "0" || v.eq_ignore_ascii_case("false")));
    // Only the core group's pods have the stream subresources.
    let pods = group.is_empty() && resource.as_deref() == Some("pods");
    let reads = matches!(*method, Method::GET | Method::HEAD);
    let verb = match subresource.as_deref() {
        Some(s) if pods && STREAM_VERBS.contains(&s) && (s != "log" || reads) => s.to_string(),
        _ => match *method {
            Method::GET | Method::HEAD => {
                if legacy_watch || watch_param {
                    "watch".to_string()
                } else if name.is_some() {
                    "get".to_string()
                } else {
                    "list".to_string()
                }
            }
            Method::POST => "create".to_string(),
            Method::PUT => "update".to_string(),
            Method::PATCH => "patch".to_string(),
            Method::DELETE if name.is_some() => "delete".to_string(),
            Method::DELETE => "deletecollection".to_string(),
            _ => method_verb,
        },
    };
    ApiRequest {
        verb,
        group: Some(group.to_string()),
        version: Some(version.to_string()),
        namespace,
        resource,
        name,
        subresource,
        path: canonical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(m: Method, path: &str, q: Option<&str>) -> ApiRequest {
        parse(&m, path, q)
    }

    fn fields(r: &ApiRequest) -> (&str, Option<&str>, Option<&str>, Option<&str>, Option<&str>) {
        (
            r.verb.as_str(),
            r.namespace.as_deref(),
            r.resource.as_deref(),
            r.name.as_deref(),
            r.subresource.as_deref(),
        )
    }

    #[test]
    fn core_resources() {
        let r = p(
            Method::GET,
            "/api/v1/namespaces/prod/pods",
            Some("limit=500"),
        );
        assert_eq!(fields(&r), ("list", Some("prod"), Some("pods"), None, None));
        assert_eq!(r.group.as_deref(), Some(""));
        assert_eq!(r.version.as_deref(), Some("v1"));
        let r = p(Method::GET, "/api/v1/namespaces/prod/pods/web", None);
        assert_eq!(
            fields(&r),
            ("get", Some("prod"), Some("pods"), Some("web"), None)
        );
        let r = p(Method::DELETE, "/api/v1/namespaces/prod/pods/web", None);
        assert_eq!(r.verb, "delete");
        let r = p(Method::DELETE, "/api/v1/namespaces/prod/pods", None);
        assert_eq!(r.verb, "deletecollection");
        assert_eq!(
            p(Method::POST, "/api/v1/namespaces/a/configmaps", None).verb,
            "create"
        );
        assert_eq!(
            p(Method::PUT, "/api/v1/namespaces/a/configmaps/c", None).verb,
            "update"
        );
        assert_eq!(
            p(Method::PATCH, "/api/v1/namespaces/a/configmaps/c", None).verb,
            "patch"
        );
        let r = p(Method::GET, "/api/v1/nodes/n1", None);
        assert_eq!(fields(&r), ("get", None, Some("nodes"), Some("n1"), None));
    }

    #[test]
    fn namespaces_themselves() {
        let r = p(Method::GET, "/api/v1/namespaces", None);
        assert_eq!(fields(&r), ("list", None, Some("namespaces"), None, None));
        let r = p(Method::GET, "/api/v1/namespaces/prod", None);
        assert_eq!(
            fields(&r),
            ("get", Some("prod"), Some("namespaces"), Some("prod"), None)
        );
        let r = p(Method::PUT, "/api/v1/namespaces/prod/finalize", None);
        assert_eq!(
            fields(&r),
            (
                "update",
                Some("prod"),
                Some("namespaces"),
                Some("prod"),
                Some("finalize")
            )
        );
    }

    #[test]
    fn groups_subresources_and_watches() {
        let r = p(
            Method::PATCH,
            "/apis/apps/v1/namespaces/prod/deployments/web/scale",
            None,
        );
        assert_eq!(
            fields(&r),
            (
                "patch",
                Some("prod"),
                Some("deployments"),
                Some("web"),
                Some("scale")
            )
        );
        assert_eq!(r.group.as_deref(), Some("apps"));
        for (m, sub) in [
            (Method::GET, "exec"),
            (Method::POST, "exec"),
            (Method::POST, "attach"),
            (Method::GET, "portforward"),
            (Method::GET, "log"),
        ] {
            let r = p(
                m,
                &format!("/api/v1/namespaces/a/pods/p/{sub}"),
                Some("command=ls"),
            );
            assert_eq!(r.verb, sub);
            assert_eq!(r.subresource.as_deref(), Some(sub));
        }
        assert_eq!(
            p(Method::GET, "/api/v1/namespaces/a/pods", Some("watch=true")).verb,
            "watch"
        );
        assert_eq!(
            p(
                Method::GET,
                "/api/v1/namespaces/a/pods",
                Some("watch=1&x=2")
            )
            .verb,
            "watch"
        );
        assert_eq!(
            p(
                Method::GET,
                "/api/v1/namespaces/a/pods",
                Some("watch=false")
            )
            .verb,
            "list"
        );
        let r = p(Method::GET, "/api/v1/watch/namespaces/a/pods/x", None);
        assert_eq!(
            fields(&r),
            ("watch", Some("a"), Some("pods"), Some("x"), None)
        );
        // A proxy subresource keeps its path beyond the subresource.
        let r = p(
            Method::POST,
            "/api/v1/namespaces/a/services/s/proxy/x/y",
            None,
        );
        assert_eq!(
            fields(&r),
            (
                "create",
                Some("a"),
                Some("services"),
                Some("s"),
                Some("proxy")
            )
        );
    }

    #[test]
    fn non_resource_paths_are_named_by_path_only() {
        for path in [
            "/version",
            "/api",
            "/apis",
            "/openapi/v3",
            "/api/v1",
            "/apis/apps/v1",
            "/apis/apps",
            "/",
        ] {
            let r = p(Method::GET, path, None);
            assert_eq!(r.resource, None, "{path}");
            assert_eq!(r.verb, "get");
            assert!(r.is_read());
        }
        assert!(!p(Method::POST, "/version", None).is_read());
    }

    #[test]
    fn reads_and_terminals() {
        let read = |m, path| p(m, path, None).is_read();
        assert!(read(Method::GET, "/api/v1/namespaces/a/pods"));
        assert!(read(Method::GET, "/api/v1/namespaces/a/pods/p/log"));
        assert!(!read(Method::GET, "/api/v1/namespaces/a/pods/p/exec"));
        assert!(!read(
            Method::GET,
            "/api/v1/namespaces/a/pods/p/portforward"
        ));
        assert!(!read(Method::DELETE, "/api/v1/namespaces/a/pods/p"));
        assert!(!read(Method::GET, "/api/v1/namespaces/a/services/s/proxy/"));
        assert!(p(Method::GET, "/api/v1/namespaces/a/pods/p/attach", None).is_terminal());
    }

    #[test]
    fn canonical_paths_for_deny_rules() {
        let line = |m, path: &str, q| {
            let r = p(m, path, q);
            format!("{} {}", r.verb, r.path)
        };
        // The legacy watch prefix, a trailing slash: the same request.
        assert_eq!(
            line(Method::GET, "/api/v1/watch/namespaces/x/secrets/y", None),
            "watch /api/v1/namespaces/x/secrets/y"
        );
        assert_eq!(
            line(Method::GET, "/api/v1/namespaces/x/secrets/", None),
            "list /api/v1/namespaces/x/secrets"
        );
        // `kubectl get secrets -A`.
        assert_eq!(
            line(Method::GET, "/api/v1/secrets", None),
            "list /api/v1/secrets"
        );
        // The namespace object itself, with and without a subresource.
        assert_eq!(
            line(Method::DELETE, "/api/v1/namespaces/kube-system", None),
            "delete /api/v1/namespaces/kube-system"
        );
        assert_eq!(
            line(
                Method::PUT,
                "/api/v1/namespaces/kube-system/finalize/",
                None
            ),
            "update /api/v1/namespaces/kube-system/finalize"
        );
        assert_eq!(
            line(
                Method::GET,
                "/apis/apps/v1/watch/namespaces/kube-system/deployments",
                None
            ),
            "watch /apis/apps/v1/namespaces/kube-system/deployments"
        );
        assert_eq!(
            line(Method::GET, "/api/v1/nodes/n1/proxy/exec/x", None),
            "get /api/v1/nodes/n1/proxy/exec/x"
        );
        // Non-resource paths keep their normalized form.
        assert_eq!(line(Method::GET, "/version", None), "get /version");
        assert_eq!(
            line(Method::GET, "/apis/apps/v1", None),
            "get /apis/apps/v1"
        );

        let rules = [
            regex::Regex::new(r"^\w+ /api/v1/(namespaces/[^/]+/)?secrets(/|$)").unwrap(),
            regex::Regex::new(
                r"^(create|update|patch|delete|deletecollection) /(api/v1|apis/[^/]+/[^/]+)/namespaces/kube-system(/|$)",
            )
            .unwrap(),
        ];
        let denied = |m: Method, path: &str| {
            let l = line(m, path, None);
            rules.iter().any(|re| re.is_match(&l))
        };
        for (m, path) in [
            (Method::GET, "/api/v1/secrets"),
            (Method::GET, "/api/v1/watch/secrets"),
            (Method::GET, "/api/v1/namespaces/x/secrets/y"),
            (Method::GET, "/api/v1/watch/namespaces/x/secrets/y"),
            (Method::DELETE, "/api/v1/namespaces/kube-system"),
            (Method::DELETE, "/api/v1/namespaces/kube-system/pods/p"),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/kube-system/deployments/d",
            ),
            (
                Method::POST,
                "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings",
            ),
        ] {
            assert!(denied(m.clone(), path), "{m} {path}");
        }
        for (m, path) in [
            (Method::GET, "/api/v1/namespaces/x/configmaps"),
            (Method::GET, "/api/v1/namespaces/kube-system/pods"),
            (Method::DELETE, "/api/v1/namespaces/kube-systemd"),
        ] {
            assert!(!denied(m.clone(), path), "{m} {path}");
        }
    }

    #[test]
    fn watch_parameters_are_read_as_the_api_server_reads_them() {
        let verb = |path: &str, q: &str| p(Method::GET, path, Some(q)).verb;
        // A get of one object ignores `watch`.
        assert_eq!(verb("/api/v1/namespaces/a/secrets/s", "watch=true"), "get");
        assert_eq!(verb("/api/v1/namespaces/a/secrets", "watch=true"), "watch");
        // The API server's bool: the first value; only "0" and "false"
        // are false, empty is true.
        assert_eq!(verb("/api/v1/namespaces/a/secrets", "watch="), "watch");
        assert_eq!(verb("/api/v1/namespaces/a/secrets", "watch"), "watch");
        assert_eq!(verb("/api/v1/namespaces/a/secrets", "watch=0"), "list");
        // Stream subresources are the core group's pods' only.
        assert_eq!(
            p(
                Method::GET,
                "/apis/x.io/v1/namespaces/a/pods/p/portforward",
                None
            )
            .verb,
            "get"
        );
        assert_eq!(
            verb("/api/v1/namespaces/a/secrets", "watch=FALSE&watch=1"),
            "list"
        );
        assert_eq!(verb("/api/v1/namespaces/a/secrets", "wat%63h=yes"), "watch");
        // Go drops pairs with a `;` or a bad escape.
        assert_eq!(
            verb("/api/v1/namespaces/a/secrets", "watch=true;x=1"),
            "list"
        );
        assert_eq!(verb("/api/v1/namespaces/a/secrets", "watch=%zz"), "list");
        assert_eq!(
            query_pairs(Some("a=1;b=2&c=%41+b&d=%4&&e")),
            vec![("c".into(), "A b".into()), ("e".into(), String::new())]
        );
        assert!(query_problem(Some("watch=true;")).is_some());
        assert!(query_problem(Some("labelSelector=a%3Bb")).is_none());
        assert!(query_problem(None).is_none());
    }

    #[test]
    fn stream_verbs_only_on_pods() {
        assert_eq!(
            p(Method::GET, "/api/v1/namespaces/a/pods/p/log", None).verb,
            "log"
        );
        assert_eq!(
            p(Method::HEAD, "/api/v1/namespaces/a/pods/p/log", None).verb,
            "log"
        );
        let post = p(Method::POST, "/api/v1/namespaces/a/pods/p/log", None);
        assert_eq!(post.verb, "create");
        assert!(!post.is_read());
        let del = p(Method::DELETE, "/api/v1/namespaces/a/pods/p/log", None);
        assert_eq!(del.verb, "delete");
        let r = p(
            Method::POST,
            "/apis/x.io/v1/namespaces/a/widgets/w/exec",
            None,
        );
        assert_eq!(r.verb, "create");
        assert!(!r.is_terminal());
        assert_eq!(p(Method::GET, "/api/v1/nodes/n/log", None).verb, "get");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(
            method in proptest::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FOO"]),
            segs in proptest::collection::vec("[a-z0-9.-]{0,6}|api|apis|namespaces|watch|status|exec", 0..9),
            query in proptest::option::of(".{0,20}"),
        ) {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let path = format!("/{}", segs.join("/"));
            let r = parse(&m, &path, query.as_deref());
            proptest::prop_assert!(!r.verb.is_empty());
        }
    }
}

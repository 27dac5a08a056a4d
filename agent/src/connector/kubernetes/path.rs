//! What a Kubernetes API request is about, from its method, path and
//! query, the way the API server's own request-info parser reads them:
//!
//! - `/api/v1/...` (the core group) and `/apis/GROUP/VERSION/...`;
//! - `namespaces/NS/RESOURCE/NAME/SUBRESOURCE`, or `RESOURCE/NAME/SUB`
//!   for cluster-wide resources; `namespaces/NS` alone is the namespace
//!   object itself (with `status` and `finalize` as its subresources);
//! - the legacy `watch/` prefix, and `watch=true` in the query, make a
//!   `get`/`list` a `watch`;
//! - every other path (`/version`, `/api`, `/apis`, `/openapi/v3`,
//!   `/healthz`, discovery of one group) is a non-resource request named
//!   only by its path, with the method as its verb.
//!
//! The path given is the normalized one the guardrails see (see
//! `http::policy::normalize`), so `..` and encoded slashes never reach
//! here.

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

/// Subresources that name their own verb.
const STREAM_VERBS: &[&str] = &["exec", "attach", "portforward", "log"];

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
                ..ApiRequest::default()
            };
        }
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
            ..ApiRequest::default()
        };
    }
    let mut namespace = None;
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = Some(rest[1].to_string());
        if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
            rest = &rest[2..];
        }
    }
    let resource = rest.first().map(|s| s.to_string());
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    let watch_param = query.is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "watch")
            .is_some_and(|(_, v)| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0"))
    });
    let verb = match subresource.as_deref() {
        Some(s) if STREAM_VERBS.contains(&s) => s.to_string(),
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

//! What the double records and replays about requests: every request it received, and the
//! failures a test injected for the next matching ones.

use serde_json::Value;

/// One HTTP request the double received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Upper case: GET, POST, PUT, PATCH, DELETE.
    pub method: String,
    pub path: String,
    /// The raw query string, without `?` ("" when none).
    pub query: String,
    pub content_type: Option<String>,
    /// The body, when it was JSON (or YAML for apply patches).
    pub body: Option<Value>,
}

/// Review resources whose POST is a question, not a write.
const REVIEW_PLURALS: &[&str] = &[
    "subjectaccessreviews",
    "selfsubjectaccessreviews",
    "localsubjectaccessreviews",
    "tokenreviews",
    "selfsubjectreviews",
];

impl RecordedRequest {
    /// POST/PUT/PATCH/DELETE, except review creates (those are reads).
    pub fn is_mutating(&self) -> bool {
        let write = matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE");
        let last = self
            .path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        write && !(self.method == "POST" && REVIEW_PLURALS.contains(&last))
    }

    /// A decoded query parameter.
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|p| p.split_once('=').or(Some((p, ""))))
            .find(|(k, _)| percent_decode(k) == key)
            .map(|(_, v)| percent_decode(v))
    }

    /// Whether the request was a dry run (validated, not stored): `dryRun=All` in the
    /// query, or `dryRun: ["All"]` in a DELETE's DeleteOptions body.
    pub fn is_dry_run(&self) -> bool {
        self.query_param("dryRun").as_deref() == Some("All")
            || self
                .body
                .as_ref()
                .and_then(|b| b.get("dryRun"))
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|x| x == "All"))
    }
}

/// A failure to answer the next `remaining` requests matching method and path with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedFailure {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) status: u16,
    pub(super) remaining: usize,
}

impl InjectedFailure {
    pub(super) fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self.method == "*" || self.method.eq_ignore_ascii_case(method);
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => self.path == path,
        };
        method_ok && path_ok && self.remaining > 0
    }
}

/// `application/x-www-form-urlencoded` decoding: `%XX` and `+`.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_requests_classify_writes() {
        let req = |method: &str, path: &str, query: &str| RecordedRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            content_type: None,
            body: None,
        };
        assert!(req("PUT", "/api/v1/namespaces/a/configmaps/b", "").is_mutating());
        assert!(!req("GET", "/api/v1/namespaces", "").is_mutating());
        assert!(
            !req(
                "POST",
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                ""
            )
            .is_mutating()
        );
        assert!(!req("POST", "/apis/authentication.k8s.io/v1/tokenreviews", "").is_mutating());
        let dry = req(
            "POST",
            "/api/v1/namespaces/a/configmaps",
            "fieldManager=x&dryRun=All",
        );
        assert!(dry.is_mutating() && dry.is_dry_run());
        assert_eq!(dry.query_param("fieldManager").as_deref(), Some("x"));
    }
}

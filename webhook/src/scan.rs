//! The server's fast reader: one pass over the request body with a small validating JSON
//! scanner, reading the fields the decisions need into the same structs the serde reader
//! ([`crate::admission::parse_review`]) produces and skipping everything else.
//!
//! It only ever answers `Some` when serde_json would have accepted the body and produced the
//! same values: it checks skipped JSON as strictly as serde_json's `IgnoredAny` does (string
//! escapes and control characters, numbers, literals, nesting, trailing characters) and the
//! fields it reads as strictly as the derived `Deserialize` impls (types, nulls, duplicate
//! fields). Anything it does not handle itself (a body that is not UTF-8 throughout, escapes
//! in a string it reads, a key or value of an unexpected type, the object before its kind,
//! deep nesting) gives `None`, and the caller answers with the serde reader instead. The
//! property tests compare both readers.
//!
//! [`lexer`] holds the JSON lexing and validated skipping, [`fields`] the field readers.

mod fields;
mod lexer;

use crate::Endpoint;
use crate::review::AdmissionRequest;
use fields::once;
use lexer::Json;

/// Reads `body` for `endpoint`; `None`: use the serde reader.
pub(crate) fn read_review(endpoint: Endpoint, body: &[u8]) -> Option<AdmissionRequest<'_>> {
    let mut json = Json::new(body)?;
    let (mut api_version, mut kind, mut request) = (None, None, None);
    json.object(|j, key| match key {
        "apiVersion" => once(&mut api_version, j.opt_text()?),
        "kind" => once(&mut kind, j.opt_text()?),
        "request" => once(&mut request, j.request(endpoint)?),
        _ => j.skip(),
    })?;
    if json.peek().is_some() {
        return None;
    }
    let valid = api_version
        .flatten()
        .is_some_and(|v| *v == *crate::review::API_VERSION)
        && kind.flatten().is_some_and(|k| *k == *crate::review::KIND);
    let request = request?;
    (valid && !request.uid.is_empty()).then_some(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real reviews, in the API server's field order, are read here, not left to serde,
    /// and give what the serde reader gives.
    #[test]
    fn reads_real_api_server_reviews_in_one_pass() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-reviews");
        let mut read = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let review: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let request = review["request"].as_object().unwrap();
            let order = [
                "uid",
                "kind",
                "resource",
                "subResource",
                "requestKind",
                "requestResource",
                "requestSubResource",
                "name",
                "namespace",
                "operation",
                "userInfo",
                "object",
                "oldObject",
                "dryRun",
                "options",
            ];
            let fields: Vec<String> = order
                .iter()
                .filter_map(|f| request.get(*f).map(|v| format!("{:?}:{v}", f)))
                .collect();
            let body = format!(
                r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{}}}}}"#,
                fields.join(",")
            );
            for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
                let fast = read_review(endpoint, body.as_bytes());
                let fast =
                    fast.unwrap_or_else(|| panic!("{}: not read in one pass", path.display()));
                let reference = crate::admission::parse_review(body.as_bytes()).unwrap();
                assert_eq!(fast.uid, reference.uid);
                assert_eq!(fast.operation, reference.operation);
                assert_eq!(fast.namespace, reference.namespace);
                read += 1;
            }
        }
        assert_eq!(read, 52);
    }
}

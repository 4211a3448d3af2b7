//! Talking to moto: forwarding requests unchanged, and the two questions the stand-in asks
//! on its own (does the cluster exist, what does a role trust).
//!
//! Forwarded requests keep their method, path, query, headers (`Host` included) and body;
//! only hop-by-hop headers are dropped. moto does not check SigV4 signatures (unless
//! `INITIAL_NO_AUTH_ACTION_COUNT` is set, and then it recomputes them over the forwarded
//! headers, `Host` included, so they still match).

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::model::{EksError, percent_decode};

/// Answers larger than this are not buffered for rewriting (moto's EKS answers are small).
const MAX_BUFFERED: usize = 16 * 1024 * 1024;

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

pub(super) struct Upstream {
    pub base: String,
    client: Client<HttpConnector, Body>,
}

impl Upstream {
    pub fn new(base: &str) -> Upstream {
        Upstream {
            base: base.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> EksError {
        EksError::server(format!(
            "the EKS stand-in cannot reach moto at {}: {e}",
            self.base
        ))
    }

    /// Sends `method path_and_query` with `headers` and `body` to moto.
    pub async fn send(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response<Incoming>, EksError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base))
            .body(body)
            .map_err(|e| self.unreachable(e))?;
        let mut headers = headers.clone();
        strip_hop_by_hop(&mut headers);
        *request.headers_mut() = headers;
        self.client
            .request(request)
            .await
            .map_err(|e| self.unreachable(e))
    }

    /// Sends and reads the whole answer.
    pub async fn exchange(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(http::response::Parts, bytes::Bytes), EksError> {
        let response = self.send(method, path_and_query, headers, body).await?;
        let (parts, body) = response.into_parts();
        let bytes = http_body_util::Limited::new(body, MAX_BUFFERED)
            .collect()
            .await
            .map_err(|e| self.unreachable(e))?
            .to_bytes();
        Ok((parts, bytes))
    }

    /// moto's DescribeCluster answer (`cluster`), `None` when there is no such cluster.
    pub async fn describe_cluster(
        &self,
        name: &str,
        incoming: &HeaderMap,
    ) -> Result<Option<Value>, EksError> {
        let headers = signing_headers(incoming, "eks");
        let path = format!("/clusters/{}", encode_segment(name));
        let (parts, bytes) = self
            .exchange(http::Method::GET, &path, &headers, Body::empty())
            .await?;
        if parts.status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match (parts.status.is_success(), answer.get("cluster")) {
            (true, Some(cluster)) => Ok(Some(cluster.clone())),
            _ => Err(EksError::server(format!(
                "moto answered DescribeCluster {name} with HTTP {}: {}",
                parts.status,
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }

    /// The trust policy of role `name` in moto's IAM, `None` when there is no such role.
    pub async fn role_trust(
        &self,
        name: &str,
        incoming: &HeaderMap,
    ) -> Result<Option<Value>, EksError> {
        let mut headers = signing_headers(incoming, "iam");
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let body = format!(
            "Action=GetRole&Version=2010-05-08&RoleName={}",
            encode_segment(name)
        );
        let (parts, bytes) = self
            .exchange(http::Method::POST, "/", &headers, Body::from(body))
            .await?;
        let xml = String::from_utf8_lossy(&bytes);
        if parts.status == http::StatusCode::NOT_FOUND || xml.contains("NoSuchEntity") {
            return Ok(None);
        }
        let document = between(
            &xml,
            "<AssumeRolePolicyDocument>",
            "</AssumeRolePolicyDocument>",
        )
        .map(xml_unescape)
        .and_then(|doc| percent_decode(&doc))
        .and_then(|doc| serde_json::from_str(&doc).ok());
        match (parts.status.is_success(), document) {
            (true, Some(document)) => Ok(Some(document)),
            _ => Err(EksError::server(format!(
                "moto answered GetRole {name} with HTTP {}: {xml}",
                parts.status
            ))),
        }
    }
}

/// Headers for a request the stand-in makes itself: the caller's credential scope moved to
/// `service` (moto routes by it and derives the account from the access key), us-east-1
/// for IAM. moto does not check the signature.
fn signing_headers(incoming: &HeaderMap, service: &str) -> HeaderMap {
    let authorization = incoming
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let credential = between(authorization, "Credential=", ",")
        .unwrap_or("testing/x/us-east-1/eks/aws4_request");
    let mut scope = credential.split('/');
    let key = scope.next().filter(|k| !k.is_empty()).unwrap_or("testing");
    let date = scope.next().unwrap_or("20250101");
    let region = scope
        .next()
        .filter(|r| !r.is_empty())
        .unwrap_or("us-east-1");
    let region = if service == "iam" {
        "us-east-1"
    } else {
        region
    };
    let value = format!(
        "AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::AUTHORIZATION, value);
    }
    for name in ["x-amz-date", "x-amz-security-token"] {
        if let Some(value) = incoming.get(name) {
            headers.insert(name, value.clone());
        }
    }
    headers
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

fn xml_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Percent-encodes everything but unreserved characters (a path segment or form value).
pub(super) fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn as_list(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether a trust policy lets EKS Pod Identity assume the role: an `Allow` statement for
/// the service principal `pods.eks.amazonaws.com` with `sts:AssumeRole`.
pub(super) fn trusts_pod_identity(document: &Value) -> bool {
    let statements = match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => Vec::new(),
    };
    statements.into_iter().any(|statement| {
        let allow = statement.get("Effect").and_then(Value::as_str) == Some("Allow");
        let principal = statement.get("Principal");
        let service = as_list(principal.and_then(|p| p.get("Service")));
        let actions = as_list(statement.get("Action"));
        allow
            && (service.contains(&"pods.eks.amazonaws.com") || principal == Some(&Value::from("*")))
            && actions
                .iter()
                .any(|a| matches!(*a, "sts:AssumeRole" | "sts:*" | "*"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_identity_trust_is_recognised() {
        let good = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
        assert!(trusts_pod_identity(&good));
        let oidc = json!({"Statement": {"Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/x"},
            "Action": "sts:AssumeRoleWithWebIdentity"}});
        assert!(!trusts_pod_identity(&oidc));
        let denied = json!({"Statement": [{"Effect": "Deny",
            "Principal": {"Service": ["pods.eks.amazonaws.com"]}, "Action": "sts:AssumeRole"}]});
        assert!(!trusts_pod_identity(&denied));
        assert!(!trusts_pod_identity(&json!("not a policy")));
    }

    #[test]
    fn own_requests_carry_the_callers_key_and_scope() {
        let mut incoming = HeaderMap::new();
        incoming.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/eks/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        let eks = signing_headers(&incoming, "eks");
        let eks = eks[header::AUTHORIZATION].to_str().unwrap();
        assert!(
            eks.contains("Credential=AKID/20260101/eu-west-1/eks/aws4_request"),
            "{eks}"
        );
        let iam = signing_headers(&incoming, "iam");
        let iam = iam[header::AUTHORIZATION].to_str().unwrap();
        assert!(iam.contains("/us-east-1/iam/aws4_request"), "{iam}");
        let bare = signing_headers(&HeaderMap::new(), "eks");
        assert!(
            bare[header::AUTHORIZATION]
                .to_str()
                .unwrap()
                .contains("testing/")
        );
    }

    #[test]
    fn segments_round_trip() {
        let arn = "arn:aws:iam::123456789012:role/a b";
        assert_eq!(percent_decode(&encode_segment(arn)).as_deref(), Some(arn));
        assert_eq!(xml_unescape("&lt;a&gt; &amp;quot;"), "<a> &quot;");
    }
}

//! The stand-in's state and the pieces every operation shares: errors in the shape the SDK
//! parses, request bodies and queries, pagination, tags, ids and timestamps.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

pub(super) type Tags = BTreeMap<String, String>;
pub(super) type Body = Map<String, Value>;

/// What a fresh cluster reports: the default of CreateCluster through the API, SDKs and
/// CloudFormation (the console defaults to `API_AND_CONFIG_MAP`).
pub const DEFAULT_AUTHENTICATION_MODE: &str = "CONFIG_MAP";
pub(super) const AUTHENTICATION_MODES: [&str; 3] = ["CONFIG_MAP", "API_AND_CONFIG_MAP", "API"];
pub(super) const AUTH_MODE_REQUIRED: &str = "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.";

/// An EKS error as the service sends it: status, `x-amzn-ErrorType`, `{"message": ..}` plus
/// the exception's members (`clusterName`, `addonName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EksError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
    pub fields: Vec<(&'static str, String)>,
}

impl EksError {
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> EksError {
        EksError {
            status,
            kind,
            message: message.into(),
            fields: Vec::new(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> EksError {
        EksError::new(404, "ResourceNotFoundException", message)
    }
    pub fn in_use(message: impl Into<String>) -> EksError {
        EksError::new(409, "ResourceInUseException", message)
    }
    pub fn invalid_parameter(message: impl Into<String>) -> EksError {
        EksError::new(400, "InvalidParameterException", message)
    }
    pub fn invalid_request(message: impl Into<String>) -> EksError {
        EksError::new(400, "InvalidRequestException", message)
    }
    pub fn server(message: impl Into<String>) -> EksError {
        EksError::new(500, "ServerException", message)
    }
    pub fn cluster_not_found(name: &str) -> EksError {
        EksError::not_found(format!("No cluster found for name: {name}.")).with("clusterName", name)
    }
    pub fn with(mut self, field: &'static str, value: &str) -> EksError {
        self.fields.push((field, value.to_string()));
        self
    }
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        for (name, value) in &self.fields {
            body.insert((*name).to_string(), Value::String(value.clone()));
        }
        body.insert("message".into(), Value::String(self.message.clone()));
        Value::Object(body)
    }
}

/// Who the cluster is: its name, and region and account from the ARN moto reports.
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    pub cluster: String,
    pub region: String,
    pub account: String,
}

impl Ctx {
    /// From `arn:aws:eks:REGION:ACCOUNT:cluster/NAME`.
    pub fn from_cluster_arn(cluster: &str, arn: &str) -> Ctx {
        let mut parts = arn.split(':').skip(3);
        let region = parts
            .next()
            .filter(|r| !r.is_empty())
            .unwrap_or("us-east-1");
        let account = parts.next().filter(|a| !a.is_empty());
        Ctx {
            cluster: cluster.to_string(),
            region: region.to_string(),
            account: account.unwrap_or(crate::moto::MOTO_ACCOUNT_ID).to_string(),
        }
    }
    /// `arn:aws:eks:REGION:ACCOUNT:<resource>`
    pub fn arn(&self, resource: &str) -> String {
        format!("arn:aws:eks:{}:{}:{resource}", self.region, self.account)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Association {
    pub seq: u64,
    pub id: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    pub target_role_arn: Option<String>,
    pub external_id: Option<String>,
    pub disable_session_tags: bool,
    pub policy: Option<String>,
    pub tags: Tags,
    pub created_at: f64,
    pub modified_at: f64,
}

#[derive(Debug, Clone)]
pub(super) enum AddonStatus {
    /// `CREATING` until the instant, `ACTIVE` after.
    CreatingUntil(Instant),
    /// Whatever a test set (`DEGRADED`, `CREATE_FAILED`...).
    Fixed(String),
}

#[derive(Debug, Clone)]
pub(super) struct Addon {
    pub name: String,
    pub version: String,
    pub status: AddonStatus,
    pub issues: Vec<Value>,
    pub uuid: String,
    pub service_account_role_arn: Option<String>,
    pub configuration_values: Option<String>,
    pub tags: Tags,
    pub created_at: f64,
    pub modified_at: f64,
}

#[derive(Debug, Clone)]
pub(super) struct AssociatedPolicy {
    pub policy_arn: String,
    pub scope_type: String,
    pub namespaces: Vec<String>,
    pub associated_at: f64,
    pub modified_at: f64,
}

#[derive(Debug, Clone)]
pub(super) struct AccessEntry {
    pub seq: u64,
    pub principal_arn: String,
    pub entry_type: String,
    pub username: String,
    pub groups: Vec<String>,
    pub uuid: String,
    pub policies: Vec<AssociatedPolicy>,
    pub tags: Tags,
    pub created_at: f64,
    pub modified_at: f64,
}

/// Everything the stand-in knows about one cluster (moto knows the rest).
#[derive(Debug, Default)]
pub(super) struct ClusterState {
    /// moto's `createdAt` when first seen: a different one means the cluster was recreated.
    pub moto_created_at: Option<String>,
    pub auth_mode: Option<String>,
    pub bootstrap_admin: Option<bool>,
    pub associations: BTreeMap<u64, Association>,
    pub addons: BTreeMap<String, Addon>,
    pub entries: BTreeMap<u64, AccessEntry>,
    /// UpdateClusterConfig results by update id, for DescribeUpdate.
    pub updates: HashMap<String, Value>,
    /// How long a new add-on stays `CREATING`.
    pub addon_delay: Duration,
    /// Whether Pod Identity roles are looked up in moto's IAM (on unless a test turns it off).
    pub skip_role_checks: bool,
}

impl ClusterState {
    pub fn auth_mode(&self) -> &str {
        self.auth_mode
            .as_deref()
            .unwrap_or(DEFAULT_AUTHENTICATION_MODE)
    }
    /// Access entries need the EKS API enabled.
    pub fn require_api_mode(&self) -> Result<(), EksError> {
        if self.auth_mode() == "CONFIG_MAP" {
            return Err(EksError::invalid_request(AUTH_MODE_REQUIRED));
        }
        Ok(())
    }
}

/// One call the stand-in saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksCall {
    pub method: String,
    /// Path and query as sent (percent-encoded).
    pub path: String,
    /// The EKS operation the stand-in answered itself, `None` when forwarded to moto.
    pub operation: Option<String>,
    pub status: u16,
}

impl EksCall {
    /// An operation the stand-in answered that changes state (create, update, delete,
    /// associate, tag...).
    pub fn is_eks_write(&self) -> bool {
        const WRITES: [&str; 7] = [
            "Create",
            "Update",
            "Delete",
            "Associate",
            "Disassociate",
            "Tag",
            "Untag",
        ];
        self.operation
            .as_deref()
            .is_some_and(|op| WRITES.iter().any(|w| op.starts_with(w)))
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub clusters: HashMap<String, ClusterState>,
    pub seq: u64,
    pub calls: Vec<EksCall>,
}

impl State {
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// A request's query, decoded.
#[derive(Debug, Default, Clone)]
pub(super) struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, EksError> {
        let mut pairs = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (percent_decode(name), percent_decode(value)) {
                (Some(name), Some(value)) => pairs.push((name, value)),
                _ => {
                    return Err(EksError::invalid_parameter(
                        "The query string is not valid.",
                    ));
                }
            }
        }
        Ok(Query(pairs))
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// `%XX` decoding of one path segment or query component; `None` when it is not UTF-8 or
/// an escape is broken.
pub(super) fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `maxResults` (1 to 100, 100 when absent) and where `nextToken` says to start.
#[derive(Debug)]
pub(super) struct Page {
    pub max: usize,
    pub start: Option<String>,
}

impl Page {
    pub fn from_query(query: &Query) -> Result<Page, EksError> {
        let max = match query.get("maxResults") {
            None => 100,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n @ 1..=100) => n,
                _ => {
                    return Err(EksError::invalid_parameter(format!(
                        "The maxResults value {raw} is not valid: it must be between 1 and 100."
                    )));
                }
            },
        };
        let start = match query.get("nextToken") {
            None | Some("") => None,
            Some(token) => Some(
                hex_decode(token)
                    .ok_or_else(|| EksError::invalid_parameter("The nextToken is not valid."))?,
            ),
        };
        Ok(Page { max, start })
    }

    /// One page of `items` (sorted by key) and the token for the next, if any.
    pub fn take<T>(&self, items: Vec<(String, T)>) -> (Vec<T>, Option<String>) {
        let mut rest = items
            .into_iter()
            .filter(|(key, _)| self.start.as_ref().is_none_or(|start| key >= start));
        let page: Vec<T> = rest.by_ref().take(self.max).map(|(_, v)| v).collect();
        let next = rest.next().map(|(key, _)| hex_encode(&key));
        (page, next)
    }
}

/// Adds `nextToken` to a list answer when there is one.
pub(super) fn with_next_token(mut answer: Value, next: Option<String>) -> Value {
    if let (Some(token), Some(object)) = (next, answer.as_object_mut()) {
        object.insert("nextToken".into(), Value::String(token));
    }
    answer
}

fn hex_encode(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A request body: empty means `{}`; anything but a JSON object is refused as the service
/// refuses it.
pub(super) fn parse_body(bytes: &[u8]) -> Result<Body, EksError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(EksError::new(
            400,
            "SerializationException",
            "The request body is not a JSON object.",
        )),
    }
}

/// An optional string member; another JSON type is an InvalidParameterException.
pub(super) fn opt_str(body: &Body, name: &str) -> Result<Option<String>, EksError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(EksError::invalid_parameter(format!(
            "The parameter {name} must be a string."
        ))),
    }
}

/// A required, non-empty string member.
pub(super) fn req_str(body: &Body, name: &str) -> Result<String, EksError> {
    match opt_str(body, name)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(EksError::invalid_parameter(format!(
            "The parameter {name} is required."
        ))),
    }
}

pub(super) fn opt_bool(body: &Body, name: &str) -> Result<Option<bool>, EksError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(EksError::invalid_parameter(format!(
            "The parameter {name} must be a boolean."
        ))),
    }
}

pub(super) fn opt_str_list(body: &Body, name: &str) -> Result<Option<Vec<String>>, EksError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(EksError::invalid_parameter(format!(
                    "The parameter {name} must be a list of strings."
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(EksError::invalid_parameter(format!(
            "The parameter {name} must be a list of strings."
        ))),
    }
}

/// `tags` of a create call or TagResource: at most 50, keys 1-128 and values up to 256
/// characters, no `aws:` keys.
pub(super) fn parse_tags(value: Option<&Value>, kind: &'static str) -> Result<Tags, EksError> {
    let bad = |message: String| EksError::new(400, kind, message);
    let object = match value {
        None | Some(Value::Null) => return Ok(Tags::new()),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(bad("The parameter tags must be a map of strings.".into())),
    };
    if object.len() > 50 {
        return Err(bad("A resource can have at most 50 tags.".into()));
    }
    let mut tags = Tags::new();
    for (key, value) in object {
        let Value::String(value) = value else {
            return Err(bad(format!("The value of tag {key} must be a string.")));
        };
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(bad(format!(
                "The tag {key} is not valid: keys are 1 to 128 characters, values at most 256."
            )));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(bad(format!(
                "The tag {key} is not valid: the aws: prefix is reserved."
            )));
        }
        tags.insert(key.clone(), value.clone());
    }
    Ok(tags)
}

pub(super) fn tags_json(tags: &Tags) -> Value {
    json!(tags)
}

/// Seconds since the epoch with milliseconds, as EKS timestamps travel.
pub(super) fn now_epoch() -> f64 {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    (millis as f64) / 1000.0
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

/// `a-` and 17 lowercase letters and digits, as EKS association ids are.
pub(super) fn association_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::from("a-");
    let mut bits = random_u64();
    for i in 0..17 {
        if i == 12 {
            bits = random_u64();
        }
        id.push(ALPHABET[(bits % 36) as usize] as char);
        bits /= 36;
    }
    id
}

/// A random UUID-shaped string (8-4-4-4-12 hex).
pub(super) fn uuid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// `(kind, account, name)` of `arn:aws:iam::ACCOUNT:role/PATH/NAME` (or `user/`).
pub(super) fn parse_iam_principal(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (kind, path) = resource.split_once('/')?;
    let name = path.rsplit('/').next()?;
    if !matches!(kind, "role" | "user") || name.is_empty() {
        return None;
    }
    Some((kind, account, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_service_shape() {
        let id = association_id();
        assert_eq!(id.len(), 19, "{id}");
        assert!(
            id[2..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(association_id(), id);
        let u = uuid();
        assert_eq!(
            u.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
    }

    #[test]
    fn pages_continue_where_the_token_says() {
        let items = |n: usize| (0..n).map(|i| (format!("{i:04}"), i)).collect::<Vec<_>>();
        let query = Query::parse(Some("maxResults=2")).unwrap();
        let (first, next) = Page::from_query(&query).unwrap().take(items(5));
        assert_eq!(first, [0, 1]);
        let raw = format!("maxResults=2&nextToken={}", next.unwrap());
        let query = Query::parse(Some(&raw)).unwrap();
        let (second, next) = Page::from_query(&query).unwrap().take(items(5));
        assert_eq!(second, [2, 3]);
        assert!(next.is_some());
        for bad in [
            "maxResults=0",
            "maxResults=101",
            "maxResults=x",
            "nextToken=zz",
        ] {
            let query = Query::parse(Some(bad)).unwrap();
            let err = Page::from_query(&query).unwrap_err();
            assert_eq!(err.kind, "InvalidParameterException", "{bad}");
        }
    }

    #[test]
    fn decoding_never_panics_on_broken_input() {
        assert_eq!(
            percent_decode("arn%3Aaws%3Aiam").as_deref(),
            Some("arn:aws:iam")
        );
        for broken in ["%", "%4", "%zz", "%ff%fe"] {
            assert_eq!(percent_decode(broken), None, "{broken}");
        }
        assert!(Query::parse(Some("a=%zz")).is_err());
        assert!(hex_decode("é1").is_none());
    }

    #[test]
    fn tags_are_checked() {
        let ok = json!({"app": "mlplatform"});
        assert_eq!(parse_tags(Some(&ok), "X").unwrap().len(), 1);
        for bad in [
            json!({"aws:x": "y"}),
            json!({"k": 1}),
            json!(["k"]),
            json!({"": "v"}),
        ] {
            assert!(parse_tags(Some(&bad), "X").is_err(), "{bad}");
        }
    }

    #[test]
    fn iam_principals_parse() {
        assert_eq!(
            parse_iam_principal("arn:aws:iam::123456789012:role/path/to/r"),
            Some(("role", "123456789012", "r"))
        );
        assert_eq!(
            parse_iam_principal("arn:aws:iam::123456789012:user/u"),
            Some(("user", "123456789012", "u"))
        );
        for bad in [
            "arn:aws:sts::123456789012:assumed-role/r/s",
            "arn:aws:iam::12:role/r",
            "arn:aws:iam::123456789012:group/g",
            "arn:aws:iam::123456789012:role/",
            "role/r",
        ] {
            assert_eq!(parse_iam_principal(bad), None, "{bad}");
        }
    }
}

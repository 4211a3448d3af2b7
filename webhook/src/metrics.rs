//! Prometheus metrics. Label children are resolved once at start and kept as handles (they
//! share state with the registered family), so the request path does no label hashing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::Endpoint;
use mlplatform_namespace_policy::EnforcementMode;

/// How a request ended, for `requests_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// Admitted unchanged.
    allowed,
    /// Admitted with a patch.
    patched,
    /// Admitted with warnings (warn mode, or a lookup that failed).
    warned,
    /// `allowed: false`.
    denied,
    /// HTTP 400: not an AdmissionReview.
    bad_request,
    /// HTTP 413: body over the limit.
    too_large,
    /// HTTP 408: body not received in time.
    timeout,
}

const OUTCOMES: [Outcome; 7] = [
    Outcome::allowed,
    Outcome::patched,
    Outcome::warned,
    Outcome::denied,
    Outcome::bad_request,
    Outcome::too_large,
    Outcome::timeout,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResourceLabels {
    resource: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ModeLabels {
    mode: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FetchLabels {
    cache: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    endpoint: &'static str,
    group: String,
    kind: String,
}

/// Distinct (endpoint, group, kind) label sets `unhandled_kind_total` gets; later ones are
/// counted as kind [`OTHER_KIND`]. The kind comes from the request, and anyone who reaches
/// the port can send one, so the series (and the log-once set) must stay bounded.
pub const MAX_UNHANDLED_KINDS: usize = 64;
/// The `kind` label of unhandled kinds beyond [`MAX_UNHANDLED_KINDS`].
pub const OTHER_KIND: &str = "_other";
/// Longest group or kind label value (Kubernetes kinds and groups are shorter).
const MAX_LABEL_LEN: usize = 63;

/// Kinds an endpoint was sent but does not handle: counted by kind, and remembered so each is
/// logged once. Only reached for a mis-registered rule, so a lock is fine here.
#[derive(Debug, Clone)]
pub struct UnhandledKinds {
    counters: Family<KindLabels, Counter>,
    seen: Arc<Mutex<HashSet<(Endpoint, String, String)>>>,
}

impl UnhandledKinds {
    /// Counts one review of `group`/`kind` on `endpoint`; true the first time this kind is
    /// seen on this endpoint (the caller logs it then).
    pub fn record(&self, endpoint: Endpoint, group: &str, kind: &str) -> bool {
        let (group, kind) = (label_value(group), label_value(kind));
        let key = (endpoint, group, kind);
        let (first, (_, group, kind)) = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if seen.contains(&key) {
                (false, key)
            } else if seen.len() < MAX_UNHANDLED_KINDS {
                seen.insert(key.clone());
                (true, key)
            } else {
                (false, (endpoint, String::new(), OTHER_KIND.to_owned()))
            }
        };
        self.counters
            .get_or_create(&KindLabels {
                endpoint: endpoint.as_str(),
                group,
                kind,
            })
            .inc();
        first
    }
}

/// `s` as a label value prometheus-client can write as it is (it does not escape): at most
/// [`MAX_LABEL_LEN`] bytes of `[A-Za-z0-9._-]`, anything else as `_`.
fn label_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_LABEL_LEN)
        .collect()
}

/// Handles for one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointMetrics {
    outcomes: [Counter; OUTCOMES.len()],
    pub latency: LatencyHistogram,
}

impl EndpointMetrics {
    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].inc();
        }
        self.latency.observe(elapsed);
    }
}

/// Counters for one cache.
#[derive(Debug, Clone)]
pub struct CacheMetrics {
    pub objects: Gauge,
    pub fetch_found: Counter,
    pub fetch_not_found: Counter,
    pub fetch_failed: Counter,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub mutate: EndpointMetrics,
    pub validate: EndpointMetrics,
    pub pods_patched: Counter,
    pub service_accounts_patched: Counter,
    violations: [Counter; 3],
    pub denials_policy_invalid: Counter,
    pub namespaces: CacheMetrics,
    pub service_accounts: CacheMetrics,
    pub tls_reload_ok: Counter,
    pub tls_reload_failed: Counter,
    pub unhandled_kinds: UnhandledKinds,
}

/// Latency buckets from 50µs to 1s: admission decisions take tens of microseconds.
const LATENCY_BUCKETS: [f64; 15] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    0.75, 1.0,
];

/// A request-duration histogram over [`LATENCY_BUCKETS`] updated with atomic adds only
/// (prometheus-client's `Histogram` takes a lock on every observation).
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram(Arc<LatencyCounts>);

#[derive(Debug, Default)]
struct LatencyCounts {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|upper| seconds <= *upper)
            .unwrap_or(LATENCY_BUCKETS.len());
        let counts = &self.0;
        counts.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        counts.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        counts.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts = &self.0;
        // Upper bounds as prometheus-client's Histogram keeps them: `f64::MAX` is `+Inf`.
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(&counts.buckets)
            .map(|(upper, n)| (upper, n.load(Ordering::Relaxed)))
            .collect();
        let sum = counts.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(
            sum,
            counts.count.load(Ordering::Relaxed),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mlplatform_webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Admission requests by endpoint and outcome",
            requests.clone(),
        );
        let latency = Family::<EndpointLabels, LatencyHistogram>::new_with_constructor(
            LatencyHistogram::default as fn() -> LatencyHistogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time from request received to response built, by endpoint",
            latency.clone(),
        );
        let mutations = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "mutations",
            "Objects patched by /mutate, by resource",
            mutations.clone(),
        );
        let violations = Family::<ModeLabels, Counter>::default();
        registry.register(
            "service_account_violations",
            "Workloads running as a ServiceAccount their namespace does not allow, by enforcement mode (enforce = denied)",
            violations.clone(),
        );
        let invalid = Counter::default();
        registry.register(
            "denials_invalid_policy",
            "Requests denied because a managed namespace's policy annotations do not parse",
            invalid.clone(),
        );
        let objects = Family::<CacheLabels, Gauge>::default();
        registry.register("cache_objects", "Objects held per cache", objects.clone());
        let fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "cache_miss_fetches",
            "API GETs made on a cache miss, by cache and result",
            fetches.clone(),
        );
        let tls = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tls_reloads",
            "Certificate reloads after the files changed, by result",
            tls.clone(),
        );
        let unhandled = Family::<KindLabels, Counter>::default();
        registry.register(
            "unhandled_kind",
            "Reviews of a kind the endpoint does not handle (/mutate admits them unchanged, /validate denies them): remove the kind from the webhook configuration's rules",
            unhandled.clone(),
        );

        let endpoint = |e: Endpoint| EndpointMetrics {
            outcomes: OUTCOMES.map(|outcome| {
                requests.get_or_create_owned(&RequestLabels {
                    endpoint: e.as_str(),
                    outcome,
                })
            }),
            latency: latency.get_or_create_owned(&EndpointLabels {
                endpoint: e.as_str(),
            }),
        };
        let cache = |name: &'static str| {
            let fetch = |result| {
                fetches.get_or_create_owned(&FetchLabels {
                    cache: name,
                    result,
                })
            };
            CacheMetrics {
                objects: objects.get_or_create_owned(&CacheLabels { cache: name }),
                fetch_found: fetch("found"),
                fetch_not_found: fetch("not_found"),
                fetch_failed: fetch("failed"),
            }
        };
        let violation = |mode: EnforcementMode| {
            violations.get_or_create_owned(&ModeLabels {
                mode: mode.as_str(),
            })
        };
        Self {
            mutate: endpoint(Endpoint::Mutate),
            validate: endpoint(Endpoint::Validate),
            pods_patched: mutations.get_or_create_owned(&ResourceLabels { resource: "pods" }),
            service_accounts_patched: mutations.get_or_create_owned(&ResourceLabels {
                resource: "serviceaccounts",
            }),
            violations: [
                violation(EnforcementMode::Enforce),
                violation(EnforcementMode::Warn),
                violation(EnforcementMode::Audit),
            ],
            denials_policy_invalid: invalid,
            namespaces: cache("namespaces"),
            service_accounts: cache("serviceaccounts"),
            tls_reload_ok: tls.get_or_create_owned(&ResultLabels { result: "ok" }),
            tls_reload_failed: tls.get_or_create_owned(&ResultLabels { result: "failed" }),
            unhandled_kinds: UnhandledKinds {
                counters: unhandled,
                seen: Arc::default(),
            },
            registry: Arc::new(registry),
        }
    }

    pub fn endpoint(&self, endpoint: Endpoint) -> &EndpointMetrics {
        match endpoint {
            Endpoint::Mutate => &self.mutate,
            Endpoint::Validate => &self.validate,
        }
    }

    pub fn violation(&self, mode: EnforcementMode) -> &Counter {
        match mode {
            EnforcementMode::Enforce => &self.violations[0],
            EnforcementMode::Warn => &self.violations[1],
            EnforcementMode::Audit => &self.violations[2],
        }
    }

    /// OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_share_state_with_the_registry() {
        let metrics = Metrics::new();
        metrics
            .mutate
            .record(Outcome::patched, Duration::from_micros(70));
        metrics.violation(EnforcementMode::Warn).inc();
        metrics.namespaces.objects.set(3);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"mlplatform_webhook_requests_total{endpoint="mutate",outcome="patched"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"mlplatform_webhook_request_duration_seconds_bucket{le="0.0001",endpoint="mutate"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mlplatform_webhook_request_duration_seconds_bucket{le="5e-5",endpoint="mutate"} 0"#)
                || text.contains(r#"mlplatform_webhook_request_duration_seconds_bucket{le="0.00005",endpoint="mutate"} 0"#),
            "{text}"
        );
        metrics
            .mutate
            .record(Outcome::allowed, Duration::from_secs(5));
        let text = metrics.encode();
        for line in [
            r#"mlplatform_webhook_request_duration_seconds_bucket{le="1.0",endpoint="mutate"} 1"#,
            r#"mlplatform_webhook_request_duration_seconds_bucket{le="+Inf",endpoint="mutate"} 2"#,
            r#"mlplatform_webhook_request_duration_seconds_count{endpoint="mutate"} 2"#,
            r#"mlplatform_webhook_request_duration_seconds_sum{endpoint="mutate"} 5.00007"#,
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert!(
            text.contains(r#"mlplatform_webhook_service_account_violations_total{mode="warn"} 1"#)
        );
        assert!(text.contains(r#"mlplatform_webhook_cache_objects{cache="namespaces"} 3"#));
    }

    #[test]
    fn unhandled_kinds_are_counted_first_seen_once_and_bounded() {
        let metrics = Metrics::new();
        let kinds = &metrics.unhandled_kinds;
        assert!(kinds.record(Endpoint::Mutate, "", "ConfigMap"));
        assert!(!kinds.record(Endpoint::Mutate, "", "ConfigMap"));
        assert!(kinds.record(Endpoint::Validate, "", "ConfigMap"));
        // Label values are written unescaped: whatever a client sends must not break the text.
        assert!(kinds.record(Endpoint::Mutate, "x\"}\n", &"K".repeat(200)));
        let text = metrics.encode();
        for line in [
            r#"mlplatform_webhook_unhandled_kind_total{endpoint="mutate",group="",kind="ConfigMap"} 2"#,
            r#"mlplatform_webhook_unhandled_kind_total{endpoint="validate",group="",kind="ConfigMap"} 1"#,
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        let long = format!(
            r#"{{endpoint="mutate",group="x___",kind="{}"}} 1"#,
            "K".repeat(63)
        );
        assert!(text.contains(&long), "{text}");
        for i in 0..2 * MAX_UNHANDLED_KINDS {
            kinds.record(Endpoint::Mutate, "g", &format!("Kind{i}"));
        }
        let text = metrics.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("mlplatform_webhook_unhandled_kind_total{"))
            .count();
        assert_eq!(series, MAX_UNHANDLED_KINDS + 1, "{text}");
        assert!(
            text.contains(r#"{endpoint="mutate",group="",kind="_other"}"#),
            "{text}"
        );
    }
}

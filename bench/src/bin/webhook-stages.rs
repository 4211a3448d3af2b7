//! Per-stage timers for the webhook's request path, in process, on the benchmark's review:
//! where the time above the HTTPS stack goes (`make bench` measures the whole server; this
//! splits the handler). Single-threaded, best of several runs per stage. The `cold:` stages
//! run each review after other work has evicted the handler's code, data and branch history,
//! as in a server (where a profile finds the handler about twice as slow as in a tight loop).
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use clap::Parser;
use http::Request;
use http_body_util::BodyExt as _;
use mlplatform_bench::review;
use mlplatform_webhook::admission::{encode_review, parse_review, parse_review_for};
use mlplatform_webhook::cache::ClusterCache;
use mlplatform_webhook::cluster::{NamespaceEntry, ServiceAccountEntry, StaticClusterView};
use mlplatform_webhook::metrics::Metrics;
use mlplatform_webhook::mutate::InjectionConfig;
use mlplatform_webhook::server::{App, admission_router};
use mlplatform_webhook::{Endpoint, decide};
use tower::ServiceExt as _;

#[derive(Parser)]
#[command(about = "Time each stage of the webhook's /mutate path on the benchmark review")]
struct Args {
    /// Iterations per measurement.
    #[arg(long, default_value_t = 20_000)]
    iterations: u32,
    /// Measurements per stage; the fastest is reported.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Run only the stages whose name contains this (e.g. to profile one with `perf`).
    #[arg(long)]
    only: Option<String>,
}

fn selected(name: &str, args: &Args) -> bool {
    args.only
        .as_ref()
        .is_none_or(|only| name.contains(only.as_str()))
}

/// The fastest of `runs` means over `iterations` calls of `f`.
fn best(runs: u32, iterations: u32, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        best = best.min(start.elapsed() / iterations);
    }
    best
}

fn time(name: &str, args: &Args, f: impl FnMut()) {
    if selected(name, args) {
        let took = best(args.runs, args.iterations, f);
        println!("{name:<44} {:>8.2} us", took.as_secs_f64() * 1e6);
    }
}

/// Evicts what a tight loop keeps warm, as a server's other work does between two reviews
/// (kernel, TLS, HTTP): a walk over more memory than the core's L2 and a parse of another
/// document, which also retrains the branch predictor. Then the review body is read once:
/// in the server it arrives hot, just decrypted.
struct Polluter<'b> {
    memory: Vec<u8>,
    other: Vec<u8>,
    body: &'b [u8],
}

impl<'b> Polluter<'b> {
    fn new(body: &'b [u8]) -> anyhow::Result<Self> {
        Ok(Self {
            memory: vec![0; 1 << 20],
            other: serde_json::to_vec(&review::cluster_fixtures())?,
            body,
        })
    }

    fn run(&mut self) {
        for i in (0..self.memory.len()).step_by(64) {
            self.memory[i] = self.memory[i].wrapping_add(1);
        }
        let _ = black_box(serde_json::from_slice::<serde_json::Value>(black_box(
            &self.other,
        )));
        black_box(black_box(self.body).iter().fold(0u8, |sum, b| sum ^ b));
    }
}

/// `f` with cold caches and branch history: each call timed alone right after the polluter,
/// the median of many (robust to the odd interruption), less the timer's own median.
fn time_cold(name: &str, args: &Args, polluter: &mut Polluter<'_>, mut f: impl FnMut()) {
    if !selected(name, args) {
        return;
    }
    let calls = (args.iterations / 4).max(1) as usize;
    let mut median = |f: &mut dyn FnMut()| {
        let mut took: Vec<Duration> = (0..calls)
            .map(|_| {
                polluter.run();
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect();
        took.sort_unstable();
        took[took.len() / 2]
    };
    let timer = median(&mut || {});
    let took = median(&mut f).saturating_sub(timer);
    println!("{name:<44} {:>8.2} us", took.as_secs_f64() * 1e6);
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = review::pod_create_review_body(
        "705ab4f5-6393-11e8-b7cc-42010a800002",
        &review::training_pod(),
    );
    let bytes = body.as_bytes();
    println!("review: {} bytes", bytes.len());
    let fixtures = review::cluster_fixtures();
    let view = StaticClusterView::from_objects(&fixtures[..1], &fixtures[1..])?;
    let cfg = InjectionConfig {
        aws_region: Some("us-east-1".into()),
        ..InjectionConfig::default()
    };

    time("serde_json IgnoredAny over the body", &args, || {
        let _ = black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(
            bytes,
        )));
    });
    time("serde_json::Value parse of the body", &args, || {
        let _ = black_box(serde_json::from_slice::<serde_json::Value>(black_box(
            bytes,
        )));
    });
    time("parse_review (reference: object kept raw)", &args, || {
        let _ = black_box(parse_review(black_box(bytes)));
    });
    let req = parse_review(bytes)?;
    time("decide on it (object parse, lookup, patch)", &args, || {
        let _ = black_box(decide(Endpoint::Mutate, black_box(&req), &view, &cfg));
    });
    time("parse_review_for (one pass, the server's)", &args, || {
        let _ = black_box(parse_review_for(Endpoint::Mutate, black_box(bytes)));
    });
    let req = parse_review_for(Endpoint::Mutate, bytes)?;
    time("decide on it (lookup, patch)", &args, || {
        let _ = black_box(decide(Endpoint::Mutate, black_box(&req), &view, &cfg));
    });
    let response =
        decide(Endpoint::Mutate, &req, &view, &cfg).map_err(|m| anyhow::anyhow!("{m:?}"))?;
    time("encode_review", &args, || {
        let _ = black_box(encode_review(black_box(&response)));
    });
    time("one pass + decide + encode", &args, || {
        if let Ok(req) = parse_review_for(Endpoint::Mutate, black_box(bytes))
            && let Ok(response) = decide(Endpoint::Mutate, &req, &view, &cfg)
        {
            black_box(encode_review(&response));
        }
    });

    // The same after other work, as in a server (where the profile finds the scanner about
    // twice as slow as in the loops above).
    let mut polluter = Polluter::new(bytes)?;
    time_cold("cold: parse_review_for", &args, &mut polluter, || {
        let _ = black_box(parse_review_for(Endpoint::Mutate, black_box(bytes)));
    });
    time_cold(
        "cold: one pass + decide + encode",
        &args,
        &mut polluter,
        || {
            if let Ok(req) = parse_review_for(Endpoint::Mutate, black_box(bytes))
                && let Ok(response) = decide(Endpoint::Mutate, &req, &view, &cfg)
            {
                black_box(encode_review(&response));
            }
        },
    );

    // The whole handler through the axum router, no sockets.
    let metrics = Metrics::new();
    let cache = ClusterCache::offline(metrics.clone());
    let ns = &fixtures[0]["metadata"];
    let map = |v: &serde_json::Value| -> std::collections::BTreeMap<String, String> {
        serde_json::from_value(v.clone()).unwrap_or_default()
    };
    cache.insert_namespace(
        review::NAMESPACE,
        Some(NamespaceEntry::from_metadata(
            Some(&map(&ns["labels"])),
            Some(&map(&ns["annotations"])),
        )),
    );
    cache.insert_service_account(
        review::NAMESPACE,
        review::USER_SERVICE_ACCOUNT,
        Some(ServiceAccountEntry::from_annotations(Some(&map(
            &fixtures[1]["metadata"]["annotations"]
        )))),
    );
    let router = admission_router(App::new(cache, cfg.clone(), metrics, 1 << 20));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let body = bytes::Bytes::from(body);
    let null = mlplatform_bench::null::router();
    let through = |router: &axum::Router| {
        let request = Request::post("/mutate")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap_or_default();
        let router = router.clone();
        runtime.block_on(async move {
            let response = router
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {});
            let _ = black_box(response.into_body().collect().await);
        });
    };
    time("router /mutate (axum, body, metrics, all)", &args, || {
        through(&router)
    });
    time("null router /mutate (for comparison)", &args, || {
        through(&null)
    });
    let mut polluter = Polluter::new(&body)?;
    time_cold("cold: router /mutate", &args, &mut polluter, || {
        through(&router)
    });
    time_cold("cold: null router /mutate", &args, &mut polluter, || {
        through(&null)
    });
    Ok(())
}

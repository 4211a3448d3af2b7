//! `webhook-bench`: the release webhook against the null server (its own HTTPS stack, no
//! parse: the floor) and the `serde_json::Value` no-op, same machine, same run.
//!
//! Each server is pinned to core 0; this process (the client) runs on the other core. For each: start, wait until ready, idle RSS, check one answer in full, warm up,
//! closed-loop throughput, fixed-rate latency, peak RSS, stop. Every response is checked
//! (byte-equal to the verified answer, or verified again), so a broken server fails the
//! bench instead of posting numbers.
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use rustls_pki_types::ServerName;

use crate::child::{self, ChildError, ServerProcess};
use crate::load::{self, Connection, LoadError, ResponseCheck, RunOutcome, Target};
use crate::pki::{CertFiles, PkiError, TestPki};
use crate::procfs;
use crate::review::{self, ResponseError};
use crate::stats::{Millis, Summary};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Child(#[from] ChildError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{server} answered wrongly: {source}")]
    WrongAnswer {
        server: String,
        source: ResponseError,
    },
    #[error("{server} answered HTTP {status} to the first review: {body}")]
    BadStatus {
        server: String,
        status: StatusCode,
        body: String,
    },
    #[error(
        "{server}: {errors} transport errors and {wrong} wrong answers during {phase}; first: {first}"
    )]
    Failures {
        server: String,
        phase: &'static str,
        errors: u64,
        wrong: u64,
        first: String,
    },
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("kube-double wrote no kubeconfig to {0} within 20s; its log:\n{1}")]
    NoKubeconfig(PathBuf, String),
}

/// Binaries and knobs.
#[derive(Debug, Clone)]
pub struct Options {
    pub webhook_bin: PathBuf,
    pub null_bin: PathBuf,
    pub noop_bin: PathBuf,
    pub kube_double_bin: PathBuf,
    /// Core the servers are pinned to (None: not pinned).
    pub server_core: Option<usize>,
    pub concurrency: usize,
    /// The throughput run is split into this many slices per server, alternating.
    pub rounds: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub fixed_rate: u32,
    pub fixed_rate_duration: Duration,
    pub fixed_rate_connections: usize,
}

/// What one server did.
#[derive(Debug, Clone)]
pub struct ServerReport {
    pub name: String,
    pub throughput: Summary,
    pub fixed_rate: Summary,
    pub idle_rss_kib: u64,
    pub peak_rss_kib: u64,
    /// Share of one core the server used during the throughput run (1.0 = saturated).
    pub cpu_busy: f64,
    /// The same for this process (the client), to tell who limited the run.
    pub client_cpu_busy: f64,
    /// Each throughput slice, in run order: the servers' slices alternate, so slice `i` of
    /// two servers ran next to each other under the same background load.
    pub rounds: Vec<Round>,
}

/// One throughput slice of one server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    pub requests_per_second: f64,
    pub cpu_per_request: Duration,
}

impl ServerReport {
    /// Server CPU time per request in the throughput run: unlike req/s, it does not depend
    /// on how much of the core other processes left to the server.
    pub fn cpu_per_request(&self) -> Duration {
        let requests = self.throughput.requests.max(1) as f64;
        Duration::from_secs_f64(
            (self.cpu_busy * self.throughput.elapsed.as_secs_f64() / requests).max(0.0),
        )
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    /// 1-minute load average before and after: other work on the machine skews results.
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
    pub webhook: ServerReport,
    /// The same stack without parsing: the floor the webhook is measured against.
    pub null: ServerReport,
    /// The null server sending the webhook's own answer: the floor for the answer's size.
    pub null_answer: ServerReport,
    /// Answer sizes of the null server and of the webhook (sent by `null_answer` too).
    pub null_bytes: usize,
    pub null_answer_bytes: usize,
    /// The no-op that parses into `serde_json::Value`.
    pub ceiling: ServerReport,
    pub options: Options,
}

/// Verifies one response body in full.
type AnswerCheck = Arc<dyn Fn(&[u8]) -> Result<(), ResponseError> + Send + Sync>;

const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

/// Runs the whole benchmark; `progress` gets one line per step.
///
/// Both servers run for the whole benchmark (the idle one costs nothing) and the
/// throughput runs alternate between them in `rounds`, so a change in background load
/// during the run hits both alike instead of skewing the ratio.
pub async fn run(options: Options, progress: &dyn Fn(&str)) -> Result<Report, BenchError> {
    let load_before = procfs::load_average();
    let dir = tempfile::tempdir().map_err(|e| BenchError::Io("creating a temp dir".into(), e))?;
    let pki = TestPki::generate(&["127.0.0.1", "localhost"])?;
    let certs = pki.write_to(dir.path())?;
    let client_tls = pki.client_config()?;
    let pod = review::training_pod();
    let body = Bytes::from(review::pod_create_review_body(UID, &pod));

    progress("starting kube-double with a managed namespace and its user ServiceAccount");
    let (kube, kubeconfig) = start_kube_double(&options, dir.path()).await?;

    progress(
        "starting mlplatform-webhook (release), null-server, null-same-answer and noop-ceiling",
    );
    let webhook = {
        let listen = child::free_loopback_addr()?;
        let health = child::free_loopback_addr()?;
        let args = webhook_args(listen, health, &certs, &kubeconfig);
        let mut server = ServerProcess::start(
            "mlplatform-webhook",
            &options.webhook_bin,
            &args,
            options.server_core,
            dir.path(),
        )?;
        server
            .wait_ready(Duration::from_secs(30), || {
                child::http_get_ok(health, "/readyz")
            })
            .await?;
        let target = target(listen, "/mutate", &client_tls, &body);
        let pod = pod.clone();
        let verify: AnswerCheck =
            Arc::new(move |b| review::check_irsa_mutation(b, UID, &pod, review::ROLE_ARN));
        Subject::prepare(server, target, verify).await?
    };
    let launch = Launch {
        options: &options,
        dir: dir.path(),
        certs: &certs,
        client_tls: &client_tls,
        body: &body,
    };
    let allowed: AnswerCheck = Arc::new(|b| review::check_allowed(b, UID));
    let null = launch.start("null-server", &options.null_bin, &[]).await?;
    let null = Subject::prepare(null.0, null.1, allowed.clone()).await?;
    // The webhook's own answer, sent by the null server: the floor for sending 2.4 KB, not 0.1.
    let answer_file = dir.path().join("webhook-answer.json");
    std::fs::write(&answer_file, &webhook.first_answer)
        .map_err(|e| BenchError::Io(format!("writing {}", answer_file.display()), e))?;
    let null_answer = launch
        .start(
            "null-same-answer",
            &options.null_bin,
            &[format!("--answer-file={}", answer_file.display())],
        )
        .await?;
    let null_answer = {
        let pod = pod.clone();
        let verify: AnswerCheck =
            Arc::new(move |b| review::check_irsa_mutation(b, UID, &pod, review::ROLE_ARN));
        Subject::prepare(null_answer.0, null_answer.1, verify).await?
    };
    let ceiling = launch.start("noop-ceiling", &options.noop_bin, &[]).await?;
    let ceiling = Subject::prepare(ceiling.0, ceiling.1, allowed).await?;
    let mut subjects = [webhook, null, null_answer, ceiling];

    for subject in &mut subjects {
        progress(&format!("{}: warm-up {:?}", subject.name(), options.warmup));
        subject.warm_up(&options).await?;
    }
    let rounds = options.rounds.max(1);
    let slice = options.duration / rounds;
    for round in 1..=rounds {
        for subject in &mut subjects {
            progress(&format!(
                "{}: round {round}/{rounds}, {} connections, closed loop, {slice:?}",
                subject.name(),
                options.concurrency
            ));
            subject.throughput_slice(&options, slice).await?;
        }
    }
    for subject in &mut subjects {
        progress(&format!(
            "{}: fixed rate {} req/s, {:?}",
            subject.name(),
            options.fixed_rate,
            options.fixed_rate_duration
        ));
        subject.fixed_rate(&options).await?;
    }
    let null_bytes = subjects[1].first_answer.len();
    let null_answer_bytes = subjects[2].first_answer.len();
    let [webhook, null, null_answer, ceiling] = subjects;
    let webhook = webhook.finish().await;
    let null = null.finish().await;
    let null_answer = null_answer.finish().await;
    let ceiling = ceiling.finish().await;
    kube.stop().await;
    Ok(Report {
        load_before,
        load_after: procfs::load_average(),
        webhook,
        null,
        null_answer,
        ceiling,
        null_bytes,
        null_answer_bytes,
        options,
    })
}

/// What every server of the run shares: where it runs, its certificate, the client's TLS
/// settings and the review it is sent.
struct Launch<'a> {
    options: &'a Options,
    dir: &'a Path,
    certs: &'a CertFiles,
    client_tls: &'a Arc<rustls::ClientConfig>,
    body: &'a Bytes,
}

impl Launch<'_> {
    /// Starts a server that takes only a listen address, the certificate and `extra` flags
    /// (the null server, the no-op), pinned like the webhook, and waits until it accepts.
    async fn start(
        &self,
        name: &str,
        bin: &Path,
        extra: &[String],
    ) -> Result<(ServerProcess, Target), BenchError> {
        let listen = child::free_loopback_addr()?;
        let mut args = vec![
            format!("--listen={listen}"),
            format!("--tls-cert-file={}", self.certs.cert.display()),
            format!("--tls-key-file={}", self.certs.key.display()),
        ];
        args.extend_from_slice(extra);
        let mut server =
            ServerProcess::start(name, bin, &args, self.options.server_core, self.dir)?;
        server
            .wait_ready(Duration::from_secs(10), || child::accepts_tcp(listen))
            .await?;
        let target = target(listen, "/mutate", self.client_tls, self.body);
        Ok((server, target))
    }
}

fn target(addr: SocketAddr, path: &str, tls: &Arc<rustls::ClientConfig>, body: &Bytes) -> Target {
    Target {
        addr,
        server_name: ServerName::IpAddress(addr.ip().into()),
        path: path.to_owned(),
        tls: tls.clone(),
        body: body.clone(),
    }
}

fn webhook_args(
    listen: SocketAddr,
    health: SocketAddr,
    certs: &CertFiles,
    kubeconfig: &Path,
) -> Vec<String> {
    vec![
        format!("--listen={listen}"),
        format!("--health-listen={health}"),
        format!("--tls-cert-file={}", certs.cert.display()),
        format!("--tls-key-file={}", certs.key.display()),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--aws-region=us-east-1".into(),
        "--log-format=plain".into(),
        // Per-request logs would measure the terminal, not the webhook.
        "--log-level=warn".into(),
    ]
}

async fn start_kube_double(
    options: &Options,
    dir: &Path,
) -> Result<(ServerProcess, PathBuf), BenchError> {
    let fixtures = dir.join("fixtures.json");
    let list = serde_json::json!({
        "apiVersion": "v1", "kind": "List", "items": review::cluster_fixtures(),
    });
    std::fs::write(&fixtures, list.to_string())
        .map_err(|e| BenchError::Io(format!("writing {}", fixtures.display()), e))?;
    let kubeconfig = dir.join("kubeconfig");
    let args = vec![
        "--listen=127.0.0.1:0".to_owned(),
        format!("--kubeconfig-out={}", kubeconfig.display()),
        "--context=bench".to_owned(),
        format!("--fixtures={}", fixtures.display()),
    ];
    // Not pinned: it only serves the webhook's initial list and idle watches.
    let mut kube = ServerProcess::start("kube-double", &options.kube_double_bin, &args, None, dir)?;
    let written = kube
        .wait_ready(Duration::from_secs(20), || {
            let path = kubeconfig.clone();
            async move { std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) }
        })
        .await;
    match written {
        Ok(()) => Ok((kube, kubeconfig)),
        Err(ChildError::NotReady { .. }) => {
            Err(BenchError::NoKubeconfig(kubeconfig, kube.log_tail()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Builds the per-response check: the first answer is verified in full and remembered;
/// later answers that are byte-equal pass, others are verified again.
fn response_check(verify: AnswerCheck, known_good: Bytes) -> ResponseCheck {
    Arc::new(move |status, body| {
        status == StatusCode::OK && (body == known_good.as_ref() || verify(body).is_ok())
    })
}

/// One server under test and what has been measured so far.
struct Subject {
    server: ServerProcess,
    /// The first answer, verified in full.
    first_answer: Bytes,
    pid: u32,
    target: Target,
    check: ResponseCheck,
    idle_rss_kib: u64,
    latencies_ns: Vec<u64>,
    elapsed: Duration,
    server_cpu: Duration,
    client_cpu: Duration,
    rounds: Vec<Round>,
    fixed_rate: Option<Summary>,
}

impl Subject {
    /// Idle RSS, then the first answer verified in full before any load.
    async fn prepare(
        server: ServerProcess,
        target: Target,
        verify: AnswerCheck,
    ) -> Result<Self, BenchError> {
        let pid = server.pid().unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss_kib = procfs::memory(pid).map_or(0, |m| m.rss_kib);
        let mut conn = Connection::open(&target).await?;
        let (status, first) = conn.post().await?;
        drop(conn);
        if status != StatusCode::OK {
            return Err(BenchError::BadStatus {
                server: server.name.clone(),
                status,
                body: String::from_utf8_lossy(&first).into_owned(),
            });
        }
        verify(&first).map_err(|source| BenchError::WrongAnswer {
            server: server.name.clone(),
            source,
        })?;
        Ok(Self {
            first_answer: first.clone(),
            check: response_check(verify, first),
            server,
            pid,
            target,
            idle_rss_kib,
            latencies_ns: Vec::new(),
            elapsed: Duration::ZERO,
            server_cpu: Duration::ZERO,
            client_cpu: Duration::ZERO,
            rounds: Vec::new(),
            fixed_rate: None,
        })
    }

    fn name(&self) -> &str {
        &self.server.name
    }

    async fn warm_up(&self, options: &Options) -> Result<(), BenchError> {
        let warm = load::closed_loop(
            &self.target,
            options.concurrency,
            options.warmup,
            &self.check,
        )
        .await;
        ensure_clean(self.name(), "warm-up", &warm)
    }

    async fn throughput_slice(
        &mut self,
        options: &Options,
        duration: Duration,
    ) -> Result<(), BenchError> {
        let me = std::process::id();
        let before = (procfs::cpu_time(self.pid), procfs::cpu_time(me));
        let run = load::closed_loop(&self.target, options.concurrency, duration, &self.check).await;
        let after = (procfs::cpu_time(self.pid), procfs::cpu_time(me));
        ensure_clean(self.name(), "the throughput run", &run)?;
        let used = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => Duration::ZERO,
        };
        let server_cpu = used(before.0, after.0);
        let requests = run.latencies_ns.len().max(1) as u32;
        self.rounds.push(Round {
            requests_per_second: run.latencies_ns.len() as f64
                / run.elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            cpu_per_request: server_cpu / requests,
        });
        self.server_cpu += server_cpu;
        self.client_cpu += used(before.1, after.1);
        self.elapsed += run.elapsed;
        self.latencies_ns.extend(run.latencies_ns);
        Ok(())
    }

    async fn fixed_rate(&mut self, options: &Options) -> Result<(), BenchError> {
        let mut paced = load::fixed_rate(
            &self.target,
            options.fixed_rate,
            options.fixed_rate_connections,
            options.fixed_rate_duration,
            &self.check,
        )
        .await;
        ensure_clean(self.name(), "the fixed-rate run", &paced)?;
        self.fixed_rate = Some(Summary::from_latencies(
            &mut paced.latencies_ns,
            paced.elapsed,
        ));
        Ok(())
    }

    /// Peak RSS, stop the server, summarize.
    async fn finish(mut self) -> ServerReport {
        let peak_rss_kib = procfs::memory(self.pid).map_or(0, |m| m.peak_rss_kib);
        let name = self.server.name.clone();
        self.server.stop().await;
        let secs = self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        ServerReport {
            name,
            throughput: Summary::from_latencies(&mut self.latencies_ns, self.elapsed),
            fixed_rate: self
                .fixed_rate
                .unwrap_or(Summary::from_latencies(&mut [], Duration::ZERO)),
            idle_rss_kib: self.idle_rss_kib,
            peak_rss_kib,
            cpu_busy: self.server_cpu.as_secs_f64() / secs,
            client_cpu_busy: self.client_cpu.as_secs_f64() / secs,
            rounds: self.rounds,
        }
    }
}

fn ensure_clean(server: &str, phase: &'static str, run: &RunOutcome) -> Result<(), BenchError> {
    if run.errors == 0 && run.wrong == 0 && !run.latencies_ns.is_empty() {
        return Ok(());
    }
    Err(BenchError::Failures {
        server: server.to_owned(),
        phase,
        errors: run.errors,
        wrong: run.wrong,
        first: run
            .first_error
            .clone()
            .unwrap_or_else(|| "no requests completed".into()),
    })
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl Round {
    /// `self` relative to `other` by throughput, and by server CPU time per request (the
    /// comparison least disturbed by other work on the machine).
    fn relative_to(&self, other: &Round) -> (f64, f64) {
        let throughput =
            self.requests_per_second / other.requests_per_second.max(f64::MIN_POSITIVE);
        let cpu = other.cpu_per_request.as_secs_f64()
            / self.cpu_per_request.as_secs_f64().max(f64::MIN_POSITIVE);
        (throughput, cpu)
    }
}

impl ServerReport {
    /// The whole throughput run as one round.
    fn totals(&self) -> Round {
        Round {
            requests_per_second: self.throughput.requests_per_second(),
            cpu_per_request: self.cpu_per_request(),
        }
    }
}

/// `a` relative to `b` over the whole throughput run (see [`Round::relative_to`]).
fn ratios(a: &ServerReport, b: &ServerReport) -> (f64, f64) {
    a.totals().relative_to(&b.totals())
}

/// `a` relative to `b` round by round (slice `i` of each ran side by side): the median and
/// the range of the throughput ratios, and the median of the CPU-per-request ratios. Less
/// moved by a burst of background load than the ratio of the totals; `None` without rounds.
fn paired_ratios(a: &ServerReport, b: &ServerReport) -> Option<PairedRatios> {
    let (mut throughput, mut cpu): (Vec<f64>, Vec<f64>) = a
        .rounds
        .iter()
        .zip(&b.rounds)
        .map(|(a, b)| a.relative_to(b))
        .unzip();
    throughput.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    Some(PairedRatios {
        rounds: throughput.len(),
        throughput_median: median(&throughput)?,
        throughput_min: *throughput.first()?,
        throughput_max: *throughput.last()?,
        cpu_median: median(&cpu)?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct PairedRatios {
    rounds: usize,
    throughput_median: f64,
    throughput_min: f64,
    throughput_max: f64,
    cpu_median: f64,
}

/// The median of sorted `values`.
fn median(values: &[f64]) -> Option<f64> {
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

/// The human-readable report (what `make bench` prints).
pub fn render(report: &Report) -> String {
    let o = &report.options;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pod-CREATE AdmissionReview over keep-alive HTTPS/1.1; servers pinned to core {}, client on the other core",
        o.server_core.map_or("(none)".into(), |c| c.to_string())
    );
    let _ = writeln!(
        out,
        "throughput: {} connections, closed loop, {:?} in {} alternating rounds after {:?} warm-up; latency: {} req/s fixed rate over {} connections for {:?}\n",
        o.concurrency,
        o.duration,
        o.rounds,
        o.warmup,
        o.fixed_rate,
        o.fixed_rate_connections,
        o.fixed_rate_duration
    );
    let _ = writeln!(
        out,
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>9} {:>10} {:>11} {:>12} {:>10} {:>10}",
        "server",
        "req/s",
        "p50",
        "p99",
        "p99.9",
        "cpu",
        "cpu/req",
        "client cpu",
        "p99@rate",
        "idle RSS",
        "peak RSS"
    );
    for s in [
        &report.webhook,
        &report.null,
        &report.null_answer,
        &report.ceiling,
    ] {
        let _ = writeln!(
            out,
            "{:<20} {:>10.0} {:>10} {:>10} {:>10} {:>8.0}% {:>7.1} us {:>10.0}% {:>12} {:>10} {:>10}",
            s.name,
            s.throughput.requests_per_second(),
            Millis(s.throughput.p50).to_string(),
            Millis(s.throughput.p99).to_string(),
            Millis(s.throughput.p999).to_string(),
            s.cpu_busy * 100.0,
            s.cpu_per_request().as_secs_f64() * 1e6,
            s.client_cpu_busy * 100.0,
            Millis(s.fixed_rate.p99).to_string(),
            mib(s.idle_rss_kib),
            mib(s.peak_rss_kib),
        );
    }
    let (null_tp, null_cpu) = ratios(&report.webhook, &report.null);
    let _ = writeln!(
        out,
        "\nwebhook / null (same stack, no parse): {:.1}% by throughput (goal >= 75%), {:.1}% by CPU per request",
        null_tp * 100.0,
        null_cpu * 100.0
    );
    if let Some(paired) = paired_ratios(&report.webhook, &report.null) {
        let _ = writeln!(
            out,
            "webhook / null, round by round ({} side-by-side rounds): median {:.1}% by throughput (range {:.1}-{:.1}%), {:.1}% by CPU per request",
            paired.rounds,
            paired.throughput_median * 100.0,
            paired.throughput_min * 100.0,
            paired.throughput_max * 100.0,
            paired.cpu_median * 100.0
        );
    }
    let (answer_tp, answer_cpu) = ratios(&report.webhook, &report.null_answer);
    let _ = writeln!(
        out,
        "webhook / null sending the webhook's own answer: {:.1}% by throughput, {:.1}% by CPU per request (the rest of the gap is sending {} B instead of {} B)",
        answer_tp * 100.0,
        answer_cpu * 100.0,
        report.null_answer_bytes,
        report.null_bytes,
    );
    let (value_tp, value_cpu) = ratios(&report.webhook, &report.ceiling);
    let _ = writeln!(
        out,
        "webhook / serde_json::Value no-op: {:.1}% by throughput, {:.1}% by CPU per request",
        value_tp * 100.0,
        value_cpu * 100.0
    );
    let _ = writeln!(
        out,
        "webhook p99 at {} req/s: {} (goal <= 1 ms); idle RSS {} (goal <= 12 MiB)",
        o.fixed_rate,
        Millis(report.webhook.fixed_rate.p99),
        mib(report.webhook.idle_rss_kib)
    );
    if let (Some(before), Some(after)) = (report.load_before, report.load_after)
        && before.max(after) > 1.0
    {
        let _ = writeln!(
            out,
            "note: load average {before:.2} before, {after:.2} after: other processes shared the cores; rerun on an idle machine"
        );
    }
    if report.null.fixed_rate.p99 > Duration::from_millis(1) {
        let _ = writeln!(
            out,
            "note: the null server's p99 at {} req/s was {} too: the machine's own scheduling latency (the floor does almost no work), not the webhook's; rerun on a quieter machine",
            o.fixed_rate,
            Millis(report.null.fixed_rate.p99)
        );
    }
    if report.null.cpu_busy < 0.9 {
        let limit = if report.null.client_cpu_busy >= 0.9 {
            "the client (one core) limited it"
        } else {
            "neither it nor the client saturated a core, so other processes took CPU"
        };
        let _ = writeln!(
            out,
            "note: the null server used {:.0}% of its core: {limit}; the throughput ratio then overstates the webhook (the CPU ratio does not)",
            report.null.cpu_busy * 100.0
        );
    }
    out
}

/// Runs this program again under `taskset -c <core>` (the client's core) unless it already
/// is; returns the child's exit code when it re-ran.
pub fn reexec_pinned(core: usize, marker_env: &str) -> Option<i32> {
    if std::env::var_os(marker_env).is_some() || !child::taskset_available() {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let status = std::process::Command::new("taskset")
        .arg("-c")
        .arg(core.to_string())
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(marker_env, "1")
        .status()
        .ok()?;
    Some(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rounds`: requests per second of each slice, on a saturated core.
    fn server(name: &str, requests: u64, cpu_busy: f64, rounds: &[f64]) -> ServerReport {
        let summary = |n| Summary {
            requests: n,
            elapsed: Duration::from_secs(10),
            p50: Duration::from_micros(400),
            p99: Duration::from_micros(900),
            p999: Duration::from_micros(2_000),
            max: Duration::from_millis(5),
        };
        ServerReport {
            name: name.into(),
            throughput: summary(requests),
            fixed_rate: summary(5_000),
            idle_rss_kib: 10 * 1024,
            peak_rss_kib: 12 * 1024,
            cpu_busy,
            client_cpu_busy: 0.95,
            rounds: rounds
                .iter()
                .map(|&rps| Round {
                    requests_per_second: rps,
                    cpu_per_request: Duration::from_secs_f64(1.0 / rps),
                })
                .collect(),
        }
    }

    #[test]
    fn report_shows_ratio_cpu_per_request_and_aims() {
        let report = Report {
            load_before: Some(0.1),
            load_after: Some(0.2),
            webhook: server(
                "mlplatform-webhook",
                90_000,
                1.0,
                &[10_000.0, 8_000.0, 9_500.0, 9_000.0],
            ),
            null: server("null-server", 100_000, 1.0, &[10_000.0; 4]),
            null_answer: server("null-same-answer", 120_000, 1.0, &[]),
            ceiling: server("noop-ceiling", 45_000, 1.0, &[]),
            null_bytes: 110,
            null_answer_bytes: 2_400,
            options: Options {
                webhook_bin: "w".into(),
                null_bin: "z".into(),
                noop_bin: "n".into(),
                kube_double_bin: "k".into(),
                server_core: Some(0),
                concurrency: 16,
                rounds: 4,
                warmup: Duration::from_secs(2),
                duration: Duration::from_secs(10),
                fixed_rate: 1000,
                fixed_rate_duration: Duration::from_secs(5),
                fixed_rate_connections: 8,
            },
        };
        // 10 s of one core over 90,000 requests.
        let per_request = report.webhook.cpu_per_request().as_secs_f64() * 1e6;
        assert!((per_request - 111.1).abs() < 0.1, "{per_request}");
        let text = render(&report);
        assert!(
            text.contains("webhook / null (same stack, no parse): 90.0% by throughput (goal >= 75%), 90.0% by CPU per request"),
            "{text}"
        );
        // Ratios 100, 80, 95, 90%: the median is between 90 and 95.
        assert!(
            text.contains("webhook / null, round by round (4 side-by-side rounds): median 92.5% by throughput (range 80.0-100.0%), 92.5% by CPU per request"),
            "{text}"
        );
        assert!(
            text.contains(
                "webhook / serde_json::Value no-op: 200.0% by throughput, 200.0% by CPU per request"
            ),
            "{text}"
        );
        assert!(
            text.contains("webhook / null sending the webhook's own answer: 75.0% by throughput, 75.0% by CPU per request (the rest of the gap is sending 2400 B instead of 110 B)"),
            "{text}"
        );
        assert!(text.contains("p99 at 1000 req/s: 0.900 ms"), "{text}");
        assert!(text.contains("idle RSS 10.0 MiB"), "{text}");
        assert!(
            !text.contains("note:"),
            "an idle, saturated run needs no caveat: {text}"
        );

        // The floor itself missing the latency aim says the machine, not the webhook.
        let mut slow_machine = report;
        slow_machine.null.fixed_rate.p99 = Duration::from_micros(3_200);
        let text = render(&slow_machine);
        assert!(
            text.contains("note: the null server's p99 at 1000 req/s was 3.200 ms too"),
            "{text}"
        );
    }

    #[test]
    fn paired_ratios_need_rounds_and_take_the_median() {
        let no_rounds = server("a", 1, 1.0, &[]);
        assert_eq!(paired_ratios(&no_rounds, &no_rounds), None);
        let a = server("a", 1, 1.0, &[5.0, 9.0, 7.0]);
        let b = server("b", 1, 1.0, &[10.0; 3]);
        let paired = paired_ratios(&a, &b).unwrap();
        assert_eq!(paired.rounds, 3);
        assert!((paired.throughput_median - 0.7).abs() < 1e-9, "{paired:?}");
        assert!((paired.throughput_min - 0.5).abs() < 1e-9, "{paired:?}");
        assert!((paired.throughput_max - 0.9).abs() < 1e-9, "{paired:?}");
        assert!((paired.cpu_median - 0.7).abs() < 1e-9, "{paired:?}");
    }
}

//! `cargo run --release --example bench`: the release binary, started as Lambda starts it,
//! against a local Lambda Runtime API and ServiceNow, Secrets Manager and SQS stand-ins behind
//! TLS (a test CA made at run time, trusted through `SSL_CERT_FILE` as any private CA is),
//! with the template's defaults, beside a no-op Lambda function (the baseline) and the Python
//! glue the function replaces (examples/python-peer), measured the same way in the same run.
//! It measures what a cold environment pays (the handshakes, loading the root certificates,
//! the crypto library's start, the first invocation under the share of a CPU Lambda gives
//! 128 MB) and what each kind of event pays warm: time to the answer, billed duration, CPU,
//! requests and Lambda's price. No AWS, no ServiceNow, no Docker. `--skip-artifact` skips the
//! arm64 zip build; `--profile` runs a cold start and the warm events under callgrind;
//! `BENCH_FUNCTION=path` measures another build of the function (an older commit's) in its
//! place. `--latency-ms=N` (default 150; 0 skips it) prints the per-event table a second time
//! with ServiceNow answering each request N ms later, as a real instance does (100–400 ms):
//! then the requests in sequence, not the CPU, set the wait and the bill.

use serde_json::{json, Value};
use simulator::{
    process_cpu_time, RuntimeApiSimulator, SecretsManagerSimulator, ServiceNowSimulator,
    SqsSendSimulator, TestCa,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INIT_SAMPLES: usize = 15;
const QUOTA_SAMPLES: usize = 7;
/// CFS periods the quota is given over: Linux's default, and a fifth of it (7.2 % of a period
/// must stay above the kernel's least quota, 1 ms, so no shorter than about 14 ms).
const QUOTA_PERIODS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(20)];
const WARM_ALERTS: usize = 100; // × each of WARM_EVENTS
/// Alerts run again with ServiceNow's latency: each event then takes a few hundred ms.
const LATENCY_ALERTS: usize = 20;
/// A real instance's answer time, taken from the middle of the 100–400 ms it is seen at.
const DEFAULT_LATENCY_MS: u64 = 150;
const QUEUED_ALERTS: usize = 50; // × an accept and a consume
const SECRET_ID: &str = "ilert/servicenow";
const QUEUE_URL: &str =
    "https://sqs.eu-central-1.amazonaws.com/123456789012/ilert-servicenow-events.fifo";
const DEAD_LETTER_QUEUE_URL: &str =
    "https://sqs.eu-central-1.amazonaws.com/123456789012/ilert-servicenow-dead-letters.fifo";
const TOKEN: &str = "bench-webhook-token";
/// Lambda gives a function CPU in proportion to its memory, a whole vCPU at 1,769 MB; after
/// init, 128 MB gets this share of a core.
const CPU_SHARE_AT_128_MB: f64 = 128.0 / 1769.0;
/// Lambda's list price on arm64 (us-east-1 and eu-central-1, first tier): per GB-second of
/// billed duration, and per request.
const ARM64_USD_PER_GB_SECOND: f64 = 0.000_013_333_4;
const USD_PER_MILLION_REQUESTS: f64 = 0.20;
const MEMORY_GB: f64 = 128.0 / 1024.0;

/// One kind of event a user's alerts produce, as the benchmark sends it: its name in the
/// table, the bundled event, and the word the function's answer must hold.
struct EventKind {
    name: &'static str,
    event: &'static str,
    answer: &'static str,
}

/// Each warm alert meets these, in this order, in direct delivery.
const WARM_EVENTS: [EventKind; 5] = [
    EventKind {
        name: "create",
        event: "01-alert-created",
        answer: "created",
    },
    EventKind {
        name: "update (accepted, with a note)",
        event: "02-alert-acknowledged",
        answer: "updated",
    },
    EventKind {
        name: "no-op (the same event again)",
        event: "02-alert-acknowledged",
        answer: "unchanged",
    },
    EventKind {
        name: "comment",
        event: "03-alert-comment-added",
        answer: "updated",
    },
    EventKind {
        name: "resolve",
        event: "04-alert-resolved",
        answer: "updated",
    },
];

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--baseline-function") {
        return baseline_function();
    }
    let skip_artifact = std::env::args().any(|a| a == "--skip-artifact");
    let latency = std::env::args()
        .find_map(|a| a.strip_prefix("--latency-ms=").map(str::to_owned))
        .map_or(DEFAULT_LATENCY_MS, |ms| {
            ms.parse().expect("--latency-ms=<whole milliseconds>")
        });
    let profiling = std::env::args().any(|a| a == "--profile");
    let tracing = std::env::args().any(|a| a == "--trace-cold-start");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    if profiling {
        runtime.block_on(profile());
    } else if tracing {
        runtime.block_on(trace_cold_start());
    } else {
        runtime.block_on(benchmark(skip_artifact, Duration::from_millis(latency)));
    }
}

/// The baseline: a Lambda function that answers 200 and does nothing else, on the same
/// runtime crate and the same single-threaded executor.
fn baseline_function() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime
        .block_on(lambda_runtime::run(lambda_runtime::service_fn(
            |_: lambda_runtime::LambdaEvent<Value>| async {
                Ok::<_, lambda_runtime::Error>(json!({ "statusCode": 200, "body": "{}" }))
            },
        )))
        .expect("the baseline runs");
}

/// ServiceNow, Secrets Manager and SQS behind TLS, with the function's secret in place, and
/// the file that makes the function trust them.
struct Stand {
    servicenow: ServiceNowSimulator,
    secrets: SecretsManagerSimulator,
    queue: SqsSendSimulator,
    ca_file: PathBuf,
}

impl Stand {
    /// The time the stand-ins have spent answering, all together.
    fn busy(&self) -> Duration {
        self.servicenow.stats().busy() + self.secrets.stats().busy() + self.queue.stats().busy()
    }
}

async fn stand() -> Stand {
    let ca = TestCa::new();
    let ca_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).expect("the CA file is written");
    let servicenow = ServiceNowSimulator::start_tls("ilert.integration", "bench-password", &ca)
        .await
        .expect("the simulator starts");
    let secrets = SecretsManagerSimulator::start_tls(&ca)
        .await
        .expect("starts");
    let queue = SqsSendSimulator::start_tls(&ca).await.expect("starts");
    secrets.put(
        SECRET_ID,
        &json!({
            "instance_url": servicenow.url(),
            "username": "ilert.integration",
            "password": "bench-password",
            "webhook_token": TOKEN,
        })
        .to_string(),
    );
    Stand {
        servicenow,
        secrets,
        queue,
        ca_file,
    }
}

async fn benchmark(skip_artifact: bool, latency: Duration) {
    let function = release_binary();
    let baseline = std::env::current_exe().expect("the benchmark's own path");
    let stand = stand().await;

    println!("ilert-servicenow benchmark on {}", machine());
    println!("function: {}", function.display());
    let function_init = median_init(&function, &[], &stand).await;
    let baseline_init = median_init(&baseline, &["--baseline-function"], &stand).await;
    let function_run = run_invocations(&function, &[], &stand, Checks::Every, WARM_ALERTS).await;
    let baseline_run = run_invocations(
        &baseline,
        &["--baseline-function"],
        &stand,
        Checks::Nothing,
        WARM_ALERTS,
    )
    .await;
    let python_peer = match python_peer() {
        Ok((python, script)) => {
            let args = [script.as_str()];
            Ok((
                median_init(&python, &args, &stand).await,
                run_invocations(&python, &args, &stand, Checks::First, WARM_ALERTS).await,
            ))
        }
        Err(why) => Err(why),
    };
    let queued = run_queued(&function, &[], &stand, true, QUEUED_ALERTS).await;
    let queued_baseline = run_queued(
        &baseline,
        &["--baseline-function"],
        &stand,
        false,
        QUEUED_ALERTS,
    )
    .await;
    // Linux's default period lets a process run its whole quota at once; a 20 ms period
    // spreads the same share thin, as a stricter scheduler would: the truth for Lambda lies
    // between.
    let mut quota_runs = Vec::new();
    for period in QUOTA_PERIODS {
        quota_runs.push((
            period,
            first_invocation_under_quota(&function, &[], &stand, period).await,
            first_invocation_under_quota(&baseline, &["--baseline-function"], &stand, period).await,
        ));
    }
    let certificate_files = certificate_files_opened(&function, &stand).await;
    let artifact = if skip_artifact {
        "skipped (--skip-artifact)".to_owned()
    } else {
        arm64_artifact()
    };

    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    let row = |what: &str, function: String, baseline: String, budget: &str| {
        println!("| {what} | {function} | {baseline} | {budget} |");
    };
    println!();
    println!("| measure | function | baseline (no-op handler) | budget |");
    println!("|---|---|---|---|");
    row(
        &format!("init, process start to first poll of /next (median of {INIT_SAMPLES}), ms"),
        ms(function_init),
        ms(baseline_init),
        "≤ 10",
    );
    row(
        "cold start: process start to the first answer, event waiting, ms",
        ms(function_run.cold_start),
        ms(baseline_run.cold_start),
        "",
    );
    row(
        "first invocation over TLS (secret read and a create, two handshakes): wall, ms",
        format!(
            "{} ({} beyond the fakes' own {})",
            ms(function_run.first),
            ms(function_run.first.saturating_sub(function_run.first_fakes)),
            ms(function_run.first_fakes)
        ),
        ms(baseline_run.first),
        "≤ 15 beyond the fakes",
    );
    row(
        "first invocation: CPU time, ms",
        ms(function_run.first_cpu),
        ms(baseline_run.first_cpu),
        "",
    );
    let quota = |result: &Result<(Duration, u64), String>| match result {
        Ok((wall, throttled)) => format!("{} (held back in {throttled} periods)", ms(*wall)),
        Err(why) => why.clone(),
    };
    for (period, function_quota, baseline_quota) in &quota_runs {
        row(
            &format!(
                "first invocation with Lambda's CPU share at 128 MB ({:.1} % of a core per {} ms period), wall, median of {QUOTA_SAMPLES}, ms",
                CPU_SHARE_AT_128_MB * 100.0,
                period.as_millis()
            ),
            quota(function_quota),
            quota(baseline_quota),
            "",
        );
    }
    row(
        &format!(
            "TLS handshakes per environment over {} events (Secrets Manager + ServiceNow)",
            function_run.warm.iter().map(Vec::len).sum::<usize>() + 1
        ),
        format!(
            "{} ({} + {})",
            function_run.handshakes.0 + function_run.handshakes.1,
            function_run.handshakes.0,
            function_run.handshakes.1
        ),
        "–".into(),
        "3 (the caller's lookup runs beside the first lookup, on a connection of its own)",
    );
    row(
        "root certificate files opened per process (strace)",
        match &certificate_files {
            Ok(files) => format!("{} ({})", files.len(), files.join(", ")),
            Err(why) => why.clone(),
        },
        "–".into(),
        "1, no directory walk",
    );
    let all_warm = |run: &RunFigures| run.warm.concat();
    row(
        &format!(
            "CPU time per warm event, mean over {} events of every kind below, ms (beyond the baseline)",
            all_warm(&function_run).len()
        ),
        format!(
            "{:.3} ({:.3})",
            mean_ms(&all_warm(&function_run), |s| s.cpu),
            mean_ms(&all_warm(&function_run), |s| s.cpu)
                - mean_ms(&all_warm(&baseline_run), |s| s.cpu)
        ),
        format!("{:.3}", mean_ms(&all_warm(&baseline_run), |s| s.cpu)),
        "≤ 0.2 beyond the baseline",
    );
    row(
        "peak resident memory, MiB",
        format!("{:.1}", function_run.peak_rss_kib as f64 / 1024.0),
        format!("{:.1}", baseline_run.peak_rss_kib as f64 / 1024.0),
        "≤ 16",
    );
    row(
        "Secrets Manager requests per environment",
        function_run.secret_reads.to_string(),
        "–".into(),
        "1 per TTL",
    );
    row("zipped arm64 artifact", artifact, "–".into(), "≤ 5 MiB");

    println!();
    println!(
        "What each kind of event costs, warm unless it says cold: answered = from the hand-over \
         to the caller having the answer (p50 / p99, and the p50 less the stand-ins' own time); \
         billed = to the function's next poll, rounded up to the ms as Lambda bills it (mean); \
         cost = Lambda at 128 MB arm64, {USD_PER_MILLION_REQUESTS:.2} USD a million requests + \
         {ARM64_USD_PER_GB_SECOND} USD a GB-second; CPU beyond the baseline handler's CPU for \
         the same event."
    );
    println!();
    println!(
        "| event | answered p50 / p99, ms | p50 beyond the stand-ins, ms | billed, ms | CPU beyond the baseline, ms | ServiceNow requests | SQS sends | Lambda USD per million events |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let kind_row = |name: &str, function: &[Sample], baseline: &[Sample]| {
        let walls: Vec<Duration> = function.iter().map(|s| s.wall).collect();
        let beyond: Vec<Duration> = function
            .iter()
            .map(|s| s.wall.saturating_sub(s.fakes))
            .collect();
        let billed_ms = mean_ms(function, |s| s.billed);
        let count = |of: fn(&Sample) -> usize| {
            let (least, most) = (
                function.iter().map(of).min().unwrap_or(0),
                function.iter().map(of).max().unwrap_or(0),
            );
            if least == most {
                least.to_string()
            } else {
                format!("{least}–{most}")
            }
        };
        println!(
            "| {name} | {} / {} | {} | {billed_ms:.2} | {:.3} | {} | {} | {:.4} |",
            ms(percentile(&walls, 50)),
            ms(percentile(&walls, 99)),
            ms(percentile(&beyond, 50)),
            mean_ms(function, |s| s.cpu) - mean_ms(baseline, |s| s.cpu),
            count(|s| s.servicenow_requests),
            count(|s| s.queue_sends),
            cost_per_million(billed_ms),
        );
    };
    let cold_billed = function_run.first_billed.as_secs_f64() * 1000.0;
    println!(
        "| create, cold (init + first invocation over TLS, secret read) | {} | {} | {cold_billed:.0} | – | {} | 0 | {:.4} |",
        ms(function_run.cold_start),
        ms(function_run.cold_start.saturating_sub(function_run.first_fakes)),
        function_run.first_requests,
        cost_per_million(cold_billed),
    );
    for (index, kind) in WARM_EVENTS.iter().enumerate() {
        kind_row(
            kind.name,
            &function_run.warm[index],
            &baseline_run.warm[index],
        );
    }
    kind_row(
        "queued: accept (webhook → SQS)",
        &queued.0,
        &queued_baseline.0,
    );
    kind_row(
        "queued: consume (SQS → create)",
        &queued.1,
        &queued_baseline.1,
    );

    println!();
    match &python_peer {
        Err(why) => println!("Python peer: {why}"),
        Ok((peer_init, peer)) => {
            println!(
                "Beside the Python glue it replaces (examples/python-peer/handler.py, {}: boto3 \
                 and requests, the same stand-ins over TLS, the same events):",
                python_version()
            );
            println!();
            println!("| measure | function | Python peer | ratio |");
            println!("|---|---|---|---|");
            let compare = |what: &str, function: Duration, peer: Duration| {
                println!(
                    "| {what} | {} | {} | {:.1}× |",
                    ms(function),
                    ms(peer),
                    peer.as_secs_f64() / function.as_secs_f64().max(1e-9)
                );
            };
            compare("init (median of 15), ms", function_init, *peer_init);
            compare(
                "cold start: process start to the first answer (secret read and a create), ms",
                function_run.cold_start,
                peer.cold_start,
            );
            compare(
                "first invocation over TLS, wall, ms",
                function_run.first,
                peer.first,
            );
            let warm_cpu = |run: &RunFigures| {
                Duration::from_secs_f64(mean_ms(&all_warm(run), |s| s.cpu) / 1000.0)
            };
            compare(
                "CPU time per warm event, ms",
                warm_cpu(&function_run),
                warm_cpu(peer),
            );
            println!(
                "| peak resident memory, MiB | {:.1} | {:.1} | {:.1}× |",
                function_run.peak_rss_kib as f64 / 1024.0,
                peer.peak_rss_kib as f64 / 1024.0,
                peer.peak_rss_kib as f64 / function_run.peak_rss_kib.max(1) as f64
            );
        }
    }
    if !latency.is_zero() {
        at_instance_pace(&function, &stand, latency).await;
    }
}

/// The per-event figures again with ServiceNow answering each request `latency` later, the
/// function beside the Python glue: what a user pays at a real instance's pace.
async fn at_instance_pace(function: &Path, stand: &Stand, latency: Duration) {
    for method in ["GET", "POST", "PATCH"] {
        stand.servicenow.set_latency(method, latency);
    }
    let function_run = run_invocations(function, &[], stand, Checks::Every, LATENCY_ALERTS).await;
    let peer_run = match python_peer() {
        Ok((python, script)) => Some(
            run_invocations(
                &python,
                &[script.as_str()],
                stand,
                Checks::First,
                LATENCY_ALERTS,
            )
            .await,
        ),
        Err(_) => None,
    };
    for method in ["GET", "POST", "PATCH"] {
        stand.servicenow.set_latency(method, Duration::ZERO);
    }
    println!();
    println!(
        "The same events with ServiceNow answering each request {} ms later, as a real \
         instance does ({LATENCY_ALERTS} alerts each; answered = p50 from the hand-over to the \
         answer; billed = mean, as Lambda bills it; the requests are those in sequence that \
         the wait is made of):",
        latency.as_millis()
    );
    println!();
    println!(
        "| event | function: answered, ms | billed, ms | requests | USD per million | Python glue: answered, ms | billed, ms | requests | USD per million |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let cells = |samples: &[Sample]| {
        let walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
        let billed_ms = mean_ms(samples, |s| s.billed);
        let (least, most) = (
            samples
                .iter()
                .map(|s| s.servicenow_requests)
                .min()
                .unwrap_or(0),
            samples
                .iter()
                .map(|s| s.servicenow_requests)
                .max()
                .unwrap_or(0),
        );
        let requests = if least == most {
            least.to_string()
        } else {
            format!("{least}–{most}")
        };
        format!(
            "{:.0} | {billed_ms:.0} | {requests} | {:.4}",
            percentile(&walls, 50).as_secs_f64() * 1000.0,
            cost_per_million(billed_ms)
        )
    };
    for (index, kind) in WARM_EVENTS.iter().enumerate() {
        let peer = peer_run.as_ref().map_or("– | – | – | –".to_owned(), |run| {
            cells(&run.warm[index])
        });
        println!(
            "| {} | {} | {peer} |",
            kind.name,
            cells(&function_run.warm[index])
        );
    }
}

/// The Python peer's interpreter version.
fn python_version() -> String {
    python_peer()
        .ok()
        .and_then(|(python, _)| Command::new(python).arg("--version").output().ok())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "Python".into())
}

/// The Python peer (examples/python-peer/handler.py) and the interpreter of a virtual
/// environment with boto3 and requests, made in target/tools on first use.
fn python_peer() -> Result<(PathBuf, String), String> {
    let venv = simulator::tools::python_tool(
        &simulator::tools::tools_dir(),
        "python-peer",
        &["boto3", "requests"],
        &["bin/python", "-c", "import boto3, requests"],
    )
    .map_err(|error| format!("skipped: no Python peer ({error})"))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-peer/handler.py");
    Ok((
        venv.join("bin/python"),
        script.to_str().expect("a UTF-8 path").to_owned(),
    ))
}

/// The mean of one measure over samples, in milliseconds.
fn mean_ms(samples: &[Sample], of: impl Fn(&Sample) -> Duration) -> f64 {
    samples
        .iter()
        .map(|s| of(s).as_secs_f64() * 1000.0)
        .sum::<f64>()
        / samples.len().max(1) as f64
}

/// Lambda's charge for a million events of this billed duration at 128 MB on arm64.
fn cost_per_million(billed_ms: f64) -> f64 {
    USD_PER_MILLION_REQUESTS + 1e6 * billed_ms / 1000.0 * MEMORY_GB * ARM64_USD_PER_GB_SECOND
}

/// `--profile`: a cold start (process start to the first answer) and the warm events, each
/// under `valgrind --tool=callgrind` (instruction counts, steady whatever else the machine
/// does).
async fn profile() {
    let function = built_binary("profiling");
    for (what, out, warm_alerts) in [
        ("cold start", "target/callgrind.cold.out", 0),
        ("warm events", "target/callgrind.warm.out", WARM_ALERTS),
    ] {
        // A fresh instance for each run, so that its first event creates.
        let stand = stand().await;
        let out_arg = format!("--callgrind-out-file={out}");
        let wrapped = [
            "--tool=callgrind",
            out_arg.as_str(),
            function.to_str().expect("a UTF-8 path"),
        ];
        run_invocations(
            Path::new("valgrind"),
            &wrapped,
            &stand,
            Checks::Every,
            warm_alerts,
        )
        .await;
        println!("{what} profiled; see `callgrind_annotate {out}`");
    }
}

/// `--trace-cold-start`: one cold start under `strace -f -tt -T`, for where its wall time
/// goes (waits show as gaps between system calls).
async fn trace_cold_start() {
    let function = release_binary();
    let stand = stand().await;
    let runtime_api = RuntimeApiSimulator::start().await.expect("starts");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cold-start.strace");
    let mut command = under_strace(&["-tt", "-T"], &out, &function, &runtime_api, &stand);
    let started = Instant::now();
    let child = command.spawn().expect("strace runs");
    let answer = runtime_api
        .invoke(event("01-alert-created", new_alert_id()))
        .await;
    println!(
        "answered after {:?}: {answer:?}; see {}",
        started.elapsed(),
        out.display()
    );
    let _ = Command::new("pkill")
        .args(["-TERM", "-P", &child.id().to_string()])
        .status();
    stop(child);
}

/// The function's release binary, built if it is not there yet.
/// `BENCH_FUNCTION` names another build to measure (an older commit's, for a before and
/// after on the same machine).
fn release_binary() -> PathBuf {
    std::env::var_os("BENCH_FUNCTION").map_or_else(|| built_binary("release"), PathBuf::from)
}

fn built_binary(profile: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--profile",
            profile,
            "--quiet",
            "--bin",
            "ilert-servicenow",
        ])
        .current_dir(root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the release build failed");
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    target.join(profile).join("ilert-servicenow")
}

/// The function, with Lambda's environment, under `strace -f` with `options`, writing to
/// `out`.
fn under_strace(
    options: &[&str],
    out: &Path,
    binary: &Path,
    runtime_api: &RuntimeApiSimulator,
    stand: &Stand,
) -> Command {
    let mut command = function_command(Path::new("strace"), &[], &runtime_api.address(), stand);
    command
        .arg("-f")
        .args(options)
        .arg("-o")
        .arg(out)
        .arg(binary);
    command
}

/// The environment Lambda gives the function, aimed at the stand.
fn function_command(binary: &Path, args: &[&str], runtime_api: &str, stand: &Stand) -> Command {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "ilert-servicenow")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .env("AWS_REGION", "eu-central-1")
        .env("AWS_DEFAULT_REGION", "eu-central-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        // Where the Python peer's boto3 and requests look for a private CA.
        .env("AWS_CA_BUNDLE", &stand.ca_file)
        .env("REQUESTS_CA_BUNDLE", &stand.ca_file)
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", stand.secrets.url())
        .env("SERVICENOW_SECRET_ID", SECRET_ID)
        .env("SSL_CERT_FILE", &stand.ca_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn spawn(binary: &Path, args: &[&str], runtime_api: &str, stand: &Stand) -> Child {
    function_command(binary, args, runtime_api, stand)
        .spawn()
        .expect("the binary starts")
}

/// Waits for the function's first poll of `/next`: the end of its init.
async fn first_poll(runtime_api: &RuntimeApiSimulator, started: Instant) -> Instant {
    loop {
        if let Some(at) = runtime_api.first_poll() {
            return at;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the function never polled"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn stop(mut child: Child) {
    // SIGTERM rather than SIGKILL, so that a profiler wrapping the function writes its output.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Median time from process start to the first poll of `/next`, over fresh processes.
async fn median_init(binary: &Path, args: &[&str], stand: &Stand) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..INIT_SAMPLES {
        let runtime_api = RuntimeApiSimulator::start().await.expect("starts");
        let started = Instant::now();
        let mut child = spawn(binary, args, &runtime_api.address(), stand);
        let polled = first_poll(&runtime_api, started).await;
        samples.push(polled.saturating_duration_since(started));
        let _ = child.kill();
        let _ = child.wait();
    }
    percentile(&samples, 50)
}

struct RunFigures {
    cold_start: Duration,
    first: Duration,
    first_fakes: Duration,
    first_cpu: Duration,
    /// The first invocation as Lambda bills it: init and the invocation to the next poll.
    first_billed: Duration,
    first_requests: usize,
    /// Per kind of warm event, in `WARM_EVENTS`' order.
    warm: Vec<Vec<Sample>>,
    peak_rss_kib: u64,
    secret_reads: usize,
    /// TLS handshakes the environment made: Secrets Manager, ServiceNow.
    handshakes: (usize, usize),
}

/// One warm invocation, as its caller and as Lambda's bill see it.
#[derive(Clone, Copy)]
struct Sample {
    /// From handing the event to the Runtime API to the caller having the answer.
    wall: Duration,
    /// From the hand-over to the function's next poll, rounded up to the millisecond.
    billed: Duration,
    /// The process's CPU time over the same span.
    cpu: Duration,
    /// The time the stand-ins spent answering the function's requests meanwhile.
    fakes: Duration,
    servicenow_requests: usize,
    queue_sends: usize,
}

/// Which answers a run checks: the function's all; the Python peer's first (it creates; it
/// has no no-op); none of the baseline's.
#[derive(Clone, Copy, PartialEq)]
enum Checks {
    Every,
    First,
    Nothing,
}

/// One execution environment: a first invocation, then warm ones (each alert meets every
/// kind of `WARM_EVENTS` in turn).
async fn run_invocations(
    binary: &Path,
    args: &[&str],
    stand: &Stand,
    checks: Checks,
    warm_alerts: usize,
) -> RunFigures {
    let runtime_api = RuntimeApiSimulator::start().await.expect("starts");
    let reads_before = stand.secrets.reads();
    let handshakes_before = (
        stand.secrets.stats().handshakes(),
        stand.servicenow.stats().handshakes(),
    );
    let fakes_before = stand.busy();
    stand.servicenow.clear_requests();

    // A cold start: the event is waiting when the process starts, as when an invocation
    // makes Lambda start an environment.
    let started = Instant::now();
    let child = spawn(binary, args, &runtime_api.address(), stand);
    runtime_api.watch(child.id());
    let first_invocation = runtime_api
        .invoke_to_next_poll(event("01-alert-created", new_alert_id()))
        .await;
    let cold_start = first_invocation
        .answered_at
        .saturating_duration_since(started);
    let init = runtime_api
        .first_poll()
        .map_or(Duration::ZERO, |at| at.saturating_duration_since(started));
    let first = cold_start.saturating_sub(init);
    let answer = first_invocation.answer;
    let first_cpu = process_cpu_time(child.id())
        .saturating_sub(runtime_api.cpu_at_first_poll().unwrap_or_default());
    let first_fakes = stand.busy().saturating_sub(fakes_before);
    let first_requests = stand.servicenow.incident_requests().len();
    if checks != Checks::Nothing {
        assert!(
            answer.as_deref().is_some_and(|a| a.contains("created")),
            "the first event was not handled: {answer:?}"
        );
    }

    let mut warm = vec![Vec::new(); WARM_EVENTS.len()];
    for _ in 0..warm_alerts {
        let id = new_alert_id();
        for (kind, samples) in WARM_EVENTS.iter().zip(warm.iter_mut()) {
            let (answer, sample) =
                measure(&runtime_api, child.id(), stand, event(kind.event, id)).await;
            if checks == Checks::Every {
                assert!(
                    answer.as_deref().is_some_and(|a| a.contains(kind.answer)),
                    "{} for alert {id}: {answer:?}",
                    kind.name
                );
            }
            samples.push(sample);
        }
    }
    let peak_rss_kib = peak_rss_kib(child.id());
    stop(child);

    RunFigures {
        cold_start,
        first,
        first_fakes,
        first_cpu,
        first_billed: billed(init + first_invocation.ran),
        first_requests,
        warm,
        peak_rss_kib,
        secret_reads: stand.secrets.reads() - reads_before,
        handshakes: (
            stand.secrets.stats().handshakes() - handshakes_before.0,
            stand.servicenow.stats().handshakes() - handshakes_before.1,
        ),
    }
}

/// Queued delivery in one warm environment: for each alert, the webhook's accept (the event
/// sent to SQS) and then the consume of that message, handed back as Lambda's event source
/// mapping hands it (a batch of one, as a quiet queue delivers). Returns the accepts' and
/// the consumes' samples.
async fn run_queued(
    binary: &Path,
    args: &[&str],
    stand: &Stand,
    is_function: bool,
    alerts: usize,
) -> (Vec<Sample>, Vec<Sample>) {
    let runtime_api = RuntimeApiSimulator::start().await.expect("starts");
    let mut command = function_command(binary, args, &runtime_api.address(), stand);
    command
        .env("DELIVERY", "queued")
        .env("QUEUE_URL", QUEUE_URL)
        .env("DEAD_LETTER_QUEUE_URL", DEAD_LETTER_QUEUE_URL)
        .env("AWS_ENDPOINT_URL_SQS", stand.queue.url());
    let child = command.spawn().expect("the binary starts");
    // Warm it up: the secret read and the handshakes belong to the cold start, measured
    // apart.
    let _ = runtime_api
        .invoke_to_next_poll(event("05-test-connection", 1))
        .await;
    stand.queue.take_sent();

    let (mut accepts, mut consumes) = (Vec::new(), Vec::new());
    for _ in 0..alerts {
        let id = new_alert_id();
        let (answer, sample) = measure(
            &runtime_api,
            child.id(),
            stand,
            event("01-alert-created", id),
        )
        .await;
        accepts.push(sample);
        if !is_function {
            // The baseline queues nothing; it is handed a record of the same size.
            let (_, sample) = measure(
                &runtime_api,
                child.id(),
                stand,
                sqs_event(&simulator::SentMessage {
                    queue_url: QUEUE_URL.into(),
                    body: event("01-alert-created", id),
                    group_id: id.to_string(),
                    deduplication_id: id.to_string(),
                    message_id: id.to_string(),
                }),
            )
            .await;
            consumes.push(sample);
            continue;
        }
        assert!(
            answer.as_deref().is_some_and(|a| a.contains("queued")),
            "the queued accept for alert {id}: {answer:?}"
        );
        let sent = stand.queue.take_sent();
        assert_eq!(sent.len(), 1, "one message a webhook call");
        let (answer, sample) = measure(&runtime_api, child.id(), stand, sqs_event(&sent[0])).await;
        assert!(
            answer
                .as_deref()
                .is_some_and(|a| a.contains("batchItemFailures") && !a.contains("itemIdentifier")),
            "the consume for alert {id} handed records back: {answer:?}"
        );
        assert_eq!(
            sample.servicenow_requests, 2,
            "the consume creates the incident: a lookup and an insert, no read-back (the \
             message group is the alert, so no twin can race it)"
        );
        consumes.push(sample);
    }
    stop(child);
    (accepts, consumes)
}

/// Hands one event over and measures it, to the function's next poll.
async fn measure(
    runtime_api: &RuntimeApiSimulator,
    pid: u32,
    stand: &Stand,
    event: String,
) -> (Option<String>, Sample) {
    stand.servicenow.clear_requests();
    let queued_before = stand.queue.pending();
    let fakes_before = stand.busy();
    let cpu_before = process_cpu_time(pid);
    let started = Instant::now();
    let invocation = runtime_api.invoke_to_next_poll(event).await;
    let sample = Sample {
        wall: invocation.answered_at.saturating_duration_since(started),
        billed: billed(invocation.ran),
        cpu: process_cpu_time(pid).saturating_sub(cpu_before),
        fakes: stand.busy().saturating_sub(fakes_before),
        servicenow_requests: stand.servicenow.incident_requests().len(),
        queue_sends: stand.queue.pending().saturating_sub(queued_before),
    };
    (invocation.answer, sample)
}

/// Lambda's billed duration: the span rounded up to the next millisecond.
fn billed(ran: Duration) -> Duration {
    Duration::from_millis(ran.as_nanos().div_ceil(1_000_000) as u64)
}

/// A batch of one record, as Lambda's SQS event source mapping delivers a FIFO message.
fn sqs_event(message: &simulator::SentMessage) -> String {
    json!({
        "Records": [{
            "messageId": message.message_id,
            "receiptHandle": format!("receipt-{}", message.message_id),
            "body": message.body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1764633600000",
                "SenderId": "AIDAEXAMPLE",
                "ApproximateFirstReceiveTimestamp": "1764633600010",
                "SequenceNumber": "18888888888888888888",
                "MessageGroupId": message.group_id,
                "MessageDeduplicationId": message.deduplication_id,
            },
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:ilert-servicenow-events.fifo",
            "awsRegion": "eu-central-1",
        }]
    })
    .to_string()
}

/// The first invocation's wall time when, after init, the process only gets Lambda's CPU
/// share at 128 MB: a CPU cgroup's quota (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`). Init
/// runs unthrottled, as Lambda's does; the process is moved into the cgroup at its first
/// poll, before the event is handed over. Also returns how many periods the kernel held the
/// processes back in, over all samples: none means the share was never the limit.
async fn first_invocation_under_quota(
    binary: &Path,
    args: &[&str],
    stand: &Stand,
    period: Duration,
) -> Result<(Duration, u64), String> {
    let cgroup = CpuQuota::create(CPU_SHARE_AT_128_MB, period)?;
    let mut samples = Vec::new();
    for _ in 0..QUOTA_SAMPLES {
        let runtime_api = RuntimeApiSimulator::start().await.expect("starts");
        let started = Instant::now();
        let child = spawn(binary, args, &runtime_api.address(), stand);
        first_poll(&runtime_api, started).await;
        if let Err(problem) = cgroup.admit(child.id()) {
            stop(child);
            return Err(problem);
        }
        let invoked = Instant::now();
        let answer = runtime_api
            .invoke(event("01-alert-created", new_alert_id()))
            .await;
        samples.push(invoked.elapsed());
        assert!(answer.is_some(), "an answer under the quota");
        stop(child);
    }
    Ok((percentile(&samples, 50), cgroup.throttled_periods()))
}

/// A CPU cgroup with a quota; removed when dropped.
struct CpuQuota {
    dir: PathBuf,
}

impl CpuQuota {
    /// In the unified hierarchy (v2) if the machine has one, else in v1's `cpu` controller.
    /// Each is recognised by its own control files: `/sys/fs/cgroup` may be a plain tmpfs
    /// that takes any directory and file, and enforces nothing.
    fn create(share: f64, period: Duration) -> Result<Self, String> {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let period = period.as_micros() as u64;
        // The kernel's least quota is 1 ms.
        let quota = ((period as f64 * share).round() as u64).max(1000);
        let name = format!(
            "ilert-servicenow-bench-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let v2 = Path::new("/sys/fs/cgroup");
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let (dir, settings) = if v2.join("cgroup.controllers").exists() {
            (
                v2.join(&name),
                vec![("cpu.max", format!("{quota} {period}"))],
            )
        } else if v1.join("cpu.cfs_quota_us").exists() {
            (
                v1.join(&name),
                vec![
                    ("cpu.cfs_period_us", period.to_string()),
                    ("cpu.cfs_quota_us", quota.to_string()),
                ],
            )
        } else {
            return Err("not measured: no CPU cgroup controller here".into());
        };
        std::fs::create_dir(&dir)
            .map_err(|error| format!("not measured: cannot make a CPU cgroup: {error}"))?;
        let cgroup = Self { dir };
        for (file, value) in settings {
            std::fs::write(cgroup.dir.join(file), value)
                .map_err(|error| format!("not measured: cannot set {file}: {error}"))?;
        }
        Ok(cgroup)
    }

    /// Moves `pid` into the cgroup, and checks that the kernel put it there.
    fn admit(&self, pid: u32) -> Result<(), String> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .map_err(|error| format!("not measured: {error}"))?;
        let name = self.dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if membership.contains(name) {
            Ok(())
        } else {
            Err("not measured: the kernel did not move the process into the CPU cgroup".into())
        }
    }

    /// How many periods the cgroup's processes were held back in.
    fn throttled_periods(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("cpu.stat"))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("nr_throttled "))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Which certificate files (bundles, the certificate directory) the function opens from its
/// start to its first answer, seen by `strace`: loading the roots once, from one file, is
/// what it should do.
async fn certificate_files_opened(binary: &Path, stand: &Stand) -> Result<Vec<String>, String> {
    let traced = std::env::temp_dir().join(format!("ilert-bench-strace-{}", std::process::id()));
    let runtime_api = RuntimeApiSimulator::start().await.expect("starts");
    let mut command = under_strace(
        &["-qq", "-e", "trace=openat,open"],
        &traced,
        binary,
        &runtime_api,
        stand,
    );
    let child = command
        .spawn()
        .map_err(|_| "not measured: strace is not installed".to_owned())?;
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        runtime_api.invoke(event("01-alert-created", 30_000_000)),
    )
    .await;
    // strace outlives a TERM while its tracee runs: stop the function, then strace ends.
    let _ = Command::new("pkill")
        .args(["-TERM", "-P", &child.id().to_string()])
        .status();
    stop(child);
    if !matches!(answer, Ok(Some(_))) {
        return Err("not measured: no answer under strace".into());
    }
    let trace = std::fs::read_to_string(&traced).unwrap_or_default();
    let _ = std::fs::remove_file(&traced);
    let ca_file = stand.ca_file.to_string_lossy().into_owned();
    let mut opened: Vec<String> = trace
        .lines()
        .filter(|line| !line.contains("ENOENT"))
        .filter_map(|line| line.split('"').nth(1))
        .filter(|path| {
            *path == ca_file
                || path.starts_with("/etc/ssl")
                || path.starts_with("/etc/pki")
                || path.ends_with(".pem")
                || path.ends_with(".crt")
        })
        .map(|path| {
            if path == ca_file {
                "SSL_CERT_FILE".to_owned()
            } else {
                path.to_owned()
            }
        })
        .collect();
    opened.dedup();
    Ok(opened)
}

/// An alert id no run has used yet: every run's first event for an alert creates its
/// incident, whatever ran before it against the same stand-in.
fn new_alert_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(10_000_000);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A bundled API Gateway event for another alert id.
fn event(name: &str, alert_id: u64) -> String {
    let path = format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let mut envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the bundled event"))
            .expect("JSON");
    let mut body: Value =
        serde_json::from_str(envelope["body"].as_str().expect("a body")).expect("JSON");
    body["id"] = json!(alert_id.to_string());
    envelope["body"] = json!(body.to_string());
    envelope["headers"]["authorization"] = json!(format!("Bearer {TOKEN}"));
    envelope.to_string()
}

/// The process's high-water mark of resident memory (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(samples: &[Duration], percent: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((sorted.len() * percent).div_ceil(100)).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(index).copied().unwrap_or_default()
}

/// `cargo lambda build --release --arm64 --output-format zip`, and the zip's size.
fn arm64_artifact() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let available = Command::new("cargo")
        .args(["lambda", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        return "skipped: cargo-lambda is not installed (pip install cargo-lambda)".into();
    }
    let status = Command::new("cargo")
        .args([
            "lambda",
            "build",
            "--release",
            "--arm64",
            "--output-format",
            "zip",
            "--bin",
            "ilert-servicenow",
        ])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let zip = root.join("target/lambda/ilert-servicenow/bootstrap.zip");
    match (status, std::fs::metadata(&zip)) {
        (Ok(status), Ok(meta)) if status.success() => {
            format!(
                "{:.2} MiB ({} bytes)",
                meta.len() as f64 / 1048576.0,
                meta.len()
            )
        }
        _ => "failed: cargo lambda build did not produce bootstrap.zip".into(),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, {}", std::env::consts::ARCH)
}

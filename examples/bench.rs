//! `cargo run --release --example bench`: the release binary, started as Lambda starts it,
//! against a local Lambda Runtime API, the ServiceNow simulator and a local Secrets Manager,
//! beside a no-op Lambda function (the baseline) measured the same way in the same run.
//! No AWS, no ServiceNow, no Docker. `--skip-artifact` skips the arm64 zip build.

use serde_json::{json, Value};
use simulator::{RuntimeApiSimulator, SecretsManagerSimulator, ServiceNowSimulator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INIT_SAMPLES: usize = 15;
const WARM_ALERTS: usize = 100; // × 3 events: create, update, no-op
const SECRET_ID: &str = "ilert/servicenow";
const TOKEN: &str = "bench-webhook-token";

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--baseline-function") {
        return baseline_function();
    }
    let skip_artifact = std::env::args().any(|a| a == "--skip-artifact");
    if std::env::args().any(|a| a == "--profile") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        return runtime.block_on(profile());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(benchmark(skip_artifact));
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

struct Stand {
    servicenow: ServiceNowSimulator,
    secrets: SecretsManagerSimulator,
}

/// ServiceNow and Secrets Manager, with the function's secret in place.
async fn stand() -> Stand {
    let servicenow = ServiceNowSimulator::start("ilert.integration", "bench-password")
        .await
        .expect("the simulator starts");
    let secrets = SecretsManagerSimulator::start().await.expect("starts");
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
    }
}

async fn benchmark(skip_artifact: bool) {
    let function = release_binary();
    let baseline = std::env::current_exe().expect("the benchmark's own path");
    let stand = stand().await;

    println!("ilert-servicenow benchmark on {}", machine());
    println!("function: {}", function.display());
    let function_init = median_init(&function, &[], &stand).await;
    let baseline_init = median_init(&baseline, &["--baseline-function"], &stand).await;
    let function_run = run_invocations(&function, &[], &stand, true).await;
    let baseline_run = run_invocations(&baseline, &["--baseline-function"], &stand, false).await;
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
        "≤ 15",
    );
    row(
        "cold start: process start to the first answer, event waiting, ms",
        ms(function_run.cold_start),
        ms(baseline_run.cold_start),
        "",
    );
    row(
        "first invocation: first poll of /next to its answer (secret fetch included), ms",
        format!(
            "{} ({} beyond the fakes' own {})",
            ms(function_run.first),
            ms(function_run.first.saturating_sub(function_run.first_fakes)),
            ms(function_run.first_fakes)
        ),
        ms(baseline_run.first),
        "≤ 10 beyond the fakes",
    );
    row(
        &format!(
            "warm latency p50 / p99 over {} events, ms",
            function_run.warm.len()
        ),
        format!(
            "{} / {}",
            ms(percentile(&function_run.warm, 50)),
            ms(percentile(&function_run.warm, 99))
        ),
        format!(
            "{} / {}",
            ms(percentile(&baseline_run.warm, 50)),
            ms(percentile(&baseline_run.warm, 99))
        ),
        "",
    );
    row(
        "CPU time per warm event, ms",
        format!("{:.3}", function_run.cpu_per_event.as_secs_f64() * 1000.0),
        format!("{:.3}", baseline_run.cpu_per_event.as_secs_f64() * 1000.0),
        "≤ 0.1",
    );
    row(
        "peak resident memory, MiB",
        format!("{:.1}", function_run.peak_rss_kib as f64 / 1024.0),
        format!("{:.1}", baseline_run.peak_rss_kib as f64 / 1024.0),
        "≤ 24",
    );
    row(
        "ServiceNow requests per event: create / update / no-op",
        function_run.requests.clone(),
        "–".into(),
        "≤ 3 / 2 / 1",
    );
    row(
        "Secrets Manager requests per environment",
        function_run.secret_reads.to_string(),
        "–".into(),
        "1 per TTL",
    );
    row(
        "TCP connections to ServiceNow per environment",
        function_run.connections.to_string(),
        "–".into(),
        "1",
    );
    row("zipped arm64 artifact", artifact, "–".into(), "≤ 5 MiB");
}

/// `--profile`: the warm run again, with the function under `valgrind --tool=callgrind`
/// (instruction counts, steady whatever else the machine does).
async fn profile() {
    let function = built_binary("profiling");
    let stand = stand().await;
    let wrapped = [
        "--tool=callgrind",
        "--callgrind-out-file=target/callgrind.out",
        function.to_str().expect("a UTF-8 path"),
    ];
    let run = run_invocations(Path::new("valgrind"), &wrapped, &stand, true).await;
    println!(
        "{} warm events profiled; see `callgrind_annotate target/callgrind.out`",
        run.warm.len()
    );
}

/// The function's release binary, built if it is not there yet.
fn release_binary() -> PathBuf {
    built_binary("release")
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

fn spawn(binary: &Path, args: &[&str], runtime_api: &str, stand: &Stand) -> Child {
    Command::new(binary)
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
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", stand.secrets.url())
        .env("SERVICENOW_SECRET_ID", SECRET_ID)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts")
}

/// Median time from process start to the first poll of `/next`, over fresh processes.
async fn median_init(binary: &Path, args: &[&str], stand: &Stand) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..INIT_SAMPLES {
        let runtime_api = RuntimeApiSimulator::start().await.expect("starts");
        let started = Instant::now();
        let mut child = spawn(binary, args, &runtime_api.address(), stand);
        let first_poll = loop {
            if let Some(at) = runtime_api.first_poll() {
                break at;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the function never polled"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        samples.push(first_poll.saturating_duration_since(started));
        let _ = child.kill();
        let _ = child.wait();
    }
    percentile(&samples, 50)
}

struct RunFigures {
    cold_start: Duration,
    first: Duration,
    first_fakes: Duration,
    warm: Vec<Duration>,
    cpu_per_event: Duration,
    peak_rss_kib: u64,
    requests: String,
    secret_reads: usize,
    connections: usize,
}

/// One execution environment: a first invocation, then warm ones (for each alert: created,
/// acknowledged, acknowledged again).
async fn run_invocations(
    binary: &Path,
    args: &[&str],
    stand: &Stand,
    is_function: bool,
) -> RunFigures {
    let runtime_api = RuntimeApiSimulator::start().await.expect("starts");
    let reads_before = stand.secrets.reads();
    let connections_before = stand.servicenow.stats().connections();
    let busy = || stand.servicenow.stats().busy() + stand.secrets.stats().busy();
    let fakes_before = busy();

    // A cold start: the event is waiting when the process starts, as when an invocation
    // makes Lambda start an environment.
    let started = Instant::now();
    let mut child = spawn(binary, args, &runtime_api.address(), stand);
    let answer = runtime_api
        .invoke(event("01-alert-created", 9_000_000))
        .await;
    let cold_start = started.elapsed();
    let first = cold_start.saturating_sub(
        runtime_api
            .first_poll()
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(started)),
    );
    let first_fakes = busy().saturating_sub(fakes_before);
    if is_function {
        assert!(
            answer.as_deref().is_some_and(|a| a.contains("created")),
            "the first event was not handled: {answer:?}"
        );
    }

    let cpu_before = cpu_time(child.id());
    let mut warm = Vec::new();
    let mut per_kind: [(u64, u64); 3] = [(0, 0); 3];
    for alert in 0..WARM_ALERTS {
        let id = 10_000_000 + alert as u64;
        for (kind, name) in [
            "01-alert-created",
            "02-alert-acknowledged",
            "02-alert-acknowledged",
        ]
        .iter()
        .enumerate()
        {
            stand.servicenow.clear_requests();
            let started = Instant::now();
            let answer = runtime_api.invoke(event(name, id)).await;
            warm.push(started.elapsed());
            if is_function {
                let expected = ["created", "updated", "unchanged"][kind];
                assert!(
                    answer.as_deref().is_some_and(|a| a.contains(expected)),
                    "{name} for alert {id}: {answer:?}"
                );
                per_kind[kind].0 += stand.servicenow.incident_requests().len() as u64;
                per_kind[kind].1 += 1;
            }
        }
    }
    let cpu_per_event = cpu_time(child.id()).saturating_sub(cpu_before) / warm.len() as u32;
    let peak_rss_kib = peak_rss_kib(child.id());
    // SIGTERM rather than SIGKILL, so that a profiler wrapping the function writes its output.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    let mean = |(requests, events): (u64, u64)| requests as f64 / events.max(1) as f64;
    RunFigures {
        cold_start,
        first,
        first_fakes,
        warm,
        cpu_per_event,
        peak_rss_kib,
        requests: format!(
            "{:.0} / {:.0} / {:.0}",
            mean(per_kind[0]),
            mean(per_kind[1]),
            mean(per_kind[2])
        ),
        secret_reads: stand.secrets.reads() - reads_before,
        connections: stand.servicenow.stats().connections() - connections_before,
    }
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

/// CPU time the process has used, all threads, from the kernel's scheduler accounting
/// (nanoseconds); the 10 ms ticks of /proc/PID/stat where schedstat is missing.
fn cpu_time(pid: u32) -> Duration {
    let mut total = 0u64;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
                if let Some(ns) = text
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    total += ns;
                    found = true;
                }
            }
        }
    }
    if found {
        return Duration::from_nanos(total);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
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

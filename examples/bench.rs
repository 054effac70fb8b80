//! `cargo run --release --example bench`: the release binary, started as Lambda starts it,
//! against a local Lambda Runtime API and ServiceNow and Secrets Manager stand-ins behind TLS
//! (a test CA made at run time, trusted through `SSL_CERT_FILE` as any private CA is), beside
//! a no-op Lambda function (the baseline) measured the same way in the same run. It measures
//! what a cold environment pays: the handshakes, loading the root certificates, the crypto
//! library's start, and the first invocation under the share of a CPU Lambda gives 128 MB.
//! No AWS, no ServiceNow, no Docker. `--skip-artifact` skips the arm64 zip build;
//! `--profile` runs a cold start and the warm events under callgrind; `BENCH_FUNCTION=path`
//! measures another build of the function (an older commit's) in its place.

use serde_json::{json, Value};
use simulator::{
    process_cpu_time, RuntimeApiSimulator, SecretsManagerSimulator, ServiceNowSimulator, TestCa,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INIT_SAMPLES: usize = 15;
const QUOTA_SAMPLES: usize = 7;
/// CFS periods the quota is given over: Linux's default, and a fifth of it (7.2 % of a period
/// must stay above the kernel's least quota, 1 ms, so no shorter than about 14 ms).
const QUOTA_PERIODS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(20)];
const WARM_ALERTS: usize = 100; // × 3 events: create, update, no-op
const SECRET_ID: &str = "ilert/servicenow";
const TOKEN: &str = "bench-webhook-token";
/// Lambda gives a function CPU in proportion to its memory, a whole vCPU at 1,769 MB; after
/// init, 128 MB gets this share of a core.
const CPU_SHARE_AT_128_MB: f64 = 128.0 / 1769.0;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--baseline-function") {
        return baseline_function();
    }
    let skip_artifact = std::env::args().any(|a| a == "--skip-artifact");
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
        runtime.block_on(benchmark(skip_artifact));
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

/// ServiceNow and Secrets Manager behind TLS, with the function's secret in place, and the
/// file that makes the function trust them.
struct Stand {
    servicenow: ServiceNowSimulator,
    secrets: SecretsManagerSimulator,
    ca_file: PathBuf,
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
        ca_file,
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
    let function_run = run_invocations(&function, &[], &stand, true, WARM_ALERTS).await;
    let baseline_run = run_invocations(
        &baseline,
        &["--baseline-function"],
        &stand,
        false,
        WARM_ALERTS,
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
        "≤ 10 beyond the fakes",
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
            function_run.warm.len() + 1
        ),
        format!(
            "{} ({} + {})",
            function_run.handshakes.0 + function_run.handshakes.1,
            function_run.handshakes.0,
            function_run.handshakes.1
        ),
        "–".into(),
        "2",
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
        "CPU time per warm event, ms (beyond the baseline)",
        format!(
            "{:.3} ({:.3})",
            function_run.cpu_per_event.as_secs_f64() * 1000.0,
            function_run
                .cpu_per_event
                .saturating_sub(baseline_run.cpu_per_event)
                .as_secs_f64()
                * 1000.0
        ),
        format!("{:.3}", baseline_run.cpu_per_event.as_secs_f64() * 1000.0),
        "≤ 0.1 beyond the baseline",
    );
    row(
        "peak resident memory, MiB",
        format!("{:.1}", function_run.peak_rss_kib as f64 / 1024.0),
        format!("{:.1}", baseline_run.peak_rss_kib as f64 / 1024.0),
        "≤ 16",
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
    row("zipped arm64 artifact", artifact, "–".into(), "≤ 5 MiB");
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
        run_invocations(Path::new("valgrind"), &wrapped, &stand, true, warm_alerts).await;
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
        .invoke(event("01-alert-created", 40_000_000))
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
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
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
    warm: Vec<Duration>,
    cpu_per_event: Duration,
    peak_rss_kib: u64,
    requests: String,
    secret_reads: usize,
    /// TLS handshakes the environment made: Secrets Manager, ServiceNow.
    handshakes: (usize, usize),
}

/// One execution environment: a first invocation, then warm ones (for each alert: created,
/// acknowledged, acknowledged again).
async fn run_invocations(
    binary: &Path,
    args: &[&str],
    stand: &Stand,
    is_function: bool,
    warm_alerts: usize,
) -> RunFigures {
    let runtime_api = RuntimeApiSimulator::start().await.expect("starts");
    let reads_before = stand.secrets.reads();
    let handshakes_before = (
        stand.secrets.stats().handshakes(),
        stand.servicenow.stats().handshakes(),
    );
    let busy = || stand.servicenow.stats().busy() + stand.secrets.stats().busy();
    let fakes_before = busy();

    // A cold start: the event is waiting when the process starts, as when an invocation
    // makes Lambda start an environment.
    let started = Instant::now();
    let child = spawn(binary, args, &runtime_api.address(), stand);
    runtime_api.watch(child.id());
    let answer = runtime_api
        .invoke(event("01-alert-created", 9_000_000))
        .await;
    let cold_start = started.elapsed();
    let first = cold_start.saturating_sub(
        runtime_api
            .first_poll()
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(started)),
    );
    let first_cpu = process_cpu_time(child.id())
        .saturating_sub(runtime_api.cpu_at_first_poll().unwrap_or_default());
    let first_fakes = busy().saturating_sub(fakes_before);
    if is_function {
        assert!(
            answer.as_deref().is_some_and(|a| a.contains("created")),
            "the first event was not handled: {answer:?}"
        );
    }

    let cpu_before = process_cpu_time(child.id());
    let mut warm = Vec::new();
    let mut per_kind: [(u64, u64); 3] = [(0, 0); 3];
    for alert in 0..warm_alerts {
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
    let cpu_per_event =
        process_cpu_time(child.id()).saturating_sub(cpu_before) / warm.len().max(1) as u32;
    let peak_rss_kib = peak_rss_kib(child.id());
    stop(child);

    let mean = |(requests, events): (u64, u64)| requests as f64 / events.max(1) as f64;
    RunFigures {
        cold_start,
        first,
        first_fakes,
        first_cpu,
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
        handshakes: (
            stand.secrets.stats().handshakes() - handshakes_before.0,
            stand.servicenow.stats().handshakes() - handshakes_before.1,
        ),
    }
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
    for sample in 0..QUOTA_SAMPLES {
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
            .invoke(event("01-alert-created", 20_000_000 + sample as u64))
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

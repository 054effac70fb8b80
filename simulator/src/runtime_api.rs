//! The AWS Lambda Runtime API.

use crate::server::{respond, serve, HttpResponse, ANY_LOOPBACK_PORT};
use hyper::{Method, StatusCode};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The AWS Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`), enough to run the function's
/// binary as Lambda does: it polls `/next` for an event and posts the answer back.
#[derive(Clone)]
pub struct RuntimeApiSimulator {
    address: SocketAddr,
    state: Arc<Mutex<RuntimeState>>,
    event_ready: Arc<tokio::sync::Notify>,
    finished: Arc<tokio::sync::Notify>,
}

/// One invocation, as its caller and Lambda's bill see it.
pub struct Invocation {
    /// The function's answer (`None` if it never came).
    pub answer: Option<String>,
    /// When the caller had the answer.
    pub answered_at: std::time::Instant,
    /// From the hand-over to the function's next poll: what Lambda bills (before rounding up
    /// to the millisecond), whenever within it the answer was sent.
    pub ran: std::time::Duration,
}

#[derive(Default)]
struct RuntimeState {
    pending: std::collections::VecDeque<(String, String)>,
    waiting: BTreeMap<String, tokio::sync::oneshot::Sender<String>>,
    first_poll: Option<std::time::Instant>,
    /// The function's process, when watched: its CPU time is read at the first poll.
    watched: Option<u32>,
    cpu_at_first_poll: Option<std::time::Duration>,
    next_id: u64,
    /// The invocation handed out and not finished yet, and when it was handed out.
    running: Option<(String, std::time::Instant)>,
    /// How long each finished invocation ran: from its hand-over to the function's next poll,
    /// which is what Lambda bills (before rounding up to the millisecond).
    ran: BTreeMap<String, std::time::Duration>,
}

impl RuntimeApiSimulator {
    pub async fn start() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(RuntimeState::default()));
        let event_ready = Arc::new(tokio::sync::Notify::new());
        let finished = Arc::new(tokio::sync::Notify::new());
        let (shared, ready, done) = (
            Arc::clone(&state),
            Arc::clone(&event_ready),
            Arc::clone(&finished),
        );
        let address = serve(
            ANY_LOOPBACK_PORT.into(),
            Arc::default(),
            None,
            move |method, path, _query, _headers, body| {
                let (state, ready, done) =
                    (Arc::clone(&shared), Arc::clone(&ready), Arc::clone(&done));
                async move { Some(runtime_api(&state, &ready, &done, &method, &path, &body).await) }
            },
        )
        .await?;
        Ok(Self {
            address,
            state,
            event_ready,
            finished,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Reads the CPU time of the process `pid` (the function) when it first polls, so that
    /// its initialisation's CPU can be told from its first invocation's.
    pub fn watch(&self, pid: u32) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).watched = Some(pid);
    }

    /// The watched process's CPU time at its first poll.
    pub fn cpu_at_first_poll(&self) -> Option<std::time::Duration> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cpu_at_first_poll
    }

    /// When the function first asked for an event: the end of its initialisation.
    pub fn first_poll(&self) -> Option<std::time::Instant> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_poll
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&self, event: String) -> Option<String> {
        self.hand_over(event).1.await.ok()
    }

    /// Hands `event` to the function, waits for its answer and then for the function to ask
    /// for the next event.
    pub async fn invoke_to_next_poll(&self, event: String) -> Invocation {
        let (id, answer) = self.hand_over(event);
        let answer = answer.await.ok();
        let answered_at = std::time::Instant::now();
        loop {
            let finished = self.finished.notified();
            if let Some(ran) = self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ran
                .remove(&id)
            {
                return Invocation {
                    answer,
                    answered_at,
                    ran,
                };
            }
            finished.await;
        }
    }

    fn hand_over(&self, event: String) -> (String, tokio::sync::oneshot::Receiver<String>) {
        let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
        let id = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.next_id += 1;
            let id = format!("bench-{:012}", state.next_id);
            state.waiting.insert(id.clone(), answer_tx);
            state.pending.push_back((id.clone(), event));
            id
        };
        self.event_ready.notify_one();
        (id, answer_rx)
    }
}

async fn runtime_api(
    state: &Mutex<RuntimeState>,
    ready: &tokio::sync::Notify,
    finished: &tokio::sync::Notify,
    method: &Method,
    path: &str,
    body: &[u8],
) -> HttpResponse {
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    if method == Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        {
            let mut state = lock();
            if state.first_poll.is_none() {
                state.first_poll = Some(std::time::Instant::now());
                state.cpu_at_first_poll = state.watched.map(process_cpu_time);
            }
            if let Some((id, handed_at)) = state.running.take() {
                state.ran.insert(id, handed_at.elapsed());
                finished.notify_waiters();
            }
        }
        loop {
            let notified = ready.notified();
            let next = {
                let mut state = lock();
                let next = state.pending.pop_front();
                if let Some((id, _)) = &next {
                    state.running = Some((id.clone(), std::time::Instant::now()));
                }
                next
            };
            if let Some((id, event)) = next {
                let deadline_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64 + 20_000);
                let mut response = respond(StatusCode::OK, "application/json", event);
                let headers = response.headers_mut();
                headers.insert("lambda-runtime-aws-request-id", id.parse().expect("ascii"));
                headers.insert("lambda-runtime-deadline-ms", deadline_ms.into());
                headers.insert(
                    "lambda-runtime-invoked-function-arn",
                    hyper::header::HeaderValue::from_static(
                        "arn:aws:lambda:eu-central-1:123456789012:function:ilert-servicenow",
                    ),
                );
                headers.insert(
                    "lambda-runtime-trace-id",
                    hyper::header::HeaderValue::from_static(
                        "Root=1-00000000-000000000000000000000000",
                    ),
                );
                return response;
            }
            notified.await;
        }
    }
    let answered = path
        .strip_prefix("/2018-06-01/runtime/invocation/")
        .and_then(|rest| rest.split_once('/'));
    if let Some((id, "response" | "error")) = answered {
        if let Some(waiter) = lock().waiting.remove(id) {
            let _ = waiter.send(String::from_utf8_lossy(body).into_owned());
        }
        return respond(StatusCode::ACCEPTED, "application/json", "{}");
    }
    respond(StatusCode::ACCEPTED, "application/json", "{}")
}

/// CPU time a process has used, all threads, from the kernel's scheduler accounting
/// (nanoseconds); the 10 ms ticks of /proc/PID/stat where schedstat is missing.
pub fn process_cpu_time(pid: u32) -> std::time::Duration {
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
        return std::time::Duration::from_nanos(total);
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
    std::time::Duration::from_millis(ticks * 10)
}

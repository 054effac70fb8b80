//! The loopback HTTP server every stand-in runs on, and what it has done.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub(crate) type HttpResponse = Response<Full<Bytes>>;

pub(crate) const ANY_LOOPBACK_PORT: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// Serves `handle` at `address` until the runtime that called it shuts down. A `None` answer
/// cuts the connection without answering, as a network failure would.
pub(crate) async fn serve<F, Fut>(
    address: SocketAddr,
    stats: Arc<ServerStats>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handle: F,
) -> std::io::Result<SocketAddr>
where
    F: Fn(Method, String, Option<String>, hyper::HeaderMap, Bytes) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = Option<HttpResponse>> + Send + 'static,
{
    let listener = TcpListener::bind(address).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // As real servers do: without it, a response written in two parts (TLS records)
            // waits for the client's delayed ACK, 40 ms that no real instance costs.
            let _ = stream.set_nodelay(true);
            stats.connections.fetch_add(1, Ordering::Relaxed);
            let handle = handle.clone();
            let tls_stats = Arc::clone(&stats);
            let stats = Arc::clone(&stats);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (handle, stats) = (handle.clone(), Arc::clone(&stats));
                async move {
                    let started = std::time::Instant::now();
                    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    stats.most_in_flight.fetch_max(now, Ordering::SeqCst);
                    let (parts, body) = request.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let query = parts.uri.query().map(str::to_owned);
                    let path = parts.uri.path().to_owned();
                    let answer = handle(parts.method, path, query, parts.headers, bytes).await;
                    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
                    stats
                        .busy_micros
                        .fetch_add(started.elapsed().as_micros() as usize, Ordering::Relaxed);
                    answer.ok_or(ConnectionCut)
                }
            });
            let tls = tls.clone();
            tokio::spawn(async move {
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        tls_stats.handshakes.fetch_add(1, Ordering::Relaxed);
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    Ok(address)
}

/// What a stand-in server has done: connections accepted, and time spent answering (for a
/// benchmark to tell its own time from the function's).
#[derive(Debug, Default)]
pub struct ServerStats {
    connections: AtomicUsize,
    busy_micros: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    handshakes: AtomicUsize,
}

impl ServerStats {
    /// TLS handshakes completed (full or resumed), when it serves TLS.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// The most requests it was answering at one moment: how many writers it met at once.
    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn busy(&self) -> Duration {
        Duration::from_micros(self.busy_micros.load(Ordering::Relaxed) as u64)
    }
}

/// Returned to hyper to make it drop a connection without an answer.
#[derive(Debug)]
struct ConnectionCut;

impl std::fmt::Display for ConnectionCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut by the simulator")
    }
}

impl std::error::Error for ConnectionCut {}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("static parts are valid")
}

pub(crate) fn respond_json(status: StatusCode, body: &Value) -> HttpResponse {
    respond(status, "application/json", body.to_string())
}

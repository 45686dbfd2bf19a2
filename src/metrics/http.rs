//! A small HTTP/1.1 endpoint for Prometheus: `GET /metrics` (and `/`) answers a fresh scrape,
//! `GET /-/healthy` answers `OK`, as Apache's exporter does. One request per connection; the head is
//! read with a size cap and a deadline, connections are capped, so a slow or hostile client costs
//! little.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Produces the body of a scrape.
pub type Render = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 32;

/// A running metrics endpoint; [`MetricsServer::shutdown`] stops it and waits for its tasks.
pub struct MetricsServer {
    addr: SocketAddr,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl MetricsServer {
    /// Binds `addr` and serves scrapes rendered by `render`.
    pub async fn start(addr: SocketAddr, render: Render) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (c, t) = (cancel.clone(), tasks.clone());
        tasks.spawn(async move {
            let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
            loop {
                let accepted = tokio::select! {
                    _ = c.cancelled() => break,
                    a = listener.accept() => a,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            debug!(%peer, "metrics: too many connections; closing");
                            continue;
                        };
                        let (render, c) = (render.clone(), c.clone());
                        t.spawn(async move {
                            let _slot = slot;
                            tokio::select! {
                                _ = c.cancelled() => {}
                                _ = serve(stream, render) => {}
                            }
                        });
                    }
                    Err(e) => {
                        warn!(error = %e, "metrics: accept failed");
                        tokio::select! {
                            _ = c.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        }
                    }
                }
            }
        });
        info!(%addr, "Prometheus metrics served at http://{addr}/metrics");
        Ok(MetricsServer { addr, cancel, tasks })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends open connections and waits for every task.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn serve(mut stream: TcpStream, render: Render) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_HEAD {
                return Ok(false);
            }
        }
    })
    .await;
    if !matches!(read, Ok(Ok(true))) {
        return;
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") | ("GET", "/") => ("200 OK", super::CONTENT_TYPE, render().await),
        ("GET", "/-/healthy") => ("200 OK", "text/plain; charset=utf-8", "OK\n".to_string()),
        ("GET", _) => ("404 Not Found", "text/plain; charset=utf-8", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET\n".to_string()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(READ_TIMEOUT, stream.write_all(resp.as_bytes())).await;
    let _ = stream.shutdown().await;
}

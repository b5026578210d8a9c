//! The Prometheus endpoint (`--metrics`): GET /metrics, rendered per request.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Cx, Source};
use crate::daemon::metrics;

/// The metrics listener, when `--metrics` asked for one.
pub(in crate::daemon) struct MetricsEndpoint {
    l: Option<TcpListener>,
}

impl MetricsEndpoint {
    pub(in crate::daemon) async fn bind(addr: Option<SocketAddr>) -> anyhow::Result<Self> {
        let l = match addr {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("binding the metrics address {a}"))?,
            ),
            None => None,
        };
        Ok(MetricsEndpoint { l })
    }
}

impl Source for MetricsEndpoint {
    /// A client, or a failed accept (ignored).
    type Event = std::io::Result<TcpStream>;

    async fn next(&mut self) -> anyhow::Result<Self::Event> {
        match &self.l {
            Some(l) => Ok(l.accept().await.map(|(s, _)| s)),
            None => std::future::pending().await,
        }
    }

    fn on_event(&mut self, s: Self::Event, cx: &mut Cx<'_>) -> ControlFlow<()> {
        if let Ok(s) = s {
            let kernel = cx
                .rec
                .peer_status()
                .map_err(|e| tracing::warn!(error = %e, "metrics: kernel dump failed"))
                .ok();
            let stat = crate::report::peers::read_xfrm_stat_all();
            let body = metrics::render(&cx.rec.metrics, &cx.rec.view, kernel.as_ref(), &stat);
            tokio::spawn(respond_http(s, body));
        }
        ControlFlow::Continue(())
    }
}

/// Answer one HTTP request: the metrics on GET /metrics, 404 otherwise.
async fn respond_http(mut s: TcpStream, body: String) {
    let io = async {
        let mut buf = vec![0u8; 2048];
        let mut n = 0;
        while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            let k = s.read(&mut buf[n..]).await?;
            if k == 0 {
                break;
            }
            n += k;
        }
        let head = String::from_utf8_lossy(&buf[..n]);
        let path = head.split_whitespace().nth(1).unwrap_or("");
        let resp = if path == "/metrics" || path.starts_with("/metrics?") {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        };
        s.write_all(resp.as_bytes()).await?;
        s.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), io).await;
}

//! Request ids: every RPC carries one in `x-request-id`, the caller's own
//! (1-64 of [A-Za-z0-9._-]) or one ctnet-api makes, and passes it on to
//! netexec, so one call can be followed through both daemons' logs.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";
pub const MAX_LEN: usize = 64;

/// Whether a caller's id is taken as it is (otherwise it is replaced, and
/// never logged: it may be anything).
pub fn valid(s: &str) -> bool {
    (1..=MAX_LEN).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The valid id a request carries, if any.
pub fn of<B>(req: &http::Request<B>) -> Option<String> {
    let id = req.headers().get(HEADER)?.to_str().ok()?;
    valid(id).then(|| id.to_string())
}

/// The method's name, the last part of the gRPC path.
pub fn method(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

/// The gRPC code of an answer: its status header, or OK (a success's status
/// travels in the trailers).
pub fn code<B>(resp: &http::Response<B>) -> tonic::Code {
    let code = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok());
    tonic::Code::from_i32(code.and_then(|c| c.parse().ok()).unwrap_or(0))
}

/// netexec's layer: each call runs in a span naming its request id and
/// method, and ends with one log line (code and duration).
#[derive(Clone, Copy, Default)]
pub struct SpanLayer;

impl<S> tower::Layer<S> for SpanLayer {
    type Service = Spanned<S>;
    fn layer(&self, inner: S) -> Spanned<S> {
        Spanned(inner)
    }
}

#[derive(Clone)]
pub struct Spanned<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for Spanned<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let id = of(&req).unwrap_or_else(|| "-".into());
        let name = method(req.uri().path());
        // The health check's ping comes every interval: not worth a line.
        let quiet = name == "Ping";
        let span = tracing::info_span!("rpc", request_id = %id, method = name);
        let fut = self.0.call(req);
        Box::pin(
            async move {
                let start = Instant::now();
                let out = fut.await;
                if let Ok(resp) = &out {
                    let (code, elapsed_us) = (code(resp), start.elapsed().as_micros() as u64);
                    if quiet {
                        tracing::debug!(?code, elapsed_us, "rpc done");
                    } else {
                        tracing::info!(?code, elapsed_us, "rpc done");
                    }
                }
                out
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        assert!(super::valid("cli-42.a_b"));
        assert!(super::valid(&"x".repeat(64)));
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(65), "a\nb"] {
            assert!(!super::valid(bad), "{bad:?}");
        }
    }
}

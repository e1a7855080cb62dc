//! Overload protection per tenant, as a tower layer inside the request
//! layer (which has put the caller's identity in the request and audits
//! whatever this one refuses). Each tenant has a token bucket over all its
//! ctnet.v1 calls and a bound on its mutating calls in flight; over the
//! rate the answer is ResourceExhausted, over the bound Unavailable, both
//! with a retry hint (`grpc-retry-pushback-ms`, and in the message). The
//! admin is never throttled. State is one entry per tenant of the policy,
//! so it is bounded by the policy file.
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;

use crate::policy::{Caller, Limits};

/// One tenant's bucket and mutating calls in flight.
struct Tenant {
    tokens: f64,
    at: Instant,
    mutating: usize,
}

pub struct Throttle {
    tenants: Mutex<HashMap<String, Tenant>>,
}

/// A mutating call in flight; dropping it frees its slot.
pub struct Slot {
    throttle: Arc<Throttle>,
    tenant: String,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slot({})", self.tenant)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut all = self.throttle.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = all.get_mut(&self.tenant) {
            t.mutating = t.mutating.saturating_sub(1);
        }
    }
}

const PUSHBACK: &str = "grpc-retry-pushback-ms";

/// A refusal is held for its retry hint, up to this long, before it is
/// answered: a client that retries at once is paced instead of spinning
/// the server (held refusals are bounded by the connection limits).
const MAX_HOLD: std::time::Duration = std::time::Duration::from_millis(100);

fn hint_of(status: &tonic::Status) -> std::time::Duration {
    let ms = status.metadata().get(PUSHBACK).and_then(|v| v.to_str().ok()?.parse().ok());
    std::time::Duration::from_millis(ms.unwrap_or(0)).min(MAX_HOLD)
}

fn with_hint(mut status: tonic::Status, ms: u64) -> tonic::Status {
    if let Ok(v) = ms.to_string().parse() {
        status.metadata_mut().insert(PUSHBACK, v);
    }
    status
}

impl Throttle {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { tenants: Mutex::new(HashMap::new()) })
    }

    /// Admits one call of `caller`, or says when to retry. A mutating call
    /// holds a slot until its response is ready.
    pub fn admit(
        self: &Arc<Self>,
        caller: &Caller,
        mutating: bool,
    ) -> Result<Option<Slot>, tonic::Status> {
        let Some(rules) = &caller.rules else { return Ok(None) };
        let Limits { rate, burst, mutating: bound } = rules.limits;
        let now = Instant::now();
        let mut all = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        let t = all.entry(caller.tenant.clone()).or_insert(Tenant {
            tokens: f64::from(burst),
            at: now,
            mutating: 0,
        });
        let refill = now.duration_since(t.at).as_secs_f64() * rate;
        t.tokens = (t.tokens + refill).min(f64::from(burst));
        t.at = now;
        if t.tokens < 1.0 {
            let ms = (((1.0 - t.tokens) / rate) * 1000.0).ceil() as u64;
            let msg = format!(
                "tenant {} is over its rate limit of {rate} calls/s (burst {burst}); retry in {ms} ms",
                caller.tenant
            );
            return Err(with_hint(tonic::Status::resource_exhausted(msg), ms));
        }
        if mutating && t.mutating >= bound {
            let ms = 100;
            let msg = format!(
                "tenant {} already has {bound} mutating calls in flight (its limit); retry in {ms} ms",
                caller.tenant
            );
            return Err(with_hint(tonic::Status::unavailable(msg), ms));
        }
        t.tokens -= 1.0;
        if !mutating {
            return Ok(None);
        }
        t.mutating += 1;
        Ok(Some(Slot { throttle: self.clone(), tenant: caller.tenant.clone() }))
    }
}

#[derive(Clone)]
pub struct ThrottleLayer(pub Arc<Throttle>);

impl<S> tower::Layer<S> for ThrottleLayer {
    type Service = Throttled<S>;
    fn layer(&self, inner: S) -> Throttled<S> {
        Throttled { inner, throttle: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct Throttled<S> {
    inner: S,
    throttle: Arc<Throttle>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Throttled<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        // Health and reflection are never throttled: probes must see a
        // flooded server as serving.
        let ours = path.starts_with("/ctnet.v1.");
        // Put there by the request layer; an identity in no tenant has none
        // and is refused by the handler.
        let caller = req.extensions().get::<Caller>().filter(|_| ours);
        let slot = match caller {
            Some(c) => match self.throttle.admit(c, crate::conn::is_mutating(path)) {
                Ok(slot) => slot,
                Err(status) => {
                    return Box::pin(async move {
                        tokio::time::sleep(hint_of(&status)).await;
                        Ok(status.into_http())
                    })
                }
            },
            None => None,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            drop(slot);
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::policy::Policy;

    fn caller(text: &str, uid: u32) -> (Arc<Throttle>, Caller) {
        let id = Identity::Local { uid, gid: uid, groups: vec![] };
        (Throttle::new(), Policy::parse(text).unwrap().caller(&id).unwrap())
    }

    #[test]
    fn the_bucket_refuses_past_its_burst_with_a_hint() {
        let text = "[tenants.a]\nuids = [7]\n[tenants.a.limits]\nrate = 0.5\nburst = 3\n";
        let (th, a) = caller(text, 7);
        for _ in 0..3 {
            assert!(th.admit(&a, false).is_ok());
        }
        let e = th.admit(&a, false).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("rate limit of 0.5 calls/s"), "{}", e.message());
        let hint: u64 = e.metadata().get(PUSHBACK).unwrap().to_str().unwrap().parse().unwrap();
        assert!((1..=2000).contains(&hint), "{hint}");
        // The admin is never throttled.
        for _ in 0..100 {
            assert!(th.admit(&Caller::admin(), true).unwrap().is_none());
        }
    }

    #[test]
    fn mutating_calls_in_flight_are_bounded_and_slots_free_on_drop() {
        let text = "[tenants.a]\nuids = [7]\n[tenants.a.limits]\nmutating = 2\n\
                    [tenants.b]\nuids = [8]\n";
        let (th, a) = caller(text, 7);
        let b = caller(text, 8).1;
        let s1 = th.admit(&a, true).unwrap();
        let _s2 = th.admit(&a, true).unwrap();
        let e = th.admit(&a, true).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable);
        assert!(e.metadata().get(PUSHBACK).is_some());
        assert!(th.admit(&a, false).is_ok(), "reads are not bounded by in-flight mutations");
        assert!(th.admit(&b, true).is_ok(), "another tenant is unaffected");
        drop(s1);
        assert!(th.admit(&a, true).is_ok(), "a freed slot is usable again");
    }
}

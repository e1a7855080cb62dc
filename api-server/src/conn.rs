//! Connection-level bounds, in the accept stream handed to tonic, for the
//! Unix socket and the TLS listener alike: limits per peer (uid, or source
//! address over TCP) and in all (at the global limit the oldest connection with no
//! RPC in flight makes room), a deadline for the HTTP/2 handshake, an idle
//! timeout, and an accept loop that backs off when the process runs out of
//! descriptors instead of spinning; over TCP a per-address rate of new
//! connections before the TLS handshake. A closed connection reads as EOF,
//! so hyper drops it at once. Each connection carries its caller's
//! identity, which the request layer hands to every request.
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::Instant;
use tonic::codegen::http;
use tonic::transport::server::Connected;

use crate::audit::Audit;
use crate::identity::Identity;
use crate::limits::ConnLimits;
use crate::policy::PolicyHolder;
use crate::tls::ServerTls;

/// Whose share of the per-peer limit a connection takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Peer {
    Uid(Option<u32>),
    Addr(IpAddr),
}

/// One connection as the bounds see it.
struct Shared {
    id: u64,
    peer: Peer,
    /// Set at accept (Unix) or after the TLS handshake.
    identity: OnceLock<Identity>,
    opened: Instant,
    in_flight: AtomicUsize,
    last_active: Mutex<Instant>,
    handshaken: AtomicBool,
    closed: AtomicBool,
    reader: AtomicWaker,
}

impl Shared {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.reader.wake();
    }

    fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn idle_since(&self) -> Instant {
        *self.last_active.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a request knows of its connection (tonic puts it in the request's
/// extensions): the caller's identity, and the count of its RPCs in flight.
#[derive(Clone)]
pub struct ConnInfo {
    shared: Arc<Shared>,
}

impl ConnInfo {
    pub fn identity(&self) -> Option<&Identity> {
        self.shared.identity.get()
    }
}

/// The connections open now.
pub struct Registry {
    conns: Mutex<Vec<Arc<Shared>>>,
    limits: ConnLimits,
    next_id: AtomicU64,
}

impl Registry {
    pub fn new(limits: ConnLimits) -> Arc<Self> {
        Arc::new(Self { conns: Mutex::default(), limits, next_id: AtomicU64::new(0) })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Shared>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection of `peer`, or None when the peer is at its
    /// limit, or everything is at the global limit and no connection is idle.
    fn admit(&self, peer: Peer) -> Option<Arc<Shared>> {
        let mut conns = self.lock();
        if conns.iter().filter(|c| c.peer == peer).count() >= self.limits.per_uid {
            tracing::debug!(?peer, "connection refused: peer at its limit");
            return None;
        }
        if conns.len() >= self.limits.global && !close_oldest_idle(&mut conns) {
            return None;
        }
        let now = Instant::now();
        let shared = Arc::new(Shared {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            peer,
            identity: OnceLock::new(),
            opened: now,
            in_flight: AtomicUsize::new(0),
            last_active: Mutex::new(now),
            handshaken: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        });
        conns.push(shared.clone());
        Some(shared)
    }

    /// Out of descriptors: the oldest idle connection makes room.
    fn make_room(&self) {
        close_oldest_idle(&mut self.lock());
    }

    fn remove(&self, id: u64) {
        self.lock().retain(|c| c.id != id);
    }

    /// Closes connections past their handshake deadline or idle timeout.
    fn sweep(&self) {
        let now = Instant::now();
        let mut conns = self.lock();
        conns.retain(|c| {
            let late = !c.handshaken.load(Ordering::SeqCst)
                && now.duration_since(c.opened) >= self.limits.handshake;
            let idle = c.in_flight.load(Ordering::SeqCst) == 0
                && now.duration_since(c.idle_since()) >= self.limits.idle;
            if late || idle {
                tracing::debug!(peer = ?c.peer, late, idle, "connection closed");
                c.close();
            }
            !(late || idle)
        });
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Closes the oldest connection with no RPC in flight; false if none is idle.
fn close_oldest_idle(conns: &mut Vec<Arc<Shared>>) -> bool {
    let idle = conns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.in_flight.load(Ordering::SeqCst) == 0)
        .min_by_key(|(_, c)| c.opened)
        .map(|(i, _)| i);
    let Some(oldest) = idle.map(|i| conns.swap_remove(i)) else {
        return false;
    };
    oldest.close();
    tracing::info!(peer = ?oldest.peer, "oldest idle connection closed to make room");
    true
}

pub type Incoming = tokio::sync::mpsc::Sender<io::Result<Conn>>;

/// Sweeps the open connections until the server is gone.
pub async fn sweep_loop(registry: Arc<Registry>) {
    let limits = registry.limits;
    let every = (limits.handshake.min(limits.idle) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut sweep = tokio::time::interval(every);
    loop {
        sweep.tick().await;
        registry.sweep();
    }
}

/// After a failed accept(2): out of descriptors, the oldest idle connection
/// makes room and the loop waits, never spins.
async fn after_accept_error(e: &io::Error, registry: &Registry, starved: &mut bool) {
    if !out_of_resources(e) {
        // A peer that went before its connection was accepted.
        tracing::debug!(error = %e, "accept failed");
        return;
    }
    if !*starved {
        tracing::warn!(error = %e, "accept: out of resources; backing off");
        *starved = true;
    }
    registry.sweep();
    registry.make_room();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Accepts, bounds and hands Unix-socket connections to `tx` until the
/// receiver is gone.
pub async fn accept_unix(listener: UnixListener, registry: Arc<Registry>, tx: Incoming) {
    let mut starved = false;
    loop {
        let io = match listener.accept().await {
            Ok((io, _)) => io,
            Err(e) => {
                after_accept_error(&e, &registry, &mut starved).await;
                continue;
            }
        };
        starved = false;
        let identity = Identity::of_unix(&io);
        let uid = match &identity {
            Some(Identity::Local { uid, .. }) => Some(*uid),
            _ => None,
        };
        let Some(shared) = registry.admit(Peer::Uid(uid)) else {
            continue;
        };
        if let Some(id) = identity {
            let _ = shared.identity.set(id);
        }
        if tx.send(Ok(Conn::new(Stream::Unix(io), shared, &registry))).await.is_err() {
            return;
        }
    }
}

/// Accepts TCP connections, rate-limited per source address before the
/// handshake and bounded like the Unix ones; completes each TLS handshake
/// (client certificate required) in its own task under the handshake
/// deadline, and hands the connection to `tx` with the certificate's
/// identity.
pub async fn accept_tls(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    registry: Arc<Registry>,
    tx: Incoming,
) {
    let mut starved = false;
    let mut rate = Rate::new(registry.limits.handshakes_per_addr);
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                after_accept_error(&e, &registry, &mut starved).await;
                continue;
            }
        };
        starved = false;
        if !rate.allow(addr.ip()) {
            tracing::debug!(%addr, "TLS connection refused: too many from this address");
            continue;
        }
        let Some(shared) = registry.admit(Peer::Addr(addr.ip())) else {
            continue;
        };
        // Small replies go out at once (Nagle against the peer's delayed
        // ACK cost a remote create ~40 ms).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%addr, error = %e, "TCP_NODELAY");
        }
        let (acceptor, registry, tx) = (tls.acceptor(), registry.clone(), tx.clone());
        tokio::spawn(async move {
            let deadline = registry.limits.handshake;
            let stream = match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%addr, error = %e, "TLS handshake refused");
                    registry.remove(shared.id);
                    return;
                }
                Err(_) => {
                    tracing::info!(%addr, "TLS handshake timed out");
                    registry.remove(shared.id);
                    return;
                }
            };
            let cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
            if let Some(id) = cert.and_then(|c| Identity::of_certificate(c.as_ref())) {
                let _ = shared.identity.set(id);
            }
            let conn = Conn::new(Stream::Tls(Box::new(stream)), shared, &registry);
            let _ = tx.send(Ok(conn)).await;
        });
    }
}

/// New connections per source address: a token bucket of `per_sec` a
/// second, twice that as burst.
struct Rate {
    per_sec: f64,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl Rate {
    fn new(per_sec: u32) -> Self {
        Self { per_sec: f64::from(per_sec.max(1)), buckets: HashMap::new() }
    }

    fn allow(&mut self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let (rate, burst) = (self.per_sec, self.per_sec * 2.0);
        let level =
            |t: f64, at: Instant| (t + now.duration_since(at).as_secs_f64() * rate).min(burst);
        if self.buckets.len() > 4096 {
            // Forget the addresses whose buckets are full again.
            self.buckets.retain(|_, (t, at)| level(*t, *at) < burst);
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((burst, now));
        *tokens = level(*tokens, *at);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }
}

fn out_of_resources(e: &io::Error) -> bool {
    use nix::errno::Errno;
    let code = e.raw_os_error().map(Errno::from_raw);
    matches!(code, Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM))
}

/// Recognises the end of the HTTP/2 handshake from the client's bytes: the
/// 24-byte preface, then frames until the client acknowledges the server's
/// SETTINGS or opens a stream.
#[derive(Default)]
struct Handshake {
    /// Bytes of the preface seen.
    preface: usize,
    /// The frame header being read, and how much of it is read.
    header: [u8; 9],
    header_len: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
}

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADERS: u8 = 1;
const FRAME_SETTINGS: u8 = 4;
const FLAG_ACK: u8 = 1;

impl Handshake {
    /// Feeds bytes read from the client; true once the handshake is done.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while let Some((&b, rest)) = bytes.split_first() {
            if self.preface < PREFACE.len() {
                if PREFACE.get(self.preface) != Some(&b) {
                    // Not HTTP/2: hyper closes it; until then it counts as
                    // never handshaken.
                    return false;
                }
                self.preface += 1;
                bytes = rest;
            } else if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = bytes.get(n..).unwrap_or_default();
            } else {
                if let Some(slot) = self.header.get_mut(self.header_len) {
                    *slot = b;
                }
                self.header_len += 1;
                bytes = rest;
                if self.header_len == self.header.len() {
                    self.header_len = 0;
                    let [l0, l1, l2, kind, flags, ..] = self.header;
                    let settings_ack = kind == FRAME_SETTINGS && flags & FLAG_ACK != 0;
                    if settings_ack || kind == FRAME_HEADERS {
                        return true;
                    }
                    self.skip = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                }
            }
        }
        false
    }
}

/// The transport under a connection.
pub enum Stream {
    Unix(UnixStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Runs `$e` with `$s` bound to the pinned inner stream.
macro_rules! on_stream {
    ($self:expr, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        on_stream!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        on_stream!(self, s => s.poll_write(cx, b))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => s.poll_shutdown(cx))
    }
}

/// An accepted connection under the bounds.
pub struct Conn {
    io: Stream,
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    handshake: Handshake,
}

impl Conn {
    fn new(io: Stream, shared: Arc<Shared>, registry: &Arc<Registry>) -> Self {
        Conn { io, shared, registry: registry.clone(), handshake: Handshake::default() }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.registry.remove(self.shared.id);
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;
    fn connect_info(&self) -> ConnInfo {
        ConnInfo { shared: self.shared.clone() }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shared.reader.register(cx.waker());
        if this.shared.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if !this.shared.handshaken.load(Ordering::SeqCst) {
            let new = buf.filled().get(before..).unwrap_or_default();
            if this.handshake.feed(new) {
                this.shared.handshaken.store(true, Ordering::SeqCst);
                this.shared.touch();
            }
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.shared.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The request-level tower layer: it counts each connection's RPCs in
/// flight, so the idle timeout and the global limit's eviction never close
/// a connection that is being answered, and it answers a request message
/// over the size limit with ResourceExhausted. (tonic refuses it from its
/// length prefix, before reading it, with OutOfRange; no handler of ours
/// answers OutOfRange.)
#[derive(Clone)]
pub struct RequestLayer {
    /// Largest request message, for the ResourceExhausted answer.
    pub max_message: usize,
    pub audit: Arc<Audit>,
    pub policy: Arc<PolicyHolder>,
}

impl<S> tower::Layer<S> for RequestLayer {
    type Service = InFlight<S>;
    fn layer(&self, inner: S) -> InFlight<S> {
        InFlight { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct InFlight<S> {
    inner: S,
    layer: RequestLayer,
}

/// The methods that change something: audited whatever their outcome.
pub(crate) fn is_mutating(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or_default();
    ["Create", "Delete", "Connect", "Disconnect", "GarbageCollect"]
        .iter()
        .any(|m| method.starts_with(m))
}

/// The gRPC outcome of a response: "Ok", "NotFound", ...
fn outcome<B>(resp: &http::Response<B>) -> String {
    format!("{:?}", ctnet_proto::request_id::code(resp))
}

/// The call's request id: the caller's, if valid, else a fresh one (an
/// invalid one is dropped unseen: it may be anything).
fn request_id<B>(req: &mut http::Request<B>) -> String {
    let id = ctnet_proto::request_id::of(req).unwrap_or_else(crate::request_id::fresh);
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        req.headers_mut().insert(ctnet_proto::request_id::HEADER, v);
    }
    id
}

const GRPC_OUT_OF_RANGE: &str = "11";
const GRPC_RESOURCE_EXHAUSTED: &str = "8";

/// tonic's OutOfRange for an oversized message, as ResourceExhausted.
fn oversize_exhausted<B>(resp: &mut http::Response<B>, max: usize) {
    let h = resp.headers_mut();
    if h.get("grpc-status").is_some_and(|s| s == GRPC_OUT_OF_RANGE) {
        let msg = format!("request message too large: the limit is {max} bytes");
        if let Ok(v) = http::HeaderValue::from_str(&msg.replace(' ', "%20")) {
            h.insert("grpc-status", http::HeaderValue::from_static(GRPC_RESOURCE_EXHAUSTED));
            h.insert("grpc-message", v);
        }
    }
}

/// One RPC in flight on its connection until dropped.
pub struct Busy(Arc<Shared>);

/// Keeps the call's connection counted busy while the guard lives, for an
/// answer that streams on after its handler returned (events): the idle
/// timeout and the eviction of idle connections leave it alone.
pub fn busy_while_streaming<T>(req: &tonic::Request<T>) -> Option<Busy> {
    req.extensions().get::<ConnInfo>().map(|c| Busy::enter(c.shared.clone()))
}

impl Busy {
    fn enter(shared: Arc<Shared>) -> Self {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        shared.touch();
        Busy(shared)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for InFlight<S>
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

    /// Authenticates the call: its connection's identity goes into the
    /// request's extensions, and a call without one is Unauthenticated.
    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let info = req.extensions().get::<ConnInfo>().cloned();
        let Some((info, identity)) = info.and_then(|c| Some((c.clone(), c.identity()?.clone())))
        else {
            let refused = tonic::Status::unauthenticated(
                "no caller identity: connect over the Unix socket or with a client certificate",
            );
            return Box::pin(async move { Ok(refused.into_http()) });
        };
        let path = req.uri().path().to_string();
        let mutating = is_mutating(&path);
        let layer = self.layer.clone();
        let id = request_id(&mut req);
        let method = ctnet_proto::request_id::method(&path).to_string();
        let span = tracing::info_span!("rpc", request_id = %id, %method);
        if mutating {
            if let Err(e) = layer.audit.ready() {
                return Box::pin(async move { Ok(crate::api::status(e).into_http()) });
            }
        }
        // One policy lookup per request: the throttle and the handler use
        // this caller, so the audit line's tenant is the one that acted.
        let caller = layer.policy.get().caller(&identity);
        let tenant = caller.as_ref().map_or_else(|_| "(none)".into(), |c| c.tenant.clone());
        if let Ok(c) = caller {
            req.extensions_mut().insert(c);
        }
        req.extensions_mut().insert(identity.clone());
        let busy = Busy::enter(info.shared.clone());
        let fut = crate::request_id::scope(id.clone(), self.inner.call(req));
        let answer = async move {
            let start = std::time::Instant::now();
            let mut out = fut.await;
            drop(busy);
            let Ok(resp) = &mut out else { return out };
            oversize_exhausted(resp, layer.max_message);
            if let Ok(v) = http::HeaderValue::from_str(&id) {
                resp.headers_mut().insert(ctnet_proto::request_id::HEADER, v);
            }
            let outcome = outcome(resp);
            crate::metrics::get().rpc_done(&path, &outcome, start.elapsed());
            let elapsed_us = start.elapsed().as_micros() as u64;
            if mutating {
                tracing::info!(%outcome, elapsed_us, "rpc done");
            } else {
                tracing::debug!(%outcome, elapsed_us, "rpc done");
            }
            let refused = outcome != "Ok";
            if !(mutating || refused) {
                return out;
            }
            let asked = resp.headers_mut().remove(crate::api::ASKED);
            let asked = asked.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default();
            let resources = match resp.extensions().get::<crate::audit::Resources>() {
                Some(r) => r.0.clone(),
                None => asked.split(',').filter(|a| !a.is_empty()).map(String::from).collect(),
            };
            let entry = crate::audit::Entry {
                time: crate::model::now(),
                identity: identity.to_string(),
                tenant,
                method: path,
                resources,
                outcome,
                request_id: id,
                suppressed: None,
            };
            // A refused call changed nothing: its line may be summed up,
            // and failing to write it does not change its answer.
            match layer.audit.write(entry, refused).await {
                Err(e) if mutating && !refused => Ok(crate::api::status(e).into_http()),
                _ => out,
            }
        };
        Box::pin(tracing::Instrument::instrument(answer, span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags, 0, 0, 0, 0];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn the_handshake_ends_with_the_clients_settings_ack_in_any_chunking() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(FRAME_SETTINGS, 0, &[0, 3, 0, 0, 0, 100]));
        let preface_only = bytes.clone();
        bytes.extend(frame(8, 0, &[0, 0, 1, 0])); // WINDOW_UPDATE
        bytes.extend(frame(FRAME_SETTINGS, FLAG_ACK, &[]));
        for chunk in [1, 2, 7, 9, 1000] {
            let mut h = Handshake::default();
            let done = bytes.chunks(chunk).any(|c| h.feed(c));
            assert!(done, "chunks of {chunk}");
            let mut h = Handshake::default();
            assert!(
                !preface_only.chunks(chunk).any(|c| h.feed(c)),
                "preface only, chunks of {chunk}"
            );
        }
        let mut h = Handshake::default();
        assert!(!h.feed(b"GET / HTTP/1.1\r\n\r\n"), "not HTTP/2");
    }

    #[tokio::test]
    async fn per_uid_then_global_limits_evict_only_idle_connections() {
        let limits = ConnLimits { per_uid: 2, global: 3, ..ConnLimits::default() };
        let r = Registry::new(limits);
        let a1 = r.admit(Peer::Uid(Some(1))).unwrap();
        let _a2 = r.admit(Peer::Uid(Some(1))).unwrap();
        assert!(r.admit(Peer::Uid(Some(1))).is_none(), "uid 1 is at its limit");
        let b1 = r.admit(Peer::Uid(Some(2))).unwrap();
        a1.in_flight.store(1, Ordering::SeqCst);
        // Global limit: the oldest idle one (a2: a1 is busy) makes room.
        let _b2 = r.admit(Peer::Uid(Some(2))).unwrap();
        assert!(!a1.closed.load(Ordering::SeqCst));
        assert_eq!(r.len(), 3);
        b1.in_flight.store(1, Ordering::SeqCst);
        let busy = r.lock().iter().filter(|c| c.in_flight.load(Ordering::SeqCst) > 0).count();
        assert_eq!(busy, 2);
    }
}

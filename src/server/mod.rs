//! The ADS gRPC server: the service ([`AdsService`]) and its HTTP/2 gRPC
//! endpoint ([`AdsEndpoint`]; responses share the snapshot's bytes, see
//! [`wire`]), the per-stream state machines for SotW ([`stream`]) and delta
//! ([`delta_stream`]), the stream task they share, and the registry of
//! connected proxies ([`registry`]) that the admin endpoint reads.

mod convergence;
mod delta;
pub mod delta_stream;
mod grpc;
mod listen;
pub mod names;
pub mod registry;
mod sotw;
pub mod sotw_request;
pub mod stream;
pub use listen::{bind_xds, XDS_LISTEN_BACKLOG};
mod sections;
mod task;
#[cfg(test)]
mod test_support;
mod wire;
pub use grpc::AdsEndpoint;
#[cfg(test)]
mod keepalive_tests;

use crate::cache::SnapshotCache;
use crate::metrics::Metrics;
use registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::server::TcpConnectInfo;

/// Largest request we accept (Envoy's requests are small): 4 MiB.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest response we send: 64 MiB. Envoy's own gRPC client has no default
/// receive limit for `envoy_grpc`, so large configs are not cut at 4 MiB.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Streams one HTTP/2 connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
/// An Envoy opens one ADS stream per connection, and a few access log and
/// metrics streams; the limit bounds what one connection can make the server
/// buffer (each stream up to [`MAX_REQUEST_BYTES`] of a request).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// Responses buffered per stream before the stream task waits for the proxy to read.
const STREAM_BUFFER: usize = 16;

/// How many streams may compute their responses at the same time; the
/// others wait their turn (first come, first served), so a reconnect storm
/// of many proxies cannot starve the runtime.
pub const DEFAULT_CONCURRENT_PUSHES: usize = 32;

/// What every stream task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cache: Arc<SnapshotCache>,
    pub(crate) registry: Arc<Registry>,
    /// Connected proxies, pushes, NACKs and convergence times go here.
    pub(crate) metrics: Arc<Metrics>,
    /// Permits to compute responses (see [`DEFAULT_CONCURRENT_PUSHES`]).
    pub(crate) push_permits: tokio::sync::Semaphore,
    /// When set, every stream must prove its node's namespace and service
    /// account with a token (see [`crate::token`]).
    pub(crate) tokens: Option<Arc<crate::token::TokenAuthority>>,
}

/// Interval of the HTTP/2 keepalive PINGs the server sends on an idle
/// connection (Istio's `--keepaliveInterval` default).
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long the server waits for a keepalive PING's answer before it closes
/// the connection (Istio's `--keepaliveTimeout` default).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest keepalive interval or timeout: a day.
pub const MAX_KEEPALIVE: Duration = Duration::from_secs(86_400);

/// The `AggregatedDiscoveryService` implementation.
#[derive(Clone, Debug)]
pub struct AdsService {
    shared: Arc<Shared>,
    /// HTTP/2 keepalive: PING interval and answer timeout.
    keepalive: (Duration, Duration),
}

impl AdsService {
    /// A service that serves `cache` and records streams in `registry`
    /// (and metrics in a registry of its own; see [`AdsService::with_metrics`]).
    pub fn new(cache: Arc<SnapshotCache>, registry: Arc<Registry>) -> Self {
        Self::with_metrics(cache, registry, Arc::new(Metrics::new()))
    }

    /// A service that serves `cache`, records streams in `registry` and
    /// counts connections, pushes, NACKs and convergence times in `metrics`.
    pub fn with_metrics(
        cache: Arc<SnapshotCache>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let push_permits = tokio::sync::Semaphore::new(DEFAULT_CONCURRENT_PUSHES);
        AdsService {
            shared: Arc::new(Shared {
                cache,
                registry,
                metrics,
                push_permits,
                tokens: None,
            }),
            keepalive: (DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_KEEPALIVE_TIMEOUT),
        }
    }

    /// Sends an HTTP/2 PING on a connection that received nothing for
    /// `interval` and closes it when no answer came within `timeout` (as
    /// istiod's `--keepaliveInterval` and `--keepaliveTimeout`; defaults
    /// [`DEFAULT_KEEPALIVE_INTERVAL`] and [`DEFAULT_KEEPALIVE_TIMEOUT`]). A
    /// client that reads its connection slowly answers late: the PING waits
    /// behind the response bytes sent before it. Each is cut to
    /// [`MAX_KEEPALIVE`] (a timer beyond the clock's range would panic).
    pub fn with_keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = (interval.min(MAX_KEEPALIVE), timeout.min(MAX_KEEPALIVE));
        self
    }

    /// Refuses every stream (gRPC `UNAUTHENTICATED`, with the reason) whose
    /// `authorization` metadata is not a token of `authority` for the
    /// namespace and service account its node claims (`serve --require-token`).
    pub fn require_tokens(mut self, authority: Arc<crate::token::TokenAuthority>) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("tokens are required before the service is cloned")
            .tokens = Some(authority);
        self
    }

    /// The gRPC endpoint of this service, for tonic's router. Requests over
    /// [`MAX_REQUEST_BYTES`] and responses over [`MAX_RESPONSE_BYTES`] end
    /// their stream with `RESOURCE_EXHAUSTED`.
    pub fn into_endpoint(self) -> AdsEndpoint {
        AdsEndpoint { service: self }
    }

    /// Serves ADS on `listener` until `shutdown` resolves.
    ///
    /// # Errors
    /// A transport error from tonic.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        self.serve_with_sinks(listener, Sinks::default(), shutdown)
            .await
    }

    /// Serves ADS, and the services of `sinks` that are given, on
    /// `listener` until `shutdown` resolves.
    ///
    /// # Errors
    /// A transport error from tonic.
    pub async fn serve_with_sinks(
        self,
        listener: tokio::net::TcpListener,
        sinks: Sinks,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let _sweep = sections::SectionCache::sweep_process_cache();
        tonic::transport::Server::builder()
            .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
            .http2_keepalive_interval(Some(self.keepalive.0))
            .http2_keepalive_timeout(Some(self.keepalive.1))
            .add_service(self.into_endpoint())
            .add_optional_service(
                sinks
                    .access_logs
                    .map(crate::tap::AccessLogSink::into_server),
            )
            .add_optional_service(sinks.metrics.map(crate::edges::MetricsSink::into_server))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown,
            )
            .await
    }
}

pub mod sink_gate;

/// The services sidecars stream telemetry to, served beside ADS on the xDS
/// port (the bootstrap's `sextant-als` and `sextant-metrics` clusters).
#[derive(Debug, Default)]
pub struct Sinks {
    /// `envoy.service.accesslog.v3.AccessLogService`, for the live tap.
    pub access_logs: Option<crate::tap::AccessLogSink>,
    /// `envoy.service.metrics.v3.MetricsService`, for the per-edge signals.
    pub metrics: Option<crate::edges::MetricsSink>,
}

impl AdsService {
    /// Starts the task of one stream; its responses flow through a bounded
    /// channel, so a proxy that does not read holds up only its own stream.
    fn spawn<P: task::Protocol>(
        &self,
        request: http::Request<tonic::body::Body>,
    ) -> http::Response<tonic::body::Body> {
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let peer: Option<SocketAddr> = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let task = task::run::<P>(
            grpc::RequestStream::new(request.into_body()),
            tx,
            self.shared.clone(),
            task::Peer {
                addr: peer,
                authorization,
            },
        );
        tokio::spawn(task);
        grpc::response(rx)
    }
}

//! Prometheus metrics: one [`Metrics`] value, created once by `sextant serve`
//! and shared (`Arc`) by the cache, the ADS server and the admin endpoint,
//! which renders it on `GET /metrics` in the OpenMetrics text format.
//!
//! Every labelled series is created up front (each xDS type and protocol,
//! each translation stage), so all of them are exposed from the start, at 0,
//! and an update on a stream is one atomic add: no map lookup, no lock.
//! Histograms take prometheus-client's own short mutex per observation; none
//! is observed per request.
//!
//! The metric list, with what each one measures, is in the table of
//! [`crate::admin`] and in the README.

mod process;

use crate::envoy::TypeUrl;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The ADS flavour of a stream: the `protocol` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdsProtocol {
    /// State of the world (`StreamAggregatedResources`): label `sotw`.
    Sotw,
    /// Incremental (`DeltaAggregatedResources`): label `delta`.
    Delta,
}

impl XdsProtocol {
    const ALL: [XdsProtocol; 2] = [XdsProtocol::Sotw, XdsProtocol::Delta];

    /// The label value: `sotw` or `delta`.
    pub fn label(self) -> &'static str {
        match self {
            XdsProtocol::Sotw => "sotw",
            XdsProtocol::Delta => "delta",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `type` label of an xDS type: its service's short name in lower case
/// (`cds`, `eds`, `lds`, `rds`).
pub fn type_label(type_url: TypeUrl) -> &'static str {
    match type_url {
        TypeUrl::Cluster => "cds",
        TypeUrl::ClusterLoadAssignment => "eds",
        TypeUrl::Listener => "lds",
        TypeUrl::RouteConfiguration => "rds",
        TypeUrl::Secret => "sds",
    }
}

fn type_index(type_url: TypeUrl) -> usize {
    TypeUrl::ALL
        .iter()
        .position(|t| *t == type_url)
        .expect("TypeUrl::ALL lists every type")
}

const TYPES: usize = TypeUrl::ALL.len();

/// A stage of turning a config change into Envoy resources: the `stage`
/// label of `sextant_translation_duration_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslationStage {
    /// Store → IR (validation, reference resolution) and the cache update,
    /// once per change of the inputs: label `resolve`.
    Resolve,
    /// IR → encoded Envoy clusters, endpoints and routes of one proxy class,
    /// once per class and IR generation, when the first proxy of the class
    /// asks for the new snapshot: label `translate`.
    Translate,
    /// An endpoint-only change: the touched load assignments and clusters
    /// of every translated class rebuilt in place of a new translation,
    /// once per change: label `endpoints`.
    Endpoints,
}

impl TranslationStage {
    const ALL: [TranslationStage; 3] = [
        TranslationStage::Resolve,
        TranslationStage::Translate,
        TranslationStage::Endpoints,
    ];

    fn label(self) -> &'static str {
        match self {
            TranslationStage::Resolve => "resolve",
            TranslationStage::Translate => "translate",
            TranslationStage::Endpoints => "endpoints",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeProtocolLabels {
    r#type: &'static str,
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// Seconds-scale buckets for waits bounded by the debounce settings
/// (defaults 100 ms quiet, 1 s at most).
const DEBOUNCE_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// From a change on disk to a proxy's ACK: debounce, translation, push and
/// Envoy's own apply (cluster warming included).
const CONVERGENCE_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The registry and every metric family Sextant exposes. Cheap to share
/// behind an `Arc`; every method takes `&self` and may be called from any
/// task.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// By [`XdsProtocol::index`].
    connected_proxies: [Gauge; 2],
    /// By protocol, then type (order of [`TypeUrl::ALL`]).
    pushes: [[Counter; TYPES]; 2],
    response_bytes: [[Counter; TYPES]; 2],
    nacks: [Counter; TYPES],
    refused_streams: Counter,
    config_errors: Gauge,
    config_warnings: Gauge,
    /// By [`TranslationStage`] (order of its `ALL`).
    translation: [Histogram; 3],
    debounce_wait: Histogram,
    convergence: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered and every series at 0, and
    /// the `process_*` metrics of this process (read at each scrape).
    pub fn new() -> Self {
        let mut registry = Registry::default();

        let connected = Family::<ProtocolLabels, Gauge>::default();
        registry.register(
            "sextant_connected_proxies",
            "ADS streams currently open, by protocol (sotw, delta)",
            connected.clone(),
        );
        let connected_proxies = XdsProtocol::ALL.map(|p| {
            connected.get_or_create_owned(&ProtocolLabels {
                protocol: p.label(),
            })
        });

        let by_type_and_protocol = |family: &Family<TypeProtocolLabels, Counter>| {
            XdsProtocol::ALL.map(|p| {
                TypeUrl::ALL.map(|t| {
                    family.get_or_create_owned(&TypeProtocolLabels {
                        r#type: type_label(t),
                        protocol: p.label(),
                    })
                })
            })
        };
        let pushes_family = Family::<TypeProtocolLabels, Counter>::default();
        registry.register(
            "sextant_xds_pushes",
            "xDS responses sent, by type (cds, eds, lds, rds) and protocol (sotw, delta)",
            pushes_family.clone(),
        );
        let pushes = by_type_and_protocol(&pushes_family);
        let bytes_family = Family::<TypeProtocolLabels, Counter>::default();
        registry.register_with_unit(
            "sextant_xds_response",
            "Encoded size of the resources in the xDS responses sent (protobuf bytes of each \
             resource, without the response envelope), by type and protocol",
            Unit::Bytes,
            bytes_family.clone(),
        );
        let response_bytes = by_type_and_protocol(&bytes_family);

        let nacks_family = Family::<TypeLabels, Counter>::default();
        registry.register(
            "sextant_xds_nacks",
            "xDS responses that proxies rejected (a request carrying error_detail), by type",
            nacks_family.clone(),
        );
        let nacks = TypeUrl::ALL.map(|t| {
            nacks_family.get_or_create_owned(&TypeLabels {
                r#type: type_label(t),
            })
        });

        let refused_streams = Counter::default();
        registry.register(
            "sextant_xds_refused_streams",
            "ADS streams refused before serving anything: a node that cannot be read, or (with \
             serve --require-token) a missing, invalid or mismatched token",
            refused_streams.clone(),
        );

        let config_errors = Gauge::default();
        registry.register(
            "sextant_config_errors",
            "Current error diagnostics about the input (as listed on /debug/config_errors)",
            config_errors.clone(),
        );
        let config_warnings = Gauge::default();
        registry.register(
            "sextant_config_warnings",
            "Current warning diagnostics about the input (as listed on /debug/config_errors)",
            config_warnings.clone(),
        );

        let translation_family =
            Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            });
        registry.register_with_unit(
            "sextant_translation_duration",
            "Time to rebuild Envoy resources after a config change, by stage: resolve (store to \
             IR, once per change) and translate (IR to encoded resources, once per proxy class \
             and change)",
            Unit::Seconds,
            translation_family.clone(),
        );
        let translation = TranslationStage::ALL
            .map(|s| translation_family.get_or_create_owned(&StageLabels { stage: s.label() }));

        let debounce_wait = Histogram::new(DEBOUNCE_BUCKETS);
        registry.register_with_unit(
            "sextant_debounce_wait",
            "Time from the first file event of a burst to the start of its resolve (the debounce: \
             quiet period, bounded by the maximum wait)",
            Unit::Seconds,
            debounce_wait.clone(),
        );
        let convergence = Histogram::new(CONVERGENCE_BUCKETS);
        registry.register_with_unit(
            "sextant_proxy_convergence",
            "Per connected proxy and config change that sent it something: time from the \
             change being observed on disk to the proxy's ACK of the last response it caused",
            Unit::Seconds,
            convergence.clone(),
        );

        registry.register_collector(Box::new(process::ProcessCollector));

        Metrics {
            registry,
            connected_proxies,
            pushes,
            response_bytes,
            nacks,
            refused_streams,
            config_errors,
            config_warnings,
            translation,
            debounce_wait,
            convergence,
        }
    }

    /// Counts an open stream of `protocol` until the returned guard drops.
    pub fn proxy_connected(&self, protocol: XdsProtocol) -> ConnectedProxy {
        let gauge = self.connected_proxies[protocol.index()].clone();
        gauge.inc();
        ConnectedProxy { gauge }
    }

    /// Counts one response of `type_url` sent on a `protocol` stream, whose
    /// resources encode to `bytes` bytes.
    pub fn pushed(&self, protocol: XdsProtocol, type_url: TypeUrl, bytes: usize) {
        let (p, t) = (protocol.index(), type_index(type_url));
        self.pushes[p][t].inc();
        self.response_bytes[p][t].inc_by(bytes as u64);
    }

    /// Counts one NACK of `type_url`.
    pub fn nacked(&self, type_url: TypeUrl) {
        self.nacks[type_index(type_url)].inc();
    }

    /// Counts one ADS stream refused before it was served.
    pub fn stream_refused(&self) {
        self.refused_streams.inc();
    }

    /// Sets the current numbers of error and warning diagnostics.
    pub fn set_config_diagnostics(&self, errors: usize, warnings: usize) {
        self.config_errors.set(errors as i64);
        self.config_warnings.set(warnings as i64);
    }

    /// Records how long one run of a translation stage took.
    pub fn observe_translation(&self, stage: TranslationStage, took: Duration) {
        let i = TranslationStage::ALL
            .iter()
            .position(|s| *s == stage)
            .expect("TranslationStage::ALL lists every stage");
        self.translation[i].observe(took.as_secs_f64());
    }

    /// Records how long a burst of changes waited in the debounce.
    pub fn observe_debounce(&self, waited: Duration) {
        self.debounce_wait.observe(waited.as_secs_f64());
    }

    /// Records one proxy's convergence to a config change (see
    /// `sextant_proxy_convergence_seconds` in [`crate::admin`]).
    pub fn observe_convergence(&self, took: Duration) {
        self.convergence.observe(took.as_secs_f64());
    }

    /// The same, with the per-edge metrics of `edges` rendered at each
    /// scrape (see [`crate::edges::EdgeCollector`]). Call before sharing.
    pub fn with_edges(mut self, edges: std::sync::Arc<crate::edges::EdgeStore>) -> Self {
        self.registry
            .register_collector(Box::new(crate::edges::EdgeCollector::new(edges)));
        self
    }

    /// Every metric in the OpenMetrics text format (ends with `# EOF`), to
    /// serve with [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// The same, followed by the metrics of `extra`: a registry built for
    /// one scrape (e.g. [`crate::slo::SloCollector`], whose series follow
    /// the configuration). Its metric names must differ from ours.
    pub fn render_with(&self, extra: &Registry) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, extra))
            .and_then(|()| encode_eof(&mut out))
            .expect("writing to a String cannot fail");
        out
    }
}

/// One open ADS stream in `sextant_connected_proxies`; dropping it (the
/// stream ended) takes it out.
#[derive(Debug)]
pub struct ConnectedProxy {
    gauge: Gauge,
}

impl Drop for ConnectedProxy {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests;

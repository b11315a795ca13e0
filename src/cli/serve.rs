//! `sextant serve`: source → store → IR → cache → ADS, plus the admin endpoint.

use anyhow::Context;
use clap::Args;
use sextant::admin::{self, AdminState};
use sextant::cache::SnapshotCache;
use sextant::diagnostic::Diagnostic;
use sextant::ir;
use sextant::metrics::{Metrics, TranslationStage};
use sextant::server::registry::Registry;
use sextant::server::{AdsService, MAX_KEEPALIVE};
use sextant::source::kube::status::{NackFeed, ProxyNack, StatusWriter};
use sextant::source::kube::{KubeOptions, KubeSource};
use sextant::source::yaml_dir::YamlDir;
use sextant::store::Store;
use sextant::translate::TranslateOptions;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of Kubernetes-style YAML files (watched for changes).
    #[arg(long, required_unless_present = "kube", conflicts_with = "kube")]
    config_dir: Option<PathBuf>,
    /// Watch a Kubernetes cluster instead of a directory: in-cluster
    /// configuration, or the kubeconfig of `KUBECONFIG` / `~/.kube/config`.
    #[arg(long)]
    kube: bool,
    /// With `--kube`: watch only these namespaces (comma-separated); all by default.
    #[arg(long, value_delimiter = ',', requires = "kube")]
    namespaces: Vec<String>,
    /// With `--kube`: also watch Istio's API groups (`networking.istio.io/v1`,
    /// `security.istio.io/v1`, `telemetry.istio.io/v1`); their objects are
    /// read, never written to.
    #[arg(long, requires = "kube")]
    watch_istio_crds: bool,
    /// With `--kube`: write `status.conditions` of our CRs. Run exactly one
    /// replica with `true` (there is no leader election).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    kube_status_writer: bool,
    /// With `--kube`: least time between two status writes, in ms.
    #[arg(long, default_value_t = 100)]
    status_min_interval_ms: u64,
    /// With `--kube`: namespace of the Secret holding the CA root.
    #[arg(long, default_value = "sextant-system")]
    ca_namespace: String,
    /// With `--kube`: name of the Secret holding the CA root (created on
    /// first start, reused afterwards and by every replica).
    #[arg(long, default_value = "sextant-ca")]
    ca_secret: String,
    /// Address of the ADS gRPC server.
    #[arg(long, default_value = "0.0.0.0:15010")]
    xds_address: SocketAddr,
    /// Address of the admin HTTP endpoint.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
    /// Sliding window of the per-edge signals on `/debug/edges` and `/ui`
    /// (rate, success rate, latency quantiles), in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    edge_window_seconds: u64,
    /// Quiet period after a change before it is pushed, in ms (0: push at once).
    #[arg(long, default_value_t = 100)]
    debounce_quiet_ms: u64,
    /// Longest a burst of changes may delay a push, in ms.
    #[arg(long, default_value_t = 1000)]
    debounce_max_ms: u64,
    /// HTTP/2 keepalive on xDS connections: a PING after this many seconds
    /// without a frame from the proxy (istiod's `--keepaliveInterval`); 1 to
    /// 86400 (a day).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=MAX_KEEPALIVE.as_secs()))]
    keepalive_interval_seconds: u64,
    /// Seconds to wait for a keepalive PING's answer before closing the
    /// connection (istiod's `--keepaliveTimeout`); 1 to 86400 (a day).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_KEEPALIVE.as_secs()))]
    keepalive_timeout_seconds: u64,
    /// Upstream connect timeout of every cluster, in ms (Envoy requires > 0).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    connect_timeout_ms: u64,
    /// Namespace whose Sidecar without workload selector applies mesh-wide.
    #[arg(long, default_value = "istio-system")]
    root_namespace: String,
    /// Directory of the CA's root (or intermediate) certificate and key:
    /// read when present, generated and written on first start otherwise, so
    /// a restart keeps the trust root.
    #[arg(long, default_value = ".sextant/ca")]
    ca_dir: PathBuf,
    /// A root CA certificate (PEM) to sign under: Sextant then issues from an
    /// intermediate it keeps in `--ca-dir`. Needs `--ca-key`.
    #[arg(long, requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// The unencrypted PKCS#8 key of `--ca-cert`.
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// SPIFFE trust domain of workload identities.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// Lifetime of a workload certificate, in seconds; it is replaced at half-life.
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(2..))]
    cert_ttl_seconds: u64,
    /// Serve no certificates and configure no mutual TLS.
    #[arg(long)]
    no_mtls: bool,
    /// Refuse every ADS stream that does not carry a token (`sextant token`,
    /// `bootstrap --token-file`) for the namespace and service account its
    /// node claims. Without it, a node's claimed identity is believed.
    /// Proxyless gRPC clients cannot send a token yet.
    #[arg(long)]
    require_token: bool,
    /// TEST ONLY: add a cluster with this name that Envoy rejects (a zero
    /// cleanup interval) to every snapshot, to see a real NACK end to end.
    #[arg(long, hide = true)]
    test_inject_invalid_cluster: Option<String>,
    /// BENCHMARK ONLY: the naive baseline `sextant-load --baseline` compares
    /// against: translate per proxy instead of per class, encode per stream,
    /// re-send every type in full on every change. Never serve a mesh with it.
    #[arg(long, hide = true)]
    naive_baseline: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

/// Where input comes from.
enum Source {
    /// A watched directory; `changes` wakes on any file event.
    Dir {
        dir: YamlDir,
        changes: tokio::sync::mpsc::Receiver<()>,
        _watcher: notify::RecommendedWatcher,
    },
    /// A Kubernetes cluster, and the status writer when this replica writes status.
    Kube {
        source: KubeSource,
        status: Option<StatusWriter>,
    },
}

impl Source {
    /// Waits for the next change; false when the source stopped for good.
    async fn changed(&mut self) -> bool {
        match self {
            Source::Dir { changes, .. } => changes.recv().await.is_some(),
            Source::Kube { source, .. } => source.changed().await,
        }
    }
}

/// The input side: the source, the store, and where results go.
struct Pipeline {
    source: Source,
    store: Store,
    /// Builds the IR per change, patching it when only workloads changed.
    resolver: ir::Resolver,
    cache: Arc<SnapshotCache>,
    diagnostics: Arc<RwLock<Vec<Diagnostic>>>,
    metrics: Arc<Metrics>,
}

impl Pipeline {
    /// Reads changed files, rebuilds the IR if anything changed, and logs
    /// each diagnostic that is new since the last sync. `changed_at` is when
    /// the change was observed (the first file event of its burst).
    fn sync(&mut self, changed_at: std::time::Instant) -> anyhow::Result<()> {
        let report = match &mut self.source {
            Source::Dir { dir, .. } => dir
                .sync(&mut self.store)
                .with_context(|| format!("reading {}", dir.root().display()))?,
            Source::Kube { source, .. } => source.sync(&mut self.store),
        };
        for file in &report.files {
            tracing::info!(file, "read config");
        }
        let started = std::time::Instant::now();
        let (ir, all) = self.resolver.resolve(&self.store);
        {
            let mut current = self.diagnostics.write().expect("diagnostics lock");
            let old: BTreeSet<&Diagnostic> = current.iter().collect();
            for d in all.iter().filter(|d| !old.contains(d)) {
                if d.is_error() {
                    tracing::error!("config error: {d}");
                } else {
                    tracing::warn!("config warning: {d}");
                }
            }
            if let Source::Kube {
                source,
                status: Some(status),
            } = &self.source
            {
                status.update(source.status_targets(), &all);
            }
            *current = all;
        }
        let clusters = ir.clusters.len();
        let virtual_hosts = ir.virtual_hosts.len();
        self.cache.set_ir_changed_at(ir, changed_at);
        self.metrics
            .observe_translation(TranslationStage::Resolve, started.elapsed());
        if report.changed {
            let patched = self.resolver.patched();
            tracing::info!(clusters, virtual_hosts, patched, "configuration changed");
        }
        Ok(())
    }
}

/// The status writer's view of the xDS server's NACKs (for `Programmed`).
fn nack_feed(registry: Arc<Registry>) -> NackFeed {
    NackFeed {
        changes: registry.answers(),
        current: Box::new(move || {
            registry
                .current_nacks()
                .into_iter()
                .map(|n| ProxyNack {
                    proxy: n.node_id,
                    type_name: n.type_url.short_name().to_string(),
                    message: n.message,
                    objects: n.objects,
                })
                .collect()
        }),
    }
}

/// Replaces certificates at their half-life: wakes at the earliest rotation
/// time (at least every 30 s; every second while none is issued) and makes every stream recompute its
/// snapshot, which issues the new certificates; only SDS changes are sent.
async fn rotate(certs: Arc<sextant::ca::WorkloadCerts>, cache: Arc<SnapshotCache>) {
    loop {
        let now = std::time::SystemTime::now();
        let wait = certs
            .next_rotation()
            .and_then(|at| at.duration_since(now).ok())
            // Nothing issued yet: look again soon.
            .unwrap_or(Duration::from_secs(1))
            .clamp(Duration::from_millis(200), Duration::from_secs(30));
        tokio::time::sleep(wait).await;
        match certs.rotate_due(std::time::SystemTime::now()) {
            Ok(0) => {}
            Ok(_) => cache.refresh(),
            Err(err) => tracing::error!("cannot rotate workload certificates: {err}"),
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let edges = Arc::new(sextant::edges::EdgeStore::new(Duration::from_secs(
        args.edge_window_seconds,
    )));
    let metrics = Arc::new(Metrics::new().with_edges(edges.clone()));
    let kube_client = if args.kube {
        Some(
            kube::Client::try_default()
                .await
                .context("connecting to Kubernetes (in-cluster config or KUBECONFIG)")?,
        )
    } else {
        None
    };
    let trust_domain = sextant::ca::TrustDomain::new(&args.trust_domain)
        .map_err(|e| anyhow::anyhow!("--trust-domain: {e}"))?;
    let mut cache = SnapshotCache::new(TranslateOptions {
        connect_timeout: Duration::from_millis(args.connect_timeout_ms),
        root_namespace: args.root_namespace.clone(),
        trust_domain: trust_domain.as_str().to_string(),
    })
    .with_metrics(metrics.clone());
    let certs = if args.no_mtls {
        None
    } else {
        let config = sextant::ca::CaConfig {
            trust_domain,
            user_root: match (&args.ca_cert, &args.ca_key) {
                (Some(cert), Some(key)) => Some(sextant::ca::UserRoot {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            ..Default::default()
        };
        let ca = match &kube_client {
            Some(client) if config.user_root.is_none() => {
                let secret = sextant::ca::secret_store::SecretStore::new(
                    client.clone(),
                    &args.ca_namespace,
                    &args.ca_secret,
                );
                let ca = secret.load_or_create(&config).await.with_context(|| {
                    format!(
                        "loading the CA from Secret {}/{}",
                        args.ca_namespace, args.ca_secret
                    )
                })?;
                tracing::info!(
                    secret = %format!("{}/{}", args.ca_namespace, args.ca_secret),
                    trust_domain = ca.trust_domain().as_str(),
                    "certificate authority ready (created on first start, read back afterwards)"
                );
                ca
            }
            _ => {
                let ca = sextant::ca::CertificateAuthority::load_or_generate(&args.ca_dir, &config)
                    .with_context(|| format!("loading the CA from {}", args.ca_dir.display()))?;
                tracing::info!(
                    ca_dir = %args.ca_dir.display(),
                    trust_domain = ca.trust_domain().as_str(),
                    "certificate authority ready (generated on first start, read back afterwards)"
                );
                ca
            }
        };
        let certs = Arc::new(sextant::ca::WorkloadCerts::new(
            ca,
            Duration::from_secs(args.cert_ttl_seconds),
        ));
        cache = cache.with_certs(certs.clone());
        Some(certs)
    };
    let tokens = if args.require_token {
        let tokens = sextant::token::TokenAuthority::load_or_generate(&args.ca_dir)
            .context("--require-token")?;
        tracing::info!(
            key = %args.ca_dir.join(sextant::token::KEY_FILE).display(),
            "ADS streams must carry a token for the identity they claim"
        );
        Some(Arc::new(tokens))
    } else {
        None
    };
    if let Some(name) = &args.test_inject_invalid_cluster {
        tracing::warn!(
            cluster = name,
            "TEST HOOK: every snapshot carries a cluster Envoy rejects"
        );
        let mut cluster =
            sextant::envoy::builders::eds_cluster(name, Default::default(), Duration::from_secs(1));
        // Envoy's proto validation requires cleanup_interval > 0.
        cluster.cleanup_interval = Some(envoy_types::pb::google::protobuf::Duration::default());
        cache.inject_for_tests(
            sextant::envoy::TypeUrl::Cluster,
            sextant::cache::Resource::encode(name.clone(), &cluster),
        );
    }
    if args.naive_baseline {
        tracing::warn!(
            "BENCHMARK ONLY: naive baseline (translation per proxy, no sharing, every type re-sent in full on each change)"
        );
        cache = cache.with_naive_baseline();
    }
    let cache = Arc::new(cache);
    if let Some(certs) = certs {
        tokio::spawn(rotate(certs, cache.clone()));
    }
    let registry = Arc::new(Registry::default());
    let ready = Arc::new(AtomicBool::new(false));
    let diagnostics = Arc::new(RwLock::new(Vec::new()));

    let xds_listener = sextant::server::bind_xds(args.xds_address)
        .with_context(|| format!("binding the xDS address {}", args.xds_address))?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("binding the admin address {}", args.admin_address))?;
    let tap = Arc::new(sextant::tap::TapHub::new());
    let admin_state = AdminState {
        tap: tap.clone(),
        edges: edges.clone(),
        cache: cache.clone(),
        registry: registry.clone(),
        ready: ready.clone(),
        diagnostics: diagnostics.clone(),
        metrics: metrics.clone(),
    };
    tokio::spawn(async move {
        if let Err(err) = axum::serve(admin_listener, admin::router(admin_state)).await {
            tracing::error!("admin server failed: {err}");
        }
    });

    let source = match (&kube_client, &args.config_dir) {
        (Some(client), _) => {
            let options = KubeOptions {
                namespaces: args.namespaces.clone(),
                istio_groups: args.watch_istio_crds,
            };
            let status = args.kube_status_writer.then(|| {
                StatusWriter::spawn(
                    client.clone(),
                    Duration::from_millis(args.status_min_interval_ms),
                    nack_feed(registry.clone()),
                )
            });
            Source::Kube {
                source: KubeSource::start(client.clone(), &options),
                status,
            }
        }
        (None, Some(config_dir)) => {
            let mut dir = YamlDir::new(config_dir);
            let (watcher, changes) = dir.watch().context("watching the config directory")?;
            Source::Dir {
                dir,
                changes,
                _watcher: watcher,
            }
        }
        (None, None) => anyhow::bail!("give --config-dir or --kube"),
    };
    let mut pipeline = Pipeline {
        source,
        store: Store::new(),
        resolver: ir::Resolver::default(),
        cache: cache.clone(),
        diagnostics,
        metrics: metrics.clone(),
    };
    // In Kubernetes mode, serve nothing before every watcher has listed once.
    if let Source::Kube { source, .. } = &mut pipeline.source {
        tracing::info!("waiting for the first list of every watched resource");
        while !source.initial_sync_done() {
            if !source.changed().await {
                anyhow::bail!("the Kubernetes watchers stopped");
            }
        }
    }
    pipeline.sync(std::time::Instant::now())?;
    ready.store(true, Ordering::Release);
    let input = match &args.config_dir {
        Some(dir) => dir.display().to_string(),
        None => "kubernetes".to_string(),
    };
    tracing::info!(
        xds = %args.xds_address,
        admin = %args.admin_address,
        input,
        "sextant is serving"
    );

    let mut access_logs = sextant::tap::AccessLogSink::new(tap, Some(cache.clone()));
    let mut metrics_sink = sextant::edges::MetricsSink::new(edges).with_telemetry(cache.clone());
    if tokens.is_some() {
        let gate = sextant::server::sink_gate::SinkGate::new(registry.clone());
        access_logs = access_logs.gated(gate.clone());
        metrics_sink = metrics_sink.gated(gate);
    }
    let mut ads = AdsService::with_metrics(cache, registry, metrics.clone()).with_keepalive(
        Duration::from_secs(args.keepalive_interval_seconds),
        Duration::from_secs(args.keepalive_timeout_seconds),
    );
    if let Some(tokens) = tokens {
        ads = ads.require_tokens(tokens);
    }
    let server = tokio::spawn(async move {
        let sinks = sextant::server::Sinks {
            access_logs: Some(access_logs),
            metrics: Some(metrics_sink),
        };
        let served = ads.serve_with_sinks(xds_listener, sinks, std::future::pending());
        if let Err(err) = served.await {
            tracing::error!("xDS server failed: {err}");
        }
    });

    let quiet = Duration::from_millis(args.debounce_quiet_ms);
    let max_wait = Duration::from_millis(args.debounce_max_ms);
    loop {
        tokio::select! {
            woke = pipeline.source.changed() => {
                if !woke {
                    anyhow::bail!("the config watcher stopped");
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
        let first_change = Instant::now();
        // Debounce: wait for `quiet` without changes, but no longer than `max_wait` in all.
        let deadline = Instant::now() + max_wait;
        while !quiet.is_zero() {
            let until = (Instant::now() + quiet).min(deadline);
            match tokio::time::timeout_at(until, pipeline.source.changed()).await {
                Ok(true) if Instant::now() < deadline => continue,
                _ => break,
            }
        }
        metrics.observe_debounce(first_change.elapsed());
        if let Err(err) = pipeline.sync(first_change.into_std()) {
            tracing::error!("{err:#}; the last good configuration stays served");
        }
        if server.is_finished() {
            break;
        }
    }
    server.abort();
    Ok(())
}

//! `sextant serve`: source → store → IR → cache → ADS, plus the admin endpoint.

use anyhow::Context;
use clap::Args;
use sextant::admin::{self, AdminState};
use sextant::cache::SnapshotCache;
use sextant::diagnostic::Diagnostic;
use sextant::ir;
use sextant::metrics::{Metrics, TranslationStage};
use sextant::server::registry::Registry;
use sextant::server::AdsService;
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
    #[arg(long)]
    config_dir: PathBuf,
    /// Address of the ADS gRPC server.
    #[arg(long, default_value = "0.0.0.0:15010")]
    xds_address: SocketAddr,
    /// Address of the admin HTTP endpoint.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
    /// Quiet period after a change before it is pushed, in ms (0: push at once).
    #[arg(long, default_value_t = 100)]
    debounce_quiet_ms: u64,
    /// Longest a burst of changes may delay a push, in ms.
    #[arg(long, default_value_t = 1000)]
    debounce_max_ms: u64,
    /// Upstream connect timeout of every cluster, in ms.
    #[arg(long, default_value_t = 10_000)]
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
    /// TEST ONLY: add a cluster with this name that Envoy rejects (a zero
    /// cleanup interval) to every snapshot, to see a real NACK end to end.
    #[arg(long, hide = true)]
    test_inject_invalid_cluster: Option<String>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

/// The input side: the directory, the store, and where results go.
struct Pipeline {
    dir: YamlDir,
    store: Store,
    cache: Arc<SnapshotCache>,
    diagnostics: Arc<RwLock<Vec<Diagnostic>>>,
    metrics: Arc<Metrics>,
}

impl Pipeline {
    /// Reads changed files, rebuilds the IR if anything changed, and logs
    /// each diagnostic that is new since the last sync. `changed_at` is when
    /// the change was observed (the first file event of its burst).
    fn sync(&mut self, changed_at: std::time::Instant) -> anyhow::Result<()> {
        let report = self
            .dir
            .sync(&mut self.store)
            .with_context(|| format!("reading {}", self.dir.root().display()))?;
        for file in &report.files {
            tracing::info!(file, "read config file");
        }
        let started = std::time::Instant::now();
        let (ir, all) = ir::resolve(&self.store);
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
            *current = all;
        }
        let clusters = ir.clusters.len();
        let virtual_hosts = ir.virtual_hosts.len();
        self.cache.set_ir_changed_at(ir, changed_at);
        self.metrics
            .observe_translation(TranslationStage::Resolve, started.elapsed());
        if report.changed {
            tracing::info!(clusters, virtual_hosts, "configuration changed");
        }
        Ok(())
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
    let metrics = Arc::new(Metrics::new());
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
        let ca = sextant::ca::CertificateAuthority::load_or_generate(&args.ca_dir, &config)
            .with_context(|| format!("loading the CA from {}", args.ca_dir.display()))?;
        tracing::info!(
            ca_dir = %args.ca_dir.display(),
            trust_domain = ca.trust_domain().as_str(),
            "certificate authority ready (generated on first start, read back afterwards)"
        );
        let certs = Arc::new(sextant::ca::WorkloadCerts::new(
            ca,
            Duration::from_secs(args.cert_ttl_seconds),
        ));
        cache = cache.with_certs(certs.clone());
        Some(certs)
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
    let cache = Arc::new(cache);
    if let Some(certs) = certs {
        tokio::spawn(rotate(certs, cache.clone()));
    }
    let registry = Arc::new(Registry::default());
    let ready = Arc::new(AtomicBool::new(false));
    let diagnostics = Arc::new(RwLock::new(Vec::new()));

    let xds_listener = tokio::net::TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("binding the xDS address {}", args.xds_address))?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("binding the admin address {}", args.admin_address))?;
    let tap = Arc::new(sextant::tap::TapHub::new());
    let admin_state = AdminState {
        tap: tap.clone(),
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

    let mut pipeline = Pipeline {
        dir: YamlDir::new(&args.config_dir),
        store: Store::new(),
        cache: cache.clone(),
        diagnostics,
        metrics: metrics.clone(),
    };
    let (_watcher, mut changes) = pipeline
        .dir
        .watch()
        .context("watching the config directory")?;
    pipeline.sync(std::time::Instant::now())?;
    ready.store(true, Ordering::Release);
    tracing::info!(
        xds = %args.xds_address,
        admin = %args.admin_address,
        config_dir = %args.config_dir.display(),
        "sextant is serving"
    );

    let access_logs = sextant::tap::AccessLogSink::new(tap, Some(cache.clone()));
    let ads = AdsService::with_metrics(cache, registry, metrics.clone());
    let server = tokio::spawn(async move {
        let served =
            ads.serve_with_access_logs(xds_listener, Some(access_logs), std::future::pending());
        if let Err(err) = served.await {
            tracing::error!("xDS server failed: {err}");
        }
    });

    let quiet = Duration::from_millis(args.debounce_quiet_ms);
    let max_wait = Duration::from_millis(args.debounce_max_ms);
    loop {
        tokio::select! {
            woke = changes.recv() => {
                if woke.is_none() {
                    anyhow::bail!("the config directory watcher stopped");
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
        let first_change = Instant::now();
        // Debounce: wait for `quiet` without changes, but no longer than `max_wait` in all.
        let deadline = Instant::now() + max_wait;
        while !quiet.is_zero() {
            let until = (Instant::now() + quiet).min(deadline);
            match tokio::time::timeout_at(until, changes.recv()).await {
                Ok(Some(())) if Instant::now() < deadline => continue,
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

//! What a load run measured: serializable as JSON (`--json`) and printed
//! as one table, with the naive baseline's ratios when both modes ran.

use super::proxy::Protocol;
use super::stats::Percentiles;
use serde::Serialize;
use std::fmt::Write as _;

/// Which server ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Sextant as it serves: per-class translation, shared encoded bytes,
    /// only changed resources sent.
    Shared,
    /// The benchmark-only naive baseline (`serve --naive-baseline`).
    NaiveBaseline,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Shared => "sextant",
            Mode::NaiveBaseline => "naive baseline",
        }
    }
}

/// Encoded resource bytes received by all proxies, by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TypeBytes {
    /// Clusters.
    pub cds: u64,
    /// ClusterLoadAssignments.
    pub eds: u64,
    /// Listeners.
    pub lds: u64,
    /// RouteConfigurations.
    pub rds: u64,
}

impl TypeBytes {
    /// From per-type counters in [`super::proxy::TYPES`] order.
    pub fn from_array(b: [u64; 4]) -> Self {
        TypeBytes {
            cds: b[0],
            eds: b[1],
            lds: b[2],
            rds: b[3],
        }
    }

    /// All four types.
    pub fn total(&self) -> u64 {
        self.cds + self.eds + self.lds + self.rds
    }
}

/// Time until every proxy had ACKed every type.
#[derive(Clone, Debug, Serialize)]
pub struct ColdSync {
    /// Proxies that ACKed a response of every type (all of them, or the
    /// run fails with a timeout).
    pub proxies_synced: usize,
    /// From the first connection attempt to the last proxy's sync, in seconds.
    pub seconds: f64,
    /// Each proxy's time to sync, from the same start.
    pub per_proxy: Percentiles,
    /// Bytes received during the sync.
    pub bytes: TypeBytes,
    /// Server CPU seconds spent, if its process is known.
    pub server_cpu_seconds: Option<f64>,
}

/// One config change scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    /// `endpoint_change`, `weight_change` or `rolling_update`.
    pub name: String,
    /// What was changed, in words.
    pub change: String,
    /// From each file rewrite to each proxy's receipt of the resource
    /// reflecting it (one sample per changed resource per proxy).
    pub convergence: Percentiles,
    /// Bytes all proxies received from the first rewrite until the
    /// server was quiet again.
    pub bytes: TypeBytes,
    /// Server CPU seconds over the same span, if its process is known.
    pub server_cpu_seconds: Option<f64>,
}

/// The server's resource use over a run (absent for a server whose process
/// id is unknown).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerUse {
    /// User + system CPU seconds over the whole run (start-up included).
    pub cpu_seconds: Option<f64>,
    /// Peak RSS (`VmHWM`), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// RSS with the world loaded and no proxy connected, bytes.
    pub rss_idle_bytes: Option<u64>,
    /// RSS once every proxy synced, bytes.
    pub rss_synced_bytes: Option<u64>,
    /// (RSS synced − RSS idle) / proxies, bytes: the cost of a connected
    /// stream, including its share of the per-class snapshots built for them.
    pub rss_per_stream_bytes: Option<u64>,
}

/// One mode's run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Which server.
    pub mode: Mode,
    /// SotW or delta.
    pub protocol: Protocol,
    /// Simulated proxies.
    pub proxies: usize,
    /// Services of the world.
    pub services: usize,
    /// Namespaces (proxies are spread over them).
    pub namespaces: usize,
    /// Endpoints (WorkloadEntries).
    pub endpoints: usize,
    /// Outbound clusters each proxy gets.
    pub clusters: usize,
    /// Cold sync.
    pub cold_sync: ColdSync,
    /// The change scenarios, in order.
    pub scenarios: Vec<ScenarioReport>,
    /// The server's CPU and memory.
    pub server: ServerUse,
}

/// Baseline ÷ Sextant for one figure.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// What is compared.
    pub metric: String,
    /// Sextant's figure.
    pub sextant: f64,
    /// The naive baseline's figure.
    pub baseline: f64,
    /// `baseline / sextant` (how many times more the baseline costs);
    /// `None` when Sextant's figure is 0.
    pub ratio: Option<f64>,
}

/// Everything a `sextant-load` invocation measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// CPUs the machine has (`available_parallelism`).
    pub cpus: usize,
    /// The command line.
    pub command: String,
    /// One run per mode.
    pub runs: Vec<RunReport>,
    /// Baseline ÷ Sextant, when both ran.
    pub ratios: Vec<Ratio>,
}

/// The comparable figures of a run: (metric, value).
fn figures(run: &RunReport) -> Vec<(String, f64)> {
    let mut out = vec![
        ("cold sync, s".to_string(), run.cold_sync.seconds),
        (
            "cold sync, MB received".to_string(),
            mb(run.cold_sync.bytes.total()),
        ),
    ];
    for s in &run.scenarios {
        out.push((format!("{}: p50 ms", s.name), s.convergence.p50_ms));
        out.push((format!("{}: p99 ms", s.name), s.convergence.p99_ms));
        out.push((format!("{}: max ms", s.name), s.convergence.max_ms));
        for (t, b) in [
            ("CDS", s.bytes.cds),
            ("EDS", s.bytes.eds),
            ("LDS", s.bytes.lds),
            ("RDS", s.bytes.rds),
        ] {
            out.push((format!("{}: {t} bytes", s.name), b as f64));
        }
        if let Some(cpu) = s.server_cpu_seconds {
            out.push((format!("{}: server CPU s", s.name), cpu));
        }
    }
    let u = &run.server;
    for (name, v) in [
        ("server CPU s (whole run)", u.cpu_seconds),
        ("server peak RSS MB", u.peak_rss_bytes.map(mb)),
        ("server RSS idle MB", u.rss_idle_bytes.map(mb)),
        ("server RSS synced MB", u.rss_synced_bytes.map(mb)),
        (
            "RSS per stream KB",
            u.rss_per_stream_bytes.map(|b| b as f64 / 1024.0),
        ),
    ] {
        if let Some(v) = v {
            out.push((name.to_string(), v));
        }
    }
    out
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Baseline ÷ Sextant for every figure both runs have.
pub fn ratios(sextant: &RunReport, baseline: &RunReport) -> Vec<Ratio> {
    let theirs = figures(baseline);
    figures(sextant)
        .into_iter()
        .filter_map(|(metric, ours)| {
            let (_, base) = theirs.iter().find(|(m, _)| *m == metric)?;
            Some(Ratio {
                ratio: (ours != 0.0).then(|| base / ours),
                metric,
                sextant: ours,
                baseline: *base,
            })
        })
        .collect()
}

fn number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Report {
    /// The table: one row per figure, one column per run, and the
    /// baseline ratio when both modes ran.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let Some(first) = self.runs.first() else {
            return out;
        };
        let _ = writeln!(
            out,
            "{} {:?} proxies, {} services in {} namespaces, {} endpoints, {} clusters per proxy ({} CPUs)",
            first.proxies,
            first.protocol,
            first.services,
            first.namespaces,
            first.endpoints,
            first.clusters,
            self.cpus
        );
        for s in &first.scenarios {
            let _ = writeln!(out, "  {}: {}", s.name, s.change);
        }
        let columns: Vec<Vec<(String, f64)>> = self.runs.iter().map(figures).collect();
        let mut header = format!("{:<34}", "figure");
        for run in &self.runs {
            let _ = write!(header, " {:>16}", run.mode.label());
        }
        if !self.ratios.is_empty() {
            let _ = write!(header, " {:>10}", "baseline ÷");
        }
        let _ = writeln!(out, "{header}");
        for (metric, _) in &columns[0] {
            let mut line = format!("{metric:<34}");
            for column in &columns {
                let v = column.iter().find(|(m, _)| m == metric).map(|(_, v)| *v);
                let _ = write!(line, " {:>16}", v.map_or("-".to_string(), number));
            }
            if let Some(r) = self.ratios.iter().find(|r| &r.metric == metric) {
                let _ = write!(
                    line,
                    " {:>10}",
                    r.ratio.map_or("-".to_string(), |x| format!("{x:.1}x"))
                );
            }
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

//! Some of the `process_*` metrics of the Prometheus client libraries, read
//! from `/proc/<this pid>` at each scrape: what the server costs. Set
//! against `sextant_connected_proxies`, the growth of resident memory
//! between two proxy counts divided by the growth in proxies is the memory
//! per connected proxy (the shared snapshots are in both readings).

use crate::procfs;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Renders `process_cpu_seconds_total` (user plus system CPU time, seconds),
/// `process_resident_memory_bytes` (`VmRSS`), `process_peak_resident_memory_bytes`
/// (`VmHWM`), `process_open_fds` and `process_max_fds` (the soft
/// `RLIMIT_NOFILE`) for this process, with the names and
/// meanings of the Prometheus client libraries' process collectors (the
/// peak is ours). A series whose source cannot be read (no `/proc`) is left
/// out of that scrape rather than shown as 0.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pid = std::process::id();
        if let Ok(sample) = procfs::sample(pid) {
            let cpu = ConstCounter::new(sample.cpu.as_secs_f64());
            cpu.encode(encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent, in seconds",
                Some(&Unit::Seconds),
                cpu.metric_type(),
            )?)?;
            for (name, help, bytes) in [
                (
                    "process_resident_memory",
                    "Resident memory size, in bytes",
                    sample.rss_bytes,
                ),
                (
                    "process_peak_resident_memory",
                    "Peak resident memory size since the process started, in bytes",
                    sample.peak_rss_bytes,
                ),
            ] {
                gauge(&mut encoder, name, help, Some(&Unit::Bytes), bytes)?;
            }
        }
        if let Ok(open) = procfs::open_fds(pid) {
            let help = "Number of open file descriptors";
            gauge(&mut encoder, "process_open_fds", help, None, open as u64)?;
        }
        if let Some(max) = max_fds() {
            let help = "Maximum number of open file descriptors (the soft limit)";
            gauge(&mut encoder, "process_max_fds", help, None, max)?;
        }
        Ok(())
    }
}

/// Encodes one gauge `name` (with `unit`'s suffix) of value `value`.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)
}

/// The soft limit on this process's open descriptors (`RLIMIT_NOFILE`), or
/// `None` when unlimited or unreadable: each connected proxy holds one.
#[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` on every target
fn max_fds() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the value we own.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (read && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

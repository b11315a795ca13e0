//! `sextant synth`: writes a synthetic mesh as a config directory.

use anyhow::Context;
use clap::Args;
use sextant::synth::{generate, WorldSpec};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of services.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Number of namespaces (services are spread over them round-robin);
    /// default: one per 100 services.
    #[arg(long)]
    namespaces: Option<usize>,
    /// Ports per service (80, then 8080, 8081, ...).
    #[arg(long, default_value_t = 2)]
    ports: usize,
    /// WorkloadEntries (endpoints) per service.
    #[arg(long, default_value_t = 3)]
    endpoints: usize,
    /// DestinationRule subsets per service (by a `version` label).
    #[arg(long, default_value_t = 2)]
    subsets: usize,
    /// Percentage of services with a VirtualService (header match,
    /// weighted subsets, retries, timeout).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u8).range(0..=100))]
    routed_percent: u8,
    /// Seed: the same arguments and seed always write the same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory to write (one `ns-<k>.yaml` per namespace); created if missing.
    #[arg(long, short)]
    output: PathBuf,
    /// Write into a directory that already has files, first removing the
    /// `*.yaml` / `*.yml` files directly in it.
    #[arg(long)]
    force: bool,
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let spec = WorldSpec {
        namespaces: args
            .namespaces
            .unwrap_or_else(|| args.services.div_ceil(100).max(1)),
        services: args.services,
        ports_per_service: args.ports,
        endpoints_per_service: args.endpoints,
        subsets: args.subsets,
        routed_percent: args.routed_percent,
        seed: args.seed,
    };
    spec.check().map_err(anyhow::Error::msg)?;
    prepare(&args.output, args.force)?;
    let generated = generate(&spec);
    let mut bytes = 0;
    for (name, text) in &generated.files {
        let path = args.output.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        bytes += text.len();
    }
    let c = generated.counts;
    println!(
        "{}: {} files, {} bytes: {} services, {} workload entries, {} destination rules, {} virtual services ({} clusters)",
        args.output.display(),
        generated.files.len(),
        bytes,
        c.services,
        c.workload_entries,
        c.destination_rules,
        c.virtual_services,
        c.clusters
    );
    Ok(())
}

/// Creates `dir`, or checks that it is empty (or, with `force`, removes
/// its YAML files), so that no file of an earlier world stays mixed in.
fn prepare(dir: &Path, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let yaml = path.is_file()
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
        match (force, yaml) {
            (true, true) => std::fs::remove_file(&path)
                .with_context(|| format!("removing {}", path.display()))?,
            (true, false) => {}
            (false, _) => anyhow::bail!(
                "{} is not empty; pass --force to replace its YAML files",
                dir.display()
            ),
        }
    }
    Ok(())
}

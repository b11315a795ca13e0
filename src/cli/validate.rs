//! `sextant validate` and `sextant translate`: offline checks.

use anyhow::Context;
use clap::Args;
use sextant::diagnostic::Diagnostic;
use sextant::ir::{self, Ir};
use sextant::proxy::ProxyClass;
use sextant::source::yaml_dir::YamlDir;
use sextant::store::Store;
use sextant::translate::{self, render::translation_json, TranslateOptions};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The config directory.
    dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// The config directory.
    dir: PathBuf,
    /// Namespace of the proxy to translate for (short names resolve in it).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Labels of the proxy's workload, `k=v,k2=v2` (they pick its Sidecar).
    #[arg(long, default_value = "")]
    labels: String,
    /// Translate for a proxy that has a mesh certificate (its clusters to
    /// workloads with sidecars originate mutual TLS).
    #[arg(long)]
    mtls: bool,
}

/// Loads a directory once: the IR and every diagnostic (file, world, IR).
pub fn load(dir: &PathBuf) -> anyhow::Result<(Ir, Vec<Diagnostic>)> {
    let mut store = Store::new();
    YamlDir::new(dir)
        .sync(&mut store)
        .with_context(|| format!("reading {}", dir.display()))?;
    let (ir, mut diagnostics) = ir::resolve(&store);
    let mut per_class =
        translate::diagnostics_for_every_namespace(&ir, &TranslateOptions::default());
    store.locate(&mut per_class);
    diagnostics.extend(per_class);
    diagnostics.sort();
    diagnostics.dedup();
    Ok((ir, diagnostics))
}

pub fn run_validate(args: ValidateArgs) -> anyhow::Result<()> {
    let (ir, diagnostics) = load(&args.dir)?;
    for d in &diagnostics {
        println!("{}: {d}", if d.is_error() { "error" } else { "warning" });
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    println!(
        "{}: {} clusters, {} virtual hosts, {errors} errors, {} warnings",
        args.dir.display(),
        ir.clusters.len(),
        ir.virtual_hosts.len(),
        diagnostics.len() - errors
    );
    if errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}

pub fn run_translate(args: TranslateArgs) -> anyhow::Result<()> {
    let (ir, _) = load(&args.dir)?;
    let options = TranslateOptions::default();
    let labels = super::parse_labels(&args.labels)?;
    let class = ProxyClass::of(
        &ir,
        &args.namespace,
        &labels,
        &options.root_namespace,
        args.mtls,
    );
    let json = translation_json(&ir, &class, &options);
    use std::io::Write;
    // A closed pipe (`sextant translate DIR | head`) is not an error.
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", serde_json::to_string_pretty(&json)?) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

//! `sextant crds`.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write one file per CRD (`<plural>.<group>.yaml`) and a
    /// `kustomization.yaml` listing them into this directory, instead of
    /// printing every CRD to stdout as one multi-document YAML stream.
    #[arg(long)]
    output_dir: Option<PathBuf>,
}

pub fn run(args: CrdsArgs) -> anyhow::Result<()> {
    let Some(dir) = args.output_dir else {
        print!("{}", sextant::crds::bundle_yaml()?);
        return Ok(());
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in sextant::crds::files()? {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

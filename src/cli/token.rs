//! `sextant token`: a token that proves a workload's namespace and service
//! account to `sextant serve --require-token` (see [`sextant::token`]).

use anyhow::Context;
use clap::Args;
use sextant::token::TokenAuthority;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Namespace of the workload.
    #[arg(long, default_value = "default", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    namespace: String,
    /// Service account of the workload.
    #[arg(long, default_value = "default", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    service_account: String,
    /// Lifetime of the token, in seconds (at most ten years).
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=315_360_000))]
    ttl_seconds: u64,
    /// The CA directory of the `sextant serve` that will check the token
    /// (its signing key, `xds-token.key`, lives there and is generated on
    /// first use).
    #[arg(long, default_value = ".sextant/ca")]
    ca_dir: PathBuf,
    /// Write to this file (mode 0600) instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let authority = TokenAuthority::load_or_generate(&args.ca_dir)?;
    let token = authority.issue(
        &args.namespace,
        &args.service_account,
        Duration::from_secs(args.ttl_seconds),
        SystemTime::now(),
    )?;
    match args.output {
        Some(path) => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            // `mode` applies only to a new file; an existing one is narrowed too.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} mode 0600", path.display()))?;
            writeln!(file, "{token}").with_context(|| format!("writing {}", path.display()))?;
        }
        None => println!("{token}"),
    }
    Ok(())
}

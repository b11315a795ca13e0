//! Subcommands of the `sextant` binary.

mod bootstrap;
mod crds;
mod proxy_config;
mod proxy_status;
mod serve;
mod synth;
mod tap;
mod token;
mod validate;

use clap::{Parser, Subcommand};

/// Sextant: a small service-mesh control plane for stock Envoy sidecars.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a config directory (or, with --kube, a cluster) to Envoy proxies over ADS (SotW and delta).
    Serve(serve::ServeArgs),
    /// Check a config directory offline; exits 1 when it has errors.
    Validate(validate::ValidateArgs),
    /// Print the Envoy resources generated for a config directory, as JSON.
    Translate(validate::TranslateArgs),
    /// Print a ready Envoy bootstrap (YAML) for one workload.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Show, per connected proxy and type, whether it is SYNCED, NOT_SENT, STALE or NACKED.
    ProxyStatus(proxy_status::ProxyStatusArgs),
    /// Show a connected proxy's configuration; `secret`: its SPIFFE certificate.
    ProxyConfig(proxy_config::ProxyConfigArgs),
    /// Write a synthetic mesh (deterministic by seed) as a config directory,
    /// for benchmarks and load tests.
    Synth(synth::SynthArgs),
    /// Print a token that proves a workload's namespace and service account
    /// to `serve --require-token` (give it to `bootstrap --token-file`).
    Token(token::TokenArgs),
    /// Print the CustomResourceDefinitions of Sextant's kinds (multi-document
    /// YAML), or write them into a directory.
    Crds(crds::CrdsArgs),
    /// Print live requests to a service (from the sidecars' access logs).
    Tap(tap::TapArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve::run(args),
            Command::Validate(args) => validate::run_validate(args),
            Command::Translate(args) => validate::run_translate(args),
            Command::Bootstrap(args) => bootstrap::run(args),
            Command::ProxyStatus(args) => proxy_status::run(args),
            Command::ProxyConfig(args) => proxy_config::run(args),
            Command::Synth(args) => synth::run(args),
            Command::Token(args) => token::run(args),
            Command::Crds(args) => crds::run(args),
            Command::Tap(args) => tap::run(args),
        }
    }
}

/// Parses `k=v,k2=v2` (as `--labels` takes it).
pub(crate) fn parse_labels(
    text: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("--labels: {pair:?} is not key=value"),
        })
        .collect()
}

/// `GET http://<admin><path>` with `query` on Sextant's admin endpoint.
///
/// # Errors
/// One naming the URL when the request fails or the answer is not a
/// success (with the body the server gave, e.g. "no connected proxy has
/// node id ...").
pub(crate) async fn admin_get(
    admin: std::net::SocketAddr,
    path: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<reqwest::Response> {
    use anyhow::Context;
    let url = format!("http://{admin}{path}");
    let response = reqwest::Client::new()
        .get(&url)
        .query(query)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!(
            "GET {url}: {status}: {}",
            response.text().await.unwrap_or_default().trim()
        );
    }
    Ok(response)
}

/// [`admin_get`] of a JSON answer, on a runtime of its own (for the
/// commands that make one request).
pub(crate) fn admin_json(
    admin: std::net::SocketAddr,
    path: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        admin_get(admin, path, query)
            .await?
            .json()
            .await
            .with_context(|| format!("GET http://{admin}{path}: not JSON"))
    })
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::Parser;

    /// Keepalive seconds out of 1..=86400 are refused with the flag named
    /// (a timer beyond the clock's range would panic in the server).
    #[test]
    fn keepalive_seconds_out_of_range_are_refused_with_the_flag_named() {
        let serve = |flag: &str, value: &str| {
            Cli::try_parse_from(["sextant", "serve", "--config-dir", "d", flag, value])
        };
        for flag in [
            "--keepalive-interval-seconds",
            "--keepalive-timeout-seconds",
        ] {
            assert!(serve(flag, "86400").is_ok(), "{flag} 86400");
            for bad in ["0", "86401", "18446744073709551615"] {
                let err = serve(flag, bad).expect_err(bad).to_string();
                assert!(
                    err.contains(flag) && err.contains(bad),
                    "{flag} {bad}: {err}"
                );
            }
        }
    }
}

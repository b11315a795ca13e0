//! `sextant proxy-status`: the `/debug/syncz` table of a running server.

use clap::Args;
use serde_json::Value;
use sextant::envoy::TypeUrl;
use std::net::SocketAddr;

#[derive(Debug, Args)]
pub struct ProxyStatusArgs {
    /// The admin address of the running `sextant serve`.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
}

pub fn run(args: ProxyStatusArgs) -> anyhow::Result<()> {
    let syncz = super::admin_json(args.admin_address, "/debug/syncz", &[])?;
    print!("{}", render(&syncz));
    Ok(())
}

/// One line per proxy with a column per type, then one line per NACK.
fn render(syncz: &Value) -> String {
    let proxies = syncz["proxies"].as_array().cloned().unwrap_or_default();
    let width = proxies
        .iter()
        .filter_map(|p| p["node_id"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(0)
        .max(4);
    let mut out = format!("{:width$}", "NAME");
    for t in TypeUrl::ALL {
        out.push_str(&format!("  {:9}", t.short_name()));
    }
    out.push('\n');
    let mut nacks = Vec::new();
    for proxy in &proxies {
        let node = proxy["node_id"].as_str().unwrap_or("?");
        out.push_str(&format!("{node:width$}"));
        for t in TypeUrl::ALL {
            let name = t.short_name();
            out.push_str(&format!("  {:9}", proxy[name].as_str().unwrap_or("?")));
            let nack = &proxy[format!("{name}_nack")];
            if let Some(message) = nack["message"].as_str() {
                let objects: Vec<&str> = nack["objects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.as_str())
                    .collect();
                let from = if objects.is_empty() {
                    String::new()
                } else {
                    format!(" (from {})", objects.join(", "))
                };
                nacks.push(format!("{node} {name} NACK: {message}{from}"));
            }
        }
        out.push('\n');
    }
    if proxies.is_empty() {
        out.push_str("(no proxy is connected)\n");
    }
    for nack in nacks {
        out.push_str(&nack);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn renders_one_row_per_proxy_and_the_nacks() {
        let syncz = json!({"proxies": [{
            "node_id": "reviews-v1.default", "CDS": "SYNCED", "EDS": "SYNCED", "LDS": "STALE", "RDS": "NACKED",
            "RDS_nack": {"message": "duplicate domain", "objects": ["VirtualService shop/cart"]}
        }]});
        let table = render(&syncz);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("NAME") && lines[0].contains("CDS") && lines[0].contains("RDS")
        );
        assert!(
            lines[1].starts_with("reviews-v1.default")
                && lines[1].contains("NACKED")
                && lines[1].contains("STALE")
        );
        assert_eq!(
            lines[2],
            "reviews-v1.default RDS NACK: duplicate domain (from VirtualService shop/cart)"
        );
    }
}

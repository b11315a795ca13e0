//! `sextant proxy-config secret <node-id>`: a connected proxy's mesh
//! identity and certificate, from the admin endpoint (never keys).

use clap::{Args, Subcommand};
use serde_json::Value;
use std::net::SocketAddr;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Args)]
pub struct ProxyConfigArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// The SDS secrets of a proxy: its SPIFFE ID, certificate serial and validity.
    Secret {
        /// The proxy's node id.
        node_id: String,
        /// The admin address of the running `sextant serve`.
        #[arg(long, default_value = "127.0.0.1:15014")]
        admin_address: SocketAddr,
    },
}

pub fn run(args: ProxyConfigArgs) -> anyhow::Result<()> {
    let What::Secret {
        node_id,
        admin_address,
    } = args.what;
    let answer = super::admin_json(admin_address, "/debug/certs", &[("proxy", &node_id)])?;
    print!("{}", render(&answer));
    Ok(())
}

/// istioctl's shape: one line per secret with its type, state, serial and expiry.
fn render(answer: &Value) -> String {
    let mut out = format!(
        "{:<10} {:<12} {:<8} {:<34} {:<22} {}\n",
        "RESOURCE", "TYPE", "STATUS", "SERIAL NUMBER", "NOT AFTER", "SPIFFE ID"
    );
    let Some(id) = answer["spiffe_id"].as_str() else {
        match answer["no_certificate_because"].as_str() {
            Some(why) => out.push_str(&format!("(no certificate: {why})\n")),
            None => out.push_str("(no certificate: mutual TLS is off (serve --no-mtls))\n"),
        }
        return out;
    };
    let cert = &answer["certificate"];
    let not_after = cert["not_after"]
        .as_i64()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into());
    let sds = answer["sds"].as_str().unwrap_or("NOT_SENT");
    let status = |issued: bool| match (issued, sds) {
        (false, _) => "PENDING",
        (true, "SYNCED") => "ACTIVE",
        (true, "STALE") => "WARMING",
        (true, "NACKED") => "NACKED",
        (true, _) => "ISSUED",
    };
    out.push_str(&format!(
        "{:<10} {:<12} {:<8} {:<34} {:<22} {id}\n",
        "default",
        "Cert Chain",
        status(!cert.is_null()),
        cert["serial"].as_str().unwrap_or("-"),
        not_after
    ));
    out.push_str(&format!(
        "{:<10} {:<12} {:<8}\n",
        "ROOTCA",
        "CA",
        status(answer["root_pem"].is_string())
    ));
    if sds == "NOT_SENT" {
        out.push_str(
            "(ISSUED: the proxy has not asked for its secrets: nothing it received \
             needs a certificate yet, e.g. no inbound listener and no meshed destination)\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn the_table_names_the_identity_and_never_a_key() {
        let text = render(&json!({
            "spiffe_id": "spiffe://cluster.local/ns/default/sa/b",
            "sds": "SYNCED",
            "certificate": {"serial": "abc123", "not_after": 1_900_000_000u64},
            "root_pem": "-----BEGIN CERTIFICATE-----",
        }));
        assert!(text.contains("2030-03-17T17:46:40Z"), "{text}");
        assert!(
            text.contains("spiffe://cluster.local/ns/default/sa/b"),
            "{text}"
        );
        assert!(text.contains("abc123") && text.contains("ACTIVE"), "{text}");
        assert!(!text.contains("PRIVATE"));
        let unasked = render(&json!({
            "spiffe_id": "spiffe://cluster.local/ns/default/sa/b",
            "sds": "NOT_SENT",
            "certificate": {"serial": "abc123", "not_after": 1_900_000_000u64},
            "root_pem": "-----BEGIN CERTIFICATE-----",
        }));
        assert!(
            unasked.contains("ISSUED") && !unasked.contains("ACTIVE"),
            "{unasked}"
        );
        let none = render(&json!({
            "spiffe_id": null,
            "no_certificate_because": "it claims ns/default/sa/b at 127.0.1.9, but no Pod or WorkloadEntry has that IP",
        }));
        assert!(
            none.contains("no certificate: it claims ns/default/sa/b at 127.0.1.9"),
            "{none}"
        );
    }
}

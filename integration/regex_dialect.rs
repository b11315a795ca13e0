//! End to end (handed case 002): Sextant's regex check agrees with a real
//! Envoy about which regexes it compiles, including RE2's program-size limit.
//! Each regex goes into a static route of a bootstrap checked by
//! `envoy --mode validate`, so no process keeps running.

mod harness;

use sextant::store::re2::re2_compatible;
use std::process::Command;

const CORPUS: &[&str] = &[
    ".*",
    "^/api/v[0-9]+/users/[^/]+$",
    "[a-z]{1,20}",
    "\\w+@\\w+\\.com",
    "(foo|bar|baz|qux)+/.*",
    ".{1,30}",
    "\\p{L}+",
    "[^/]{1,30}",
    "[a-zA-Z0-9]{1,30}",
    "é{1,30}",
    "a{1,40}",
    "(ab){1,15}",
    "a{1,50}",
    "(ab){1,20}",
    "\\w{1,30}",
    "(a|b|c|d){1,200}",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
    "^(?!/internal).*",
    "(a)\\1",
    "(?<=x)y",
];

fn envoy_accepts(regex: &str, dir: &std::path::Path, base_id: u32) -> (bool, String) {
    let config = serde_json::json!({
        "static_resources": {"listeners": [{
            "name": "regex-check",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "regex_check",
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                    "route_config": {"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
                        {"match": {"safe_regex": {"regex": regex}}, "direct_response": {"status": 200}}
                    ]}]}
                }
            }]}]
        }]}
    });
    let path = dir.join(format!("regex-{base_id}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    let output = Command::new(harness::envoy_binary())
        .args([
            "--mode",
            "validate",
            "--base-id",
            &base_id.to_string(),
            "-c",
        ])
        .arg(&path)
        .output()
        .expect("running envoy --mode validate");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_string(),
    )
}

#[test]
fn regex_verdicts_match_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let base = u32::from(harness::free_port());
    let mut disagreements = Vec::new();
    for (i, regex) in CORPUS.iter().enumerate() {
        let (envoy_ok, envoy_says) = envoy_accepts(regex, dir.path(), base * 100 + i as u32);
        let ours = re2_compatible(regex);
        if envoy_ok != ours.is_ok() {
            disagreements.push(format!(
                "{regex:?}: envoy {} ({envoy_says}), sextant {ours:?}",
                if envoy_ok { "accepts" } else { "rejects" }
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "verdicts differ:\n{}",
        disagreements.join("\n")
    );
}

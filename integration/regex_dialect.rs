//! End to end (handed case 002): Sextant's regex check agrees with a real
//! Envoy about which regexes it compiles, including RE2's program-size limit.
//! Each regex goes into a static route of a bootstrap checked by
//! `envoy --mode validate`, so no process keeps running.

use crate::harness;

use sextant::store::re2::re2_compatible;
use std::process::Command;

const CORPUS: &[&str] = &[
    "(?i)[a-z]{1,40}",
    "(?i)\\x{17F}",
    "(?s).{1,40}",
    "(abc|abd|abe){1,8}",
    "/(?:x{2}){1,20}",
    "/(?<n>a)",
    "/(?P<n>a)",
    "/(?i)[a-z]{1,40}",
    "/(?i)\\pL",
    "/(?i)\\x{17F}",
    "/(?i)k{1,30}",
    "/(?i)straße{1,10}",
    "/(?i)ǅ",
    "/(?s).{1,30}",
    "/(?s).{1,40}",
    "/(?s).{1,60}",
    "/(abc|abd|abe){1,8}",
    "/(a|b|c|d){1,10}",
    "/.{1,20}",
    "/.{1,32}",
    "/.{1,36}",
    "/.{1,40}",
    "/[[:^alpha:]]",
    "/[[:alpha:]]{1,30}",
    "/[\\b]",
    "/[\\p{Greek}\\p{Cyrillic}]{1,4}",
    "/[\\x{100}-\\x{200}]",
    "/[\\x{80}-\\x{10FFFF}]{1,20}",
    "/[^a]{1,10}",
    "/[^a]{1,20}",
    "/[^a]{1,30}",
    "/[^a]{1,40}",
    "/[a[bc]]",
    "/[α-ω]{1,20}",
    "/[α-ω]{1,30}",
    "/[α-ω]{1,35}",
    "/[α-ω]{1,40}",
    "/[а-я]{1,40}",
    "/[ア-ン]{1,20}",
    "/[ア-ン]{1,30}",
    "/[😀-🙏]{1,10}",
    "/[😀-🙏]{1,25}",
    "/\\%",
    "/\\0",
    "/\\8",
    "/\\C",
    "/\\D{1,20}",
    "/\\D{1,30}",
    "/\\PL{1,2}",
    "/\\Q.*\\E",
    "/\\S{1,10}",
    "/\\S{1,30}",
    "/\\W{1,10}",
    "/\\W{1,30}",
    "/\\_",
    "/\\b\\w+\\b",
    "/\\cA",
    "/\\d{1,40}",
    "/\\e",
    "/\\pL",
    "/\\pL+",
    "/\\pL{1,2}",
    "/\\pL{1,3}",
    "/\\pN{1,30}",
    "/\\pN{1,3}",
    "/\\pZ",
    "/\\p{Greek}",
    "/\\p{Greek}{1,3}",
    "/\\p{Greek}{1,6}",
    "/\\p{Han}{1,3}",
    "/\\p{Latin}{1,3}",
    "/\\p{Lu}{1,2}",
    "/\\p{Sc}{1,5}",
    "/\\w{1,25}",
    "/\\x{10FFFF}",
    "/\\x{10FFFF}{1,20}",
    "/\\x{1F600}",
    "/\\x{263A}",
    "/\\x{41}",
    "/\\x{80}",
    "/\\x{D800}",
    "/\\x{FFFD}",
    "/\\x{FFFE}",
    "/\\x{FFFF}",
    "/\\x{FF}",
    "/\\z",
    "/a{,5}",
    "/a{1,20}b{1,20}c{1,20}",
    "/é{1,30}",
    "/é{1,48}",
    "/ÿ{1,40}",
    "/😀{1,20}",
    "[\\x{100}-\\x{200}]",
    "\\0",
    "\\C",
    "\\Q.*\\E",
    "\\d{1,40}",
    "a{,5}",
    "ÿ{1,40}",
    "😀{1,20}",
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
    // Envoy validations in parallel, a few at a time (each is a short process).
    let verdicts: Vec<(bool, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = CORPUS
            .chunks(CORPUS.len().div_ceil(4))
            .enumerate()
            .map(|(chunk, regexes)| {
                let dir = dir.path();
                scope.spawn(move || {
                    regexes
                        .iter()
                        .enumerate()
                        .map(|(i, regex)| {
                            envoy_accepts(regex, dir, base * 1000 + (chunk * 250 + i) as u32)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut disagreements = Vec::new();
    for (regex, (envoy_ok, envoy_says)) in CORPUS.iter().zip(verdicts) {
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

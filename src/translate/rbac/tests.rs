//! Golden tests of AuthorizationPolicy → RBAC filters, plus assertions that
//! spell out what the cases are about.
//!
//! Every `testdata/rbac/in/<case>.yaml` is loaded (parse, store, IR), the
//! policies of a fixed workload (namespace `default`, labels `app=backend`,
//! root namespace `istio-system`) are selected with
//! [`policies_for`](crate::ir::policies_for), and the selected policies
//! (IR), [`http_rbac_filters`] and [`network_rbac_filters`] are rendered
//! to `testdata/rbac/out/<case>.json`. Set `SEXTANT_UPDATE_GOLDEN=1` to
//! rewrite the outputs, then review the diff.

use super::*;
use crate::envoy::json::to_json;
use crate::ir::authz::{AuthzRule, Pattern, Values};
use crate::ir::{self, policies_for, Ir};
use crate::model::{Kind, ObjectKey};
use crate::source::parse::parse_documents;
use crate::store::Store;
use envoy_types::pb::envoy::config::rbac::v3::Rbac;
use prost::Message;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Set to `1` to rewrite the golden outputs instead of comparing.
const UPDATE_ENV: &str = "SEXTANT_UPDATE_GOLDEN";
/// Stat prefix of the golden network filters (Istio's).
const TCP_STAT_PREFIX: &str = "tcp.";

fn testdata(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/translate/testdata/rbac")
        .join(dir)
}

fn case_names(dir: &str, ext: &str) -> BTreeSet<String> {
    std::fs::read_dir(testdata(dir))
        .expect("testdata directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Loads a case as the file source would, with its parse diagnostics. Only
/// `fail-closed*` cases may have any.
fn load(case: &str) -> (Ir, Vec<String>) {
    let text = std::fs::read_to_string(testdata("in").join(format!("{case}.yaml")))
        .unwrap_or_else(|e| panic!("case {case}: {e}"));
    let file = format!("{case}.yaml");
    let parsed = parse_documents(&file, &text);
    let problems: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        case.starts_with("fail-closed") || problems.is_empty(),
        "case {case}: the input does not load cleanly:\n{}",
        problems.join("\n")
    );
    let mut store = Store::new();
    store.apply(&file, parsed);
    let (world, duplicates) = store.world();
    assert!(duplicates.is_empty(), "case {case}: {duplicates:?}");
    (ir::build(&world), problems)
}

/// The golden workload's policies.
fn selected(ir: &Ir) -> Vec<&AuthzPolicy> {
    let labels = [("app".to_string(), "backend".to_string())].into();
    policies_for(
        &ir.authorization_policies,
        "default",
        &labels,
        "istio-system",
    )
}

fn render(case: &str) -> Value {
    let (ir, diagnostics) = load(case);
    let policies = selected(&ir);
    let json = |v| to_json(v).expect("generated protos render");
    let mut out = json!({
        "policies": policies,
        "http_filters": http_rbac_filters(&policies).iter().map(json).collect::<Vec<_>>(),
        "network_filters": network_rbac_filters(&policies, TCP_STAT_PREFIX)
            .iter()
            .map(|f| to_json(f).expect("generated protos render"))
            .collect::<Vec<_>>(),
    });
    if !diagnostics.is_empty() {
        out["diagnostics"] = json!(diagnostics);
    }
    out
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON renders");
    text.push('\n');
    text
}

fn first_difference(expected: &str, actual: &str) -> String {
    let lines = expected.lines().zip(actual.lines());
    match lines.enumerate().find(|(_, (e, a))| e != a) {
        Some((i, (e, a))) => format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1),
        None => "one text is longer".into(),
    }
}

#[test]
fn golden_rbac_filters_match_their_outputs() {
    let update = std::env::var(UPDATE_ENV).is_ok_and(|v| v == "1");
    let inputs = case_names("in", "yaml");
    let outputs = case_names("out", "json");
    let mut failures = Vec::new();
    for case in outputs.difference(&inputs) {
        failures.push(format!(
            "{case}: out/{case}.json has no input in/{case}.yaml"
        ));
    }
    for case in &inputs {
        let actual = pretty(&render(case));
        let path = testdata("out").join(format!("{case}.json"));
        if update {
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Err(_) => failures.push(format!(
                "{case}: no out/{case}.json; run with {UPDATE_ENV}=1 to write it"
            )),
            Ok(expected) if expected != actual => failures.push(format!(
                "{case}: differs from out/{case}.json at {}\n  (if intended, run with {UPDATE_ENV}=1 and review the diff)",
                first_difference(&expected, &actual)
            )),
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------
// What the cases are about, spelled out on the JSON.

/// `(filter name, RBAC action, policy names)` of each filter of a case.
fn filters(case: &str, key: &str) -> Vec<(String, String, Vec<String>)> {
    let out = render(case);
    out[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let rules = &f["typed_config"]["rules"];
            let names = rules["policies"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let action = rules["action"].as_str().unwrap_or("ALLOW").to_string();
            (f["name"].as_str().unwrap().to_string(), action, names)
        })
        .collect()
}

fn actions(case: &str, key: &str) -> Vec<String> {
    filters(case, key).into_iter().map(|(_, a, _)| a).collect()
}

#[test]
fn deny_comes_before_allow_and_audit_before_both() {
    assert_eq!(
        actions("deny-by-path-beats-allow", "http_filters"),
        ["DENY", "ALLOW"]
    );
    assert_eq!(actions("audit", "http_filters"), ["LOG", "DENY"]);
    assert_eq!(actions("audit", "network_filters"), ["LOG", "DENY"]);
    let (name, _, policies) = &filters("allow-by-principal", "http_filters")[0];
    assert_eq!(name, "envoy.filters.http.rbac");
    assert_eq!(policies, &["ns[default]-policy[frontend-only]-rule[0]"]);
}

#[test]
fn no_policy_means_no_filter() {
    assert!(filters("selector-not-matching", "http_filters").is_empty());
    assert!(filters("selector-not-matching", "network_filters").is_empty());
}

#[test]
fn allow_nothing_has_a_policy_that_never_matches() {
    let out = render("allow-nothing");
    let policy = &out["http_filters"][0]["typed_config"]["rules"]["policies"]
        ["ns[default]-policy[allow-nothing]-rule[0]"];
    assert_eq!(policy["permissions"][0], json!({"not_rule": {"any": true}}));
    assert_eq!(policy["principals"][0], json!({"not_id": {"any": true}}));
}

#[test]
fn an_empty_rule_matches_everything() {
    let out = render("allow-all");
    let policy = &out["http_filters"][0]["typed_config"]["rules"]["policies"]
        ["ns[default]-policy[allow-all]-rule[0]"];
    assert_eq!(
        policy["permissions"],
        json!([{"and_rules": {"rules": [{"any": true}]}}])
    );
    assert_eq!(
        policy["principals"],
        json!([{"and_ids": {"ids": [{"any": true}]}}])
    );
}

#[test]
fn the_root_namespace_applies_mesh_wide_and_by_selector() {
    let (ir, _) = load("root-namespace");
    let names: Vec<&str> = selected(&ir).iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "istio-system/backends-from-mesh",
            "istio-system/mesh-deny-plaintext"
        ]
    );
}

#[test]
fn an_invalid_policy_denies_everything_it_selects() {
    let (ir, diagnostics) = load("fail-closed");
    let policies = selected(&ir);
    assert_eq!(policies.len(), 1);
    let policy = policies[0];
    assert_eq!(policy.action, AuthzAction::Deny);
    assert_eq!(policy.rules, [AuthzRule::default()]);
    let reason = policy.fail_closed.as_deref().unwrap();
    assert!(
        reason.contains("spec.rules[0].to[0].operation.paths[0]"),
        "{reason}"
    );
    assert!(
        diagnostics.iter().any(|d| d.contains("paths[0]")),
        "{diagnostics:?}"
    );
    for key in ["http_filters", "network_filters"] {
        let f = filters("fail-closed", key);
        assert_eq!(f.len(), 1, "{key}");
        assert_eq!(f[0].1, "DENY");
    }
}

#[test]
fn tcp_drops_allow_rules_with_http_fields_and_widens_deny_rules() {
    let allow = filters("tcp-allow-http-fields", "network_filters");
    assert_eq!(allow[0].0, "envoy.filters.network.rbac");
    assert_eq!(allow[0].2, ["ns[default]-policy[mixed]-rule[1]"]);
    let http = filters("tcp-allow-http-fields", "http_filters");
    assert_eq!(http[0].2.len(), 2);

    let out = render("tcp-deny-http-fields");
    let tcp = &out["network_filters"][0]["typed_config"];
    assert_eq!(tcp["stat_prefix"], "tcp.");
    let policy = &tcp["rules"]["policies"]["ns[default]-policy[no-batch-writes]-rule[0]"];
    // Only the port is left of the operation, only the namespace of the peer.
    assert_eq!(
        policy["permissions"],
        json!([{"and_rules": {"rules": [{"or_rules": {"rules": [{"destination_port": 5432}]}}]}}])
    );
    let ids = policy["principals"][0]["and_ids"]["ids"]
        .as_array()
        .unwrap();
    assert_eq!(ids.len(), 1);
    assert!(!tcp.to_string().contains("x-write"));
    assert!(!tcp.to_string().contains(":method"));
}

// ---------------------------------------------------------------------------
// Properties of the functions themselves.

fn policy(name: &str, action: AuthzAction, rules: Vec<AuthzRule>) -> AuthzPolicy {
    AuthzPolicy {
        name: format!("default/{name}"),
        namespace: "default".into(),
        selector: None,
        action,
        rules,
        fail_closed: None,
        origin: ObjectKey {
            kind: Kind::AuthorizationPolicy,
            namespace: "default".into(),
            name: name.into(),
        },
    }
}

fn path_rule(path: &str) -> AuthzRule {
    AuthzRule {
        to: vec![vec![Field::Paths(Values {
            values: vec![Pattern::parse(path)],
            not_values: Vec::new(),
        })]],
        ..AuthzRule::default()
    }
}

#[test]
fn output_does_not_depend_on_input_order() {
    let all: Vec<AuthzPolicy> = (0..12)
        .map(|i| policy(&format!("p{i}"), AuthzAction::Deny, vec![path_rule("/x")]))
        .collect();
    let forward: Vec<&AuthzPolicy> = all.iter().collect();
    let backward: Vec<&AuthzPolicy> = all.iter().rev().collect();
    let encode = |p: &[&AuthzPolicy]| {
        let http: Vec<Vec<u8>> = http_rbac_filters(p)
            .iter()
            .map(|f| f.encode_to_vec())
            .collect();
        let tcp: Vec<Vec<u8>> = network_rbac_filters(p, "tcp.")
            .iter()
            .map(|f| f.encode_to_vec())
            .collect();
        (http, tcp)
    };
    assert_eq!(encode(&forward), encode(&backward));
}

#[test]
fn policies_of_one_action_share_one_filter() {
    let a = policy(
        "a",
        AuthzAction::Allow,
        vec![path_rule("/a"), path_rule("/b")],
    );
    let b = policy("b", AuthzAction::Allow, vec![]);
    let filters = http_rbac_filters(&[&a, &b]);
    assert_eq!(filters.len(), 1);
    let Some(
        envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType::TypedConfig(any),
    ) = &filters[0].config_type
    else {
        panic!("typed config")
    };
    let rbac = envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac::decode(
        any.value.as_slice(),
    )
    .unwrap();
    let rules: Rbac = rbac.rules.unwrap();
    let mut names: Vec<&String> = rules.policies.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ns[default]-policy[a]-rule[0]",
            "ns[default]-policy[a]-rule[1]",
            "ns[default]-policy[b]-rule[0]"
        ]
    );
}

use super::*;
use crate::model::{AuthorizationPolicy, Kind};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn policy(namespace: &str, name: &str, selector: Option<&[(&str, &str)]>) -> AuthzPolicy {
    AuthzPolicy {
        name: format!("{namespace}/{name}"),
        namespace: namespace.into(),
        selector: selector.map(labels),
        action: AuthzAction::Allow,
        rules: Vec::new(),
        fail_closed: None,
        origin: ObjectKey {
            kind: Kind::AuthorizationPolicy,
            namespace: namespace.into(),
            name: name.into(),
        },
    }
}

#[test]
fn policies_are_selected_as_istio_selects_them() {
    let all = vec![
        policy("istio-system", "mesh", None),
        policy("istio-system", "mesh-backends", Some(&[("app", "backend")])),
        policy("shop", "namespace", None),
        policy("shop", "backend", Some(&[("app", "backend")])),
        policy(
            "shop",
            "backend-v2",
            Some(&[("app", "backend"), ("v", "2")]),
        ),
        policy("shop", "empty-selector", Some(&[])),
        policy("bank", "namespace", None),
    ];
    let names = |ns: &str, l: &[(&str, &str)], root: &str| -> Vec<String> {
        policies_for(&all, ns, &labels(l), root)
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    assert_eq!(
        names("shop", &[("app", "backend"), ("v", "1")], "istio-system"),
        [
            "istio-system/mesh",
            "istio-system/mesh-backends",
            "shop/namespace",
            "shop/backend",
            "shop/empty-selector"
        ]
    );
    assert_eq!(
        names("bank", &[("app", "web")], "istio-system"),
        ["istio-system/mesh", "bank/namespace"]
    );
    // Without the root namespace, its policies are ordinary namespace policies.
    assert_eq!(names("bank", &[], "elsewhere"), ["bank/namespace"]);
    assert!(names("other", &[], "elsewhere").is_empty());
}

#[test]
fn patterns_and_cidrs_parse_like_istio() {
    assert_eq!(Pattern::parse("*"), Pattern::Any);
    assert_eq!(Pattern::parse("a*"), Pattern::Prefix("a".into()));
    assert_eq!(Pattern::parse("*a"), Pattern::Suffix("a".into()));
    assert_eq!(Pattern::parse("a"), Pattern::Exact("a".into()));
    assert_eq!(Cidr::parse("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
    assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.1.2.3/8");
    assert_eq!(
        Cidr::parse("2001:db8::1").unwrap().to_string(),
        "2001:db8::1/128"
    );
    assert!(Cidr::parse("10.1.2").is_none());
}

fn resolved(yaml: &str) -> (AuthzPolicy, Vec<crate::diagnostic::Diagnostic>) {
    let object: AuthorizationPolicy = serde_yaml_ng::from_str(yaml).unwrap();
    let key = ObjectKey {
        kind: Kind::AuthorizationPolicy,
        namespace: "default".into(),
        name: "p".into(),
    };
    let mut diagnostics = Vec::new();
    (resolve(&key, &object, &mut diagnostics), diagnostics)
}

#[test]
fn fields_keep_istios_order_and_conditions_their_kind() {
    let (p, diagnostics) = resolved(
        r#"
metadata: {name: p}
spec:
  action: DENY
  rules:
    - from:
        - source: {ipBlocks: ["10.0.0.0/8"], namespaces: [a], principals: [b]}
      to:
        - operation: {ports: ["80"], paths: [/x], methods: [GET], hosts: [h]}
      when:
        - {key: "request.headers[X-A]", values: [v]}
        - {key: destination.port, notValues: ["81"]}
"#,
    );
    assert!(diagnostics.is_empty());
    assert_eq!(p.action, AuthzAction::Deny);
    let rule = &p.rules[0];
    let kinds = |fields: &[Field]| -> Vec<String> {
        fields
            .iter()
            .map(|f| {
                serde_json::to_value(f)
                    .unwrap()
                    .as_object()
                    .unwrap()
                    .keys()
                    .next()
                    .unwrap()
                    .clone()
            })
            .collect()
    };
    assert_eq!(
        kinds(&rule.from[0]),
        ["principals", "namespaces", "source_ips"]
    );
    assert_eq!(kinds(&rule.to[0]), ["hosts", "methods", "paths", "ports"]);
    assert_eq!(kinds(&rule.when), ["header", "ports"]);
    assert!(matches!(&rule.when[0], Field::Header { name, .. } if name == "x-a"));
    assert!(rule.when[0].is_peer() && rule.when[0].is_http_only());
    assert!(!rule.when[1].is_peer() && !rule.when[1].is_http_only());
    assert_eq!(p.rule_name(0), "ns[default]-policy[p]-rule[0]");
}

#[test]
fn the_fail_closed_annotation_and_unreadable_values_deny_everything() {
    let (p, diagnostics) = resolved(
        r#"
metadata:
  name: p
  annotations: {sextant.dev/fail-closed: "spec.rules[0]: bad"}
spec:
  selector: {matchLabels: {app: x}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
"#,
    );
    assert!(diagnostics.is_empty());
    assert_eq!(p.action, AuthzAction::Deny);
    assert_eq!(p.rules, [AuthzRule::default()]);
    assert_eq!(p.fail_closed.as_deref(), Some("spec.rules[0]: bad"));
    assert_eq!(p.selector, Some(labels(&[("app", "x")])));

    // Validation rejects these first; resolution must still not fail open.
    let (p, diagnostics) = resolved(
        r#"
metadata: {name: p}
spec:
  rules: [{from: [{source: {ipBlocks: [nonsense]}}]}]
"#,
    );
    assert_eq!(p.action, AuthzAction::Deny);
    assert_eq!(p.rules, [AuthzRule::default()]);
    assert!(p.fail_closed.unwrap().contains("nonsense"));
    assert_eq!(diagnostics.len(), 1);
}

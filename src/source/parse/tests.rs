//! Tests of YAML → objects: which documents are read, skipped or rejected,
//! and which diagnostics (with which field paths) come out.

use super::*;
use crate::diagnostic::Severity;
use crate::store::re2;

const FILE: &str = "mesh/reviews.yaml";

fn key(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn keys(parsed: &ParsedFile) -> Vec<ObjectKey> {
    parsed.objects.iter().map(|o| o.key()).collect()
}

fn errors(parsed: &ParsedFile) -> Vec<&Diagnostic> {
    parsed.diagnostics.iter().filter(|d| d.is_error()).collect()
}

/// A VirtualService for host `reviews` whose first route's YAML is `http0`
/// (indented for the list item under `http:`), followed by a plain second route.
fn virtual_service(http0: &str) -> String {
    format!(
        "apiVersion: networking.sextant.dev/v1alpha1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews]
  http:
{http0}
    - route:
        - destination:
            host: reviews
"
    )
}

#[test]
fn a_multi_document_file_yields_every_object_in_file_order() {
    let text = "
# a comment before the first document
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: shop
spec:
  selector: {app: reviews}
  ports:
    - {name: http, port: 9080, targetPort: 9080}
---
---
# a document holding only a comment
---
apiVersion: networking.sextant.dev/v1alpha1
kind: DestinationRule
metadata:
  name: reviews
  namespace: shop
spec:
  host: reviews
  subsets:
    - {name: v1, labels: {version: v1}}
---
apiVersion: networking.sextant.dev/v1alpha1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: {host: reviews, subset: v1}
";
    let parsed = parse_documents(FILE, text);
    assert_eq!(parsed.diagnostics, Vec::<Diagnostic>::new());
    assert!(!parsed.unreadable);
    assert!(parsed.rejected.is_empty());
    assert_eq!(
        keys(&parsed),
        vec![
            key(Kind::Service, "shop", "reviews"),
            key(Kind::DestinationRule, "shop", "reviews"),
            // No metadata.namespace: `default`, as kubectl applies it.
            key(Kind::VirtualService, "default", "reviews"),
        ]
    );
    let Object::DestinationRule(dr) = &*parsed.objects[1] else {
        panic!("expected a DestinationRule, got {:?}", parsed.objects[1]);
    };
    assert_eq!(dr.spec.subsets[0].labels["version"], "v1");
}

#[test]
fn an_empty_file_is_readable_and_holds_nothing() {
    for text in ["", "\n", "# only a comment\n", "---\n---\n"] {
        let parsed = parse_documents(FILE, text);
        assert!(!parsed.unreadable, "{text:?}");
        assert!(parsed.objects.is_empty(), "{text:?}");
        assert!(parsed.diagnostics.is_empty(), "{text:?}");
    }
}

#[test]
fn istio_api_versions_are_accepted_for_the_networking_kinds() {
    let specs = [
        (
            Kind::VirtualService,
            "VirtualService",
            "hosts: [reviews]\n  http:\n    - route:\n        - destination: {host: reviews}",
        ),
        (Kind::DestinationRule, "DestinationRule", "host: reviews"),
        (Kind::WorkloadEntry, "WorkloadEntry", "address: 10.0.0.7"),
    ];
    let api_versions = [
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
        "networking.sextant.dev/v1alpha1",
    ];
    for (kind, kind_name, spec) in specs {
        for api_version in api_versions {
            let text = format!(
                "apiVersion: {api_version}\nkind: {kind_name}\nmetadata:\n  name: x\n  namespace: shop\nspec:\n  {spec}\n"
            );
            let parsed = parse_documents(FILE, &text);
            assert_eq!(
                parsed.diagnostics,
                Vec::<Diagnostic>::new(),
                "{api_version} {kind_name}"
            );
            assert_eq!(
                keys(&parsed),
                vec![key(kind, "shop", "x")],
                "{api_version} {kind_name}"
            );
        }
    }
}

#[test]
fn typos_in_kind_or_api_version_of_a_known_kind_are_errors() {
    // A known kind under a version that does not serve it: identified, so
    // its last good version stays served.
    let wrong_version = "apiVersion: networking.istio.io/v1beta2\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop}\nspec: {hosts: [reviews]}\n";
    let parsed = parse_documents(FILE, wrong_version);
    assert_eq!(
        parsed.rejected,
        vec![key(Kind::VirtualService, "shop", "reviews")]
    );
    assert_eq!(errors(&parsed)[0].field, "apiVersion");
    assert!(
        errors(&parsed)[0]
            .message
            .contains("networking.sextant.dev/v1alpha1"),
        "{:?}",
        errors(&parsed)
    );

    // A near-miss kind: not identifiable, so the whole file keeps its last good content.
    for text in [
        "apiVersion: networking.istio.io/v1\nkind: VirtualServices\nmetadata: {name: reviews}\nspec: {}\n",
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: Virtualservice\nmetadata: {name: reviews}\nspec: {}\n",
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: RouteRule\nmetadata: {name: reviews}\nspec: {}\n",
    ] {
        let parsed = parse_documents(FILE, text);
        assert!(parsed.unreadable, "{text}");
        assert_eq!(errors(&parsed).len(), 1, "{text}");
    }

    // metadata.namespace of the wrong type does not fall back to `default`.
    let parsed = parse_documents(
        FILE,
        "apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: 42}\n",
    );
    assert!(parsed.unreadable);
    assert!(errors(&parsed)[0]
        .message
        .contains("metadata.namespace must be a string"));
}

#[test]
fn unknown_kinds_and_api_versions_are_skipped_without_diagnostics() {
    let text = "
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: b}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews}
spec: {replicas: 3}
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [deployment.yaml]
---
apiVersion: networking.example.com/v1alpha1
kind: DestinationRule
metadata: {name: someone-elses}
spec: {host: reviews}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{port: 80}]
";
    let parsed = parse_documents(FILE, text);
    assert_eq!(parsed.diagnostics, Vec::<Diagnostic>::new());
    assert!(!parsed.unreadable);
    assert!(parsed.rejected.is_empty());
    assert_eq!(
        keys(&parsed),
        vec![key(Kind::Service, "default", "reviews")]
    );
}

#[test]
fn an_unknown_field_is_a_warning_naming_its_path_and_the_object_is_served() {
    let text = virtual_service(
        "    - retries: {attempts: 2, retryRemoteLocality: true}
      route:
        - destination: {host: reviews}
          mirrorPercent: 5",
    );
    let parsed = parse_documents(FILE, &text);
    assert_eq!(
        keys(&parsed),
        vec![key(Kind::VirtualService, "shop", "reviews")]
    );
    assert!(parsed.rejected.is_empty());
    let mut fields: Vec<&str> = parsed
        .diagnostics
        .iter()
        .inspect(|d| {
            assert_eq!(d.severity, Severity::Warning, "{d}");
            assert_eq!(d.file.as_deref(), Some(FILE));
            assert_eq!(d.object, Some(key(Kind::VirtualService, "shop", "reviews")));
        })
        .map(|d| d.field.as_str())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "spec.http[0].retries.retryRemoteLocality",
            "spec.http[0].route[0].mirrorPercent"
        ]
    );
}

#[test]
fn a_wrong_type_is_an_error_naming_its_path_and_the_object_is_rejected() {
    let text = virtual_service(
        r#"    - route:
        - destination: {host: reviews, subset: v1}
          weight: "abc""#,
    );
    let parsed = parse_documents(FILE, &text);
    assert!(parsed.objects.is_empty());
    assert!(!parsed.unreadable, "the object was identified");
    assert_eq!(
        parsed.rejected,
        vec![key(Kind::VirtualService, "shop", "reviews")]
    );
    let errors = errors(&parsed);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "spec.http[0].route[0].weight");
    assert_eq!(errors[0].file.as_deref(), Some(FILE));
    assert!(
        errors[0].to_string().starts_with(
            "mesh/reviews.yaml: VirtualService shop/reviews: spec.http[0].route[0].weight: "
        ),
        "{}",
        errors[0]
    );
}

#[test]
fn a_rejected_document_does_not_affect_its_neighbours() {
    let text = format!(
        "{}---\n{}",
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 80}]\n",
        // Port 0 fails validation, not deserialization.
        "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec:\n  ports: [{port: 0}]\n",
    );
    let parsed = parse_documents(FILE, &text);
    assert_eq!(keys(&parsed), vec![key(Kind::Service, "default", "a")]);
    assert_eq!(parsed.rejected, vec![key(Kind::Service, "default", "b")]);
    assert!(!parsed.unreadable);
    let errors = errors(&parsed);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "spec.ports[0].port");
}

#[test]
fn a_yaml_syntax_error_makes_the_file_unreadable() {
    let text = "
apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: b
spec:
  ports: [{port: 80}]
";
    let parsed = parse_documents(FILE, text);
    assert!(parsed.unreadable);
    let errors = errors(&parsed);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file.as_deref(), Some(FILE));
    assert_eq!(errors[0].object, None, "a syntax error names no object");
    assert!(
        errors[0].message.starts_with("YAML document 2: "),
        "{}",
        errors[0]
    );
}

#[test]
fn a_document_without_identity_makes_the_file_unreadable() {
    let cases = [
        (
            "no metadata.name",
            "apiVersion: v1\nkind: Service\nmetadata: {namespace: shop}\nspec: {}\n",
        ),
        ("no metadata", "apiVersion: v1\nkind: Service\nspec: {}\n"),
        (
            "empty name",
            "apiVersion: v1\nkind: Service\nmetadata: {name: ''}\nspec: {}\n",
        ),
        ("no kind", "apiVersion: v1\nmetadata: {name: a}\n"),
        ("no apiVersion", "kind: Service\nmetadata: {name: a}\n"),
        ("not a mapping", "- apiVersion: v1\n  kind: Service\n"),
    ];
    for (what, text) in cases {
        let parsed = parse_documents(FILE, text);
        assert!(parsed.unreadable, "{what}");
        assert!(parsed.objects.is_empty(), "{what}");
        assert!(
            parsed.rejected.is_empty(),
            "{what}: nothing to reject by key"
        );
        let errors = errors(&parsed);
        assert_eq!(errors.len(), 1, "{what}: {errors:?}");
        assert_eq!(errors[0].file.as_deref(), Some(FILE), "{what}");
    }
    let parsed = parse_documents(
        FILE,
        "apiVersion: v1\nkind: Service\nmetadata: {namespace: shop}\nspec: {}\n",
    );
    assert!(
        parsed.diagnostics[0].message.contains("metadata.name"),
        "{}",
        parsed.diagnostics[0]
    );
}

/// Handed case 002: a negative lookahead is PCRE, not RE2. Envoy would NACK
/// the whole RouteConfiguration, so the object must be rejected at load time
/// with an error naming the field.
#[test]
fn a_regex_re2_cannot_compile_is_rejected_with_its_field_path() {
    let text = virtual_service(
        r#"    - match:
        - uri: {regex: "^(?!/internal).*"}
      route:
        - destination: {host: reviews}"#,
    );
    let parsed = parse_documents(FILE, &text);
    assert!(parsed.objects.is_empty());
    assert_eq!(
        parsed.rejected,
        vec![key(Kind::VirtualService, "shop", "reviews")]
    );
    let errors = errors(&parsed);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "spec.http[0].match[0].uri.regex");
    assert_eq!(
        errors[0].object,
        Some(key(Kind::VirtualService, "shop", "reviews"))
    );
    assert!(errors[0].message.contains("RE2"), "{}", errors[0]);
}

#[test]
fn regexes_are_checked_in_headers_too_and_valid_re2_passes() {
    let text = virtual_service(
        r#"    - match:
        - uri: {regex: "/api/v[0-9]+/.*"}
          headers:
            x-user: {regex: "(a)\\1"}
      route:
        - destination: {host: reviews}"#,
    );
    let parsed = parse_documents(FILE, &text);
    let errors = errors(&parsed);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].field,
        "spec.http[0].match[0].headers.x-user.regex"
    );

    // RE2 syntax that must keep passing (each checked with Envoy 1.40's
    // `envoy --mode validate`).
    for good in [
        "^/api/.*$",
        "(?i)/Reviews/[a-z]+",
        "(?i:x)(?-s:.)(?U)a+",
        r"\d{1,3}",
        r"\x{41}\x41",
        "(?P<id>[0-9]+)",
        "(?<id>[0-9]+)",
        "[[:alpha:]][^[:digit:]]",
        r"\p{Greek}",
        "a|b|(c+)?",
        "(a*)*",
    ] {
        assert_eq!(re2::re2_compatible(good), Ok(()), "{good}");
    }
    // Accepted by the `regex` crate, rejected by Envoy's RE2 (so Envoy would
    // NACK the whole RouteConfiguration): look-around, back-references, the
    // flags x, R and u, \u escapes, stacked repetition operators.
    for bad in [
        "^(?!/internal).*",
        "(?=x)",
        "(?<=/api)/x",
        "(?<!x)y",
        r"(a)\1",
        "(?x) a b",
        "(?R)^x$",
        "(?u)a",
        "(?-u:a)",
        r"\u0041",
        r"\u{41}",
        r"[\U00000041-Z]",
        "a**",
        "a++",
        "a{2}{3}",
        "(unclosed",
    ] {
        assert!(re2::re2_compatible(bad).is_err(), "{bad}");
    }
    // Class set operations are refused too: RE2 would read them as plain
    // characters, which is not what the author meant.
    assert!(re2::re2_compatible("[a-z&&[^aeiou]]").is_err());
}

#[test]
fn a_string_match_must_set_exactly_one_field() {
    let text = virtual_service(
        r#"    - match:
        - uri: {exact: /a, prefix: /b}
        - uri: {}
      route:
        - destination: {host: reviews}"#,
    );
    let parsed = parse_documents(FILE, &text);
    assert!(parsed.objects.is_empty());
    assert_eq!(
        parsed.rejected,
        vec![key(Kind::VirtualService, "shop", "reviews")]
    );
    let fields: Vec<&str> = errors(&parsed).iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        ["spec.http[0].match[0].uri", "spec.http[0].match[1].uri"]
    );
    assert!(parsed.diagnostics[0].message.contains("exactly one"));
}

#[test]
fn kubernetes_kinds_are_typed_and_validated() {
    let text = r#"
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: bank}
spec:
  ports:
    - {port: 80, targetPort: 8080}
    - {port: 70000, targetPort: 0}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ledger-abc, namespace: bank}
addressType: IPv4
endpoints:
  - addresses: [10.0.0.1]
ports:
  - {port: 8080}
---
apiVersion: v1
kind: Pod
metadata: {name: ledger-1, namespace: bank}
spec:
  containers: [{name: app, image: "ledger:1"}]
status: {podIP: 10.0.0.1}
"#;
    let parsed = parse_documents(FILE, text);
    assert_eq!(
        keys(&parsed),
        vec![
            key(Kind::EndpointSlice, "bank", "ledger-abc"),
            key(Kind::Pod, "bank", "ledger-1"),
        ]
    );
    assert_eq!(parsed.rejected, vec![key(Kind::Service, "bank", "ledger")]);
    let mut fields: Vec<(Severity, &str)> = parsed
        .diagnostics
        .iter()
        .map(|d| (d.severity, d.field.as_str()))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            // A slice without the service-name label belongs to no Service.
            (Severity::Warning, "metadata.labels"),
            // Two ports need distinct names, as Kubernetes requires.
            (Severity::Error, "spec.ports[1].name"),
            (Severity::Error, "spec.ports[1].port"),
            (Severity::Error, "spec.ports[1].targetPort"),
        ]
    );
}

/// Inputs from adversarial passes that crashed or stalled the server, or that
/// passed validation and were then rejected by Envoy: each is now an error
/// naming its field (and none panics or takes long).
#[test]
fn inputs_envoy_would_reject_are_errors_naming_the_field() {
    let cases = [
        ("    - match: [{authority: {regex: '((((((((a{1000}){1000}){1000}){1000}){1000}){1000}){1000}){1000})'}}]\n      route: [{destination: {host: reviews}}]", "spec.http[0].match[0].authority.regex"),
        ("    - timeout: 0.5µs\n      route: [{destination: {host: reviews}}]", "spec.http[0].timeout"),
        ("    - timeout: 5秒\n      route: [{destination: {host: reviews}}]", "spec.http[0].timeout"),
        ("    - fault: {delay: {fixedDelay: 0s}}\n      route: [{destination: {host: reviews}}]", "spec.http[0].fault.delay.fixedDelay"),
        ("    - headers: {request: {set: {Host: x}}}\n      route: [{destination: {host: reviews}}]", "spec.http[0].headers.request.set.Host"),
        ("    - headers: {request: {remove: [':path']}}\n      route: [{destination: {host: reviews}}]", "spec.http[0].headers.request.remove[0]"),
        ("    - match: [{method: {prefix: ''}}]\n      route: [{destination: {host: reviews}}]", "spec.http[0].match[0].method.prefix"),
        ("    - match: [{uri: {regex: '/a.*'}, ignoreUriCase: true}]\n      route: [{destination: {host: reviews}}]", "spec.http[0].match[0].ignoreUriCase"),
        ("    - rewrite: {uri: b}\n      route: [{destination: {host: reviews}}]", "spec.http[0].rewrite.uri"),
        (&format!("    - directResponse: {{status: 200, body: {{string: {}}}}}", "x".repeat(5000)), "spec.http[0].directResponse.body.string"),
    ];
    for (http0, field) in cases {
        let started = std::time::Instant::now();
        let parsed = parse_documents(FILE, &virtual_service(http0));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{field}: took {:?}",
            started.elapsed()
        );
        let fields: Vec<&str> = errors(&parsed).iter().map(|d| d.field.as_str()).collect();
        assert!(fields.contains(&field), "{field}: errors {fields:?}");
        assert_eq!(
            parsed.rejected,
            vec![key(Kind::VirtualService, "shop", "reviews")]
        );
    }

    let rule = |policy: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: shop}}\nspec:\n  host: reviews\n  trafficPolicy:\n{policy}")
    };
    let cases = [
        ("    loadBalancer: {consistentHash: {maglev: {tableSize: 18446744073709551557}, httpHeaderName: x}}\n", "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize"),
        ("    loadBalancer: {consistentHash: {httpCookie: {name: ''}}}\n", "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name"),
        ("    connectionPool: {tcp: {connectTimeout: 0s}}\n", "spec.trafficPolicy.connectionPool.tcp.connectTimeout"),
        ("    outlierDetection: {interval: 0s}\n", "spec.trafficPolicy.outlierDetection.interval"),
    ];
    for (policy, field) in cases {
        let started = std::time::Instant::now();
        let parsed = parse_documents(FILE, &rule(policy));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{field}: took {:?}",
            started.elapsed()
        );
        let fields: Vec<&str> = errors(&parsed).iter().map(|d| d.field.as_str()).collect();
        assert!(fields.contains(&field), "{field}: errors {fields:?}");
    }
}

/// A ServiceEntry with `spec` (YAML lines indented under `spec:`).
fn service_entry(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: partner, namespace: shop}}
spec:
{spec}
"
    )
}

/// The (field, message) of every error of a ServiceEntry with `spec`.
fn entry_errors(spec: &str) -> Vec<(String, String)> {
    let parsed = parse_documents(FILE, &service_entry(spec));
    errors(&parsed)
        .iter()
        .map(|d| (d.field.clone(), d.message.clone()))
        .collect()
}

#[test]
fn a_valid_service_entry_loads_cleanly() {
    let parsed = parse_documents(
        FILE,
        &service_entry(
            "  hosts: [api.partner.test, \"*.cdn.partner.test\"]
  addresses: [192.0.2.0/24, 2001:db8::1]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: https, protocol: HTTPS}, {number: 80, name: http, targetPort: 8080}]
  endpoints: [{address: 192.0.2.10, ports: {http: 9090}, labels: {version: v1}}]",
        ),
    );
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(
        keys(&parsed),
        vec![key(Kind::ServiceEntry, "shop", "partner")]
    );
}

#[test]
fn service_entry_errors_name_the_field_and_the_reason() {
    let cases: &[(&str, &str, &str)] = &[
        ("  hosts: []\n  ports: [{number: 80, name: http}]", "spec.hosts", "at least one host"),
        ("  hosts: [\"*\"]\n  ports: [{number: 80, name: http}]", "spec.hosts[0]", "not allowed"),
        ("  hosts: [a.test]\n  ports: []", "spec.ports", "at least one port"),
        ("  hosts: [a.test]\n  ports: [{number: 0, name: http}]", "spec.ports[0].number", "outside 1-65535"),
        ("  hosts: [a.test]\n  ports: [{number: 80, name: a}, {number: 80, name: b}]", "spec.ports[1].number", "appears twice"),
        ("  hosts: [a.test]\n  ports: [{number: 80, name: a}, {number: 81, name: a}]", "spec.ports[1].name", "appears twice"),
        ("  hosts: [a.test]\n  ports: [{number: 80, name: a, protocol: UDP}]", "spec.ports[0].protocol", "UDP is not supported"),
        ("  hosts: [a.test]\n  addresses: [10.0.0.0/33]\n  ports: [{number: 80, name: a}]", "spec.addresses[0]", "not an IP address or CIDR"),
        ("  hosts: [a.test]\n  resolution: NONE\n  ports: [{number: 80, name: a}]\n  endpoints: [{address: 10.0.0.1}]", "spec.endpoints", "resolution NONE takes no endpoints"),
        ("  hosts: [a.test]\n  resolution: STATIC\n  ports: [{number: 80, name: a}]\n  endpoints: [{address: db.example}]", "spec.endpoints[0].address", "needs IPs"),
        ("  hosts: [\"*.a.test\"]\n  resolution: DNS\n  ports: [{number: 80, name: a}]", "spec.hosts[0]", "DNS resolution needs a name"),
        ("  hosts: [a.test]\n  resolution: DNS_ROUND_ROBIN\n  ports: [{number: 80, name: a}]\n  endpoints: [{address: x.test}, {address: y.test}]", "spec.endpoints", "at most one endpoint"),
        ("  hosts: [a.test]\n  resolution: STATIC\n  ports: [{number: 80, name: a}]\n  endpoints: [{address: 10.0.0.1, ports: {b: 80}}]", "spec.endpoints[0].ports.b", "no port named"),
        ("  hosts: [a.test]\n  resolution: DNS\n  ports: [{number: 80, name: a}]\n  workloadSelector: {labels: {app: a}}", "spec.resolution", "needs resolution STATIC"),
        ("  hosts: [a.test]\n  resolution: STATIC\n  ports: [{number: 80, name: a}]\n  endpoints: [{address: 10.0.0.1}]\n  workloadSelector: {labels: {app: a}}", "spec.workloadSelector", "not both"),
        ("  hosts: [a.test]\n  resolution: STATIC\n  ports: [{number: 80, name: a}]\n  exportTo: [\"Bad NS\"]", "spec.exportTo[0]", "not *, ., ~ or a namespace"),
    ];
    for (spec, field, reason) in cases {
        let found = entry_errors(spec);
        assert!(
            found.iter().any(|(f, m)| f == field && m.contains(reason)),
            "{spec}: expected an error at {field} saying {reason:?}, got {found:?}"
        );
    }
    // A wrong enum value is a type error naming the field; the object is rejected.
    let parsed = parse_documents(
        FILE,
        &service_entry(
            "  hosts: [a.test]\n  resolution: STATICS\n  ports: [{number: 80, name: a}]",
        ),
    );
    assert_eq!(parsed.rejected.len(), 1);
    assert!(
        errors(&parsed).iter().any(|d| d.field == "spec.resolution"),
        "{:?}",
        parsed.diagnostics
    );
}

#[test]
fn route_conditions_and_rewrites_are_checked() {
    let cases: &[(&str, &str, &str)] = &[
        ("    - match: [{sourceLabels: {\"bad key!\": x}}]\n      route: [{destination: {host: reviews}}]", "spec.http[0].match[0].sourceLabels.bad key!", "not a label key"),
        ("    - match: [{sourceNamespace: Ops}]\n      route: [{destination: {host: reviews}}]", "spec.http[0].match[0].sourceNamespace", "not a namespace name"),
        ("    - rewrite: {uriRegexRewrite: {match: \"(a\", rewrite: /b}}\n      route: [{destination: {host: reviews}}]", "spec.http[0].rewrite.uriRegexRewrite.match", "unclosed group"),
        ("    - rewrite: {uriRegexRewrite: {match: \"^/(a)$\", rewrite: \"/\\\\2\"}}\n      route: [{destination: {host: reviews}}]", "spec.http[0].rewrite.uriRegexRewrite.rewrite", "refers to capture group 2"),
        ("    - rewrite: {uri: /x, uriRegexRewrite: {match: a, rewrite: b}}\n      route: [{destination: {host: reviews}}]", "spec.http[0].rewrite.uriRegexRewrite", "not both"),
        ("    - fault: {abort: {grpcStatus: BROKEN}}\n      route: [{destination: {host: reviews}}]", "spec.http[0].fault.abort.grpcStatus", "not a gRPC status name"),
        ("    - fault: {abort: {grpcStatus: UNAVAILABLE, httpStatus: 503}}\n      route: [{destination: {host: reviews}}]", "spec.http[0].fault.abort", "not both"),
    ];
    for (http0, field, reason) in cases {
        let parsed = parse_documents(FILE, &virtual_service(http0));
        let found: Vec<(String, String)> = errors(&parsed)
            .iter()
            .map(|d| (d.field.clone(), d.message.clone()))
            .collect();
        assert!(
            found.iter().any(|(f, m)| f == field && m.contains(reason)),
            "{http0}: expected an error at {field} saying {reason:?}, got {found:?}"
        );
    }
}

/// An AuthorizationPolicy document for `default/guard` with `spec` (YAML,
/// indented under `spec:`) and `api_version`.
fn authorization_policy(api_version: &str, spec: &str) -> String {
    format!("apiVersion: {api_version}\nkind: AuthorizationPolicy\nmetadata:\n  name: guard\n  namespace: shop\nspec:\n{spec}\n")
}

/// The one AuthorizationPolicy of `parsed`, which must be a fail-closed stand-in.
fn stand_in(parsed: &ParsedFile) -> &crate::model::AuthorizationPolicy {
    use crate::model::{AuthorizationAction, Rule, FAIL_CLOSED_ANNOTATION};
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    assert_eq!(
        keys(parsed),
        [key(Kind::AuthorizationPolicy, "shop", "guard")]
    );
    let Object::AuthorizationPolicy(policy) = &*parsed.objects[0] else {
        panic!("not an AuthorizationPolicy")
    };
    assert_eq!(policy.spec.action, AuthorizationAction::DENY);
    assert_eq!(policy.spec.rules, [Rule::default()]);
    let annotations = policy.metadata.annotations.as_ref().unwrap();
    assert!(annotations.contains_key(FAIL_CLOSED_ANNOTATION));
    policy
}

#[test]
fn an_invalid_authorization_policy_fails_closed() {
    use crate::model::FAIL_CLOSED_ANNOTATION;
    // A validation error: the stand-in keeps the selector and names the field.
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.istio.io/v1",
            "  selector: {matchLabels: {app: cart}}\n  rules: [{to: [{operation: {paths: [admin]}}]}]",
        ),
    );
    let policy = stand_in(&parsed);
    let selector = &policy.spec.selector.as_ref().unwrap().match_labels;
    assert_eq!(selector.get("app").map(String::as_str), Some("cart"));
    let reason = &policy.metadata.annotations.as_ref().unwrap()[FAIL_CLOSED_ANNOTATION];
    assert!(
        reason.starts_with("spec.rules[0].to[0].operation.paths[0]: "),
        "{reason}"
    );
    assert!(errors(&parsed)
        .iter()
        .any(|d| d.field == "spec.rules[0].to[0].operation.paths[0]"
            && d.file.as_deref() == Some(FILE)));

    // A type error: the object does not deserialize; the raw selector still applies.
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.sextant.dev/v1alpha1",
            "  selector: {matchLabels: {app: cart}}\n  rules: oops",
        ),
    );
    let policy = stand_in(&parsed);
    assert!(policy.spec.selector.is_some());
    assert!(errors(&parsed).iter().any(|d| d.field == "spec.rules"));

    // A selector that is not a map of strings: no selector, the whole namespace.
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.istio.io/v1",
            "  selector: {matchLabels: {app: [cart]}}\n  rules: [{}]",
        ),
    );
    assert!(stand_in(&parsed).spec.selector.is_none());

    // An apiVersion that does not serve the kind.
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.istio.io/v1alpha1",
            "  selector: {matchLabels: {app: cart}}\n  rules: [{}]",
        ),
    );
    assert!(stand_in(&parsed).spec.selector.is_some());
    assert!(errors(&parsed).iter().any(|d| d.field == "apiVersion"));

    // A valid policy is served as written.
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.istio.io/v1",
            "  rules: [{to: [{operation: {paths: [/admin]}}]}]",
        ),
    );
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let Object::AuthorizationPolicy(policy) = &*parsed.objects[0] else {
        panic!("not an AuthorizationPolicy")
    };
    assert!(policy.metadata.annotations.is_none());
}

#[test]
fn an_unknown_field_in_a_security_policy_is_an_error() {
    let text = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
  rules:
  - frm: [{source: {principals: [nobody]}}]
    to: [{operation: {paths: [/x]}}]
";
    let parsed = parse_documents(FILE, text);
    let found = errors(&parsed);
    assert!(
        found.iter().any(|d| d.field == "spec.rules[0].frm"),
        "{:?}",
        parsed.diagnostics
    );
}

#[test]
fn kind_typos_in_the_security_groups_make_the_file_unreadable_with_a_guess() {
    for (api_version, kind, guess) in [
        (
            "security.sextant.dev/v1alpha1",
            "AuthorizationPolcy",
            "did you mean AuthorizationPolicy",
        ),
        (
            "security.istio.io/v1",
            "PeerAuthentcation",
            "did you mean PeerAuthentication",
        ),
        (
            "security.istio.io/v1",
            "Authorization",
            "in API group security.istio.io",
        ),
    ] {
        let text =
            format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{}}\n");
        let parsed = parse_documents(FILE, &text);
        assert!(parsed.unreadable, "{kind}");
        let message = parsed.diagnostics[0].to_string();
        assert!(
            message.contains(guess) && message.contains(kind),
            "{message}"
        );
    }
}

#[test]
fn kinds_of_other_groups_are_not_taken_for_typos() {
    for (api_version, kind) in [("v1", "Node"), ("v1", "Secret"), ("apps/v1", "Deployment")] {
        let text = format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\n");
        let parsed = parse_documents(FILE, &text);
        assert!(!parsed.unreadable, "{kind}");
        assert!(
            parsed.diagnostics.is_empty(),
            "{kind}: {:?}",
            parsed.diagnostics
        );
    }
}

#[test]
fn istio_kinds_sextant_does_not_implement_are_skipped_with_a_warning() {
    let text = "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: shop}
spec: {}
";
    let parsed = parse_documents(FILE, text);
    assert!(!parsed.unreadable && parsed.objects.is_empty());
    let warning = &parsed.diagnostics[0];
    assert!(!warning.is_error());
    let message = warning.to_string();
    assert!(
        message.contains("shop/jwt")
            && message.contains("RequestAuthentication")
            && message.contains("not validated"),
        "{message}"
    );
}

#[test]
fn a_custom_authorization_policy_fails_closed_with_a_clear_error() {
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.istio.io/v1",
            "  action: CUSTOM\n  provider: {name: opa}\n  rules: [{to: [{operation: {paths: [/admin]}}]}]",
        ),
    );
    stand_in(&parsed);
    assert!(errors(&parsed)
        .iter()
        .any(|d| d.field == "spec.action" && d.message.contains("CUSTOM")));
}

#[test]
fn remote_ip_blocks_are_read_and_checked() {
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.istio.io/v1",
            "  action: DENY\n  rules: [{from: [{source: {remoteIpBlocks: [203.0.113.0/24], notRemoteIpBlocks: [203.0.113.7]}}]}]",
        ),
    );
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.istio.io/v1",
            "  rules: [{from: [{source: {remoteIpBlocks: [not-a-cidr]}}]}]",
        ),
    );
    stand_in(&parsed);
    assert!(errors(&parsed)
        .iter()
        .any(|d| d.field == "spec.rules[0].from[0].source.remoteIpBlocks[0]"));
}

#[test]
fn principals_and_namespaces_that_can_never_match_are_warned_about() {
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.istio.io/v1",
            "  rules:
    - from:
        - source:
            principals:
              - spiffe://cluster.local/ns/shop/sa/cart
              - cluster.local/ns/Shop/sa/cart
              - cart
              - cluster.local/ns/shop/sa/cart
              - '*/sa/cart'
            namespaces: [Shop, shop]
      when:
        - {key: source.principal, values: [spiffe://cluster.local/ns/a/sa/b]}",
        ),
    );
    // Warnings only: the policy is served as written, as Istio would.
    assert!(errors(&parsed).is_empty(), "{:?}", parsed.diagnostics);
    assert!(parsed.objects[0].key().kind == Kind::AuthorizationPolicy);
    let warned: Vec<(&str, &str)> = parsed
        .diagnostics
        .iter()
        .map(|d| (d.field.as_str(), d.message.as_str()))
        .collect();
    let fields: Vec<&str> = warned.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        fields,
        [
            "spec.rules[0].from[0].source.principals[0]",
            "spec.rules[0].from[0].source.principals[1]",
            "spec.rules[0].from[0].source.principals[2]",
            "spec.rules[0].from[0].source.namespaces[0]",
            "spec.rules[0].when[0].values[0]",
        ],
        "{warned:#?}"
    );
    assert!(warned[0].1.contains("leave out `spiffe://`"));
    assert!(warned[1].1.contains("lower-case"));
    assert!(warned[2]
        .1
        .contains("<trust-domain>/ns/<namespace>/sa/<service-account>"));
}

#[test]
fn a_controller_written_status_is_not_an_unknown_field() {
    // As `kubectl get authorizationpolicy -o yaml` saves it from a cluster
    // where istiod wrote a status.
    let parsed = parse_documents(
        FILE,
        &format!(
            "{}status:\n  conditions: [{{type: Reconciled, status: 'True'}}]\n  observedGeneration: '3'\n",
            authorization_policy(
                "security.istio.io/v1",
                "  rules: [{to: [{operation: {paths: [/admin]}}]}]"
            )
        ),
    );
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let Object::AuthorizationPolicy(policy) = &*parsed.objects[0] else {
        panic!("not an AuthorizationPolicy")
    };
    assert!(policy.metadata.annotations.is_none(), "served as written");
}

/// A namespace pattern long enough that Envoy's RE2 program-size limit
/// would reject the RBAC regex (and with it the inbound listener, leaving
/// the policy unenforced) is an error, so the policy fails closed; a long
/// exact namespace needs no regex and is fine.
#[test]
fn namespace_patterns_too_long_for_envoys_regex_limit_fail_closed() {
    let long = "checkout-".repeat(10);
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.istio.io/v1",
            &format!("  rules: [{{from: [{{source: {{namespaces: [\"{long}*\"]}}}}]}}]"),
        ),
    );
    stand_in(&parsed);
    let found = errors(&parsed);
    assert!(
        found
            .iter()
            .any(|d| d.field == "spec.rules[0].from[0].source.namespaces[0]"
                && d.message.contains("RE2 program")),
        "{found:?}"
    );
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.istio.io/v1",
            &format!("  rules: [{{from: [{{source: {{namespaces: [\"{long}\"], principals: [\"*/sa/{long}\"]}}}}]}}]"),
        ),
    );
    assert_eq!(errors(&parsed), Vec::<&Diagnostic>::new());
}

/// `.nan` would decode to null (the default) through JSON; it is an error
/// naming the field instead, and the file keeps its last good content.
#[test]
fn nan_and_infinity_are_refused_where_they_are() {
    let text = "apiVersion: telemetry.sextant.dev/v1alpha1
kind: Telemetry
metadata: {name: mesh, namespace: istio-system}
spec:
  tracing:
    - providers: [{name: zipkin}]
      randomSamplingPercentage: .nan
";
    let parsed = parse_documents(FILE, text);
    assert!(parsed.unreadable);
    let found = errors(&parsed);
    assert!(
        found.iter().any(|d| d
            .message
            .contains("spec.tracing[0].randomSamplingPercentage is .nan or .inf")),
        "{found:?}"
    );
    // The word in a string is fine.
    let text =
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, annotations: {note: \"x.nan and .inf\"}}\nspec: {ports: [{port: 80}]}\n";
    assert_eq!(
        errors(&parse_documents(FILE, text)),
        Vec::<&Diagnostic>::new()
    );
}

/// One of our kinds under a misspelt mesh API group is an error with a
/// guess (an AuthorizationPolicy fails closed), not a silent skip; the same
/// kind name in a foreign group is still someone else's.
#[test]
fn a_misspelt_mesh_group_is_an_error_with_a_guess() {
    let parsed = parse_documents(
        FILE,
        &authorization_policy(
            "security.sextnt.dev/v1alpha1",
            "  action: DENY\n  rules: [{}]",
        ),
    );
    stand_in(&parsed);
    let found = errors(&parsed);
    assert!(
        found.iter().any(|d| d.field == "apiVersion"
            && d.message.contains("did you mean \"security.sextant.dev\"")),
        "{found:?}"
    );
    let text = "apiVersion: networking.istio.oi/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [r]}\n";
    assert!(errors(&parse_documents(FILE, text))
        .iter()
        .any(|d| d.message.contains("networking.istio.io")));
    let text = "apiVersion: networking.example.com/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {}\n";
    assert_eq!(
        errors(&parse_documents(FILE, text)),
        Vec::<&Diagnostic>::new()
    );
}

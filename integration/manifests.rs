//! Offline checks of the cluster manifests (`manifests/`) and CRDs (`crds/`).
//!
//! No Kubernetes API server runs on these machines, so `kubectl apply
//! --dry-run=server` cannot be the check. Instead:
//! - `kubectl kustomize` renders `manifests/`, `manifests/example-app/` and
//!   the optional `components/istio-crds` exactly as `kubectl apply -k` would;
//! - `kubernetes-validate --strict` checks every rendered object, CRDs
//!   included, against the Kubernetes 1.32 OpenAPI schemas it ships (offline);
//! - objects of our own kinds (which it has no schema for) are checked
//!   against our generated CRD schemas (`sextant::crds::validation_schema`);
//! - the RBAC rules, the Deployment's hardening and the example's sidecar are
//!   checked for what they must say, and the example's init container
//!   arguments are run through the real `sextant bootstrap`, whose output a
//!   real `envoy --mode validate` must accept.
//!
//! Fails (never skips) when `kubectl`, `kubernetes-validate` or `envoy` is
//! missing, with the install command.

use crate::harness;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The Kubernetes version the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.32.0";
/// How to get the validator (the README's test command installs it).
const VALIDATE_INSTALL: &str = "pip install kubernetes-validate==1.32.0";
/// How to get kubectl (with its built-in kustomize, v5).
const KUBECTL_INSTALL: &str =
    "install kubectl 1.27 or newer (Debian's kubernetes-client is too old: no kustomize v5); see https://kubernetes.io/docs/tasks/tools/";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl kustomize DIR` as parsed objects (and the raw YAML).
fn kustomize(dir: &Path) -> (String, Vec<Value>) {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("running kubectl: {e}; {KUBECTL_INSTALL}"));
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).unwrap();
    let objects = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    (yaml, objects)
}

/// `kind/name`, as kubernetes-validate names an object.
fn kind_name(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap().to_lowercase(),
        object["metadata"]["name"].as_str().unwrap()
    )
}

fn is_our_kind(object: &Value) -> bool {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    api_version.starts_with("networking.sextant.dev/")
        || api_version.starts_with("security.sextant.dev/")
        || api_version.starts_with("telemetry.sextant.dev/")
}

/// Checks every object of `yaml`: kubernetes-validate (strict) must pass each
/// Kubernetes object by name; each of our kinds must pass our CRD schema.
/// Returns how many objects each way.
fn validate_offline(yaml: &str, objects: &[Value]) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml).unwrap();
    let output = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running kubernetes-validate: {e}; {VALIDATE_INSTALL}"));
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !report.contains("ERROR") && !report.contains("FATAL"),
        "kubernetes-validate rejected the rendered manifests:\n{report}"
    );
    let validators: BTreeMap<String, jsonschema::Validator> = sextant::crds::definitions()
        .iter()
        .map(|crd| {
            let schema = sextant::crds::validation_schema(crd).unwrap();
            (
                crd.spec.names.kind.clone(),
                jsonschema::validator_for(&schema).unwrap(),
            )
        })
        .collect();
    let (mut kubernetes, mut ours) = (0, 0);
    for object in objects {
        let name = kind_name(object);
        if is_our_kind(object) {
            let validator = &validators[object["kind"].as_str().unwrap()];
            let errors: Vec<String> = validator
                .iter_errors(object)
                .map(|e| format!("{}: {e}", e.instance_path().as_str()))
                .collect();
            assert!(
                errors.is_empty(),
                "{name} does not match its CRD schema: {errors:?}"
            );
            ours += 1;
        } else {
            let passed = format!("passed for resource {name} against version 1.32");
            assert!(
                report.contains(&passed),
                "kubernetes-validate did not pass {name} (no schema?):\n{report}"
            );
            kubernetes += 1;
        }
    }
    (kubernetes, ours)
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn kubernetes_validate_is_installed_and_rejects_a_broken_object() {
    // The check below must be able to fail: a Deployment with a string
    // replica count and an unknown field is refused.
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: \"1\"\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: x, image: x}]}\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, yaml).unwrap();
    let output = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running kubernetes-validate: {e}; {VALIDATE_INSTALL}"));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "accepted a broken Deployment: {report}"
    );
    assert!(report.contains("spec.replicas"), "{report}");
}

#[test]
fn the_sextant_manifests_render_and_validate_offline() {
    let (yaml, objects) = kustomize(&repo().join("manifests"));
    let kinds: BTreeSet<String> = objects.iter().map(kind_name).collect();
    let expected: BTreeSet<String> = [
        "namespace/sextant-system",
        "serviceaccount/sextant",
        "clusterrole/sextant",
        "clusterrolebinding/sextant",
        "role/sextant",
        "rolebinding/sextant",
        "deployment/sextant",
        "service/sextant",
    ]
    .into_iter()
    .map(String::from)
    .chain(sextant::crds::definitions().iter().map(|crd| {
        format!(
            "customresourcedefinition/{}",
            crd.metadata.name.as_deref().unwrap()
        )
    }))
    .collect();
    assert_eq!(kinds, expected);
    let (kubernetes, ours) = validate_offline(&yaml, &objects);
    assert_eq!((kubernetes, ours), (expected.len(), 0));
}

#[test]
fn the_rendered_crds_are_the_generated_ones() {
    let (_, objects) = kustomize(&repo().join("manifests"));
    for crd in sextant::crds::definitions() {
        let name = crd.metadata.name.as_deref().unwrap();
        let mut rendered = find(&objects, "CustomResourceDefinition", name).clone();
        // kustomize adds the common label; the rest must be what the code generates.
        assert_eq!(
            rendered["metadata"]["labels"]["app.kubernetes.io/part-of"], "sextant",
            "{name}"
        );
        rendered["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        // Compared as CRDs, not as JSON: kustomize writes `65535.0` as `65535`.
        let rendered: CustomResourceDefinition = serde_json::from_value(rendered).unwrap();
        assert!(
            rendered == crd,
            "{name} in manifests/ is not what `sextant crds` generates; regenerate with `{}`",
            sextant::crds::REGENERATE
        );
    }
}

#[test]
fn rbac_grants_reads_status_writes_and_one_secret_only() {
    let (_, objects) = kustomize(&repo().join("manifests"));
    let cluster_role = find(&objects, "ClusterRole", "sextant");
    let mut reads: BTreeSet<String> = BTreeSet::new();
    let mut status_writes: BTreeSet<String> = BTreeSet::new();
    for rule in cluster_role["rules"].as_array().unwrap() {
        let verbs = strings(&rule["verbs"]);
        let groups = strings(&rule["apiGroups"]);
        let resources = strings(&rule["resources"]);
        assert!(rule.get("nonResourceURLs").is_none(), "{rule}");
        for item in verbs.iter().chain(&groups).chain(&resources) {
            assert_ne!(item, "*", "no wildcards: {rule}");
        }
        assert!(
            !resources.contains(&"secrets".to_string()),
            "no cluster-wide Secrets: {rule}"
        );
        let is_status = resources.iter().all(|r| r.ends_with("/status"));
        let allowed: &[&str] = if is_status {
            &["update", "patch"]
        } else {
            &["get", "list", "watch"]
        };
        assert!(
            verbs.iter().all(|v| allowed.contains(&v.as_str())),
            "verbs {verbs:?} on {resources:?}"
        );
        for group in &groups {
            for resource in &resources {
                let name = format!("{resource}.{group}");
                if is_status {
                    status_writes.insert(name);
                } else {
                    reads.insert(name);
                }
            }
        }
    }
    let mut expected_reads: BTreeSet<String> = [
        "services.",
        "pods.",
        "namespaces.",
        "endpointslices.discovery.k8s.io",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let mut expected_status = BTreeSet::new();
    for crd in sextant::crds::definitions() {
        let (plural, group) = (&crd.spec.names.plural, &crd.spec.group);
        expected_reads.insert(format!("{plural}.{group}"));
        expected_status.insert(format!("{plural}/status.{group}"));
    }
    assert_eq!(reads, expected_reads);
    assert_eq!(status_writes, expected_status);

    let role = find(&objects, "Role", "sextant");
    assert_eq!(role["metadata"]["namespace"], "sextant-system");
    let mut grants = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let names = strings(&rule["resourceNames"]);
        for resource in strings(&rule["resources"]) {
            for verb in strings(&rule["verbs"]) {
                grants.insert(format!("{verb} {resource} {}", names.join(",")));
            }
        }
    }
    let expected: BTreeSet<String> = [
        "get secrets sextant-ca",
        "update secrets sextant-ca",
        // create cannot be limited by name (Kubernetes RBAC)
        "create secrets ",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(grants, expected);
    for binding in [
        find(&objects, "ClusterRoleBinding", "sextant"),
        find(&objects, "RoleBinding", "sextant"),
    ] {
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "sextant", "namespace": "sextant-system"}])
        );
    }
}

#[test]
fn the_deployment_is_probed_limited_and_locked_down() {
    let (_, objects) = kustomize(&repo().join("manifests"));
    let deployment = find(&objects, "Deployment", "sextant");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "sextant");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert!(container["image"]
        .as_str()
        .unwrap()
        .starts_with("ghcr.io/sextant-mesh/sextant:"));
    let args = strings(&container["args"]);
    assert_eq!(&args[..2], ["serve", "--kube"]);
    assert!(
        args.contains(&"--admin-address=0.0.0.0:15014".to_string()),
        "{args:?}"
    );
    let ports: BTreeMap<String, i64> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        BTreeMap::from([("grpc-xds".into(), 15010), ("http-admin".into(), 15014)])
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http-admin");
    }
    for key in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][key][resource].is_string(),
                "{key}.{resource}"
            );
        }
    }
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));

    let service = find(&objects, "Service", "sextant");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    let service_ports: Vec<(i64, String)> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_i64().unwrap(),
                p["targetPort"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        service_ports,
        [(15010, "grpc-xds".into()), (15014, "http-admin".into())]
    );
}

/// A kustomization in a temporary directory that adds the Istio component
/// to `manifests/` (kustomize needs relative paths).
fn with_istio_component() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let up: PathBuf = dir
        .path()
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .map(|_| "..")
        .collect();
    let manifests = up.join(repo().join("manifests").strip_prefix("/").unwrap());
    let text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {}\ncomponents:\n- {}\n",
        manifests.display(),
        manifests.join("components/istio-crds").display()
    );
    std::fs::write(dir.path().join("kustomization.yaml"), text).unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[test]
fn the_istio_component_adds_read_access_and_the_flag() {
    let (_base_dir, path) = with_istio_component();
    let (yaml, objects) = kustomize(&path);
    validate_offline(&yaml, &objects);
    let (_, base) = kustomize(&repo().join("manifests"));
    let rules = |objects: &[Value]| find(objects, "ClusterRole", "sextant")["rules"].clone();
    let added: Vec<Value> = rules(&objects)
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !rules(&base).as_array().unwrap().contains(r))
        .cloned()
        .collect();
    assert_eq!(added.len(), 3, "{added:?}");
    for rule in &added {
        assert_eq!(rule["verbs"], json!(["get", "list", "watch"]));
        let group = rule["apiGroups"][0].as_str().unwrap();
        assert!(
            [
                "networking.istio.io",
                "security.istio.io",
                "telemetry.istio.io"
            ]
            .contains(&group),
            "{rule}"
        );
    }
    let args = strings(
        &find(&objects, "Deployment", "sextant")["spec"]["template"]["spec"]["containers"][0]
            ["args"],
    );
    assert_eq!(args.last().unwrap(), "--watch-istio-crds");
}

#[test]
fn the_example_app_renders_and_validates_offline() {
    let (yaml, objects) = kustomize(&repo().join("manifests/example-app"));
    let (kubernetes, ours) = validate_offline(&yaml, &objects);
    assert!(kubernetes >= 5, "{kubernetes} Kubernetes objects");
    assert_eq!(
        ours, 4,
        "PeerAuthentication, AuthorizationPolicy, VirtualService, Sidecar"
    );
    for name in ["httpbin", "sleep"] {
        let pod = &find(&objects, "Deployment", name)["spec"]["template"];
        assert_eq!(
            pod["metadata"]["labels"]["security.istio.io/tlsMode"],
            "istio"
        );
        let envoy = pod["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "envoy")
            .unwrap_or_else(|| panic!("{name} has no envoy sidecar"));
        assert_eq!(envoy["image"], "envoyproxy/envoy:v1.40.0");
        let init = &pod["spec"]["initContainers"][0];
        assert_eq!(init["args"][0], "bootstrap");
        assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
        for container in pod["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .chain([init])
        {
            let security = &container["securityContext"];
            assert_eq!(
                security["readOnlyRootFilesystem"], true,
                "{name}/{}",
                container["name"]
            );
            assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
            assert!(container["resources"]["limits"]["memory"].is_string());
        }
    }
}

/// `$(VAR)` references of a container's args, expanded as the kubelet does,
/// with `env` giving the values the downward API would.
fn expand(arg: &str, env: &BTreeMap<&str, &str>) -> String {
    let mut out = arg.to_string();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    assert!(!out.contains("$("), "unexpanded reference in {arg}");
    out
}

#[test]
fn the_example_init_container_writes_a_bootstrap_envoy_accepts() {
    let (_, objects) = kustomize(&repo().join("manifests/example-app"));
    let pod = &find(&objects, "Deployment", "httpbin")["spec"]["template"];
    let init = &pod["spec"]["initContainers"][0];
    // The downward API fields the init container reads, and what they give.
    let fields: BTreeMap<String, String> = init["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let field = e["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap();
            (e["name"].as_str().unwrap().to_string(), field.to_string())
        })
        .collect();
    let labels = &pod["metadata"]["labels"];
    let value_of = |field: &str| -> String {
        match field {
            "metadata.name" => "httpbin-7d9c8-x2k4p".into(),
            "metadata.namespace" => "sextant-demo".into(),
            "status.podIP" => "10.244.1.7".into(),
            "spec.serviceAccountName" => pod["spec"]["serviceAccountName"].as_str().unwrap().into(),
            "metadata.labels['app']" => labels["app"].as_str().unwrap().into(),
            "metadata.labels['version']" => labels["version"].as_str().unwrap().into(),
            other => panic!("unexpected downward API field {other}"),
        }
    };
    let values: BTreeMap<String, String> = fields
        .iter()
        .map(|(name, field)| (name.clone(), value_of(field)))
        .collect();
    let env: BTreeMap<&str, &str> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let output_file = dir.path().join("envoy.yaml");
    let mut args: Vec<String> = strings(&init["args"])
        .iter()
        .map(|a| expand(a, &env))
        .collect();
    // The emptyDir shared with the envoy container, here a temporary directory.
    let mount = init["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let output_arg = format!("--output={mount}/envoy.yaml");
    let position = args
        .iter()
        .position(|a| *a == output_arg)
        .expect("--output into the emptyDir");
    args[position] = format!("--output={}", output_file.display());
    let run = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "sextant {args:?} failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bootstrap: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&output_file).unwrap()).unwrap();
    let node = &bootstrap["node"];
    assert_eq!(node["id"], "httpbin-7d9c8-x2k4p.sextant-demo");
    assert_eq!(node["cluster"], "httpbin");
    let metadata = node["metadata"].to_string();
    for expected in ["sextant-demo", "10.244.1.7", "httpbin", "v1"] {
        assert!(
            metadata.contains(expected),
            "{expected} not in node metadata {metadata}"
        );
    }
    assert!(
        bootstrap.to_string().contains("sextant.sextant-system.svc"),
        "the bootstrap does not point at the sextant Service"
    );

    // The envoy container reads the same file: a real Envoy must accept it.
    let envoy = &pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "envoy")
        .unwrap()["args"];
    assert_eq!(
        strings(envoy)[..2],
        ["-c".to_string(), format!("{mount}/envoy.yaml")]
    );
    let validate = Command::new(harness::envoy_binary())
        .args(["--mode", "validate", "--base-id"])
        .arg((u32::from(harness::free_port()) * 10).to_string())
        .arg("-c")
        .arg(&output_file)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "envoy --mode validate refused the init container's bootstrap:\n{}",
        String::from_utf8_lossy(&validate.stderr)
    );
}

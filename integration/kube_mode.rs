//! End to end: `sextant serve --kube` against a thin fake Kubernetes API
//! server (integration/fake_kube: real list/watch protocol over HTTP, no
//! real API server can run here), with a real Envoy routing real HTTP to
//! real upstream processes.

use crate::fake_kube;
use crate::harness;

use fake_kube::FakeKube;
use harness::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Starts `sextant serve --kube` on the fake cluster and waits for `/readyz`.
pub(crate) async fn start_sextant(
    work: &Path,
    fake: &FakeKube,
    name: &str,
    extra: &[&str],
) -> Sextant {
    let xds: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
    command
        .args(["serve", "--kube", "--debounce-quiet-ms", "50"])
        .args(["--xds-address", &xds.to_string()])
        .args(["--admin-address", &admin.to_string()])
        .args(extra)
        .env("KUBECONFIG", fake.kubeconfig(work))
        .env_remove("KUBERNETES_SERVICE_HOST");
    Sextant::spawn(work, command, xds, admin, name).await
}

fn service(name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port}]},
    })
}

/// An EndpointSlice of Service `service` with one ready endpoint per upstream.
fn endpoint_slice(service: &str, upstreams: &[&Upstream]) -> Value {
    let port = upstreams[0].addr.port();
    let endpoints: Vec<Value> = upstreams
        .iter()
        .map(|u| json!({"addresses": [u.addr.ip().to_string()], "conditions": {"ready": true}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abc"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

/// A VirtualService sending all of `host` to `destination`.
fn redirect_all(host: &str, destination: &str, weight: Value) -> Value {
    json!({
        "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "VirtualService",
        "metadata": {"name": host, "namespace": "default"},
        "spec": {"hosts": [host], "http": [{"route": [
            {"destination": {"host": destination}, "weight": weight}
        ]}]},
    })
}

/// Per type (`CDS`, `EDS`, `LDS`, `RDS`), the version last sent to the only proxy.
async fn sent_versions(sextant: &Sextant) -> Value {
    let proxies = sextant.admin_json("/debug/proxies").await;
    let types = &proxies["proxies"][0]["types"];
    let mut out = serde_json::Map::new();
    for name in ["CDS", "EDS", "LDS", "RDS"] {
        let version = &types[name]["sent_version"];
        assert!(version.is_string(), "no {name} version sent: {proxies}");
        out.insert(name.to_string(), version.clone());
    }
    Value::Object(out)
}

/// A config dump section without Envoy's `last_updated` times.
fn timeless(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.remove("last_updated");
            for v in map.values_mut() {
                *v = timeless(v.take());
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = timeless(v.take());
            }
        }
        _ => {}
    }
    value
}

/// How many times the fake was asked to list `path` (not watch it).
fn lists_of(fake: &FakeKube, path: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| {
            r.strip_prefix("GET ")
                .is_some_and(|r| r.split('?').next() == Some(path) && !r.contains("watch=true"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_objects_route_traffic_endpoint_changes_touch_only_eds_and_410_keeps_config() {
    let work = tempfile::tempdir().unwrap();
    let reviews = Upstream::start(work.path(), "127.0.1.3", "reviews", "v1");
    let ratings1 = Upstream::start(work.path(), "127.0.1.4", "ratings", "r1");
    // A second ratings pod on another IP, same port (as pods of one Deployment).
    let ratings2 = Upstream::start_at(
        work.path(),
        "127.0.1.5",
        ratings1.addr.port(),
        "ratings",
        "r2",
    );

    let fake = FakeKube::start().await;
    fake.apply(service("reviews", 9080));
    fake.apply(endpoint_slice("reviews", &[&reviews]));
    fake.apply(service("ratings", 9080));
    fake.apply(endpoint_slice("ratings", &[&ratings1]));
    fake.apply(redirect_all("reviews", "ratings", json!(100)));

    let sextant = start_sextant(work.path(), &fake, "sextant", &[]).await;
    let envoy = Envoy::start(work.path(), &sextant, Workload::client("client.default")).await;

    // Service + EndpointSlice + VirtualService from the cluster: Envoy routes
    // `reviews` to ratings' pod.
    wait_for(
        Duration::from_secs(15),
        "reviews routed to ratings r1",
        || async {
            (envoy.get("reviews", "/", &[]).await.0 == 200
                && envoy.version_of("reviews").await == "r1")
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        envoy.version_counts("reviews", 20).await.get("r1"),
        Some(&20)
    );

    // The CA root went into a Secret created on first start.
    let secret = fake
        .object("v1", "Secret", "sextant-system", "sextant-ca")
        .expect("the CA Secret was created");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert!(secret["data"]["tls.crt"].is_string() && secret["data"]["tls.key"].is_string());

    // A MODIFIED EndpointSlice changes EDS only: CDS, LDS and RDS versions
    // stay as they were.
    let before = sent_versions(&sextant).await;
    fake.apply(endpoint_slice("ratings", &[&ratings2]));
    wait_for(
        Duration::from_secs(10),
        "traffic to move to ratings r2",
        || async { (envoy.version_of("reviews").await == "r2").then_some(()) },
    )
    .await;
    wait_for(Duration::from_secs(10), "EDS version to change", || async {
        (sent_versions(&sextant).await["EDS"] != before["EDS"]).then_some(())
    })
    .await;
    // The IR was patched for the slice, not built again in full.
    let log = sextant.process.log();
    let last_change = log.lines().rfind(|l| l.contains("configuration changed"));
    assert!(
        last_change.is_some_and(|l| l.contains("patched=true")),
        "the slice change was not patched: {last_change:?}\n{log}"
    );
    let after = sent_versions(&sextant).await;
    for t in ["CDS", "LDS", "RDS"] {
        assert_eq!(
            after[t], before[t],
            "{t} changed on an endpoint-only change: {before} -> {after}"
        );
    }
    assert_eq!(
        envoy.version_counts("reviews", 20).await.get("r2"),
        Some(&20)
    );

    // 410 Gone: every watch is closed and its resourceVersion expired; the
    // watchers list again, and nothing is dropped or pushed meanwhile.
    let lists_before = lists_of(&fake, "/apis/discovery.k8s.io/v1/endpointslices");
    fake.expire_watches();
    for round in 0..5 {
        assert_eq!(
            envoy.version_counts("reviews", 10).await.get("r2"),
            Some(&10),
            "traffic during the relist (round {round})"
        );
    }
    wait_for(
        Duration::from_secs(20),
        "the EndpointSlice watcher to list again",
        || async {
            (lists_of(&fake, "/apis/discovery.k8s.io/v1/endpointslices") > lists_before)
                .then_some(())
        },
    )
    .await;
    // Changes after the relist are seen again (the new watch works).
    fake.apply(endpoint_slice("ratings", &[&ratings1]));
    wait_for(
        Duration::from_secs(10),
        "traffic back on ratings r1 after the relist",
        || async { (envoy.version_of("reviews").await == "r1").then_some(()) },
    )
    .await;
    let relisted = sent_versions(&sextant).await;
    for t in ["CDS", "LDS", "RDS"] {
        assert_eq!(
            relisted[t], before[t],
            "{t} changed across the relist: {before} -> {relisted}"
        );
    }

    // A closed watch (no 410) resumes from its last resourceVersion: a
    // change made while it reconnects arrives, and nothing is listed again.
    let lists_before = lists_of(&fake, "/apis/discovery.k8s.io/v1/endpointslices");
    fake.close_watches();
    fake.apply(endpoint_slice("ratings", &[&ratings2]));
    wait_for(
        Duration::from_secs(10),
        "traffic on ratings r2 after a reconnect",
        || async { (envoy.version_of("reviews").await == "r2").then_some(()) },
    )
    .await;
    assert_eq!(
        lists_of(&fake, "/apis/discovery.k8s.io/v1/endpointslices"),
        lists_before,
        "a reconnect without 410 listed again"
    );

    // Deleting the VirtualService: reviews goes to its own pod again.
    fake.delete(
        "networking.sextant.dev/v1alpha1",
        "VirtualService",
        "default",
        "reviews",
    );
    wait_for(
        Duration::from_secs(10),
        "reviews served by reviews v1",
        || async { (envoy.version_of("reviews").await == "v1").then_some(()) },
    )
    .await;
    assert_eq!(
        envoy.updates_rejected().await,
        0,
        "Envoy rejected an update"
    );
    assert_eq!(sextant.nacks_total().await, json!({}));
}

/// The `Accepted` condition of the last status PATCH of `name`, if any.
fn last_condition(fake: &FakeKube, name: &str) -> Option<Value> {
    let suffix = format!("/virtualservices/{name}/status");
    fake.patches()
        .iter()
        .rev()
        .find(|(path, _)| path.ends_with(&suffix))
        .map(|(_, body)| body["status"]["conditions"][0].clone())
}

fn patches_of(fake: &FakeKube, name: &str) -> usize {
    let suffix = format!("/virtualservices/{name}/status");
    fake.patches()
        .iter()
        .filter(|(p, _)| p.ends_with(&suffix))
        .count()
}

/// A fake cluster with Service `ratings` (its EndpointSlice: one demo
/// upstream at `ip`) and Service `reviews` (no endpoints: a VirtualService
/// sends it to ratings); the upstream must outlive the test's requests.
async fn ratings_behind_reviews(work: &Path, ip: &str) -> (Upstream, FakeKube) {
    let ratings = Upstream::start(work, ip, "ratings", "r1");
    let fake = FakeKube::start().await;
    fake.apply(service("ratings", 9080));
    fake.apply(endpoint_slice("ratings", &[&ratings]));
    fake.apply(service("reviews", 9080));
    (ratings, fake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cr_gets_a_condition_naming_the_field_and_status_writes_push_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (_ratings, fake) = ratings_behind_reviews(work.path(), "127.0.1.6").await;
    fake.apply(service("details", 9080));
    fake.apply(redirect_all("reviews", "ratings", json!(100)));
    // `weight` must be an integer.
    fake.apply(redirect_all("details", "ratings", json!("ninety")));

    let sextant = start_sextant(work.path(), &fake, "sextant", &["--no-mtls"]).await;
    let envoy = Envoy::start(work.path(), &sextant, Workload::client("client.default")).await;
    wait_for(
        Duration::from_secs(15),
        "reviews routed to ratings",
        || async { (envoy.version_of("reviews").await == "r1").then_some(()) },
    )
    .await;

    let bad = wait_for(
        Duration::from_secs(10),
        "a status condition on details",
        || async { last_condition(&fake, "details") },
    )
    .await;
    assert_eq!(bad["type"], "Accepted");
    assert_eq!(bad["status"], "False", "{bad}");
    assert_eq!(bad["reason"], "Invalid");
    assert_eq!(bad["observedGeneration"], 1);
    let message = bad["message"].as_str().unwrap();
    assert!(
        message.contains("spec.http[0].route[0].weight"),
        "{message}"
    );
    assert!(
        bad["lastTransitionTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{bad}"
    );

    let good = wait_for(
        Duration::from_secs(10),
        "a status condition on reviews",
        || async { last_condition(&fake, "reviews") },
    )
    .await;
    assert_eq!(
        (good["status"].clone(), good["reason"].clone()),
        (json!("True"), json!("Accepted"))
    );

    // The status writes came back as MODIFIED events (new resourceVersion,
    // new status). They push nothing and are not written again.
    let versions = sent_versions(&sextant).await;
    let nonces = sextant.admin_json("/debug/proxies").await["proxies"][0]["types"].clone();
    // One more status change to wait on, so the writes above have long been echoed back.
    fake.apply(redirect_all("details", "ratings", json!(100)));
    let fixed = wait_for(
        Duration::from_secs(10),
        "details accepted after the fix",
        || async { last_condition(&fake, "details").filter(|c| c["status"] == "True") },
    )
    .await;
    assert_eq!(fixed["observedGeneration"], 2, "{fixed}");
    // The fix added a route for `details`, so RDS (only) may change; the
    // status writes themselves changed nothing.
    let after = sent_versions(&sextant).await;
    for t in ["CDS", "EDS", "LDS"] {
        assert_eq!(after[t], versions[t], "{t}: {versions} -> {after}");
    }
    let after_nonces = sextant.admin_json("/debug/proxies").await["proxies"][0]["types"].clone();
    for t in ["CDS", "EDS", "LDS"] {
        assert_eq!(
            after_nonces[t]["sent_nonce"], nonces[t]["sent_nonce"],
            "{t} was pushed again"
        );
    }
    assert_eq!(patches_of(&fake, "reviews"), 1, "{:?}", fake.patches());
    assert_eq!(patches_of(&fake, "details"), 2, "{:?}", fake.patches());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_the_cluster_give_byte_identical_resources() {
    let work = tempfile::tempdir().unwrap();
    let ratings = Upstream::start(work.path(), "127.0.1.7", "ratings", "r1");
    let objects = [
        service("ratings", 9080),
        endpoint_slice("ratings", &[&ratings]),
        service("reviews", 9080),
        redirect_all("reviews", "ratings", json!(100)),
        // Istio's group: read with --watch-istio-crds (and by the file source).
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "ratings", "namespace": "default"},
            "spec": {"host": "ratings", "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 7}}}},
        }),
    ];
    let fake = FakeKube::start().await;
    let config = ConfigDir::new();
    for (i, object) in objects.iter().enumerate() {
        fake.apply(object.clone());
        config.write(
            &format!("{i}.yaml"),
            &serde_yaml_ng::to_string(object).unwrap(),
        );
    }
    let from_files = Sextant::start(work.path(), config.path()).await;
    let kube_work = work.path().join("kube");
    std::fs::create_dir(&kube_work).unwrap();
    let from_kube = start_sextant(
        &kube_work,
        &fake,
        "sextant-kube",
        &["--no-mtls", "--watch-istio-crds"],
    )
    .await;
    // Same translation: compare what the same workload gets from each.
    let file_envoy =
        Envoy::start(work.path(), &from_files, Workload::client("client.default")).await;
    let kube_envoy = Envoy::start(&kube_work, &from_kube, Workload::client("client.default")).await;
    for envoy in [&file_envoy, &kube_envoy] {
        wait_for(
            Duration::from_secs(15),
            "reviews routed to ratings",
            || async { (envoy.version_of("reviews").await == "r1").then_some(()) },
        )
        .await;
    }
    let files = from_files
        .admin_json("/config_dump?proxy=client.default")
        .await;
    let kube = from_kube
        .admin_json("/config_dump?proxy=client.default")
        .await;
    for suffix in [
        "ClustersConfigDump",
        "EndpointsConfigDump",
        "RoutesConfigDump",
    ] {
        let a = serde_json::to_string(&timeless(section(&files, suffix))).unwrap();
        let b = serde_json::to_string(&timeless(section(&kube, suffix))).unwrap();
        assert!(!a.is_empty() && a != "null", "{suffix} missing: {files}");
        assert_eq!(
            a, b,
            "{suffix} differs between the file and the Kubernetes source"
        );
    }
    assert!(
        serde_json::to_string(&files)
            .unwrap()
            .contains("\"max_connections\":7"),
        "the Istio-group DestinationRule applies: {files}"
    );
    assert_eq!(
        from_files.admin_json("/debug/ir").await,
        from_kube.admin_json("/debug/ir").await,
        "the resolved worlds differ"
    );
    // Our VirtualService gets a status; Istio's objects are never written to.
    wait_for(
        Duration::from_secs(10),
        "the VirtualService's status",
        || async { (!fake.patches().is_empty()).then_some(()) },
    )
    .await;
    let patches = fake.patches();
    assert!(
        patches
            .iter()
            .all(|(path, _)| path.contains(".sextant.dev/")),
        "{patches:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_reuses_the_ca_secret_even_after_a_create_conflict() {
    let work = tempfile::tempdir().unwrap();
    let fake = FakeKube::start().await;
    let first_dir = work.path().join("first");
    let second_dir = work.path().join("second");
    std::fs::create_dir(&first_dir).unwrap();
    std::fs::create_dir(&second_dir).unwrap();
    let first = start_sextant(&first_dir, &fake, "sextant-1", &[]).await;
    let secret = fake
        .object("v1", "Secret", "sextant-system", "sextant-ca")
        .expect("the first replica created the CA Secret");
    // The second replica does not see the Secret on its first read (as when
    // both start at once), so its create conflicts (409) and it reads again.
    fake.hide_next_get("sextant-ca");
    let second = start_sextant(&second_dir, &fake, "sextant-2", &[]).await;
    let posts = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /api/v1/namespaces/sextant-system/secrets"))
        .count();
    assert_eq!(
        posts,
        2,
        "the second replica tried to create: {:?}",
        fake.requests()
    );
    assert_eq!(
        fake.object("v1", "Secret", "sextant-system", "sextant-ca")
            .unwrap(),
        secret,
        "the Secret was not replaced"
    );
    let a = first.admin_json("/debug/certs").await["root_pem"].clone();
    let b = second.admin_json("/debug/certs").await["root_pem"].clone();
    assert!(
        a.as_str().is_some_and(|p| p.contains("BEGIN CERTIFICATE")),
        "{a}"
    );
    assert_eq!(a, b, "both replicas sign under one root");
    assert!(
        second
            .process
            .log()
            .contains("another replica created the CA Secret first"),
        "{}",
        second.process.log()
    );
}

/// The conditions of the last status PATCH of VirtualService `name`, by type.
fn last_conditions(fake: &FakeKube, name: &str) -> Option<serde_json::Map<String, Value>> {
    let suffix = format!("/virtualservices/{name}/status");
    let patches = fake.patches();
    let (_, body) = patches
        .iter()
        .rev()
        .find(|(path, _)| path.ends_with(&suffix))?;
    Some(
        body["status"]["conditions"]
            .as_array()?
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap_or_default().to_string(),
                    c.clone(),
                )
            })
            .collect(),
    )
}

/// A regex Sextant accepts (RE2 program size under Envoy's default limit of
/// 100) but that an Envoy whose runtime lowers the limit to 20 rejects.
const BIG_REGEX: &str = "/(a|b|c|d){1,10}";

/// Envoy arguments merging a runtime layer into the bootstrap that lowers
/// RE2's program-size limit (`re2.max_program_size.error_level`) to 20, as
/// an operator might: Sextant still checks against the default 100.
const STRICT_REGEX_RUNTIME: &[&str] = &[
    "--config-yaml",
    "{layered_runtime: {layers: [{name: strict-regex, static_layer: {re2.max_program_size.error_level: 20}}]}}",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cr_whose_route_envoy_rejects_gets_programmed_false_until_it_is_fixed() {
    let work = tempfile::tempdir().unwrap();
    let (ratings, fake) = ratings_behind_reviews(work.path(), "127.0.1.8").await;
    let with_path = |path: Value| {
        json!({
            "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "default"},
            "spec": {"hosts": ["reviews"], "http": [{
                "match": [{"uri": path}],
                "route": [{"destination": {"host": "ratings"}}],
            }]},
        })
    };
    fake.apply(with_path(json!({ "regex": BIG_REGEX })));

    let sextant = start_sextant(work.path(), &fake, "sextant", &["--no-mtls"]).await;
    let envoy = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            envoy_args: STRICT_REGEX_RUNTIME,
            ..Workload::client("client.default")
        },
    )
    .await;

    // The real Envoy NACKs the route configuration; Sextant traces the NACK
    // back to the VirtualService and writes Programmed=False quoting it.
    let rejected = wait_for(
        Duration::from_secs(20),
        "Programmed=False on the VirtualService",
        || async {
            last_conditions(&fake, "reviews").filter(|c| c["Programmed"]["status"] == "False")
        },
    )
    .await;
    let accepted = &rejected["Accepted"];
    assert_eq!(
        accepted["status"], "True",
        "Sextant's own check passes: {accepted}"
    );
    let programmed = &rejected["Programmed"];
    assert_eq!(programmed["reason"], "Rejected", "{programmed}");
    assert_eq!(programmed["observedGeneration"], 1, "{programmed}");
    let message = programmed["message"].as_str().unwrap();
    assert!(
        message.starts_with("RDS rejected by client.default: "),
        "{message}"
    );
    assert!(
        message.contains(&format!("regex '{BIG_REGEX}' RE2 program size of"))
            && message.contains("> max program size of 20"),
        "Envoy's message is quoted: {message}"
    );
    assert!(
        programmed["lastTransitionTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{programmed}"
    );
    assert!(
        envoy.updates_rejected().await >= 1,
        "Envoy itself rejected the update"
    );

    // The fix (a prefix instead of the regex) is ACKed: Programmed=True for
    // generation 2, and Envoy routes with it.
    fake.apply(with_path(json!({ "prefix": "/" })));
    let fixed = wait_for(
        Duration::from_secs(20),
        "Programmed=True after the fix",
        || async {
            last_conditions(&fake, "reviews").filter(|c| {
                c["Programmed"]["status"] == "True" && c["Programmed"]["observedGeneration"] == 2
            })
        },
    )
    .await;
    assert_eq!(fixed["Programmed"]["reason"], "Programmed", "{fixed:?}");
    assert_eq!(fixed["Accepted"]["observedGeneration"], 2, "{fixed:?}");
    wait_for(
        Duration::from_secs(10),
        "reviews routed to ratings",
        || async { (envoy.version_of("reviews").await == "r1").then_some(()) },
    )
    .await;

    // Idempotent: later pushes and their ACKs change no condition, so
    // nothing more is written.
    let patches = patches_of(&fake, "reviews");
    let eds_before = sent_versions(&sextant).await["EDS"].clone();
    let ratings2 = Upstream::start_at(
        work.path(),
        "127.0.1.9",
        ratings.addr.port(),
        "ratings",
        "r2",
    );
    fake.apply(endpoint_slice("ratings", &[&ratings2]));
    wait_for(
        Duration::from_secs(10),
        "traffic to move to ratings r2",
        || async { (envoy.version_of("reviews").await == "r2").then_some(()) },
    )
    .await;
    assert_ne!(sent_versions(&sextant).await["EDS"], eds_before);
    // Give the writer time to act on the ACK (it looks at most once per
    // --status-min-interval-ms, 100 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        patches_of(&fake, "reviews"),
        patches,
        "{:?}",
        fake.patches()
    );
}

//! End to end (handed case 008): a canary step that adds subsets and routes
//! to them in one edit, and the step back, while a client sends requests
//! continuously through a real Envoy: not one request may fail.

use crate::harness;

use harness::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// DestinationRule with `subsets` and a VirtualService splitting by `weights`.
fn routing(subsets: &[&str], weights: &[(&str, u32)]) -> String {
    let subsets: String = subsets
        .iter()
        .map(|s| format!("  - {{name: {s}, labels: {{version: {s}}}}}\n"))
        .collect();
    let routes: String = weights
        .iter()
        .map(|(s, w)| {
            format!("    - destination: {{host: reviews, subset: {s}}}\n      weight: {w}\n")
        })
        .collect();
    format!(
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  host: reviews\n  subsets:\n{subsets}---\napiVersion: networking.sextant.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n{routes}"
    )
}

async fn canary_without_errors(workload: Workload<'_>) {
    let work = tempfile::tempdir().unwrap();
    let upstreams: Vec<Upstream> = ["v1", "v2", "v3"]
        .iter()
        .enumerate()
        .map(|(i, v)| Upstream::start(work.path(), &format!("127.0.1.9{}", i + 1), "reviews", v))
        .collect();
    let config = ConfigDir::new();
    let workloads: Vec<String> = ["v1", "v2", "v3"]
        .iter()
        .zip(&upstreams)
        .map(|(v, u)| workload_yaml("reviews", v, u))
        .collect();
    config.write(
        "reviews.yaml",
        &[service_yaml("reviews", 9080), workloads.join("---\n")].join("---\n"),
    );
    config.write("routing.yaml", &routing(&["v1"], &[("v1", 100)]));
    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Arc::new(Envoy::start(work.path(), &sextant, workload).await);
    envoy.wait_until_serving("reviews").await;

    // A client that never stops, counting answers by version or status.
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let client = {
        let (envoy, stop, answers) = (envoy.clone(), stop.clone(), answers.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = envoy.version_of("reviews").await;
                *answers.lock().unwrap().entry(answer).or_default() += 1;
            }
        })
    };
    let seen = |version: &'static str| {
        let answers = answers.clone();
        async move { (answers.lock().unwrap().get(version).copied().unwrap_or(0) > 0).then_some(()) }
    };

    // The canary step: new subsets v2 and v3 and a split onto them, in one edit.
    config.write(
        "routing.yaml",
        &routing(&["v1", "v2", "v3"], &[("v1", 30), ("v2", 20), ("v3", 50)]),
    );
    wait_for(Duration::from_secs(10), "v2 to answer", || seen("v2")).await;
    wait_for(Duration::from_secs(10), "v3 to answer", || seen("v3")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // And back: v2 and v3 leave the routes and their clusters go.
    config.write("routing.yaml", &routing(&["v1"], &[("v1", 100)]));
    let gone = [
        "outbound|9080|v2|reviews.default.svc.cluster.local",
        "outbound|9080|v3|reviews.default.svc.cluster.local",
    ];
    wait_for(
        Duration::from_secs(10),
        "the v2 and v3 clusters to be removed",
        || async {
            let clusters = envoy.active_clusters().await;
            gone.iter()
                .all(|g| !clusters.contains(&g.to_string()))
                .then_some(())
        },
    )
    .await;
    let during: BTreeMap<String, u64> = std::mem::take(&mut *answers.lock().unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();

    // The client saw only answers from upstreams, never a status from Envoy.
    let failed: Vec<_> = during
        .iter()
        .filter(|(answer, _)| !answer.starts_with('v'))
        .collect();
    assert!(
        failed.is_empty(),
        "requests failed during the canary steps: {during:?}"
    );
    assert!(
        during.values().sum::<u64>() > 50,
        "too little traffic to judge: {during:?}"
    );
    let after: BTreeMap<String, u64> = answers.lock().unwrap().clone();
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["v1"],
        "after the step back only v1 answers: {after:?}"
    );
    let failures =
        envoy.stat_sum("upstream_rq_5").await + envoy.stat_sum("downstream_rq_4xx").await;
    assert_eq!(failures, 0, "requests failed during the canary steps");
    assert_eq!(
        envoy.stat_sum("http.outbound_http.downstream_rq_5xx").await,
        0
    );
    assert_eq!(envoy.updates_rejected().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_step_and_back_lose_no_request_sotw() {
    canary_without_errors(Workload::client("canary-sotw.default")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_step_and_back_lose_no_request_delta() {
    canary_without_errors(Workload::client("canary-delta.default").delta()).await;
}

//! End to end: bad input is reported with file, object and field, the last
//! good config stays served, and Envoy never sees (so never NACKs) it.

use crate::harness;

use harness::*;
use std::time::Duration;

fn routing(weight_v1: &str, weight_v2: &str, extra_match: &str) -> String {
    format!(
        r#"apiVersion: networking.sextant.dev/v1alpha1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.sextant.dev/v1alpha1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:{extra_match}
  - route:
    - destination: {{host: reviews, subset: v1}}
      weight: {weight_v1}
    - destination: {{host: reviews, subset: v2}}
      weight: {weight_v2}
"#
    )
}

/// Waits until `/debug/config_errors` has an error whose text contains every needle.
async fn wait_for_error(sextant: &Sextant, needles: &[&str]) -> String {
    wait_for(
        Duration::from_secs(5),
        &format!("a config error mentioning {needles:?}"),
        || async {
            let errors = sextant.admin_json("/debug/config_errors").await;
            errors["diagnostics"].as_array()?.iter().find_map(|d| {
                let text = d["text"].as_str()?;
                (d["severity"] == "error" && needles.iter().all(|n| text.contains(n)))
                    .then(|| text.to_string())
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_keep_the_last_good_config() {
    let work = tempfile::tempdir().unwrap();
    let v1 = Upstream::start(work.path(), "127.0.1.13", "reviews", "v1");
    let v2 = Upstream::start(work.path(), "127.0.1.14", "reviews", "v2");
    let config = ConfigDir::new();
    config.write("service.yaml", &service_yaml("reviews", 9080));
    config.write(
        "workloads.yaml",
        &[
            workload_yaml("reviews", "v1", &v1),
            workload_yaml("reviews", "v2", &v2),
        ]
        .join("---\n"),
    );
    config.write("routing.yaml", &routing("100", "0", ""));

    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(work.path(), &sextant, Workload::client("bad-input.default")).await;
    wait_for(
        Duration::from_secs(10),
        "reviews v1 through envoy",
        || async { (envoy.version_of("reviews").await == "v1").then_some(()) },
    )
    .await;

    // 1. A YAML syntax error: the file is named, its previous objects stay served.
    config.write("routing.yaml", "apiVersion: networking.sextant.dev/v1alpha1\nkind: VirtualService\nspec: {hosts: [reviews\n");
    let text = wait_for_error(&sextant, &["routing.yaml", "YAML"]).await;
    assert!(
        sextant.process.log().contains("routing.yaml"),
        "sextant's log names the file: {text}"
    );
    assert_eq!(
        envoy.version_counts("reviews", 20).await.get("v1"),
        Some(&20)
    );

    // 2. A field of the wrong type: file, object and field path are named; the last good version stays.
    config.write("routing.yaml", &routing("\"abc\"", "0", ""));
    let text = wait_for_error(
        &sextant,
        &[
            "routing.yaml",
            "VirtualService default/reviews",
            "spec.http[0].route[0].weight",
        ],
    )
    .await;
    assert!(
        sextant
            .process
            .log()
            .contains("spec.http[0].route[0].weight"),
        "{text}"
    );
    assert_eq!(
        envoy.version_counts("reviews", 20).await.get("v1"),
        Some(&20)
    );

    // 3. A regex RE2 cannot compile (negative lookahead) next to a valid route: rejected before Envoy sees it.
    let lookahead = "\n  - match:\n    - uri: {regex: \"^(?!/internal).*\"}\n    route:\n    - destination: {host: reviews, subset: v2}";
    config.write("routing.yaml", &routing("100", "0", lookahead));
    wait_for_error(
        &sextant,
        &[
            "VirtualService default/reviews",
            "spec.http[0].match[0].uri.regex",
            "RE2",
        ],
    )
    .await;
    assert_eq!(
        envoy.version_counts("reviews", 20).await.get("v1"),
        Some(&20)
    );

    // 4. A typo in `kind`: the object cannot be identified, so the file keeps its last good content.
    config.write(
        "routing.yaml",
        &routing("0", "100", "").replace("kind: VirtualService", "kind: VirtualServices"),
    );
    wait_for_error(
        &sextant,
        &[
            "routing.yaml",
            "VirtualServices",
            "did you mean VirtualService",
        ],
    )
    .await;
    assert_eq!(
        envoy.version_counts("reviews", 20).await.get("v1"),
        Some(&20)
    );

    // 5. The file emptied (as while a script rewrites it): still served, with a warning.
    config.write("routing.yaml", "");
    wait_for(
        Duration::from_secs(5),
        "a warning about the emptied file",
        || async {
            let errors = sextant.admin_json("/debug/config_errors").await;
            let found = errors["diagnostics"].as_array()?.iter().any(|d| {
                d["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("the file is empty")
            });
            found.then_some(())
        },
    )
    .await;
    assert_eq!(
        envoy.version_counts("reviews", 20).await.get("v1"),
        Some(&20)
    );

    // 6. Bytes that are not UTF-8: reported, last good content kept.
    std::fs::write(
        config.path().join("routing.yaml"),
        [0xff, 0xfe, 0x00, 0x80, 0x81],
    )
    .unwrap();
    wait_for_error(&sextant, &["routing.yaml", "cannot read the file"]).await;
    assert_eq!(
        envoy.version_counts("reviews", 20).await.get("v1"),
        Some(&20)
    );

    // 6b. A FIFO named like a config file: refused without being opened (a
    // read would block the source for good); the next edit still applies.
    let fifo = config.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils)");
    assert!(made.success());
    wait_for_error(&sextant, &["pipe.yaml", "not a regular file"]).await;
    std::fs::remove_file(&fifo).unwrap();

    // 7. Weights that overflow what Envoy accepts: no crash; the route answers 503 with an error.
    let huge = routing("2147483647", "2147483647", "").replace(
        "      weight: 2147483647\n",
        "      weight: 2147483647\n    - destination: {host: reviews}\n      weight: 2147483647\n",
    );
    config.write("routing.yaml", &huge);
    wait_for_error(
        &sextant,
        &["routing.yaml", "spec.http[0].route", "add up to"],
    )
    .await;
    wait_for(
        Duration::from_secs(5),
        "the overflowing route to answer 503",
        || async { (envoy.get("reviews", "/", &[]).await.0 == 503).then_some(()) },
    )
    .await;
    assert_eq!(sextant.admin_get("/healthz").await.0, 200);

    // Envoy rejected nothing, and Sextant saw no NACK.
    assert_eq!(envoy.updates_rejected().await, 0);
    assert_eq!(sextant.nacks_total().await, serde_json::json!({}));

    // A good edit is served again, and its errors are gone.
    config.write("routing.yaml", &routing("0", "100", ""));
    wait_for(
        Duration::from_secs(5),
        "traffic on v2 after a good edit",
        || async { (envoy.version_of("reviews").await == "v2").then_some(()) },
    )
    .await;
    let errors = sextant.admin_json("/debug/config_errors").await;
    assert_eq!(errors["errors"], 0, "{errors}");
}

use super::status::{accepted, Condition};
use super::*;
use crate::diagnostic::Diagnostic;
use crate::model::{Kind, ObjectKey};
use serde_json::json;

fn watched(api_version: &str, kind: &str) -> WatchedType {
    watched_types(true)
        .into_iter()
        .find(|w| w.api_resource.kind == kind && w.api_resource.api_version == api_version)
        .unwrap()
}

fn dynamic(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

fn service(name: &str, port: u16, rv: &str) -> Entry {
    entry(
        &watched("v1", "Service"),
        dynamic(json!({
            "metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port}]},
        })),
    )
}

#[test]
fn entries_are_named_by_type_namespace_and_name_and_typed_even_from_list_items() {
    let e = service("reviews", 9080, "7");
    assert_eq!(e.origin, "kube:v1/Service/default/reviews");
    assert_eq!(e.value["apiVersion"], "v1");
    assert_eq!(e.value["kind"], "Service");
    assert!(e.value["metadata"].get("resourceVersion").is_none());
    assert!(
        e.status.is_none(),
        "Sextant never writes a Service's status"
    );
}

#[test]
fn a_status_or_resource_version_change_of_a_cr_gives_the_same_entry() {
    let vs = |rv: &str, status: Value| {
        entry(
            &watched("networking.sextant.dev/v1alpha1", "VirtualService"),
            dynamic(json!({
                "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "VirtualService",
                "metadata": {"name": "r", "namespace": "default", "resourceVersion": rv,
                             "generation": 3, "managedFields": [{"manager": rv}]},
                "spec": {"hosts": ["reviews"]},
                "status": status,
            })),
        )
    };
    let before = vs("10", json!({}));
    let after = vs(
        "11",
        json!({"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                               "message": "accepted", "observedGeneration": 3,
                               "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
    );
    assert_eq!(before.value, after.value);
    let target = after.status.unwrap();
    assert_eq!(target.generation, Some(3));
    assert_eq!(target.current[0].status, "True");
}

#[test]
fn a_relist_drops_only_what_is_absent_at_init_done_and_keeps_the_rest() {
    let prefix = "kube:v1/Service/";
    let (mut source, tx) = KubeSource::for_tests(&[prefix]);
    let mut store = Store::new();
    tx.send(Update::Relisted {
        prefix: prefix.into(),
        entries: vec![service("a", 80, "1"), service("b", 80, "2")],
    })
    .unwrap();
    let report = source.sync(&mut store);
    assert!(report.changed);
    assert!(source.initial_sync_done());
    let names = |store: &Store| store.origins().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        names(&store),
        ["kube:v1/Service/default/a", "kube:v1/Service/default/b"]
    );

    // A relist with the same objects (new resourceVersions) changes nothing.
    tx.send(Update::Relisted {
        prefix: prefix.into(),
        entries: vec![service("a", 80, "5"), service("b", 80, "6")],
    })
    .unwrap();
    assert!(!source.sync(&mut store).changed);

    // A relist without `b` drops `b` only.
    tx.send(Update::Relisted {
        prefix: prefix.into(),
        entries: vec![service("a", 80, "7")],
    })
    .unwrap();
    assert!(source.sync(&mut store).changed);
    assert_eq!(names(&store), ["kube:v1/Service/default/a"]);

    // A relist of another scope leaves this one alone.
    tx.send(Update::Relisted {
        prefix: "kube:v1/Pod/".into(),
        entries: vec![],
    })
    .unwrap();
    source.sync(&mut store);
    assert_eq!(names(&store), ["kube:v1/Service/default/a"]);
}

#[test]
fn an_istio_policy_with_a_status_written_by_istiod_is_read_without_error() {
    let e = entry(
        &watched("security.istio.io/v1", "AuthorizationPolicy"),
        dynamic(json!({
            "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny", "namespace": "default", "resourceVersion": "3"},
            "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]},
            "status": {"validationMessages": [], "observedGeneration": "1"},
        })),
    );
    assert!(e.status.is_none(), "Sextant never writes Istio's status");
    let parsed = parse_value(&e.origin, e.value);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(parsed.objects.len(), 1);
}

#[test]
fn an_invalid_edit_keeps_the_last_good_object_served() {
    let (mut source, tx) = KubeSource::for_tests(&["kube:v1/Service/"]);
    let mut store = Store::new();
    tx.send(Update::Apply(Box::new(service("a", 80, "1"))))
        .unwrap();
    source.sync(&mut store);
    let mut bad = service("a", 80, "2");
    bad.value["spec"]["ports"][0]["port"] = json!("eighty");
    tx.send(Update::Apply(Box::new(bad))).unwrap();
    let report = source.sync(&mut store);
    assert!(!report.changed, "the last good Service stays served");
    let errors: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("kube:v1/Service/default/a") && e.contains("spec.ports[0].port")),
        "{errors:?}"
    );
}

#[test]
fn the_accepted_condition_names_the_field_of_each_error() {
    let origin = "kube:networking.sextant.dev/v1alpha1/VirtualService/default/r";
    let key = ObjectKey {
        kind: Kind::VirtualService,
        namespace: "default".into(),
        name: "r".into(),
    };
    let ok = accepted(origin, Some(2), &[]);
    assert_eq!(
        (ok.status.as_str(), ok.reason.as_str()),
        ("True", "Accepted")
    );
    let diagnostics = vec![
        Diagnostic::error(&key, "spec.http[0].route[0].weight", "must be at most 100")
            .in_file(origin),
        Diagnostic::error(&key, "spec.hosts", "other object").in_file("kube:elsewhere"),
    ];
    let bad = accepted(origin, Some(3), &diagnostics);
    assert_eq!(bad.status, "False");
    assert_eq!(bad.reason, "Invalid");
    assert_eq!(bad.observed_generation, Some(3));
    assert_eq!(
        bad.message,
        "spec.http[0].route[0].weight: must be at most 100"
    );
    assert!(!bad.same_as(&ok));
    let mut later = bad.clone();
    later.last_transition_time = "2030-01-01T00:00:00Z".into();
    assert!(later.same_as(&bad), "the time alone is no change");
    let json = serde_json::to_value(&later).unwrap();
    assert_eq!(
        Condition::ours_in(&json!({"conditions": [json]})),
        vec![later]
    );
}

#[test]
fn telemetry_is_watched_in_our_group_with_status_and_in_istios_read_only() {
    let ours = watched("telemetry.sextant.dev/v1alpha1", "Telemetry");
    assert!(ours.writes_status && ours.custom);
    assert_eq!(ours.api_resource.plural, "telemetries");
    let istio = watched("telemetry.istio.io/v1", "Telemetry");
    assert!(istio.custom && !istio.writes_status);
    assert!(watched_types(false)
        .iter()
        .all(|w| w.api_resource.group != "telemetry.istio.io"));
    // Its CRD names the same plural the watcher lists.
    let crd = crate::crds::definitions()
        .into_iter()
        .find(|c| c.spec.names.kind == "Telemetry")
        .expect("a Telemetry CRD");
    assert_eq!(crd.spec.names.plural, ours.api_resource.plural);
    assert_eq!(crd.spec.group, ours.api_resource.group);
}

#[test]
fn slo_kind_is_watched_in_our_group_only_with_status() {
    let ours = watched("telemetry.sextant.dev/v1alpha1", "ServiceLevelObjective");
    assert!(ours.writes_status && ours.custom);
    assert_eq!(ours.api_resource.plural, "servicelevelobjectives");
    // Istio has no such kind: never watched in its group.
    assert!(watched_types(true).iter().all(|w| {
        w.api_resource.kind != "ServiceLevelObjective"
            || w.api_resource.group == "telemetry.sextant.dev"
    }));
    let crd = crate::crds::definitions()
        .into_iter()
        .find(|c| c.spec.names.kind == "ServiceLevelObjective")
        .expect("a ServiceLevelObjective CRD");
    assert_eq!(crd.spec.names.plural, ours.api_resource.plural);
    assert_eq!(crd.spec.group, ours.api_resource.group);
}

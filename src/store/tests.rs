//! Tests of the store's last-good rules: what stays served when a file or an
//! object in it turns bad, and which origin wins a duplicate.

use super::*;
use crate::model::Kind;
use crate::source::parse::parse_documents;

fn service_key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Service,
        namespace: "default".into(),
        name: name.into(),
    }
}

fn vs_key() -> ObjectKey {
    ObjectKey {
        kind: Kind::VirtualService,
        namespace: "default".into(),
        name: "reviews".into(),
    }
}

/// A Service document with one port.
fn service(name: &str, port: i64) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{port: {port}}}]\n")
}

/// A VirtualService document splitting `reviews` between v1 and v2; the v1
/// weight is written as given, so it can be made ill-typed.
fn split(v1_weight: &str) -> String {
    format!(
        "apiVersion: networking.sextant.dev/v1alpha1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: {{host: reviews, subset: v1}}
          weight: {v1_weight}
        - destination: {{host: reviews, subset: v2}}
          weight: 10
"
    )
}

fn docs(documents: &[String]) -> String {
    documents.join("---\n")
}

fn apply(store: &mut Store, file: &str, text: &str) -> bool {
    store.apply(file, parse_documents(file, text))
}

fn served(store: &Store) -> Vec<ObjectKey> {
    store.world().0.keys().cloned().collect()
}

fn served_port(store: &Store, name: &str) -> i32 {
    let world = store.world().0;
    let Some(Object::Service(svc)) = world.get(&service_key(name)).map(|o| o.as_ref()) else {
        panic!("Service {name} is not served");
    };
    svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port
}

fn v1_weight(store: &Store) -> Option<i32> {
    let world = store.world().0;
    let Some(Object::VirtualService(vs)) = world.get(&vs_key()).map(|o| o.as_ref()) else {
        panic!("the VirtualService is not served");
    };
    vs.spec.http[0].route[0].weight
}

#[test]
fn a_rejected_new_version_keeps_the_last_good_one_served() {
    let mut store = Store::new();
    let file = "routes.yaml";
    assert!(apply(
        &mut store,
        file,
        &docs(&[split("90"), service("a", 80)])
    ));
    assert_eq!(v1_weight(&store), Some(90));

    // The VirtualService turns ill-typed while the Service beside it changes.
    let changed = apply(
        &mut store,
        file,
        &docs(&[split("\"abc\""), service("a", 81)]),
    );
    assert!(changed, "the Service's new version is served");
    assert_eq!(v1_weight(&store), Some(90), "last good version kept");
    assert_eq!(served_port(&store, "a"), 81);
    let diagnostics = store.diagnostics();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(diagnostics[0].is_error());
    assert_eq!(diagnostics[0].field, "spec.http[0].route[0].weight");

    // Fixing it serves the new version and clears the error.
    assert!(apply(
        &mut store,
        file,
        &docs(&[split("70"), service("a", 81)])
    ));
    assert_eq!(v1_weight(&store), Some(70));
    assert!(store.diagnostics().is_empty());
}

#[test]
fn an_object_that_was_never_good_is_not_served() {
    let mut store = Store::new();
    let changed = apply(&mut store, "routes.yaml", &split("\"abc\""));
    assert!(!changed);
    assert!(served(&store).is_empty());
    assert_eq!(store.diagnostics().len(), 1);
}

#[test]
fn an_unreadable_file_keeps_its_previous_content_whole() {
    let mut store = Store::new();
    let file = "services.yaml";
    assert!(apply(
        &mut store,
        file,
        &docs(&[service("a", 80), service("b", 80)])
    ));

    // `a` changes validly and `b` is dropped, but a later document is broken:
    // none of it is taken.
    let broken = docs(&[
        service("a", 81),
        "kind: Service\nmetadata: {name: [\n".into(),
    ]);
    let changed = apply(&mut store, file, &broken);
    assert!(!changed);
    assert_eq!(served(&store), vec![service_key("a"), service_key("b")]);
    assert_eq!(served_port(&store, "a"), 80);
    let diagnostics = store.diagnostics();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].file.as_deref(), Some(file));

    // A document without metadata.name is as unreadable as a syntax error.
    let nameless = docs(&[
        service("a", 82),
        "apiVersion: v1\nkind: Service\nmetadata: {}\n".into(),
    ]);
    assert!(!apply(&mut store, file, &nameless));
    assert_eq!(served_port(&store, "a"), 80);
    assert_eq!(served(&store).len(), 2);
}

#[test]
fn removing_a_document_removes_its_object() {
    let mut store = Store::new();
    let file = "services.yaml";
    assert!(apply(
        &mut store,
        file,
        &docs(&[service("a", 80), service("b", 80)])
    ));
    assert!(apply(&mut store, file, &service("a", 80)));
    assert_eq!(served(&store), vec![service_key("a")]);
    // A file emptied (as while a script rewrites it) keeps its last good content, with a warning.
    assert!(
        !apply(&mut store, file, ""),
        "an empty file changes nothing"
    );
    assert_eq!(served(&store), vec![service_key("a")]);
    assert_eq!(store.diagnostics().len(), 1);
    // A file left with only comments serves nothing.
    assert!(apply(&mut store, file, "# nothing here any more\n"));
    assert!(served(&store).is_empty());
    assert_eq!(store.origins().collect::<Vec<_>>(), [file]);
}

#[test]
fn applying_the_same_content_again_changes_nothing() {
    let mut store = Store::new();
    let text = docs(&[service("a", 80), split("90")]);
    assert!(apply(&mut store, "x.yaml", &text));
    assert!(!apply(&mut store, "x.yaml", &text));
    // Re-ordering documents is not a change of the served objects either.
    let reordered = docs(&[split("90"), service("a", 80)]);
    assert!(!apply(&mut store, "x.yaml", &reordered));
}

#[test]
fn a_file_read_again_keeps_the_objects_it_did_not_change() {
    let mut store = Store::new();
    apply(
        &mut store,
        "x.yaml",
        &docs(&[service("a", 80), split("90")]),
    );
    let before = store.world().0;
    assert!(apply(
        &mut store,
        "x.yaml",
        &docs(&[service("a", 81), split("90")])
    ));
    let after = store.world().0;
    assert_eq!(served_port(&store, "a"), 81);
    assert!(
        Arc::ptr_eq(&before[&vs_key()], &after[&vs_key()]),
        "the unchanged VirtualService is the object served before"
    );
    // What compares the two worlds (the IR's patch) sees the one change.
    assert_eq!(
        crate::ir::patch::changed_keys(&before, &after),
        [&service_key("a")]
    );
    assert!(!apply(
        &mut store,
        "x.yaml",
        &docs(&[split("90"), service("a", 81)])
    ));
    assert!(
        store.world().0.ptr_eq(&after),
        "nothing changed: the same map"
    );

    // Over many leaves of the world's tree (most of them shared), the one
    // object changed is still all the diff names.
    let many = |port: i64| {
        docs(
            &(0..300)
                .map(|i| service(&format!("s{i:03}"), if i == 150 { port } else { 80 }))
                .collect::<Vec<_>>(),
        )
    };
    apply(&mut store, "y.yaml", &many(80));
    let before = store.world().0;
    assert!(apply(&mut store, "y.yaml", &many(81)));
    let after = store.world().0;
    assert_eq!(
        crate::ir::patch::changed_keys(&before, &after),
        [&service_key("s150")]
    );
    assert_eq!(
        before
            .iter()
            .filter(|(k, o)| after.get(*k).is_some_and(|a| Arc::ptr_eq(a, o)))
            .count(),
        before.len() - 1,
        "every other object is the one served before"
    );
}

#[test]
fn removing_a_file_removes_its_objects() {
    let mut store = Store::new();
    apply(&mut store, "a.yaml", &service("a", 80));
    apply(&mut store, "b.yaml", &service("b", 80));
    apply(&mut store, "empty.yaml", "# nothing yet\n");
    assert!(store.remove("a.yaml"));
    assert_eq!(served(&store), vec![service_key("b")]);
    assert!(!store.remove("a.yaml"), "already gone");
    assert!(!store.remove("empty.yaml"), "served nothing");
    assert!(!store.remove("never-seen.yaml"));
    assert_eq!(store.origins().collect::<Vec<_>>(), ["b.yaml"]);
}

#[test]
fn a_duplicate_across_files_serves_the_first_origin_and_warns() {
    let mut store = Store::new();
    // Applied in the opposite order: the origin name decides, not the arrival.
    apply(&mut store, "b.yaml", &service("shared", 82));
    apply(&mut store, "a.yaml", &service("shared", 81));
    assert_eq!(served_port(&store, "shared"), 81);

    let (world, warnings) = store.world();
    assert_eq!(world.len(), 1);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    assert!(!warning.is_error());
    assert_eq!(warning.file.as_deref(), Some("b.yaml"));
    assert_eq!(warning.object, Some(service_key("shared")));
    assert!(warning.message.contains("a.yaml"), "{warning}");

    // Once the first definition is gone, the second is served, without a warning.
    assert!(store.remove("a.yaml"));
    assert_eq!(served_port(&store, "shared"), 82);
    assert!(store.world().1.is_empty());
}

#[test]
fn diagnostics_follow_the_latest_parse_of_each_origin() {
    let mut store = Store::new();
    apply(&mut store, "a.yaml", &split("\"abc\""));
    apply(&mut store, "b.yaml", "kind: [\n");
    let files: Vec<_> = store
        .diagnostics()
        .into_iter()
        .map(|d| d.file.unwrap())
        .collect();
    assert_eq!(files, ["a.yaml", "b.yaml"]);
    apply(&mut store, "a.yaml", &split("90"));
    assert_eq!(store.diagnostics().len(), 1);
    store.remove("b.yaml");
    assert!(store.diagnostics().is_empty());
}

/// A PeerAuthentication for workloads labelled app=b, with `mode` as given.
fn peer_authentication(mode: &str) -> String {
    format!(
        "apiVersion: security.sextant.dev/v1alpha1
kind: PeerAuthentication
metadata: {{name: b-mtls, namespace: default}}
spec:
  selector: {{matchLabels: {{app: b}}}}
  mtls: {{mode: {mode}}}
"
    )
}

fn served_peer_mode(store: &Store) -> Option<(crate::model::MtlsMode, Option<String>)> {
    let key = ObjectKey {
        kind: Kind::PeerAuthentication,
        namespace: "default".into(),
        name: "b-mtls".into(),
    };
    let (world, _) = store.world();
    match world.get(&key).map(|o| &**o) {
        Some(Object::PeerAuthentication(pa)) => Some((
            pa.spec.mtls.as_ref().expect("mtls").mode,
            pa.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::model::FAIL_CLOSED_ANNOTATION).cloned()),
        )),
        _ => None,
    }
}

#[test]
fn a_new_invalid_peer_authentication_fails_closed_as_strict() {
    let mut store = Store::new();
    store.apply(
        "pa.yaml",
        parse_documents("pa.yaml", &peer_authentication("Strict")),
    );
    let (mode, reason) = served_peer_mode(&store).expect("a stand-in is served");
    assert_eq!(mode, crate::model::MtlsMode::STRICT);
    assert!(reason.expect("annotated").contains("spec.mtls.mode"));
    let errors: Vec<String> = store.diagnostics().iter().map(|d| d.to_string()).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("fails closed") && e.contains("STRICT")),
        "{errors:#?}"
    );
}

#[test]
fn an_invalid_edit_of_a_peer_authentication_keeps_its_last_good_mode() {
    let mut store = Store::new();
    store.apply(
        "pa.yaml",
        parse_documents("pa.yaml", &peer_authentication("DISABLE")),
    );
    store.apply(
        "pa.yaml",
        parse_documents("pa.yaml", &peer_authentication("Strict")),
    );
    assert_eq!(
        served_peer_mode(&store),
        Some((crate::model::MtlsMode::DISABLE, None))
    );
}

/// The served view and its duplicate warnings, computed from every origin
/// from scratch (what the store kept up to date must equal).
fn world_from_scratch(store: &Store) -> (Vec<(ObjectKey, Arc<Object>)>, Vec<Diagnostic>) {
    let mut world: BTreeMap<ObjectKey, Arc<Object>> = BTreeMap::new();
    let mut diagnostics = Vec::new();
    let mut first: BTreeMap<&ObjectKey, &str> = BTreeMap::new();
    for (name, origin) in &store.origins {
        for (key, object) in &origin.objects {
            match first.get(key) {
                Some(owner) => diagnostics.push(
                    Diagnostic::warning(
                        key,
                        "",
                        format!("also defined in {owner}; that definition is served"),
                    )
                    .in_file(name.clone()),
                ),
                None => {
                    first.insert(key, name);
                    world.insert(key.clone(), object.clone());
                }
            }
        }
    }
    (world.into_iter().collect(), diagnostics)
}

#[test]
fn the_served_view_follows_every_change_of_every_file() {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut store = Store::new();
    let files = ["a.yaml", "b.yaml", "c.yaml", "d.yaml"];
    for step in 0..2_000 {
        let file = files[rng.usize(..files.len())];
        match rng.u8(..10) {
            0 => {
                store.remove(file);
            }
            1 => {
                apply(&mut store, file, "kind: [broken");
            }
            2 => {
                apply(&mut store, file, "");
            }
            _ => {
                // A few of six services, each with one of two ports.
                let text = docs(
                    &(0..rng.usize(..4))
                        .map(|_| service(&format!("s{}", rng.u8(..6)), [80, 81][rng.usize(..2)]))
                        .collect::<Vec<_>>(),
                );
                apply(&mut store, file, &text);
            }
        }
        let (world, diagnostics) = store.world();
        let (expected, expected_diagnostics) = world_from_scratch(&store);
        let served: Vec<(ObjectKey, Arc<Object>)> = world.into_iter().collect();
        assert_eq!(served, expected, "step {step}");
        assert_eq!(diagnostics, expected_diagnostics, "step {step}");
    }
}

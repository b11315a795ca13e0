use super::*;
use crate::model::{Kind, ObjectKey};
use crate::source::parse::parse_value;
use crate::store::Store;
use serde_json::json;

/// The IR of `objects`, each parsed as its own origin.
fn ir_of(objects: &[serde_json::Value]) -> Ir {
    let mut store = Store::new();
    for (i, object) in objects.iter().enumerate() {
        let origin = format!("test/{i}.yaml");
        store.apply(&origin, parse_value(&origin, object.clone()));
    }
    resolve(&store).0
}

#[test]
fn a_nack_quoting_a_route_regex_is_traced_to_its_virtual_service() {
    let service = |name: &str| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 9080}]},
        })
    };
    let ir = ir_of(&[
        service("reviews"),
        service("ratings"),
        json!({
            "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "default"},
            "spec": {"hosts": ["reviews"], "http": [{
                "match": [{"headers": {"x-user": {"regex": "(a|b){1,3}"}}}],
                "route": [{"destination": {"host": "ratings"}}],
            }]},
        }),
    ]);
    let message = "regex '(a|b){1,3}' RE2 program size of 44 > max program size of 20 set for the error level threshold.";
    let objects = ir.origins_mentioned(message);
    let vs = ObjectKey {
        kind: Kind::VirtualService,
        namespace: "default".into(),
        name: "reviews".into(),
    };
    assert!(objects.contains(&vs), "{objects:?}");
    assert!(
        objects.iter().all(|o| o.name == "reviews"),
        "only the objects behind the virtual host: {objects:?}"
    );
    // Another regex, or the same text outside Envoy's quoting, names nothing.
    assert_eq!(
        ir.origins_mentioned("regex '(a|c){1,3}' RE2 program size of 44"),
        vec![]
    );
    assert_eq!(ir.origins_mentioned("(a|b){1,3}"), vec![]);
}

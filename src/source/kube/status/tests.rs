use super::*;
use crate::model::Kind;
use kube::api::GroupVersionKind;

const ORIGIN: &str = "kube:networking.sextant.dev/v1alpha1/VirtualService/default/r";

fn target(generation: i64) -> StatusTarget {
    StatusTarget {
        api_resource: ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("networking.sextant.dev", "v1alpha1", "VirtualService"),
            "virtualservices",
        ),
        namespace: "default".into(),
        name: "r".into(),
        generation: Some(generation),
        current: Vec::new(),
    }
}

fn key(kind: Kind, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: "default".into(),
        name: name.into(),
    }
}

fn nack(proxy: &str, type_name: &str, message: &str, objects: Vec<ObjectKey>) -> ProxyNack {
    ProxyNack {
        proxy: proxy.into(),
        type_name: type_name.into(),
        message: message.into(),
        objects,
    }
}

#[test]
fn programmed_is_true_without_a_nack_naming_the_object() {
    let ok = accepted(ORIGIN, Some(2), &[]);
    // A NACK traced to other objects (another VirtualService of the same
    // name in another namespace, a Service of the same name) does not count.
    let elsewhere = ObjectKey {
        namespace: "other".into(),
        ..key(Kind::VirtualService, "r")
    };
    let nacks = [nack(
        "a.default",
        "RDS",
        "bad",
        vec![elsewhere, key(Kind::Service, "r")],
    )];
    let condition = programmed(&target(2), &ok, &nacks);
    assert_eq!(condition.type_, "Programmed");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", "Programmed")
    );
    assert_eq!(condition.observed_generation, Some(2));
}

#[test]
fn programmed_is_false_quoting_each_nack_and_its_proxies() {
    let ok = accepted(ORIGIN, Some(4), &[]);
    let mine = || vec![key(Kind::Service, "r"), key(Kind::VirtualService, "r")];
    let nacks = [
        nack("b.default", "RDS", "regex 'x' too big", mine()),
        nack("a.default", "RDS", "regex 'x' too big", mine()),
        nack("a.default", "CDS", "cluster bad", mine()),
        nack(
            "c.default",
            "RDS",
            "unrelated",
            vec![key(Kind::Service, "s")],
        ),
    ];
    let condition = programmed(&target(4), &ok, &nacks);
    assert_eq!(condition.status, "False");
    assert_eq!(condition.reason, "Rejected");
    assert_eq!(condition.observed_generation, Some(4));
    assert_eq!(
        condition.message,
        "CDS rejected by a.default: cluster bad; RDS rejected by a.default, b.default: regex 'x' too big"
    );
}

#[test]
fn programmed_is_false_for_an_invalid_generation_and_a_nack_wins() {
    let key_r = key(Kind::VirtualService, "r");
    let invalid = accepted(
        ORIGIN,
        Some(5),
        &[Diagnostic::error(&key_r, "spec.hosts", "empty").in_file(ORIGIN)],
    );
    let condition = programmed(&target(5), &invalid, &[]);
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "Invalid")
    );
    let nacks = [nack("a.default", "RDS", "no", vec![key_r])];
    let condition = programmed(&target(5), &invalid, &nacks);
    assert_eq!(condition.reason, "Rejected", "what proxies reject is shown");
}

#[test]
fn a_long_nack_message_is_cut_on_a_char_boundary() {
    let ok = accepted(ORIGIN, Some(1), &[]);
    let long = "é".repeat(5000);
    let nacks = [nack(
        "a.default",
        "RDS",
        &long,
        vec![key(Kind::VirtualService, "r")],
    )];
    let condition = programmed(&target(1), &ok, &nacks);
    assert!(
        condition.message.len() <= MAX_MESSAGE,
        "{}",
        condition.message.len()
    );
    assert!(condition.message.ends_with("..."));
}

#[test]
fn nothing_is_written_when_no_condition_changed_and_times_move_only_on_a_status_change() {
    let ok = accepted(ORIGIN, Some(1), &[]);
    let first = desired(
        &BTreeMap::from([(ORIGIN.to_string(), (target(1), ok.clone()))]),
        &[],
    );
    let conditions = &first[ORIGIN];
    assert_eq!(
        conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect::<Vec<_>>(),
        ["Accepted", "Programmed"]
    );
    let written = to_write(conditions, &[], "2030-01-01T00:00:00Z").expect("first write");
    assert!(written
        .iter()
        .all(|c| c.last_transition_time == "2030-01-01T00:00:00Z"));
    // The same conditions again (times aside): no write.
    assert_eq!(to_write(conditions, &written, "2030-01-01T00:00:09Z"), None);

    // Programmed flips to False: a write; Accepted keeps its time.
    let nacks = [nack(
        "a.default",
        "RDS",
        "no",
        vec![key(Kind::VirtualService, "r")],
    )];
    let second = desired(
        &BTreeMap::from([(ORIGIN.to_string(), (target(1), ok))]),
        &nacks,
    );
    let rewritten = to_write(&second[ORIGIN], &written, "2030-01-01T00:01:00Z").expect("a change");
    assert_eq!(rewritten[0].last_transition_time, "2030-01-01T00:00:00Z");
    assert_eq!(rewritten[1].status, "False");
    assert_eq!(rewritten[1].last_transition_time, "2030-01-01T00:01:00Z");

    // What an object carries counts as written (a restart writes nothing).
    let carried = Condition::ours_in(&serde_json::json!({
        "conditions": serde_json::to_value(&rewritten).unwrap()
    }));
    assert_eq!(
        to_write(&second[ORIGIN], &carried, "2031-01-01T00:00:00Z"),
        None
    );
    // A new generation is a change, even with the same status.
    let newer = desired(
        &BTreeMap::from([(
            ORIGIN.to_string(),
            (target(2), accepted(ORIGIN, Some(2), &[])),
        )]),
        &nacks,
    );
    let bumped = to_write(&newer[ORIGIN], &carried, "2031-01-01T00:00:00Z").expect("a change");
    assert_eq!(bumped[1].observed_generation, Some(2));
    assert_eq!(bumped[1].last_transition_time, "2030-01-01T00:01:00Z");
}

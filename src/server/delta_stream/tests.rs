//! Message-by-message tests of the delta state machine: each test plays the
//! requests Envoy would send and checks what comes out of `poll`.

use super::*;
use crate::cache::Resource;
use crate::server::test_support::*;

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The first request of a type on a stream (empty nonce), subscribing `subscribe`.
fn initial(type_url: TypeUrl, subscribe: &[&str]) -> DeltaRequest {
    DeltaRequest {
        type_url: type_url.as_str().into(),
        subscribe: names(subscribe),
        ..Default::default()
    }
}

/// A request that changes the subscription without answering a response
/// (Envoy sends those with no nonce).
fn change(type_url: TypeUrl, subscribe: &[&str], unsubscribe: &[&str]) -> DeltaRequest {
    DeltaRequest {
        type_url: type_url.as_str().into(),
        subscribe: names(subscribe),
        unsubscribe: names(unsubscribe),
        ..Default::default()
    }
}

/// An ACK of `response`, as Envoy sends it.
fn ack(response: &DeltaResponse) -> DeltaRequest {
    DeltaRequest {
        type_url: response.type_url.as_str().into(),
        response_nonce: response.nonce.clone(),
        ..Default::default()
    }
}

/// An ACK of `response` that also changes the subscription.
fn ack_with(response: &DeltaResponse, subscribe: &[&str], unsubscribe: &[&str]) -> DeltaRequest {
    DeltaRequest {
        subscribe: names(subscribe),
        unsubscribe: names(unsubscribe),
        ..ack(response)
    }
}

/// A NACK of `response` with an error message.
fn nack(response: &DeltaResponse, message: &str) -> DeltaRequest {
    DeltaRequest {
        error_detail: Some(message.into()),
        ..ack(response)
    }
}

fn types(responses: &[DeltaResponse]) -> Vec<TypeUrl> {
    responses.iter().map(|r| r.type_url).collect()
}

/// Names of the resources a response carries (not the removed ones).
/// The `i`-th resource of a response, in name order.
fn nth(response: &DeltaResponse, i: usize) -> &Resource {
    response
        .resources
        .values()
        .nth(i)
        .expect("a resource at that position")
}

fn sent_names(response: &DeltaResponse) -> Vec<&str> {
    response.resources.values().map(|r| &*r.name).collect()
}

fn removed(response: &DeltaResponse) -> Vec<&str> {
    response.removed.iter().map(String::as_str).collect()
}

/// The only response of a poll, of the given type.
fn only(responses: Vec<DeltaResponse>, type_url: TypeUrl) -> DeltaResponse {
    assert_eq!(types(&responses), vec![type_url], "{responses:#?}");
    responses.into_iter().next().unwrap()
}

/// Asserts that no response of a poll carries a resource or a removal. A
/// request with no nonce (Envoy's subscription changes) may be answered
/// with an empty response; that sends nothing.
fn nothing_sent(responses: &[DeltaResponse]) {
    assert!(
        responses
            .iter()
            .all(|r| r.resources.is_empty() && r.removed.is_empty()),
        "{responses:#?}"
    );
}

/// Name → version, as the proxy would record them from responses.
fn versions_of(response: &DeltaResponse) -> BTreeMap<String, String> {
    response
        .resources
        .values()
        .map(|r| (r.name.to_string(), r.hash.to_string()))
        .collect()
}

/// Subscribes CDS (legacy wildcard), EDS (for `eds`), LDS (legacy wildcard)
/// and RDS (`outbound`) one after another as Envoy does, ACKing every
/// response; returns the first response of each type.
fn connect(stream: &mut DeltaStream, snap: &ProxySnapshot, eds: &[&str]) -> [DeltaResponse; 4] {
    stream.on_request(&initial(CDS, &[]));
    let cds = only(stream.poll(snap), CDS);
    stream.on_request(&initial(EDS, eds));
    let eds_response = only(stream.poll(snap), EDS);
    stream.on_request(&ack(&cds));
    stream.on_request(&ack(&eds_response));
    assert!(stream.poll(snap).is_empty());
    stream.on_request(&initial(LDS, &[]));
    let lds = only(stream.poll(snap), LDS);
    stream.on_request(&initial(RDS, &["outbound"]));
    let rds = only(stream.poll(snap), RDS);
    stream.on_request(&ack(&lds));
    stream.on_request(&ack(&rds));
    assert!(stream.poll(snap).is_empty());
    [cds, eds_response, lds, rds]
}

#[test]
fn a_first_cds_or_lds_request_without_names_is_a_legacy_wildcard() {
    let snap = snapshot(&[
        (CDS, vec![cluster("a", 1), cluster("b", 1)]),
        (LDS, vec![listener("l1", 1), listener("l2", 2)]),
    ]);
    for type_url in [CDS, LDS] {
        let mut stream = DeltaStream::new();
        assert_eq!(
            stream.on_request(&initial(type_url, &[])),
            RequestKind::Initial
        );
        assert!(stream.types[&type_url].wildcard, "{type_url}");
        assert!(stream.types[&type_url].names.is_empty(), "{type_url}");
        let first = only(stream.poll(&snap), type_url);
        let all: Vec<&Resource> = snap.of(type_url).values().collect();
        assert_eq!(first.resources.values().collect::<Vec<_>>(), all);
        assert!(first.removed.is_empty());
        assert!(!first.nonce.is_empty());
        assert_eq!(first.system_version, version_of(snap.of(type_url)));

        // Later requests that name nothing leave it a wildcard.
        stream.on_request(&ack(&first));
        assert!(stream.types[&type_url].wildcard, "{type_url}");
        assert!(stream.poll(&snap).is_empty());
    }
}

#[test]
fn eds_and_rds_without_names_subscribe_to_nothing_but_are_answered() {
    for type_url in [EDS, RDS] {
        let mut stream = DeltaStream::new();
        stream.on_request(&initial(type_url, &[]));
        assert!(!stream.types[&type_url].wildcard, "{type_url}");
        // The first request is answered (Envoy waits for it), with nothing.
        let first = only(stream.poll(&mesh()), type_url);
        assert!(first.resources.is_empty(), "{first:#?}");
        assert!(first.removed.is_empty(), "{first:#?}");
        stream.on_request(&ack(&first));
        assert!(stream.poll(&mesh()).is_empty());
    }
}

#[test]
fn an_explicit_star_is_a_wildcard_for_any_type_and_can_be_added_later() {
    for type_url in [CDS, EDS] {
        let mut stream = DeltaStream::new();
        stream.on_request(&initial(type_url, &["*"]));
        assert!(stream.types[&type_url].wildcard);
        assert!(
            stream.types[&type_url].names.is_empty(),
            "`*` is not a name"
        );
        let first = only(stream.poll(&mesh()), type_url);
        assert_eq!(sent_names(&first), ["a", "b"], "{type_url}");
        assert!(first.removed.is_empty(), "`*` is not reported absent");
    }

    // A first CDS request with names is not a wildcard ...
    let mut stream = DeltaStream::new();
    stream.on_request(&initial(CDS, &["a"]));
    assert!(!stream.types[&CDS].wildcard);
    let first = only(stream.poll(&mesh()), CDS);
    assert_eq!(sent_names(&first), ["a"]);
    stream.on_request(&ack(&first));
    // ... and a later request that names nothing does not make it one.
    stream.on_request(&ack(&first));
    assert!(!stream.types[&CDS].wildcard);
    let with_c = snapshot(&[(CDS, vec![cluster("a", 1), cluster("b", 1), cluster("c", 1)])]);
    assert!(
        stream.poll(&with_c).is_empty(),
        "b and c are not subscribed"
    );

    // Subscribing `*` later sends everything the proxy does not have yet.
    stream.on_request(&change(CDS, &["*"], &[]));
    assert!(stream.types[&CDS].wildcard);
    let all = stream.poll(&with_c);
    let all = only(all, CDS);
    assert_eq!(sent_names(&all), ["b", "c"]);
}

#[test]
fn versions_are_content_hashes_and_only_changed_resources_are_sent() {
    let mut stream = DeltaStream::new();
    let [cds, ..] = connect(&mut stream, &mesh(), &["a", "b"]);
    for resource in cds.resources.values() {
        assert_eq!(resource.hash, mesh().of(CDS)[&resource.name].hash);
        assert_eq!(resource.body, mesh().of(CDS)[&resource.name].body);
    }

    // Only `a` changes; `c` is new. Unchanged `b` is not sent again.
    let next = snapshot(&[
        (CDS, vec![cluster("a", 2), cluster("b", 1), cluster("c", 1)]),
        (EDS, vec![endpoints("a", &[8080]), endpoints("b", &[9090])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["a", "b"])]),
    ]);
    let responses = stream.poll(&next);
    let update = &responses[0];
    assert_eq!(update.type_url, CDS);
    assert_eq!(sent_names(update), ["a", "c"]);
    assert!(update.removed.is_empty());
    assert_eq!(*nth(update, 0), cluster("a", 2));
    assert_ne!(nth(update, 0).hash, nth(&cds, 0).hash);
    assert_eq!(update.system_version, version_of(next.of(CDS)));
    assert_ne!(update.system_version, cds.system_version);
    assert_ne!(update.nonce, cds.nonce);

    // The same content again (a generation bump that changed nothing else):
    // nothing is sent.
    stream.on_request(&ack(update));
    for response in &responses[1..] {
        stream.on_request(&ack(response));
    }
    assert!(stream.poll(&next).is_empty());
}

#[test]
fn resources_that_disappear_are_sent_in_removed() {
    let one = snapshot(&[(CDS, vec![cluster("a", 1), cluster("b", 1)])]);
    let mut stream = DeltaStream::new();
    stream.on_request(&initial(CDS, &[]));
    let first = only(stream.poll(&one), CDS);
    stream.on_request(&ack(&first));

    let two = snapshot(&[(CDS, vec![cluster("a", 1)])]);
    let second = only(stream.poll(&two), CDS);
    assert!(second.resources.is_empty(), "{second:#?}");
    assert_eq!(removed(&second), ["b"]);
    assert_eq!(second.system_version, version_of(two.of(CDS)));
    stream.on_request(&ack(&second));
    // Only once.
    assert!(stream.poll(&two).is_empty());
    let acked = stream.types[&CDS].acked.as_ref().unwrap();
    assert_eq!(acked.state.keys().map(|n| &**n).collect::<Vec<_>>(), ["a"]);

    // Everything gone: every name is removed.
    let none = snapshot(&[]);
    let third = only(stream.poll(&none), CDS);
    assert_eq!(removed(&third), ["a"]);
}

#[test]
fn unsubscribing_stops_updates_and_removals_of_that_resource() {
    let mut stream = DeltaStream::new();
    stream.on_request(&initial(EDS, &["a", "b"]));
    let first = only(stream.poll(&mesh()), EDS);
    assert_eq!(sent_names(&first), ["a", "b"]);
    stream.on_request(&ack(&first));

    // Envoy drops cluster b and unsubscribes from its endpoints.
    stream.on_request(&ack_with(&first, &[], &["b"]));
    assert!(stream.poll(&mesh()).is_empty());
    // b's endpoints change, then b goes away: neither is reported.
    let b_changed = snapshot(&[(EDS, vec![endpoints("a", &[8080]), endpoints("b", &[1])])]);
    assert!(stream.poll(&b_changed).is_empty());
    let b_gone = snapshot(&[(EDS, vec![endpoints("a", &[8080])])]);
    assert!(stream.poll(&b_gone).is_empty());
    // a is still followed.
    let a_changed = snapshot(&[(EDS, vec![endpoints("a", &[1])])]);
    let update = only(stream.poll(&a_changed), EDS);
    assert_eq!(sent_names(&update), ["a"]);
    assert!(update.removed.is_empty());
    stream.on_request(&ack(&update));

    // Subscribing again to a resource dropped earlier sends it, unchanged
    // or not: the proxy forgot it.
    stream.on_request(&change(EDS, &["b"], &[]));
    let again = only(stream.poll(&b_changed), EDS);
    assert_eq!(sent_names(&again), ["a", "b"]);
    assert_eq!(*nth(&again, 1), endpoints("b", &[1]));
}

#[test]
fn unsubscribing_the_star_stops_the_wildcard_but_keeps_named_subscriptions() {
    let mut stream = DeltaStream::new();
    stream.on_request(&initial(CDS, &["*", "a"]));
    let first = only(stream.poll(&mesh()), CDS);
    assert_eq!(sent_names(&first), ["a", "b"]);
    stream.on_request(&ack(&first));

    stream.on_request(&ack_with(&first, &[], &["*"]));
    assert!(!stream.types[&CDS].wildcard);
    assert!(stream.poll(&mesh()).is_empty());
    // b (only under the wildcard) changes and then disappears; c appears:
    // none of it is sent. a is still followed.
    let next = snapshot(&[(CDS, vec![cluster("a", 2), cluster("c", 1)])]);
    let update = only(stream.poll(&next), CDS);
    assert_eq!(sent_names(&update), ["a"]);
    assert!(update.removed.is_empty(), "{update:#?}");
}

#[test]
fn a_subscribed_name_that_does_not_exist_is_removed_once_and_sent_when_it_appears() {
    let only_a = snapshot(&[(EDS, vec![endpoints("a", &[1])])]);
    let mut stream = DeltaStream::new();
    stream.on_request(&initial(EDS, &["a", "b"]));
    let first = only(stream.poll(&only_a), EDS);
    assert_eq!(sent_names(&first), ["a"]);
    assert_eq!(removed(&first), ["b"], "the proxy must stop waiting for b");
    stream.on_request(&ack(&first));
    // Not on every poll.
    assert!(stream.poll(&only_a).is_empty());
    assert!(stream.poll(&only_a).is_empty());

    // b appears: pushed without a new request.
    let both = snapshot(&[(EDS, vec![endpoints("a", &[1]), endpoints("b", &[2])])]);
    let second = only(stream.poll(&both), EDS);
    assert_eq!(sent_names(&second), ["b"]);
    assert!(second.removed.is_empty());
    stream.on_request(&ack(&second));

    // b goes away again: removed once more, once.
    let third = only(stream.poll(&only_a), EDS);
    assert!(third.resources.is_empty());
    assert_eq!(removed(&third), ["b"]);
    stream.on_request(&ack(&third));
    assert!(stream.poll(&only_a).is_empty());

    // A new name that does not exist, subscribed later, is reported too.
    stream.on_request(&change(EDS, &["c"], &[]));
    let fourth = stream.poll(&only_a);
    let fourth = only(fourth, EDS);
    assert!(fourth.resources.is_empty());
    assert_eq!(removed(&fourth), ["c"]);
    stream.on_request(&ack(&fourth));
    assert!(stream.poll(&only_a).is_empty());
}

#[test]
fn a_reconnect_with_initial_resource_versions_gets_only_what_differs() {
    // What a previous server process sent.
    let before = snapshot(&[(
        CDS,
        vec![cluster("a", 1), cluster("b", 1), cluster("gone", 1)],
    )]);
    let mut old = DeltaStream::new();
    old.on_request(&initial(CDS, &[]));
    let had = versions_of(&only(old.poll(&before), CDS));

    // Now: a unchanged, b modified, gone deleted, c new.
    let now = snapshot(&[(CDS, vec![cluster("a", 1), cluster("b", 2), cluster("c", 1)])]);
    let mut stream = DeltaStream::new();
    let mut request = initial(CDS, &[]);
    request.initial_resource_versions = had;
    assert_eq!(stream.on_request(&request), RequestKind::Initial);
    assert!(stream.types[&CDS].wildcard);
    let response = only(stream.poll(&now), CDS);
    assert_eq!(sent_names(&response), ["b", "c"]);
    assert_eq!(removed(&response), ["gone"]);
    assert_eq!(response.system_version, version_of(now.of(CDS)));
    stream.on_request(&ack(&response));
    assert!(stream.poll(&now).is_empty());
    // What the proxy now has includes `a`, which was not sent on this stream.
    let acked = stream.types[&CDS].acked.as_ref().unwrap();
    assert_eq!(
        acked.state.keys().map(|n| &**n).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );

    // Everything matches: the first request is still answered, empty.
    let mut stream = DeltaStream::new();
    let mut request = initial(EDS, &["a", "b"]);
    request.initial_resource_versions = versions_of(&DeltaResponse {
        type_url: EDS,
        system_version: String::new(),
        nonce: String::new(),
        resources: mesh().of(EDS).clone(),
        removed: vec![],
    });
    stream.on_request(&request);
    let response = only(stream.poll(&mesh()), EDS);
    assert!(response.resources.is_empty(), "{response:#?}");
    assert!(response.removed.is_empty(), "{response:#?}");

    // A version the proxy claims for a name it does not subscribe to is
    // forgotten: no removal of it is ever sent.
    let mut stream = DeltaStream::new();
    let mut request = initial(EDS, &["a"]);
    request.initial_resource_versions = [("zzz".to_string(), "1234".to_string())].into();
    stream.on_request(&request);
    let response = only(stream.poll(&mesh()), EDS);
    assert_eq!(sent_names(&response), ["a"]);
    assert!(response.removed.is_empty(), "{response:#?}");
}

#[test]
fn a_nack_keeps_the_acked_state_and_the_rejected_content_is_not_resent() {
    let good = snapshot(&[(CDS, vec![cluster("a", 1), cluster("b", 1)])]);
    let mut stream = DeltaStream::new();
    stream.on_request(&initial(CDS, &[]));
    let first = only(stream.poll(&good), CDS);
    assert_eq!(stream.on_request(&ack(&first)), RequestKind::Ack);

    let bad = snapshot(&[(CDS, vec![cluster("a", 9), cluster("b", 1)])]);
    let rejected = only(stream.poll(&bad), CDS);
    assert_eq!(sent_names(&rejected), ["a"]);
    let message = format!(
        "Error adding/updating cluster(s) a: {}Proto constraint validation failed (ClusterValidationError.Name:\n  value length must be at least 1 characters)",
        "cluster { name: \"a\" type: EDS }\n".repeat(30)
    );
    let trimmed = "Proto constraint validation failed (ClusterValidationError.Name: value length must be at least 1 characters)";
    assert_eq!(
        stream.on_request(&nack(&rejected, &message)),
        RequestKind::Nack(trimmed.into())
    );
    let state = &stream.types[&CDS];
    assert_eq!(state.acked.as_ref().unwrap().nonce, first.nonce);
    assert_eq!(
        state.acked.as_ref().unwrap().system_version,
        first.system_version
    );
    let nack_state = state.nack.as_ref().unwrap();
    assert_eq!(nack_state.message, trimmed);
    assert_eq!(nack_state.nonce, rejected.nonce);
    assert_eq!(nack_state.version, rejected.system_version);
    assert_eq!(state.nack_count, 1);
    assert!(!state.awaiting_answer());

    // The rejected content is not pushed again by itself.
    assert!(stream.poll(&bad).is_empty());
    assert!(stream.poll(&bad).is_empty());

    // An unrelated change carries only the changed resource, not the rejected one.
    let bad_and_c = snapshot(&[(CDS, vec![cluster("a", 9), cluster("b", 1), cluster("c", 1)])]);
    let unrelated = only(stream.poll(&bad_and_c), CDS);
    assert_eq!(sent_names(&unrelated), ["c"]);
    assert_eq!(
        stream.on_request(&nack(&unrelated, "still bad")),
        RequestKind::Nack("still bad".into())
    );
    assert_eq!(stream.types[&CDS].nack_count, 2);

    // The user reverts `a`: the proxy runs that content, but we last sent the
    // rejected one, so the roll-back is sent.
    let rolled_back = snapshot(&[(CDS, vec![cluster("a", 1), cluster("b", 1), cluster("c", 1)])]);
    let fix = only(stream.poll(&rolled_back), CDS);
    assert_eq!(sent_names(&fix), ["a"]);
    assert_eq!(*nth(&fix, 0), cluster("a", 1));
    assert_eq!(nth(&fix, 0).hash, nth(&first, 0).hash);
    assert_eq!(stream.on_request(&ack(&fix)), RequestKind::Ack);
    let state = &stream.types[&CDS];
    assert!(state.nack.is_none());
    assert_eq!(state.nack_count, 2, "the count outlives the NACK");
    assert_eq!(state.acked.as_ref().unwrap().nonce, fix.nonce);
    assert!(stream.poll(&rolled_back).is_empty());
}

#[test]
fn a_stale_nonce_applies_subscription_changes_but_acks_nothing() {
    let v1 = snapshot(&[(EDS, vec![endpoints("a", &[1]), endpoints("b", &[2])])]);
    let mut stream = DeltaStream::new();
    stream.on_request(&initial(EDS, &["a"]));
    let first = only(stream.poll(&v1), EDS);
    // Endpoints of `a` change: a second response is in flight.
    let v2 = snapshot(&[(EDS, vec![endpoints("a", &[3]), endpoints("b", &[2])])]);
    let second = only(stream.poll(&v2), EDS);

    // Envoy, not yet having read `second`, ACKs `first` and subscribes b.
    assert_eq!(
        stream.on_request(&ack_with(&first, &["b"], &[])),
        RequestKind::Stale
    );
    let state = &stream.types[&EDS];
    assert!(state.names.contains("b"));
    assert!(state.acked.is_none(), "a stale request ACKs nothing");
    assert!(state.awaiting_answer());
    // The subscription change is served.
    let third = only(stream.poll(&v2), EDS);
    assert_eq!(sent_names(&third), ["b"]);

    // A stale NACK is neither a NACK nor counted.
    assert_eq!(
        stream.on_request(&nack(&second, "late")),
        RequestKind::Stale
    );
    let state = &stream.types[&EDS];
    assert!(state.nack.is_none());
    assert_eq!(state.nack_count, 0);
    assert!(state.acked.is_none());

    // A stale unsubscribe applies too: b's removal is not reported.
    let mut stale = ack_with(&first, &[], &["b"]);
    stale.response_nonce = "no-such-nonce".into();
    assert_eq!(stream.on_request(&stale), RequestKind::Stale);
    let v3 = snapshot(&[(EDS, vec![endpoints("a", &[3])])]);
    assert!(stream.poll(&v3).is_empty());

    // The latest response is ACKed normally.
    assert_eq!(stream.on_request(&ack(&third)), RequestKind::Ack);
    assert_eq!(
        stream.types[&EDS].acked.as_ref().unwrap().nonce,
        third.nonce
    );
}

#[test]
fn clusters_and_endpoints_go_first_and_routes_wait_for_their_answers() {
    // On a fresh stream, LDS asked while CDS is unanswered is held.
    let snap = mesh();
    let mut stream = DeltaStream::new();
    stream.on_request(&initial(CDS, &[]));
    let cds = only(stream.poll(&snap), CDS);
    stream.on_request(&initial(LDS, &[]));
    assert!(
        stream.poll(&snap).is_empty(),
        "LDS waits for the CDS answer"
    );
    stream.on_request(&ack(&cds));
    stream.on_request(&initial(EDS, &["a", "b"]));
    let eds = only(stream.poll(&snap), EDS);
    stream.on_request(&initial(RDS, &["outbound"]));
    assert!(
        stream.poll(&snap).is_empty(),
        "LDS/RDS wait for the EDS answer"
    );
    stream.on_request(&ack(&eds));
    let released = stream.poll(&snap);
    assert_eq!(types(&released), [LDS, RDS]);

    // One change touches every type.
    let mut stream = DeltaStream::new();
    connect(&mut stream, &mesh(), &["a", "b", "c"]);
    let after = snapshot(&[
        (CDS, vec![cluster("a", 1), cluster("b", 1), cluster("c", 1)]),
        (
            EDS,
            vec![
                endpoints("a", &[8081]),
                endpoints("b", &[9090]),
                endpoints("c", &[7070]),
            ],
        ),
        (LDS, vec![listener("outbound", 15002)]),
        (RDS, vec![routes("outbound", &["a", "c"])]),
    ]);
    let first = stream.poll(&after);
    assert_eq!(types(&first), [CDS, EDS]);
    assert_eq!(sent_names(&first[0]), ["c"]);
    assert_eq!(sent_names(&first[1]), ["a", "c"]);
    stream.on_request(&ack(&first[0]));
    assert!(stream.poll(&after).is_empty(), "EDS is still unanswered");
    stream.on_request(&ack(&first[1]));
    let second = stream.poll(&after);
    assert_eq!(types(&second), [LDS, RDS]);
    stream.on_request(&ack(&second[0]));
    stream.on_request(&ack(&second[1]));
    assert!(stream.poll(&after).is_empty());

    // A NACK is an answer: it releases the routes.
    let later = snapshot(&[
        (CDS, vec![cluster("a", 5), cluster("b", 1), cluster("c", 1)]),
        (EDS, after.of(EDS).values().cloned().collect()),
        (LDS, vec![listener("outbound", 15002)]),
        (RDS, vec![routes("outbound", &["c"])]),
    ]);
    let third = stream.poll(&later);
    assert_eq!(types(&third), [CDS, EDS]);
    stream.on_request(&nack(&third[0], "no"));
    assert!(stream.poll(&later).is_empty());
    stream.on_request(&ack(&third[1]));
    assert_eq!(types(&stream.poll(&later)), [RDS]);
}

/// Handed case 006: a cluster-only change makes Envoy keep the cluster
/// warming until it gets its endpoints again.
#[test]
fn after_a_cds_response_that_modified_a_cluster_its_endpoints_are_resent_in_the_same_poll() {
    let mut stream = DeltaStream::new();
    let [_, eds, ..] = connect(&mut stream, &mesh(), &["a", "b"]);

    // Only the connect timeout of `a` changes; endpoints are unchanged.
    let after = snapshot(&[
        (CDS, vec![cluster("a", 5), cluster("b", 1), cluster("c", 1)]),
        (EDS, vec![endpoints("a", &[8080]), endpoints("b", &[9090])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["a", "b"])]),
    ]);
    let responses = stream.poll(&after);
    assert_eq!(types(&responses), [CDS, EDS], "{responses:#?}");
    assert_eq!(sent_names(&responses[0]), ["a", "c"]);
    // Only a's endpoints: b was not modified, c was added (not modified).
    let again = &responses[1];
    assert_eq!(sent_names(again), ["a"]);
    assert_eq!(nth(again, 0), nth(&eds, 0), "same content");
    assert_eq!(nth(again, 0).hash, nth(&eds, 0).hash, "same version");
    assert!(again.removed.is_empty());
    assert_ne!(again.nonce, eds.nonce);
    // Only once.
    stream.on_request(&ack(&responses[0]));
    stream.on_request(&ack(again));
    assert!(stream.poll(&after).is_empty());

    // A cluster whose endpoints the proxy does not subscribe to gets no EDS.
    stream.on_request(&change(EDS, &[], &["b"]));
    let b_changed = snapshot(&[
        (CDS, vec![cluster("a", 5), cluster("b", 3), cluster("c", 1)]),
        (EDS, vec![endpoints("a", &[8080]), endpoints("b", &[9090])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["a", "b"])]),
    ]);
    nothing_sent(&stream.poll(&after));
    let responses = stream.poll(&b_changed);
    let cds = only(responses, CDS);
    assert_eq!(sent_names(&cds), ["b"]);
}

/// Handed case 008: a cluster that the routes stop using is removed only
/// after the proxy runs the routes that no longer use it.
#[test]
fn a_dropped_cluster_stays_until_the_routes_without_it_are_acked() {
    let before = snapshot(&[
        (CDS, vec![cluster("old", 1), cluster("v1", 1)]),
        (EDS, vec![endpoints("old", &[1]), endpoints("v1", &[2])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["old", "v1"])]),
    ]);
    let mut stream = DeltaStream::new();
    connect(&mut stream, &before, &["old", "v1"]);

    // In one change, `old` goes, `v2` is new and the routes move to v1/v2.
    let after = snapshot(&[
        (CDS, vec![cluster("v1", 1), cluster("v2", 1)]),
        (EDS, vec![endpoints("v1", &[2]), endpoints("v2", &[3])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["v1", "v2"])]),
    ]);
    let cds = only(stream.poll(&after), CDS);
    assert_eq!(sent_names(&cds), ["v2"]);
    assert!(cds.removed.is_empty(), "old is still routed to: {cds:#?}");
    // Envoy ACKs and subscribes to the endpoints of the new cluster.
    stream.on_request(&ack(&cds));
    stream.on_request(&change(EDS, &["v2"], &[]));
    let eds = only(stream.poll(&after), EDS);
    assert_eq!(sent_names(&eds), ["v2"]);
    assert!(eds.removed.is_empty(), "old keeps its endpoints: {eds:#?}");
    stream.on_request(&ack(&eds));

    // Clusters and endpoints are settled: the new routes go out; old stays.
    let rds = only(stream.poll(&after), RDS);
    assert_eq!(
        rds.resources.values().cloned().collect::<Vec<_>>(),
        [routes("outbound", &["v1", "v2"])]
    );
    assert!(stream.types[&CDS]
        .sent
        .as_ref()
        .unwrap()
        .state
        .contains_key("old"));
    assert!(stream.poll(&after).is_empty(), "nothing before the RDS ACK");

    // Once the proxy runs those routes, old and its endpoints go.
    stream.on_request(&ack(&rds));
    let last = stream.poll(&after);
    assert_eq!(types(&last), [CDS, EDS], "{last:#?}");
    assert!(last[0].resources.is_empty());
    assert_eq!(removed(&last[0]), ["old"]);
    assert_eq!(last[0].system_version, version_of(after.of(CDS)));
    assert!(last[1].resources.is_empty());
    assert_eq!(removed(&last[1]), ["old"]);
    stream.on_request(&ack(&last[0]));
    stream.on_request(&change(EDS, &[], &["old"]));
    nothing_sent(&stream.poll(&after));
    stream.on_request(&ack(&last[1]));
    nothing_sent(&stream.poll(&after));
    let acked = stream.types[&CDS].acked.as_ref().unwrap();
    assert_eq!(
        acked.state.keys().map(|n| &**n).collect::<Vec<_>>(),
        ["v1", "v2"]
    );
}

#[test]
fn a_dropped_cluster_stays_while_the_new_routes_are_nacked() {
    let before = snapshot(&[
        (CDS, vec![cluster("old", 1), cluster("v1", 1)]),
        (EDS, vec![endpoints("old", &[1]), endpoints("v1", &[2])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["old"])]),
    ]);
    let mut stream = DeltaStream::new();
    connect(&mut stream, &before, &["old", "v1"]);
    let after = snapshot(&[
        (CDS, vec![cluster("v1", 1)]),
        (EDS, vec![endpoints("v1", &[2])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["v1"])]),
    ]);
    // Nothing new in CDS/EDS (old is kept), so the routes go right away.
    let rds = only(stream.poll(&after), RDS);
    stream.on_request(&nack(&rds, "rejected"));
    assert!(
        stream.poll(&after).is_empty(),
        "old stays: Envoy still routes to it"
    );
    assert!(stream.types[&CDS]
        .sent
        .as_ref()
        .unwrap()
        .state
        .contains_key("old"));
}

#[test]
fn unknown_types_are_ignored_and_nonces_are_unique() {
    let mut stream = DeltaStream::new();
    let request = DeltaRequest {
        type_url: "type.googleapis.com/envoy.service.runtime.v3.Runtime".into(),
        subscribe: names(&["default"]),
        ..Default::default()
    };
    assert_eq!(stream.on_request(&request), RequestKind::UnknownType);
    assert!(stream.types.is_empty());
    assert!(stream.poll(&mesh()).is_empty());

    let [cds, eds, lds, rds] = connect(&mut stream, &mesh(), &["a", "b"]);
    let mut nonces = vec![&cds.nonce, &eds.nonce, &lds.nonce, &rds.nonce];
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 4);
}

/// After a control-plane restart, Envoy reconnects with the versions it runs
/// and nothing is sent again; a later change that drops a cluster together
/// with the routes using it must still keep that cluster until the new
/// routes are ACKed, although this stream never sent it.
#[test]
fn after_a_reconnect_a_dropped_cluster_still_waits_for_the_routes() {
    let before = snapshot(&[
        (CDS, vec![cluster("old", 1), cluster("v1", 1)]),
        (EDS, vec![endpoints("old", &[1]), endpoints("v1", &[2])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["old", "v1"])]),
    ]);
    let had = |t: TypeUrl| -> BTreeMap<String, String> {
        before
            .of(t)
            .values()
            .map(|r| (r.name.to_string(), r.hash.to_string()))
            .collect()
    };
    let reconnect = |t: TypeUrl, subscribe: &[&str]| DeltaRequest {
        initial_resource_versions: had(t),
        ..initial(t, subscribe)
    };
    let mut stream = DeltaStream::new();
    stream.on_request(&reconnect(CDS, &[]));
    let cds = only(stream.poll(&before), CDS);
    stream.on_request(&reconnect(EDS, &["old", "v1"]));
    let eds = only(stream.poll(&before), EDS);
    stream.on_request(&ack(&cds));
    stream.on_request(&ack(&eds));
    stream.on_request(&reconnect(LDS, &[]));
    let lds = only(stream.poll(&before), LDS);
    stream.on_request(&reconnect(RDS, &["outbound"]));
    let rds = only(stream.poll(&before), RDS);
    for response in [&cds, &eds, &lds, &rds] {
        assert!(response.resources.is_empty(), "{response:#?}");
        assert!(response.removed.is_empty(), "{response:#?}");
    }
    stream.on_request(&ack(&lds));
    stream.on_request(&ack(&rds));
    assert!(stream.poll(&before).is_empty());
    // What the proxy runs is known, although none of it was sent here.
    let acked = stream.types[&CDS].acked.as_ref().unwrap();
    assert_eq!(
        acked.state.keys().map(|n| &**n).collect::<Vec<_>>(),
        ["old", "v1"]
    );

    let after = snapshot(&[
        (CDS, vec![cluster("v1", 1), cluster("v2", 1)]),
        (EDS, vec![endpoints("v1", &[2]), endpoints("v2", &[3])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["v1", "v2"])]),
    ]);
    let cds = only(stream.poll(&after), CDS);
    assert_eq!(sent_names(&cds), ["v2"]);
    assert!(cds.removed.is_empty(), "old is still routed to: {cds:#?}");
    stream.on_request(&ack(&cds));
    stream.on_request(&ack_with(&eds, &["v2"], &[]));
    let eds = only(stream.poll(&after), EDS);
    assert_eq!(sent_names(&eds), ["v2"]);
    assert!(eds.removed.is_empty(), "old keeps its endpoints: {eds:#?}");
    stream.on_request(&ack(&eds));
    let rds = only(stream.poll(&after), RDS);
    stream.on_request(&ack(&rds));
    let last = stream.poll(&after);
    assert_eq!(types(&last), [CDS, EDS], "{last:#?}");
    assert_eq!(removed(&last[0]), ["old"]);
    assert_eq!(removed(&last[1]), ["old"]);
}

#[test]
fn naive_baseline_resend_all_sends_every_resource_again_once() {
    let snap = mesh();
    let mut stream = DeltaStream::new();
    let [cds, eds, _, _] = connect(&mut stream, &snap, &["a", "b"]);
    stream.resend_all();
    let responses = stream.poll(&snap);
    assert_eq!(types(&responses), vec![CDS, EDS], "{responses:#?}");
    assert_eq!(sent_names(&responses[0]), sent_names(&cds));
    assert_eq!(sent_names(&responses[1]), sent_names(&eds));
    stream.on_request(&ack(&responses[0]));
    stream.on_request(&ack(&responses[1]));
    let rest = stream.poll(&snap);
    assert_eq!(types(&rest), vec![LDS, RDS], "{rest:#?}");
    assert!(rest.iter().all(|r| !r.resources.is_empty()));
    for r in &rest {
        stream.on_request(&ack(r));
    }
    nothing_sent(&stream.poll(&snap));
}

/// Many pushes where each snapshot is the previous one with a few
/// endpoints added, changed or removed (sharing structure, as the cache
/// derives them), with names subscribed and unsubscribed now and then: after
/// each poll and ACK, a proxy applying the responses (resources in, removed
/// names out, unsubscribed names dropped) holds exactly the subscribed part
/// of the snapshot, and so does the stream's record of it, whose version is
/// the version of that set computed from scratch.
#[test]
fn deltas_follow_a_changing_snapshot_and_subscription_exactly() {
    let mut world = ChangingEndpoints::new(11);
    let mut subscribed: BTreeSet<String> = (0..40).step_by(2).map(endpoint_name).collect();
    let mut stream = DeltaStream::new();
    let first: Vec<&str> = subscribed.iter().map(String::as_str).collect();
    stream.on_request(&initial(EDS, &first));
    let mut proxy: BTreeMap<String, Resource> = BTreeMap::new();
    let mut pending: Option<DeltaRequest> = None;
    for step in 0..300 {
        let snap = world.step(step);
        if let Some(request) = pending.take() {
            stream.on_request(&request);
        }
        for response in stream.poll(&snap) {
            for r in response.resources.values() {
                proxy.insert(r.name.to_string(), r.clone());
            }
            for n in &response.removed {
                proxy.remove(n);
            }
            stream.on_request(&ack(&response));
        }
        let expected = world.expected(&subscribed);
        assert_eq!(proxy, expected, "step {step}: what the proxy holds");
        let sent = stream.types[&EDS].sent.clone().unwrap();
        assert_eq!(
            by_name(&sent.state),
            expected,
            "step {step}: the stream's record"
        );
        assert_eq!(sent.system_version, version_of(&sent.state), "step {step}");
        if step % 29 == 28 {
            // As Envoy does, a request never subscribes and unsubscribes
            // one name at once.
            let drop: Vec<String> = subscribed
                .iter()
                .filter(|_| world.rng().bool())
                .cloned()
                .collect();
            let add: Vec<String> = (0..50)
                .map(endpoint_name)
                .filter(|n| !drop.contains(n) && world.rng().u8(0..5) == 0)
                .collect();
            for n in &drop {
                subscribed.remove(n);
                proxy.remove(n);
            }
            subscribed.extend(add.iter().cloned());
            let add: Vec<&str> = add.iter().map(String::as_str).collect();
            let drop: Vec<&str> = drop.iter().map(String::as_str).collect();
            pending = Some(change(EDS, &add, &drop));
        }
    }
}

/// What a delta stream knows the proxy has is the snapshot's own map, not
/// a copy (nor a name → version map) per stream, and streams with the same
/// names share one set of them.
#[test]
fn delta_streams_share_their_subscription_and_the_snapshot_map() {
    let mut world = ChangingEndpoints::new(11);
    let mut snap = world.step(0);
    let eds: Vec<String> = (0..60).map(endpoint_name).collect();
    let eds: Vec<&str> = eds.iter().map(String::as_str).collect();
    let mut streams = [DeltaStream::new(), DeltaStream::new()];
    for stream in &mut streams {
        stream.on_request(&initial(EDS, &eds));
        let response = only(stream.poll(&snap), EDS);
        assert!(
            response.resources.ptr_eq(snap.of(EDS)),
            "the first response is the snapshot's map, not a list per stream"
        );
        stream.on_request(&ack(&response));
    }
    assert!(streams[0].types[&EDS]
        .names
        .is_shared_with(&streams[1].types[&EDS].names));
    let mut pushes = 0;
    for generation in 1..=30 {
        snap = world.step(generation);
        for stream in &mut streams {
            let Some(response) = stream.poll(&snap).into_iter().next() else {
                continue;
            };
            pushes += 1;
            stream.on_request(&ack(&response));
            assert!(
                stream.types[&EDS].resources.ptr_eq(snap.of(EDS)),
                "generation {generation}: the stream holds a copy of the snapshot's map"
            );
        }
    }
    assert!(pushes > 40, "{pushes} pushes");
}

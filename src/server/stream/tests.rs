//! Message-by-message tests of the SotW state machine: each test plays the
//! requests Envoy would send and checks what comes out of `poll`.

use super::*;
use crate::server::test_support::*;

/// Names of everything the proxy has of `type_url` once it applies what was
/// sent (EDS and RDS pushes carry only what changed).
fn sent_names(stream: &SotwStream, type_url: TypeUrl) -> Vec<String> {
    stream.types[&type_url]
        .sent
        .as_ref()
        .map(|s| s.resources.keys().map(|n| n.to_string()).collect())
        .unwrap_or_default()
}

fn names(names: &[&str]) -> RequestNames {
    names.iter().copied().collect()
}

/// A first request (empty nonce).
fn initial(type_url: TypeUrl, resource_names: &[&str]) -> Request {
    Request {
        type_url: type_url.as_str().into(),
        resource_names: names(resource_names),
        ..Default::default()
    }
}

/// An ACK of `response`, as Envoy sends it: its version and nonce.
fn ack(response: &Response, resource_names: &[&str]) -> Request {
    Request {
        type_url: response.type_url.as_str().into(),
        version_info: response.version.clone(),
        resource_names: names(resource_names),
        response_nonce: response.nonce.clone(),
        error_detail: None,
    }
}

/// A NACK of `response`, as Envoy sends it: the version it still runs (the
/// last one it accepted), the rejected nonce and an error message.
fn nack(response: &Response, running: &str, resource_names: &[&str], message: &str) -> Request {
    Request {
        type_url: response.type_url.as_str().into(),
        version_info: running.into(),
        resource_names: names(resource_names),
        response_nonce: response.nonce.clone(),
        error_detail: Some(message.into()),
    }
}

fn types(responses: &[Response]) -> Vec<TypeUrl> {
    responses.iter().map(|r| r.type_url).collect()
}

fn resource_names(response: &Response) -> Vec<&str> {
    response.resources.keys().map(|n| &**n).collect()
}

/// The only response of a poll, of the given type.
fn only(responses: Vec<Response>, type_url: TypeUrl) -> Response {
    assert_eq!(types(&responses), vec![type_url], "{responses:#?}");
    responses.into_iter().next().unwrap()
}

/// Subscribes CDS, EDS (for `eds`), LDS and RDS (for `outbound`) one after
/// another as Envoy does, ACKing every response; returns the latest response
/// of each type.
fn connect(stream: &mut SotwStream, snap: &ProxySnapshot, eds: &[&str]) -> [Response; 4] {
    stream.on_request(&initial(CDS, &[]));
    let cds = only(stream.poll(snap), CDS);
    stream.on_request(&initial(EDS, eds));
    let eds_response = only(stream.poll(snap), EDS);
    stream.on_request(&ack(&cds, &[]));
    stream.on_request(&ack(&eds_response, eds));
    assert!(stream.poll(snap).is_empty());
    stream.on_request(&initial(LDS, &[]));
    let lds = only(stream.poll(snap), LDS);
    stream.on_request(&initial(RDS, &["outbound"]));
    let rds = only(stream.poll(snap), RDS);
    stream.on_request(&ack(&lds, &[]));
    stream.on_request(&ack(&rds, &["outbound"]));
    assert!(stream.poll(snap).is_empty());
    [cds, eds_response, lds, rds]
}

#[test]
fn the_first_request_is_answered_with_everything_subscribed() {
    let snap = mesh();
    let mut stream = SotwStream::new();
    assert_eq!(stream.on_request(&initial(CDS, &[])), RequestKind::Initial);
    let response = only(stream.poll(&snap), CDS);
    assert_eq!(resource_names(&response), ["a", "b"]);
    assert!(!response.nonce.is_empty());
    assert_eq!(response.version, version_of(snap.of(CDS)));
    assert_eq!(response.resources.as_ref(), snap.of(CDS));

    let state = &stream.types[&CDS];
    assert_eq!(state.sent.as_ref().unwrap().nonce, response.nonce);
    assert!(state.acked.is_none());
    assert!(state.awaiting_answer());
}

#[test]
fn an_ack_is_recorded_and_nothing_is_sent_again_while_nothing_changes() {
    let snap = mesh();
    let mut stream = SotwStream::new();
    stream.on_request(&initial(CDS, &[]));
    let response = only(stream.poll(&snap), CDS);
    assert_eq!(stream.on_request(&ack(&response, &[])), RequestKind::Ack);

    let state = &stream.types[&CDS];
    let (sent, acked) = (state.sent.as_ref().unwrap(), state.acked.as_ref().unwrap());
    assert_eq!(acked.version, sent.version);
    assert_eq!(acked.nonce, response.nonce);
    assert!(!state.awaiting_answer());
    assert!(state.nack.is_none());
    assert!(stream.poll(&snap).is_empty());
    // Polling again (a generation bump with the same content) sends nothing.
    assert!(stream.poll(&mesh()).is_empty());
}

#[test]
fn a_nack_is_detected_by_error_detail_only_and_keeps_the_old_acked_version() {
    let a = mesh();
    let mut stream = SotwStream::new();
    stream.on_request(&initial(CDS, &[]));
    let first = only(stream.poll(&a), CDS);
    // An ACK whose version_info differs from ours is still an ACK.
    let mut odd_ack = ack(&first, &[]);
    odd_ack.version_info = "something-else".into();
    assert_eq!(stream.on_request(&odd_ack), RequestKind::Ack);
    assert_eq!(
        stream.types[&CDS].acked.as_ref().unwrap().version,
        first.version
    );

    let b = snapshot(&[(CDS, vec![cluster("a", 2), cluster("b", 1)])]);
    let rejected = only(stream.poll(&b), CDS);
    let kind = stream.on_request(&nack(&rejected, &first.version, &[], "bad cluster"));
    assert_eq!(kind, RequestKind::Nack("bad cluster".into()));

    let state = &stream.types[&CDS];
    assert_eq!(state.acked.as_ref().unwrap().version, first.version);
    assert_eq!(state.sent.as_ref().unwrap().version, rejected.version);
    let nack_state = state.nack.as_ref().unwrap();
    assert_eq!(nack_state.version, rejected.version);
    assert_eq!(nack_state.nonce, rejected.nonce);
    assert_eq!(nack_state.message, "bad cluster");
    assert_eq!(state.nack_count, 1);
    assert!(!state.awaiting_answer());
    // The rejected version is not pushed again in a loop.
    assert!(stream.poll(&b).is_empty());

    // A NACK whose version_info happens to equal the sent version is still a NACK.
    let c = snapshot(&[(CDS, vec![cluster("a", 3), cluster("b", 1)])]);
    let rejected_again = only(stream.poll(&c), CDS);
    let kind = stream.on_request(&nack(&rejected_again, &rejected_again.version, &[], "x"));
    assert_eq!(kind, RequestKind::Nack("x".into()));
    let state = &stream.types[&CDS];
    assert_eq!(state.nack_count, 2);
    assert_eq!(state.acked.as_ref().unwrap().version, first.version);

    // The next ACK clears the NACK but keeps the count.
    let d = snapshot(&[(CDS, vec![cluster("a", 4), cluster("b", 1)])]);
    let accepted = only(stream.poll(&d), CDS);
    assert_eq!(stream.on_request(&ack(&accepted, &[])), RequestKind::Ack);
    let state = &stream.types[&CDS];
    assert!(state.nack.is_none());
    assert_eq!(state.nack_count, 2);
    assert_eq!(state.acked.as_ref().unwrap().version, accepted.version);
}

#[test]
fn a_nack_message_is_trimmed_to_the_proto_validation_failure() {
    let dump = "cluster { name: \"outbound|80||x\" type: EDS eds_cluster_config { eds_config { ads { } } } }\n"
        .repeat(40);
    let message = format!(
        "Error adding/updating cluster(s) outbound|80||x: {dump}Proto constraint validation failed (ClusterValidationError.LbPolicy:\n   value must be one of the defined enum values)"
    );
    let trimmed = trim_nack_message(&message);
    assert_eq!(
        trimmed,
        "Proto constraint validation failed (ClusterValidationError.LbPolicy: value must be one of the defined enum values)"
    );

    // The stream stores and returns the trimmed message.
    let mut stream = SotwStream::new();
    stream.on_request(&initial(CDS, &[]));
    let response = only(stream.poll(&mesh()), CDS);
    let kind = stream.on_request(&nack(&response, "", &[], &message));
    assert_eq!(kind, RequestKind::Nack(trimmed.clone()));
    assert_eq!(stream.types[&CDS].nack.as_ref().unwrap().message, trimmed);

    // Without the marker: whitespace collapsed, at most 1,000 characters.
    assert_eq!(
        trim_nack_message("  duplicate   domain\n\t'x' "),
        "duplicate domain 'x'"
    );
    assert_eq!(trim_nack_message(&"é".repeat(5000)).chars().count(), 1000);
    // The last marker wins when the dump itself quotes an earlier one.
    assert_eq!(
        trim_nack_message(
            "Proto constraint validation failed (old) dump Proto constraint validation failed (new)"
        ),
        "Proto constraint validation failed (new)"
    );
}

#[test]
fn a_stale_nonce_applies_resource_names_but_is_not_answered() {
    let v1 = snapshot(&[(EDS, vec![endpoints("a", &[1]), endpoints("b", &[2])])]);
    let mut stream = SotwStream::new();
    stream.on_request(&initial(EDS, &["a"]));
    let first = only(stream.poll(&v1), EDS);
    assert_eq!(resource_names(&first), ["a"]);

    // Endpoints of `a` change: a second response is in flight.
    let v2 = snapshot(&[(EDS, vec![endpoints("a", &[3]), endpoints("b", &[2])])]);
    let second = only(stream.poll(&v2), EDS);

    // Envoy, not yet having read `second`, asks for [a, b] with the old nonce.
    let mut stale = ack(&first, &["a", "b"]);
    stale.version_info = first.version.clone();
    assert_eq!(stream.on_request(&stale), RequestKind::Stale);
    assert_eq!(
        stream.types[&EDS].subscription,
        Subscription::Names(NameSet::new(["a".to_string(), "b".to_string()].into()))
    );
    assert!(
        stream.poll(&v2).is_empty(),
        "a stale request is not answered"
    );
    assert!(
        stream.types[&EDS].acked.is_none(),
        "a stale request ACKs nothing"
    );

    // The endpoints of b change meanwhile: still nothing until Envoy answers
    // the response in flight, which it will.
    let v3 = snapshot(&[(EDS, vec![endpoints("a", &[3]), endpoints("b", &[4])])]);
    assert!(stream.poll(&v3).is_empty());

    // Envoy reads `second` and ACKs it with its current names: now it gets b.
    assert_eq!(
        stream.on_request(&ack(&second, &["a", "b"])),
        RequestKind::Ack
    );
    let third = only(stream.poll(&v3), EDS);
    // A push carries only what changed for the proxy (a it already has).
    assert_eq!(resource_names(&third), ["b"]);
    assert_eq!(third.resources["b"], v3.of(EDS)["b"]);
    assert_eq!(sent_names(&stream, EDS), ["a", "b"]);

    // A stale request with unchanged names does nothing at all.
    assert_eq!(
        stream.on_request(&ack(&second, &["a", "b"])),
        RequestKind::Stale
    );
    assert!(stream.poll(&v3).is_empty());

    // With nothing in flight (the latest response is answered), a request
    // with an unknown nonce is stale too, but its names are still served:
    // no later answer would bring them.
    stream.on_request(&ack(&third, &["a", "b"]));
    let mut odd = ack(&third, &["b"]);
    odd.response_nonce = "no-such-nonce".into();
    assert_eq!(stream.on_request(&odd), RequestKind::Stale);
    let fourth = only(stream.poll(&v3), EDS);
    // The proxy already has b: the push only moves the version on.
    assert!(fourth.resources.is_empty());
    assert_eq!(sent_names(&stream, EDS), ["b"]);
}

#[test]
fn repeating_the_latest_nonce_with_changed_names_is_answered() {
    let snap = snapshot(&[(RDS, vec![routes("outbound", &["a"])])]);
    let mut stream = SotwStream::new();
    stream.on_request(&initial(RDS, &["outbound"]));
    let first = only(stream.poll(&snap), RDS);
    stream.on_request(&ack(&first, &["outbound"]));
    assert!(stream.poll(&snap).is_empty());

    // A new listener needs a route configuration that does not exist (yet):
    // the request repeats the latest nonce and must still be answered, with
    // the same content and a new nonce.
    let kind = stream.on_request(&ack(&first, &["outbound", "inbound"]));
    assert_eq!(kind, RequestKind::Ack);
    let second = only(stream.poll(&snap), RDS);
    assert_eq!(second.version, first.version);
    assert_ne!(second.nonce, first.nonce);
    assert_eq!(resource_names(&second), ["outbound"]);

    // Dropping a name is answered too, without it.
    stream.on_request(&ack(&second, &["outbound", "inbound"]));
    stream.on_request(&ack(&second, &[]));
    let third = only(stream.poll(&snap), RDS);
    assert!(third.resources.is_empty());
}

#[test]
fn eds_names_that_do_not_exist_yet_are_pushed_when_they_appear() {
    let only_a = snapshot(&[(EDS, vec![endpoints("a", &[1])])]);
    let mut stream = SotwStream::new();
    stream.on_request(&initial(EDS, &["a", "b"]));
    let first = only(stream.poll(&only_a), EDS);
    assert_eq!(resource_names(&first), ["a"]);
    stream.on_request(&ack(&first, &["a", "b"]));
    assert!(stream.poll(&only_a).is_empty());

    // b appears; no request from Envoy, but it is pushed.
    let both = snapshot(&[(EDS, vec![endpoints("a", &[1]), endpoints("b", &[2])])]);
    let second = only(stream.poll(&both), EDS);
    assert_eq!(
        resource_names(&second),
        ["b"],
        "a push carries only what changed"
    );
    assert_eq!(sent_names(&stream, EDS), ["a", "b"]);
    // Resources nobody asked for are never sent.
    let extra = snapshot(&[(
        EDS,
        vec![
            endpoints("a", &[1]),
            endpoints("b", &[2]),
            endpoints("c", &[3]),
        ],
    )]);
    stream.on_request(&ack(&second, &["a", "b"]));
    assert!(stream.poll(&extra).is_empty());
}

#[test]
fn cds_and_lds_subscribe_to_everything_with_no_names_or_a_star() {
    for (type_url, wildcard) in [
        (CDS, vec![]),
        (CDS, vec!["*"]),
        (LDS, vec![]),
        (LDS, vec!["*"]),
    ] {
        let what = format!("{type_url} {wildcard:?}");
        let snap = snapshot(&[
            (CDS, vec![cluster("a", 1), cluster("b", 1)]),
            (LDS, vec![listener("l1", 1), listener("l2", 2)]),
        ]);
        let mut stream = SotwStream::new();
        stream.on_request(&initial(type_url, &wildcard));
        assert_eq!(
            stream.types[&type_url].subscription,
            Subscription::Wildcard,
            "{what}"
        );
        let first = only(stream.poll(&snap), type_url);
        assert_eq!(first.resources.as_ref(), snap.of(type_url), "{what}");
        stream.on_request(&ack(&first, &wildcard));

        // A full set: an addition and a removal are both a new response.
        let next = snapshot(&[
            (CDS, vec![cluster("b", 1), cluster("c", 1)]),
            (LDS, vec![listener("l2", 2), listener("l3", 3)]),
        ]);
        let second = only(stream.poll(&next), type_url);
        assert_eq!(second.resources.as_ref(), next.of(type_url), "{what}");
    }

    // EDS and RDS have no wildcard: no names is no resources.
    let mut stream = SotwStream::new();
    stream.on_request(&initial(EDS, &[]));
    assert_eq!(
        stream.types[&EDS].subscription,
        Subscription::Names(Default::default())
    );
    let response = only(stream.poll(&mesh()), EDS);
    assert!(response.resources.is_empty());
    // ... but `*` is a wildcard for any type.
    let mut stream = SotwStream::new();
    stream.on_request(&initial(EDS, &["*"]));
    let response = only(stream.poll(&mesh()), EDS);
    assert_eq!(resource_names(&response), ["a", "b"]);
}

/// Handed case 006: a cluster-only change makes Envoy re-request EDS for the
/// modified cluster and keep it warming until an assignment arrives.
#[test]
fn after_a_cds_response_that_modified_a_cluster_the_next_eds_request_is_answered() {
    let before = mesh();
    let mut stream = SotwStream::new();
    let [_, eds, ..] = connect(&mut stream, &before, &["a", "b"]);

    // Only the connect timeout of `a` changes; endpoints are unchanged.
    let after = snapshot(&[
        (CDS, vec![cluster("a", 5), cluster("b", 1)]),
        (EDS, vec![endpoints("a", &[8080]), endpoints("b", &[9090])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["a", "b"])]),
    ]);
    let cds = only(stream.poll(&after), CDS);
    stream.on_request(&ack(&cds, &[]));
    assert!(stream.poll(&after).is_empty());

    // Envoy re-requests the endpoints: same nonce, same names. It is answered
    // with the same content and a new nonce.
    assert_eq!(stream.on_request(&ack(&eds, &["a", "b"])), RequestKind::Ack);
    let again = only(stream.poll(&after), EDS);
    assert_eq!(again.version, eds.version);
    assert_ne!(again.nonce, eds.nonce);
    assert_eq!(again.resources, eds.resources);
    // Only once: its ACK is not answered again.
    stream.on_request(&ack(&again, &["a", "b"]));
    assert!(stream.poll(&after).is_empty());
}

#[test]
fn a_cds_response_that_only_adds_clusters_owes_no_eds_response() {
    let before = mesh();
    let mut stream = SotwStream::new();
    let [_, eds, ..] = connect(&mut stream, &before, &["a", "b"]);
    let mut added = mesh();
    added.resources.insert(
        CDS,
        Arc::new(
            [cluster("a", 1), cluster("b", 1), cluster("c", 1)]
                .into_iter()
                .map(|r| (r.name.clone(), r))
                .collect(),
        ),
    );
    let cds = only(stream.poll(&added), CDS);
    stream.on_request(&ack(&cds, &[]));
    // The same EDS request as before is a plain ACK again: nothing to send.
    stream.on_request(&ack(&eds, &["a", "b"]));
    assert!(stream.poll(&added).is_empty());
}

#[test]
fn a_roll_back_after_a_nack_is_sent_again() {
    let a = snapshot(&[(CDS, vec![cluster("a", 1)])]);
    let b = snapshot(&[(CDS, vec![cluster("a", 9)])]);
    let mut stream = SotwStream::new();
    stream.on_request(&initial(CDS, &[]));
    let first = only(stream.poll(&a), CDS);
    stream.on_request(&ack(&first, &[]));

    let rejected = only(stream.poll(&b), CDS);
    stream.on_request(&nack(&rejected, &first.version, &[], "invalid"));
    assert!(stream.poll(&b).is_empty());

    // The user reverts: the snapshot is A again, which Envoy runs, but we
    // last sent B, so A is sent again.
    let rolled_back = only(stream.poll(&a), CDS);
    assert_eq!(rolled_back.version, first.version);
    assert_ne!(rolled_back.nonce, first.nonce);
    assert_eq!(rolled_back.resources, first.resources);
    stream.on_request(&ack(&rolled_back, &[]));
    let state = &stream.types[&CDS];
    assert!(state.nack.is_none());
    assert_eq!(state.acked.as_ref().unwrap().version, first.version);
    assert!(stream.poll(&a).is_empty());
}

#[test]
fn clusters_and_endpoints_go_first_and_routes_wait_for_their_acks() {
    let before = mesh();
    let mut stream = SotwStream::new();
    connect(&mut stream, &before, &["a", "b", "c"]);

    // One change touches every type: cluster `a` is modified, `c` is new,
    // endpoints move, the listener and the routes change.
    let after = snapshot(&[
        (CDS, vec![cluster("a", 7), cluster("b", 1), cluster("c", 1)]),
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
    let (cds, eds) = (&first[0], &first[1]);
    assert_eq!(sent_names(&stream, EDS), ["a", "b", "c"]);
    for (name, resource) in eds.resources.iter() {
        assert_ne!(
            before.of(EDS).get(name),
            Some(resource),
            "{name} did not change but was pushed"
        );
    }

    // Still waiting for the EDS answer: routes are held.
    stream.on_request(&ack(cds, &[]));
    assert!(stream.poll(&after).is_empty());
    // Both ACKed: listeners and routes follow, in that order.
    stream.on_request(&ack(eds, &["a", "b", "c"]));
    let second = stream.poll(&after);
    assert_eq!(types(&second), [LDS, RDS]);
    stream.on_request(&ack(&second[0], &[]));
    stream.on_request(&ack(&second[1], &["outbound"]));
    assert!(stream.poll(&after).is_empty());
}

#[test]
fn a_nack_of_clusters_also_releases_held_routes() {
    let before = mesh();
    let mut stream = SotwStream::new();
    let [cds0, ..] = connect(&mut stream, &before, &["a", "b"]);
    let after = snapshot(&[
        (CDS, vec![cluster("a", 7), cluster("b", 1)]),
        (EDS, vec![endpoints("a", &[8080]), endpoints("b", &[9090])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["b"])]),
    ]);
    let cds = only(stream.poll(&after), CDS);
    stream.on_request(&nack(&cds, &cds0.version, &[], "no"));
    // The CDS response is answered, so the routes may go (a NACK is an answer).
    assert_eq!(types(&stream.poll(&after)), [RDS]);
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
    let mut stream = SotwStream::new();
    connect(&mut stream, &before, &["old", "v1"]);

    // In one change, `old` goes, `v2` is new and the routes move to v1/v2.
    let after = snapshot(&[
        (CDS, vec![cluster("v1", 1), cluster("v2", 1)]),
        (EDS, vec![endpoints("v1", &[2]), endpoints("v2", &[3])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["v1", "v2"])]),
    ]);
    let first = stream.poll(&after);
    assert_eq!(types(&first), [CDS], "{first:#?}");
    assert_eq!(resource_names(&first[0]), ["old", "v1", "v2"]);
    stream.on_request(&ack(&first[0], &[]));
    // Envoy asks for the endpoints of the new cluster.
    let eds_before = stream.types[&EDS].sent.clone().unwrap();
    stream.on_request(&Request {
        type_url: EDS.as_str().into(),
        version_info: eds_before.version.clone(),
        resource_names: names(&["old", "v1", "v2"]),
        response_nonce: eds_before.nonce.clone(),
        error_detail: None,
    });
    let eds = only(stream.poll(&after), EDS);
    assert_eq!(resource_names(&eds), ["old", "v1", "v2"]);
    assert_eq!(
        eds.resources["old"],
        endpoints("old", &[1]),
        "old keeps its endpoints"
    );
    stream.on_request(&ack(&eds, &["old", "v1", "v2"]));

    // Clusters and endpoints are settled: the new routes go out; `old` stays.
    let rds = only(stream.poll(&after), RDS);
    assert_eq!(rds.resources["outbound"], routes("outbound", &["v1", "v2"]));
    assert!(stream.types[&CDS]
        .sent
        .as_ref()
        .unwrap()
        .resources
        .contains_key("old"));

    // Once the proxy runs those routes, `old` and its endpoints go.
    stream.on_request(&ack(&rds, &["outbound"]));
    let last = stream.poll(&after);
    assert_eq!(types(&last), [CDS, EDS], "{last:#?}");
    assert_eq!(resource_names(&last[0]), ["v1", "v2"]);
    assert_eq!(last[0].resources.as_ref(), after.of(CDS));
    assert!(
        last[1].resources.is_empty(),
        "v1 and v2 endpoints did not change"
    );
    assert_eq!(sent_names(&stream, EDS), ["v1", "v2"]);
    // Envoy drops `old` from its EDS names while it applies the CDS response,
    // before it reads the EDS one (so with a stale nonce), then ACKs both.
    stream.on_request(&ack(&last[0], &[]));
    assert_eq!(
        stream.on_request(&ack(&eds, &["v1", "v2"])),
        RequestKind::Stale
    );
    assert!(stream.poll(&after).is_empty());
    stream.on_request(&ack(&last[1], &["v1", "v2"]));
    assert!(stream.poll(&after).is_empty());
    assert_eq!(
        stream.types[&EDS].acked.as_ref().unwrap().nonce,
        last[1].nonce
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
    let mut stream = SotwStream::new();
    let [.., rds0] = connect(&mut stream, &before, &["old", "v1"]);
    let after = snapshot(&[
        (CDS, vec![cluster("v1", 1)]),
        (EDS, vec![endpoints("v1", &[2])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["v1"])]),
    ]);
    // Nothing new in CDS/EDS (old is kept), so the routes go right away.
    let rds = only(stream.poll(&after), RDS);
    stream.on_request(&nack(&rds, &rds0.version, &["outbound"], "rejected"));
    assert!(
        stream.poll(&after).is_empty(),
        "old stays: Envoy still routes to it"
    );
    assert!(stream.types[&CDS]
        .sent
        .as_ref()
        .unwrap()
        .resources
        .contains_key("old"));
}

#[test]
fn a_reconnect_with_an_old_version_and_no_nonce_is_answered() {
    let snap = mesh();
    // Envoy kept running what a previous server process sent: its
    // version_info matches what we would send now, but the stream is new.
    for type_url in [CDS, EDS, LDS, RDS] {
        let mut stream = SotwStream::new();
        let mut request = initial(type_url, if type_url == EDS { &["a"] } else { &[] });
        if type_url == RDS {
            request.resource_names = names(&["outbound"]);
        }
        request.version_info = version_of(&select(
            snap.of(type_url),
            &Subscription::from_request(type_url, &request.resource_names),
        ));
        assert_eq!(stream.on_request(&request), RequestKind::Initial);
        let response = only(stream.poll(&snap), type_url);
        assert_eq!(response.version, request.version_info);
    }

    // An empty nonce on a running stream (Envoy re-subscribing) is answered too.
    let mut stream = SotwStream::new();
    let [cds, ..] = connect(&mut stream, &snap, &["a", "b"]);
    let mut again = initial(CDS, &[]);
    again.version_info = cds.version.clone();
    assert_eq!(stream.on_request(&again), RequestKind::Initial);
    let response = only(stream.poll(&snap), CDS);
    assert_eq!(response.version, cds.version);
}

#[test]
fn unknown_types_are_ignored() {
    let mut stream = SotwStream::new();
    let request = Request {
        type_url: "type.googleapis.com/envoy.service.runtime.v3.Runtime".into(),
        ..Default::default()
    };
    assert_eq!(stream.on_request(&request), RequestKind::UnknownType);
    assert!(stream.types.is_empty());
    assert!(stream.poll(&mesh()).is_empty());
}

#[test]
fn nonces_are_unique_on_a_stream_and_versions_follow_content() {
    let mut stream = SotwStream::new();
    let [cds, eds, lds, rds] = connect(&mut stream, &mesh(), &["a", "b"]);
    let mut nonces = vec![&cds.nonce, &eds.nonce, &lds.nonce, &rds.nonce];
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 4);
    // The version is a function of the content only.
    assert_eq!(cds.version, version_of(mesh().of(CDS)));
    assert_ne!(version_of(mesh().of(CDS)), version_of(mesh().of(EDS)));
    assert_ne!(version_of(&ResourceMap::new()), cds.version);
}

#[test]
fn naive_baseline_resend_all_sends_every_type_in_full_once() {
    let snap = mesh();
    let mut stream = SotwStream::new();
    let [cds, eds, _, _] = connect(&mut stream, &snap, &["a", "b"]);
    stream.resend_all();
    // Nothing changed, yet CDS and EDS come again with everything...
    let responses = stream.poll(&snap);
    assert_eq!(types(&responses), vec![CDS, EDS], "{responses:#?}");
    assert_eq!(resource_names(&responses[0]), resource_names(&cds));
    assert_eq!(resource_names(&responses[1]), resource_names(&eds));
    // ...then LDS and RDS once they are answered (make before break).
    stream.on_request(&ack(&responses[0], &[]));
    stream.on_request(&ack(&responses[1], &["a", "b"]));
    let rest = stream.poll(&snap);
    assert_eq!(types(&rest), vec![LDS, RDS], "{rest:#?}");
    for r in &rest {
        stream.on_request(&ack(
            r,
            if r.type_url == RDS {
                &["outbound"]
            } else {
                &[]
            },
        ));
    }
    assert!(stream.poll(&snap).is_empty());
}

/// Many pushes where each snapshot is the previous one with a few
/// endpoints added, changed or removed (as the cache derives them, sharing
/// structure), with the EDS subscription changing now and then: after each
/// poll and ACK, what the stream sent, and what a proxy applying the pushes
/// holds, is exactly the subscribed part of the snapshot, and the version
/// kept up to date from diffs equals the version of the sent set computed
/// from scratch.
#[test]
fn pushes_follow_a_changing_snapshot_and_subscription_exactly() {
    let mut world = ChangingEndpoints::new(7);
    let mut subscribed: Vec<String> = (0..40).step_by(2).map(endpoint_name).collect();
    let mut stream = SotwStream::new();
    stream.on_request(&initial(EDS, &as_strs(&subscribed)));
    let mut proxy: BTreeMap<String, Resource> = BTreeMap::new();
    for step in 0..300 {
        let snap = world.step(step);
        if step % 37 == 36 {
            subscribed = (0..50)
                .filter(|_| world.rng().bool())
                .map(endpoint_name)
                .collect();
            let sent = stream.types[&EDS].sent.clone().unwrap();
            let stale_ack = Request {
                type_url: EDS.as_str().into(),
                version_info: sent.version.clone(),
                resource_names: names(&as_strs(&subscribed)),
                response_nonce: sent.nonce.clone(),
                error_detail: None,
            };
            stream.on_request(&stale_ack);
        }
        for response in stream.poll(&snap) {
            for (n, r) in response.resources.iter() {
                proxy.insert(n.to_string(), r.clone());
            }
            stream.on_request(&ack(&response, &as_strs(&subscribed)));
        }
        let expected = world.expected(&subscribed);
        let sent = stream.types[&EDS].sent.clone().unwrap();
        assert_eq!(by_name(&sent.resources), expected, "step {step}");
        assert_eq!(sent.version, version_of(&sent.resources), "step {step}");
        for (n, r) in &expected {
            assert_eq!(proxy.get(n), Some(r), "step {step}: the proxy has {n}");
        }
    }
}

fn as_strs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// A request repeats the subscription in any order (and may repeat a
/// name): only a different set of names, or a switch to or from the
/// wildcard, counts as a change.
#[test]
fn a_request_is_compared_with_the_subscription_as_a_set() {
    let subscription = Subscription::from_request(EDS, &names(&["b", "a", "c"]));
    for same in [
        &["a", "b", "c"][..],
        &["c", "a", "b"],
        &["a", "b", "b", "c"],
    ] {
        assert!(subscription.is_requested_by(EDS, &names(same)), "{same:?}");
    }
    for other in [
        &["a", "b"][..],
        &["a", "b", "c", "d"],
        &["a", "b", "d"],
        &["*"],
        &[],
    ] {
        assert!(
            !subscription.is_requested_by(EDS, &names(other)),
            "{other:?}"
        );
    }
    let wildcard = Subscription::from_request(CDS, &names(&[]));
    assert!(wildcard.is_requested_by(CDS, &names(&[])));
    assert!(wildcard.is_requested_by(CDS, &names(&["*"])));
    assert!(!wildcard.is_requested_by(CDS, &names(&["a"])));
}

/// Streams that subscribe to the same names hold one set of them, and
/// their selection stays the snapshot's own map as endpoints change and
/// clusters are added: per-stream memory does not grow with the mesh.
#[test]
fn streams_of_one_class_share_their_subscription_and_the_snapshot_map() {
    let mut world = ChangingEndpoints::new(7);
    let mut snap = snapshot(&[(EDS, world.eds.values().cloned().collect())]);
    snap.resources.insert(EDS, Arc::new(world.eds.clone()));
    let eds: Vec<String> = (0..60).map(endpoint_name).collect();
    let eds: Vec<&str> = eds.iter().map(String::as_str).collect();
    let mut streams = [SotwStream::new(), SotwStream::new()];
    for stream in &mut streams {
        stream.on_request(&initial(EDS, &eds));
        let response = only(stream.poll(&snap), EDS);
        stream.on_request(&ack(&response, &eds));
    }
    let subscription = |s: &SotwStream| match &s.types[&EDS].subscription {
        Subscription::Names(names) => names.clone(),
        Subscription::Wildcard => panic!("EDS was asked for by name"),
    };
    assert!(subscription(&streams[0]).is_shared_with(&subscription(&streams[1])));

    let mut pushes = 0;
    for generation in 1..=30 {
        // Endpoints change, and names up to c49 (all subscribed) come and go.
        snap = world.step(generation);
        for stream in &mut streams {
            let Some(response) = stream.poll(&snap).into_iter().next() else {
                continue;
            };
            pushes += 1;
            stream.on_request(&ack(&response, &eds));
            let sent = &stream.types[&EDS].sent.as_ref().unwrap().resources;
            assert!(
                sent.ptr_eq(snap.of(EDS)),
                "generation {generation}: the stream holds a copy of the snapshot's map"
            );
        }
    }
    assert!(pushes > 40, "{pushes} pushes");
    assert!(subscription(&streams[0]).is_shared_with(&subscription(&streams[1])));

    // A name the proxy did not ask for: the selection is a map of its own
    // without it.
    let mut extra = snap.of(EDS).clone();
    for r in [endpoints("not-asked", &[80]), endpoints("c00", &[9999])] {
        extra.insert(r.name.clone(), r);
    }
    let mut snap = snap;
    snap.resources.insert(EDS, Arc::new(extra));
    let stream = &mut streams[0];
    let response = only(stream.poll(&snap), EDS);
    assert_eq!(resource_names(&response), ["c00"]);
    let sent = &stream.types[&EDS].sent.as_ref().unwrap().resources;
    assert!(!sent.contains_key("not-asked") && !sent.ptr_eq(snap.of(EDS)));
}

/// Requests that repeat the previous names are recognized without reading
/// them; a list that differs from the latest one (back to an earlier list,
/// or the same names in another order) is still compared with the
/// subscription.
#[test]
fn a_subscription_follows_every_change_of_names_back_and_forth() {
    let snap = snapshot(&[(
        EDS,
        vec![
            endpoints("a", &[1]),
            endpoints("b", &[2]),
            endpoints("c", &[3]),
        ],
    )]);
    let mut stream = SotwStream::new();
    let subscribed = |s: &SotwStream| match &s.types[&EDS].subscription {
        Subscription::Names(names) => names.iter().cloned().collect::<Vec<_>>(),
        Subscription::Wildcard => panic!("EDS was asked for by name"),
    };
    stream.on_request(&initial(EDS, &["a", "b"]));
    let mut response = only(stream.poll(&snap), EDS);
    for (names, expected) in [
        (&["a", "b"][..], &["a", "b"][..]),
        (&["c"], &["c"]),
        (&["a", "b"], &["a", "b"]),
        (&["b", "a"], &["a", "b"]),
        (&["a", "b"], &["a", "b"]),
        (&["b", "c"], &["b", "c"]),
    ] {
        stream.on_request(&ack(&response, names));
        assert_eq!(subscribed(&stream), expected, "after {names:?}");
        if let Some(next) = stream.poll(&snap).into_iter().next() {
            assert_eq!(resource_names(&next), expected, "answer to {names:?}");
            response = next;
        }
    }
}

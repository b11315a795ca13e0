use super::*;
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, DiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

/// What an [`Entry`] says, to compare.
#[derive(Clone, Debug, PartialEq)]
struct Read {
    len: usize,
    complete: bool,
    type_url: Option<String>,
    name: Option<String>,
    version: Option<String>,
    value_len: Option<usize>,
    value: Vec<u8>,
}

impl From<&Entry> for Read {
    fn from(e: &Entry) -> Self {
        Read {
            len: e.len,
            complete: e.complete,
            type_url: e.type_url().map(str::to_string),
            name: e.name().map(str::to_string),
            version: e.version().map(str::to_string),
            value_len: e.value_len,
            value: e.value().to_vec(),
        }
    }
}

/// Everything a scanner reported, in order.
#[derive(Debug, Default, PartialEq)]
struct Recorded {
    /// Per entry: the head as it stood and the entry's first read.
    entries: Vec<(Head, Read)>,
    /// Whole entries given.
    wholes: Vec<Read>,
    /// Ended responses and their entry counts.
    ends: Vec<(Head, usize)>,
}

/// Records everything; asks for the whole of entries whose name is in `whole`.
struct Recorder {
    whole: Vec<String>,
    seen: Recorded,
}

impl Sink for Recorder {
    fn entry(&mut self, head: &Head, entry: &Entry) -> bool {
        self.seen.entries.push((head.clone(), entry.into()));
        entry
            .name()
            .is_some_and(|n| self.whole.iter().any(|w| w == n))
    }

    fn whole(&mut self, _: &Head, entry: Entry) {
        self.seen.wholes.push((&entry).into());
    }

    fn end(&mut self, head: Head, entries: usize) {
        self.seen.ends.push((head, entries));
    }
}

/// `message` with its gRPC prefix.
fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Feeds `stream` cut at each of `cuts` (ascending byte offsets).
fn scan(layout: Layout, stream: &[u8], cuts: &[usize], whole: &[&str]) -> Recorded {
    let mut scanner = Scanner::new(layout);
    let mut sink = Recorder {
        whole: whole.iter().map(|s| s.to_string()).collect(),
        seen: Recorded::default(),
    };
    let mut from = 0;
    for &cut in cuts.iter().chain([&stream.len()]) {
        scanner
            .feed(Bytes::copy_from_slice(&stream[from..cut]), &mut sink)
            .unwrap();
        from = cut;
    }
    assert!(
        scanner.at_boundary(),
        "the scanner stopped inside a message"
    );
    sink.seen
}

fn cluster(name: &str, kind: cluster::DiscoveryType) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(kind as i32)),
        // Makes the cluster long enough to be cut by the prefix.
        alt_stat_name: "s".repeat(1500),
        ..Default::default()
    }
}

fn any(message: &impl Message, type_url: &str) -> Any {
    Any {
        type_url: type_url.into(),
        value: message.encode_to_vec(),
    }
}

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// A SotW CDS response: a short cluster, one longer than the prefix, an
/// empty Any.
fn sotw_response() -> DiscoveryResponse {
    let short = Cluster {
        name: "short".into(),
        ..Default::default()
    };
    DiscoveryResponse {
        version_info: "v7".into(),
        resources: vec![
            any(&short, CLUSTER),
            any(&cluster("long", cluster::DiscoveryType::Eds), CLUSTER),
            Any::default(),
        ],
        type_url: CLUSTER.into(),
        nonce: "n1".into(),
        ..Default::default()
    }
}

/// What a reader of prost's decoding would expect of a SotW response.
fn expected_sotw(response: &DiscoveryResponse, head_first: bool, whole: &[&str]) -> Recorded {
    let head = Head {
        version_info: response.version_info.clone(),
        type_url: response.type_url.clone(),
        nonce: response.nonce.clone(),
        removed: vec![],
    };
    let mut seen = Recorded::default();
    for a in &response.resources {
        let len = a.encoded_len();
        let complete = len <= ENTRY_PREFIX;
        let value_header = len - a.value.len();
        let read = if complete {
            a.value.len()
        } else {
            ENTRY_PREFIX - value_header
        };
        let name = leading_name(&a.value).map(str::to_string);
        let entry = Read {
            len,
            complete,
            type_url: (!a.type_url.is_empty()).then(|| a.type_url.clone()),
            name: name.clone(),
            version: None,
            value_len: Some(a.value.len()),
            value: a.value[..read].to_vec(),
        };
        // prost writes fields in number order: only `version_info` (1)
        // comes before `resources` (2).
        let head_now = if head_first {
            head.clone()
        } else {
            Head {
                version_info: head.version_info.clone(),
                ..Head::default()
            }
        };
        seen.entries.push((head_now, entry.clone()));
        if name.as_deref().is_some_and(|n| whole.contains(&n)) {
            seen.wholes.push(Read {
                complete: true,
                value: a.value.clone(),
                ..entry
            });
        }
    }
    seen.ends.push((head, response.resources.len()));
    seen
}

/// The response with its fields other than `resources` first, as
/// Sextant's server writes them (protobuf merges concatenated fields).
fn head_first(response: &DiscoveryResponse) -> Vec<u8> {
    let mut bytes = DiscoveryResponse {
        resources: vec![],
        ..response.clone()
    }
    .encode_to_vec();
    bytes.extend(
        DiscoveryResponse {
            resources: response.resources.clone(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    assert_eq!(
        DiscoveryResponse::decode(bytes.as_slice()).unwrap(),
        *response
    );
    bytes
}

#[test]
fn a_sotw_response_reads_the_same_however_it_is_cut() {
    let response = sotw_response();
    for (bytes, head_first_order) in [
        (response.encode_to_vec(), false),
        (head_first(&response), true),
    ] {
        let stream = framed(&bytes);
        let expected = expected_sotw(&response, head_first_order, &["long", "short"]);
        for cut in 0..=stream.len() {
            assert_eq!(
                scan(Layout::Sotw, &stream, &[cut], &["long", "short"]),
                expected,
                "cut at {cut}"
            );
        }
        let every_byte: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(
            scan(Layout::Sotw, &stream, &every_byte, &["long", "short"]),
            expected
        );
    }
}

#[test]
fn entries_not_asked_for_are_skipped_and_the_next_message_is_read() {
    let response = sotw_response();
    let mut stream = framed(&head_first(&response));
    let second = DiscoveryResponse {
        version_info: "v8".into(),
        nonce: "n2".into(),
        type_url: CLUSTER.into(),
        ..Default::default()
    };
    stream.extend(framed(&second.encode_to_vec()));
    let seen = scan(Layout::Sotw, &stream, &[700, 1400], &[]);
    assert!(seen.wholes.is_empty());
    assert_eq!(seen.entries.len(), 3);
    let ends: Vec<(&str, &str, usize)> = seen
        .ends
        .iter()
        .map(|(h, n)| (h.version_info.as_str(), h.nonce.as_str(), *n))
        .collect();
    assert_eq!(ends, [("v7", "n1", 3), ("v8", "n2", 0)]);
}

/// An entry's name, version, value length and completeness.
type EntryRead<'a> = (Option<&'a str>, Option<&'a str>, Option<usize>, bool);

#[test]
fn a_delta_response_gives_each_resources_version_and_name() {
    let listener = Listener {
        name: "0.0.0.0_80".into(),
        stat_prefix: "p".repeat(2000),
        ..Default::default()
    };
    let resource = |name: &str, message: &dyn Fn() -> Any| Resource {
        name: name.into(),
        version: format!("hash-{name}"),
        resource: Some(message()),
        ..Default::default()
    };
    const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    let response = DeltaDiscoveryResponse {
        system_version_info: "sys".into(),
        resources: vec![
            // prost writes `name` (3) after the Any: for a long resource
            // the name comes from the resource's own field 1.
            resource("0.0.0.0_80", &|| any(&listener, LISTENER)),
            resource("virtual", &|| {
                any(
                    &Listener {
                        name: "virtual".into(),
                        ..Default::default()
                    },
                    LISTENER,
                )
            }),
        ],
        type_url: LISTENER.into(),
        removed_resources: vec!["gone".into(), "gone-too".into()],
        nonce: "d1".into(),
        ..Default::default()
    };
    let stream = framed(&response.encode_to_vec());
    for cut in [0, 1, 5, 6, 900, 1100, 2100, stream.len() - 1] {
        let seen = scan(Layout::Delta, &stream, &[cut], &["0.0.0.0_80"]);
        let read: Vec<EntryRead<'_>> = seen
            .entries
            .iter()
            .map(|(_, e)| {
                (
                    e.name.as_deref(),
                    e.version.as_deref(),
                    e.value_len,
                    e.complete,
                )
            })
            .collect();
        let long = listener.encoded_len();
        assert_eq!(
            read,
            [
                (
                    Some("0.0.0.0_80"),
                    Some("hash-0.0.0.0_80"),
                    Some(long),
                    false
                ),
                (Some("virtual"), Some("hash-virtual"), Some(9), true),
            ],
            "cut at {cut}"
        );
        assert_eq!(seen.wholes.len(), 1);
        assert_eq!(seen.wholes[0].value, listener.encode_to_vec());
        assert_eq!(
            Listener::decode(seen.wholes[0].value.as_slice()).unwrap(),
            listener
        );
        let (head, entries) = &seen.ends[0];
        assert_eq!(
            (head.version_info.as_str(), head.removed.clone(), *entries),
            ("sys", vec!["gone".to_string(), "gone-too".to_string()], 2)
        );
        assert_eq!(
            (head.type_url.as_str(), head.nonce.as_str()),
            (LISTENER, "d1")
        );
    }
}

#[test]
fn unreadable_messages_are_errors_that_say_why() {
    let error = |stream: &[u8]| {
        let mut sink = Recorder {
            whole: vec![],
            seen: Recorded::default(),
        };
        Scanner::new(Layout::Sotw)
            .feed(Bytes::copy_from_slice(stream), &mut sink)
            .unwrap_err()
    };
    assert!(error(&[1, 0, 0, 0, 1, 0]).contains("compressed flag 1"));
    // Field 2 declares 9 bytes in a message of 3.
    assert!(error(&framed(&[0x12, 0x09, 0])).contains("runs past its message"));
    // A varint key of 11 continuation bytes.
    assert!(error(&framed(&[0xff; 20])).contains("malformed field key"));
    // A group (wire type 3).
    assert!(error(&framed(&[0x0b, 0, 0])).contains("malformed field key"));
    assert!(error(&framed(&[0x0a, 0x01, 0xff])).contains("not UTF-8"));
}

#[test]
fn a_half_read_message_is_not_a_boundary() {
    let stream = framed(&sotw_response().encode_to_vec());
    let mut scanner = Scanner::new(Layout::Sotw);
    let mut sink = Recorder {
        whole: vec![],
        seen: Recorded::default(),
    };
    assert!(scanner.at_boundary());
    scanner
        .feed(Bytes::copy_from_slice(&stream[..10]), &mut sink)
        .unwrap();
    assert!(!scanner.at_boundary());
    scanner
        .feed(Bytes::copy_from_slice(&stream[10..]), &mut sink)
        .unwrap();
    assert!(scanner.at_boundary());
}

#[test]
fn an_eds_cluster_is_told_from_its_first_bytes() {
    for (kind, eds) in [
        (cluster::DiscoveryType::Eds, true),
        (cluster::DiscoveryType::StrictDns, false),
        (cluster::DiscoveryType::Static, false),
    ] {
        let bytes = cluster("c", kind).encode_to_vec();
        assert_eq!(eds_cluster(&bytes[..40]), Some(eds), "{kind:?}");
        assert_eq!(eds_cluster(&bytes), Some(eds), "{kind:?}");
    }
    let long_name = Cluster {
        name: "n".repeat(2000),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(eds_cluster(&long_name[..ENTRY_PREFIX]), None);
    assert_eq!(eds_cluster(&long_name), Some(true));
    let name_only = Cluster {
        name: "c".into(),
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(eds_cluster(&name_only), None);
}

#[test]
fn leading_name_reads_field_one() {
    let cluster = Cluster {
        name: "outbound|80||a.ns.svc.cluster.local".into(),
        ..Default::default()
    };
    let bytes = cluster.encode_to_vec();
    assert_eq!(leading_name(&bytes), Some(cluster.name.as_str()));
    let long = "x".repeat(300);
    let listener = Listener {
        name: long.clone(),
        ..Default::default()
    };
    assert_eq!(leading_name(&listener.encode_to_vec()), Some(long.as_str()));
    assert_eq!(leading_name(&[0x12, 0x01, b'a']), None);
    assert_eq!(leading_name(&bytes[..5]), None);
}

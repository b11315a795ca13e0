//! The xDS protocol through the real server process: `sextant serve` on a
//! config directory and a raw ADS client (tonic) playing Envoy's part,
//! message by message, over SotW and delta. No Envoy runs here; each test
//! checks what a proxy would see on the wire.

use crate::harness;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{route, RouteConfiguration};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Any, Struct, Value};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use harness::*;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// How long a response may take (a config edit goes through the watcher and
/// the debounce first).
const RECEIVE: Duration = Duration::from_secs(5);
/// How long we listen to be sure nothing comes.
const QUIET: Duration = Duration::from_millis(300);

/// Name of the cluster (and of its ClusterLoadAssignment) of a service port.
fn cluster(service: &str, port: u16) -> String {
    format!("outbound|{port}||{service}.default.svc.cluster.local")
}

fn subset(service: &str, port: u16, subset: &str) -> String {
    format!("outbound|{port}|{subset}|{service}.default.svc.cluster.local")
}

/// A WorkloadEntry for `service` (the address does not need to answer).
fn workload(service: &str, version: &str, ip: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {{name: {service}-{version}, namespace: default}}\nspec:\n  address: {ip}\n  ports: {{http: {port}}}\n  labels: {{app: {service}, version: {version}}}\n"
    )
}

/// A config dir with service `a` (port 8080, one workload) and sextant on it.
async fn serve_a(work: &tempfile::TempDir) -> (ConfigDir, Sextant) {
    let config = ConfigDir::new();
    config.write(
        "a.yaml",
        &[
            service_yaml("a", 8080),
            workload("a", "v1", "127.0.1.61", 8080),
        ]
        .join("---\n"),
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    (config, sextant)
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// The node `sextant bootstrap` would write for a client in `default`.
fn node(id: &str) -> Node {
    let labels = Struct {
        fields: [("app".to_string(), string("client"))].into(),
    };
    Node {
        id: id.into(),
        cluster: "client".into(),
        metadata: Some(Struct {
            fields: [
                ("NAMESPACE".to_string(), string("default")),
                (
                    "LABELS".to_string(),
                    Value {
                        kind: Some(Kind::StructValue(labels)),
                    },
                ),
                ("SERVICE_ACCOUNT".to_string(), string("client")),
                ("INSTANCE_IPS".to_string(), string("127.0.0.1")),
                ("OUTBOUND_PORT".to_string(), string("15001")),
            ]
            .into(),
        }),
        ..Default::default()
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The name of an encoded resource of `type_url`.
fn decoded_name(type_url: &str, bytes: &[u8]) -> String {
    match type_url {
        CDS => Cluster::decode(bytes).unwrap().name,
        EDS => ClusterLoadAssignment::decode(bytes).unwrap().cluster_name,
        LDS => Listener::decode(bytes).unwrap().name,
        RDS => RouteConfiguration::decode(bytes).unwrap().name,
        other => panic!("unexpected type {other}"),
    }
}

/// Names of the resources of a response, sorted, checking each `Any`'s type.
fn any_names(type_url: &str, resources: &[Any]) -> Vec<String> {
    let mut names: Vec<String> = resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, type_url);
            decoded_name(type_url, &any.value)
        })
        .collect();
    names.sort();
    names
}

/// Every cluster the routes of an encoded RouteConfiguration send to.
fn routed_clusters(bytes: &[u8]) -> BTreeSet<String> {
    let config = RouteConfiguration::decode(bytes).unwrap();
    config
        .virtual_hosts
        .iter()
        .flat_map(|vh| &vh.routes)
        .filter_map(|r| match &r.action {
            Some(route::Action::Route(action)) => action.cluster_specifier.as_ref(),
            _ => None,
        })
        .flat_map(|spec| match spec {
            ClusterSpecifier::Cluster(name) => vec![name.clone()],
            ClusterSpecifier::WeightedClusters(w) => {
                w.clusters.iter().map(|c| c.name.clone()).collect()
            }
            _ => vec![],
        })
        .collect()
}

fn virtual_hosts(bytes: &[u8]) -> Vec<String> {
    let config = RouteConfiguration::decode(bytes).unwrap();
    config.virtual_hosts.into_iter().map(|vh| vh.name).collect()
}

fn short(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

/// A SotW ADS stream, as Envoy drives it.
struct Sotw {
    node: Option<Node>,
    tx: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
}

impl Sotw {
    async fn open(sextant: &Sextant, node_id: &str) -> Sotw {
        let (tx, responses) = Self::open_raw(sextant).await;
        let responses = responses.unwrap_or_else(|s| panic!("opening the stream: {s}"));
        Sotw {
            node: Some(node(node_id)),
            tx,
            responses,
        }
    }

    /// A stream whose HTTP/2 receive windows (stream and connection) are
    /// `window` bytes.
    async fn open_with_window(sextant: &Sextant, node_id: &str, window: u32) -> Sotw {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", sextant.xds))
            .unwrap()
            .initial_stream_window_size(window)
            .initial_connection_window_size(window)
            .connect()
            .await
            .expect("connecting to sextant's xDS port");
        let (tx, rx) = mpsc::channel(16);
        let responses = AggregatedDiscoveryServiceClient::new(channel)
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .map(tonic::Response::into_inner)
            .unwrap_or_else(|s| panic!("opening the stream: {s}"));
        Sotw {
            node: Some(node(node_id)),
            tx,
            responses,
        }
    }

    async fn open_raw(
        sextant: &Sextant,
    ) -> (
        mpsc::Sender<DiscoveryRequest>,
        Result<Streaming<DiscoveryResponse>, tonic::Status>,
    ) {
        let mut client =
            AggregatedDiscoveryServiceClient::connect(format!("http://{}", sextant.xds))
                .await
                .expect("connecting to sextant's xDS port");
        let (tx, rx) = mpsc::channel(16);
        let responses = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .map(tonic::Response::into_inner);
        (tx, responses)
    }

    /// Sends a request; the node goes with the first one only (the strictest
    /// of Envoy's settings).
    async fn send(&mut self, mut request: DiscoveryRequest) {
        request.node = self.node.take();
        self.tx.send(request).await.expect("stream open");
    }

    async fn request(&mut self, type_url: &str, resource_names: &[&str]) {
        self.send(DiscoveryRequest {
            type_url: type_url.into(),
            resource_names: strings(resource_names),
            ..Default::default()
        })
        .await;
    }

    async fn ack(&mut self, response: &DiscoveryResponse, resource_names: &[&str]) {
        self.send(DiscoveryRequest {
            type_url: response.type_url.clone(),
            version_info: response.version_info.clone(),
            resource_names: strings(resource_names),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    /// A NACK: the version Envoy still runs, the rejected nonce, a message.
    async fn nack(
        &mut self,
        response: &DiscoveryResponse,
        running: &str,
        resource_names: &[&str],
        message: &str,
    ) {
        self.send(DiscoveryRequest {
            type_url: response.type_url.clone(),
            version_info: running.into(),
            resource_names: strings(resource_names),
            response_nonce: response.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: message.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    }

    /// The next response, which must be of `type_url`.
    async fn recv(&mut self, type_url: &str, what: &str) -> DiscoveryResponse {
        let response = match tokio::time::timeout(RECEIVE, self.responses.message()).await {
            Err(_) => panic!("no response within {RECEIVE:?}: expected {what}"),
            Ok(Err(status)) => panic!("stream failed while waiting for {what}: {status}"),
            Ok(Ok(None)) => panic!("stream closed while waiting for {what}"),
            Ok(Ok(Some(response))) => response,
        };
        assert_eq!(
            short(&response.type_url),
            short(type_url),
            "expected {what}, got a response of another type (names {:?})",
            any_names(&response.type_url, &response.resources)
        );
        assert!(!response.nonce.is_empty(), "{what}: empty nonce");
        assert!(!response.version_info.is_empty(), "{what}: empty version");
        let identifier = response
            .control_plane
            .as_ref()
            .map(|c| c.identifier.as_str())
            .unwrap_or_default();
        assert!(
            identifier.starts_with("sextant/"),
            "{what}: control_plane.identifier is {identifier:?}"
        );
        response
    }

    /// Asserts that nothing arrives for a while.
    async fn quiet(&mut self, why: &str) {
        if let Ok(message) = tokio::time::timeout(QUIET, self.responses.message()).await {
            match message {
                Ok(Some(r)) => panic!(
                    "{why}, but got a {} response (version {}, nonce {}, names {:?})",
                    short(&r.type_url),
                    r.version_info,
                    r.nonce,
                    any_names(&r.type_url, &r.resources)
                ),
                other => panic!("{why}, but the stream ended: {other:?}"),
            }
        }
    }
}

/// A delta ADS stream, as Envoy drives it.
struct Delta {
    node: Option<Node>,
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
}

/// A delta response, reduced: name → version of the resources, and removals.
#[derive(Debug)]
struct Update {
    type_url: String,
    nonce: String,
    system_version: String,
    versions: BTreeMap<String, String>,
    bodies: BTreeMap<String, Vec<u8>>,
    removed: Vec<String>,
}

impl Update {
    fn names(&self) -> Vec<&str> {
        self.versions.keys().map(String::as_str).collect()
    }
}

impl Delta {
    async fn open(sextant: &Sextant, node_id: &str) -> Delta {
        let (tx, responses) = Self::open_raw(sextant).await;
        let responses = responses.unwrap_or_else(|s| panic!("opening the stream: {s}"));
        Delta {
            node: Some(node(node_id)),
            tx,
            responses,
        }
    }

    async fn open_raw(
        sextant: &Sextant,
    ) -> (
        mpsc::Sender<DeltaDiscoveryRequest>,
        Result<Streaming<DeltaDiscoveryResponse>, tonic::Status>,
    ) {
        let mut client =
            AggregatedDiscoveryServiceClient::connect(format!("http://{}", sextant.xds))
                .await
                .expect("connecting to sextant's xDS port");
        let (tx, rx) = mpsc::channel(16);
        let responses = client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .map(tonic::Response::into_inner);
        (tx, responses)
    }

    async fn send(&mut self, mut request: DeltaDiscoveryRequest) {
        request.node = self.node.take();
        self.tx.send(request).await.expect("stream open");
    }

    /// A request without nonce: the first of a type, or a subscription change.
    async fn subscribe(&mut self, type_url: &str, subscribe: &[&str], unsubscribe: &[&str]) {
        self.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: strings(subscribe),
            resource_names_unsubscribe: strings(unsubscribe),
            ..Default::default()
        })
        .await;
    }

    async fn ack(&mut self, update: &Update) {
        self.send(DeltaDiscoveryRequest {
            type_url: update.type_url.clone(),
            response_nonce: update.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    async fn nack(&mut self, update: &Update, message: &str) {
        self.send(DeltaDiscoveryRequest {
            type_url: update.type_url.clone(),
            response_nonce: update.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: message.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    }

    async fn recv(&mut self, type_url: &str, what: &str) -> Update {
        let response = match tokio::time::timeout(RECEIVE, self.responses.message()).await {
            Err(_) => panic!("no response within {RECEIVE:?}: expected {what}"),
            Ok(Err(status)) => panic!("stream failed while waiting for {what}: {status}"),
            Ok(Ok(None)) => panic!("stream closed while waiting for {what}"),
            Ok(Ok(Some(response))) => response,
        };
        let update = Self::reduce(response);
        assert_eq!(
            short(&update.type_url),
            short(type_url),
            "expected {what}, got {update:?}"
        );
        update
    }

    fn reduce(response: DeltaDiscoveryResponse) -> Update {
        assert!(!response.nonce.is_empty(), "empty nonce: {response:?}");
        assert!(
            !response.system_version_info.is_empty(),
            "empty system_version_info"
        );
        let identifier = response
            .control_plane
            .as_ref()
            .map(|c| c.identifier.clone())
            .unwrap_or_default();
        assert!(
            identifier.starts_with("sextant/"),
            "control_plane.identifier is {identifier:?}"
        );
        let mut versions = BTreeMap::new();
        let mut bodies = BTreeMap::new();
        for resource in &response.resources {
            let any = resource.resource.as_ref().expect("a resource body");
            assert_eq!(any.type_url, response.type_url);
            assert_eq!(
                decoded_name(&response.type_url, &any.value),
                resource.name,
                "a resource's name is the name of its message"
            );
            assert!(
                !resource.version.is_empty(),
                "{} has no version",
                resource.name
            );
            let fresh = versions.insert(resource.name.clone(), resource.version.clone());
            assert!(fresh.is_none(), "{} twice in one response", resource.name);
            bodies.insert(resource.name.clone(), any.value.clone());
        }
        let mut removed = response.removed_resources;
        removed.sort();
        Update {
            type_url: response.type_url,
            nonce: response.nonce,
            system_version: response.system_version_info,
            versions,
            bodies,
            removed,
        }
    }

    async fn quiet(&mut self, why: &str) {
        if let Ok(message) = tokio::time::timeout(QUIET, self.responses.message()).await {
            match message {
                Ok(Some(r)) => panic!("{why}, but got {:?}", Self::reduce(r)),
                other => panic!("{why}, but the stream ended: {other:?}"),
            }
        }
    }
}

/// The `/debug/syncz` row of a proxy.
async fn syncz_row(sextant: &Sextant, node_id: &str) -> serde_json::Value {
    let syncz = sextant.admin_json("/debug/syncz").await;
    syncz["proxies"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["node_id"] == node_id))
        .cloned()
        .unwrap_or_else(|| panic!("{node_id} not in /debug/syncz: {syncz}"))
}

/// Waits until the `/debug/syncz` column `type_name` of a proxy says `state`.
async fn wait_for_sync(sextant: &Sextant, node_id: &str, type_name: &str, state: &str) {
    wait_for(
        Duration::from_secs(5),
        &format!("{type_name} of {node_id} to be {state} on /debug/syncz"),
        || async {
            let row = syncz_row(sextant, node_id).await;
            (row[type_name] == state).then_some(())
        },
    )
    .await;
}

/// The `/debug/proxies` state of one type of a proxy.
async fn proxy_type(sextant: &Sextant, node_id: &str, type_name: &str) -> serde_json::Value {
    let proxies = sextant.admin_json("/debug/proxies").await;
    proxies["proxies"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["node_id"] == node_id))
        .map(|p| p["types"][type_name].clone())
        .unwrap_or_else(|| panic!("{node_id} not in /debug/proxies: {proxies}"))
}

/// What release Envoy sends when it rejects a cluster: a proto dump, then the
/// useful part.
fn envoy_nack_message() -> String {
    format!(
        "Error adding/updating cluster(s) {}: {}Proto constraint validation failed (ClusterValidationError.LbPolicy:\n    value must be one of the defined enum values)",
        cluster("a", 8080),
        "cluster { name: \"outbound|8080||a.default.svc.cluster.local\" type: EDS }\n".repeat(50)
    )
}

const TRIMMED_NACK: &str = "Proto constraint validation failed (ClusterValidationError.LbPolicy: value must be one of the defined enum values)";

// ---------------------------------------------------------------- first response, ACK

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_first_cds_response_and_its_ack() {
    let work = tempfile::tempdir().unwrap();
    let (_config, sextant) = serve_a(&work).await;
    let mut ads = Sotw::open(&sextant, "first.default").await;
    ads.request(CDS, &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;
    assert_eq!(any_names(CDS, &cds.resources), [cluster("a", 8080)]);

    ads.ack(&cds, &[]).await;
    ads.quiet("an ACK is not answered").await;
    wait_for_sync(&sextant, "first.default", "CDS", "SYNCED").await;
    let state = proxy_type(&sextant, "first.default", "CDS").await;
    assert_eq!(state["acked_version"], cds.version_info.as_str());
    assert_eq!(state["sent_nonce"], cds.nonce.as_str());
    assert_eq!(state["subscription"], "wildcard");

    // Listeners too are a wildcard subscription; routes are asked by name.
    ads.request(LDS, &[]).await;
    let lds = ads.recv(LDS, "the listeners").await;
    assert_eq!(any_names(LDS, &lds.resources), ["outbound"]);
    let listener = Listener::decode(lds.resources[0].value.as_slice()).unwrap();
    let port = listener
        .address
        .and_then(|a| a.address)
        .map(|a| format!("{a:?}"))
        .unwrap_or_default();
    assert!(
        port.contains("15001"),
        "listener address from metadata: {port}"
    );
    ads.ack(&lds, &[]).await;
    ads.request(RDS, &["outbound"]).await;
    let rds = ads.recv(RDS, "the routes").await;
    assert_eq!(any_names(RDS, &rds.resources), ["outbound"]);
    assert_eq!(
        routed_clusters(&rds.resources[0].value),
        BTreeSet::from([cluster("a", 8080)])
    );
    ads.ack(&rds, &["outbound"]).await;
    ads.quiet("ACKs are not answered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_first_cds_response_and_its_ack() {
    let work = tempfile::tempdir().unwrap();
    let (_config, sextant) = serve_a(&work).await;
    let mut ads = Delta::open(&sextant, "first.default").await;
    // Legacy wildcard: the first CDS request names nothing.
    ads.subscribe(CDS, &[], &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;
    assert_eq!(cds.names(), [cluster("a", 8080)]);
    assert!(cds.removed.is_empty());

    ads.ack(&cds).await;
    ads.quiet("an ACK is not answered").await;
    wait_for_sync(&sextant, "first.default", "CDS", "SYNCED").await;
    let state = proxy_type(&sextant, "first.default", "CDS").await;
    assert_eq!(state["acked_version"], cds.system_version.as_str());
    assert_eq!(state["subscription"], "wildcard");

    // The same content is never sent twice on a stream.
    ads.subscribe(EDS, &[&cluster("a", 8080)], &[]).await;
    let eds = ads.recv(EDS, "the endpoints").await;
    assert_eq!(eds.names(), [cluster("a", 8080)]);
    let cla = ClusterLoadAssignment::decode(eds.bodies[&cluster("a", 8080)].as_slice()).unwrap();
    assert_eq!(cla.endpoints.len(), 1, "{cla:?}");
    ads.ack(&eds).await;
    ads.quiet("ACKs are not answered").await;
}

// ---------------------------------------------------------------- NACK

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_nack_is_not_answered_and_is_shown_and_counted() {
    let work = tempfile::tempdir().unwrap();
    let (config, sextant) = serve_a(&work).await;
    let node_id = "nack.default";
    let mut ads = Sotw::open(&sextant, node_id).await;
    ads.request(CDS, &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;

    // The client rejects it: it runs nothing yet, so its version is empty.
    ads.nack(&cds, "", &[], &envoy_nack_message()).await;
    ads.quiet("a NACK is not answered with the same content")
        .await;
    wait_for_sync(&sextant, node_id, "CDS", "NACKED").await;
    let row = syncz_row(&sextant, node_id).await;
    assert_eq!(row["CDS_nack"]["message"], TRIMMED_NACK, "{row}");
    assert_eq!(row["CDS_nack"]["nonce"], cds.nonce.as_str(), "{row}");
    assert_eq!(
        row["CDS_nack"]["version"],
        cds.version_info.as_str(),
        "{row}"
    );
    let state = proxy_type(&sextant, node_id, "CDS").await;
    assert_eq!(state["nack_count"], 1, "{state}");
    assert!(state["acked_version"].is_null(), "{state}");
    assert_eq!(sextant.nacks_total().await["CDS"], 1);

    // The next change is sent (the stream is not stuck) and its ACK clears
    // the NACK; the total stays.
    config.write("b.yaml", &service_yaml("b", 9090));
    let fixed = ads.recv(CDS, "the clusters with b").await;
    assert_ne!(fixed.version_info, cds.version_info);
    assert_eq!(
        any_names(CDS, &fixed.resources),
        [cluster("a", 8080), cluster("b", 9090)]
    );
    ads.ack(&fixed, &[]).await;
    wait_for_sync(&sextant, node_id, "CDS", "SYNCED").await;
    assert!(syncz_row(&sextant, node_id).await.get("CDS_nack").is_none());
    assert_eq!(sextant.nacks_total().await["CDS"], 1);
    assert_eq!(
        proxy_type(&sextant, node_id, "CDS").await["nack_count"],
        1,
        "the stream's count stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_nack_is_not_answered_and_is_shown_and_counted() {
    let work = tempfile::tempdir().unwrap();
    let (config, sextant) = serve_a(&work).await;
    let node_id = "nack.default";
    let mut ads = Delta::open(&sextant, node_id).await;
    ads.subscribe(CDS, &[], &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;

    ads.nack(&cds, &envoy_nack_message()).await;
    ads.quiet("a NACK is not answered with the same content")
        .await;
    wait_for_sync(&sextant, node_id, "CDS", "NACKED").await;
    let row = syncz_row(&sextant, node_id).await;
    assert_eq!(row["CDS_nack"]["message"], TRIMMED_NACK, "{row}");
    assert_eq!(row["CDS_nack"]["nonce"], cds.nonce.as_str(), "{row}");
    assert_eq!(proxy_type(&sextant, node_id, "CDS").await["nack_count"], 1);
    assert_eq!(sextant.nacks_total().await["CDS"], 1);

    // A later change carries only what changed, not the rejected resource.
    config.write("b.yaml", &service_yaml("b", 9090));
    let next = ads.recv(CDS, "cluster b").await;
    assert_eq!(next.names(), [cluster("b", 9090)]);
    ads.ack(&next).await;
    wait_for_sync(&sextant, node_id, "CDS", "SYNCED").await;
    assert_eq!(sextant.nacks_total().await["CDS"], 1);
}

// ---------------------------------------------------------------- stale nonce, pushes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_stale_nonce_is_ignored_and_edits_are_pushed() {
    let work = tempfile::tempdir().unwrap();
    let (config, sextant) = serve_a(&work).await;
    let node_id = "stale.default";
    let mut ads = Sotw::open(&sextant, node_id).await;
    ads.request(CDS, &[]).await;
    let first = ads.recv(CDS, "the clusters").await;
    ads.ack(&first, &[]).await;
    ads.quiet("an ACK is not answered").await;

    // An edit of the config dir is pushed without a request.
    config.write("b.yaml", &service_yaml("b", 9090));
    let second = ads.recv(CDS, "the clusters with b, pushed").await;
    assert_eq!(
        any_names(CDS, &second.resources),
        [cluster("a", 8080), cluster("b", 9090)]
    );
    assert_ne!(second.version_info, first.version_info);
    assert_ne!(second.nonce, first.nonce);

    // Requests with an older or unknown nonce, even NACKs, change nothing.
    ads.ack(&first, &[]).await;
    let mut unknown = first.clone();
    unknown.nonce = "no-such-nonce".into();
    ads.ack(&unknown, &[]).await;
    ads.nack(&first, &first.version_info, &[], "late").await;
    ads.quiet("a stale nonce is not answered").await;
    let state = proxy_type(&sextant, node_id, "CDS").await;
    assert_eq!(
        state["acked_version"],
        first.version_info.as_str(),
        "{state}"
    );
    assert_eq!(
        state["sent_version"],
        second.version_info.as_str(),
        "{state}"
    );
    assert_eq!(state["nack_count"], 0, "{state}");
    assert_eq!(syncz_row(&sextant, node_id).await["CDS"], "STALE");

    ads.ack(&second, &[]).await;
    ads.quiet("an ACK is not answered").await;
    wait_for_sync(&sextant, node_id, "CDS", "SYNCED").await;
    let state = proxy_type(&sextant, node_id, "CDS").await;
    assert_eq!(state["acked_version"], second.version_info.as_str());
    assert!(sextant.nacks_total().await.get("CDS").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_stale_nonce_is_ignored_and_edits_are_pushed() {
    let work = tempfile::tempdir().unwrap();
    let (config, sextant) = serve_a(&work).await;
    let node_id = "stale.default";
    let mut ads = Delta::open(&sextant, node_id).await;
    ads.subscribe(CDS, &[], &[]).await;
    let first = ads.recv(CDS, "the clusters").await;
    ads.ack(&first).await;
    ads.quiet("an ACK is not answered").await;

    config.write("b.yaml", &service_yaml("b", 9090));
    let second = ads.recv(CDS, "cluster b, pushed").await;
    assert_eq!(second.names(), [cluster("b", 9090)], "only what changed");
    assert!(second.removed.is_empty());
    assert_ne!(second.system_version, first.system_version);

    ads.ack(&first).await;
    ads.nack(&first, "late").await;
    ads.quiet("a stale nonce is not answered").await;
    let state = proxy_type(&sextant, node_id, "CDS").await;
    assert_eq!(
        state["acked_version"],
        first.system_version.as_str(),
        "{state}"
    );
    assert_eq!(state["nack_count"], 0, "{state}");
    assert_eq!(syncz_row(&sextant, node_id).await["CDS"], "STALE");

    ads.ack(&second).await;
    ads.quiet("an ACK is not answered").await;
    wait_for_sync(&sextant, node_id, "CDS", "SYNCED").await;
}

// ---------------------------------------------------------------- EDS names that do not exist yet

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_eds_for_a_missing_cluster_is_answered_and_pushed_when_it_appears() {
    let work = tempfile::tempdir().unwrap();
    let (config, sextant) = serve_a(&work).await;
    let (a, b) = (cluster("a", 8080), cluster("b", 9090));
    let mut ads = Sotw::open(&sextant, "eds.default").await;
    ads.request(CDS, &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;
    ads.request(EDS, &[&a, &b]).await;
    let eds = ads.recv(EDS, "the endpoints of a").await;
    assert_eq!(any_names(EDS, &eds.resources), [a.as_str()]);
    ads.ack(&cds, &[]).await;
    ads.ack(&eds, &[&a, &b]).await;
    ads.quiet("ACKs are not answered").await;

    config.write(
        "b.yaml",
        &[
            service_yaml("b", 9090),
            workload("b", "v1", "127.0.1.62", 9090),
        ]
        .join("---\n"),
    );
    let cds = ads.recv(CDS, "cluster b").await;
    assert_eq!(any_names(CDS, &cds.resources), [a.clone(), b.clone()]);
    let eds = ads
        .recv(EDS, "the endpoints of b, without a new request")
        .await;
    // EDS pushes carry only what changed (the proxy already has a's endpoints).
    assert_eq!(any_names(EDS, &eds.resources), std::slice::from_ref(&b));
    ads.ack(&cds, &[]).await;
    ads.ack(&eds, &[&a, &b]).await;
    ads.quiet("ACKs are not answered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_eds_for_a_missing_cluster_is_answered_and_pushed_when_it_appears() {
    let work = tempfile::tempdir().unwrap();
    let (config, sextant) = serve_a(&work).await;
    let (a, b) = (cluster("a", 8080), cluster("b", 9090));
    let mut ads = Delta::open(&sextant, "eds.default").await;
    ads.subscribe(CDS, &[], &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;
    ads.subscribe(EDS, &[&a, &b], &[]).await;
    let eds = ads.recv(EDS, "the endpoints of a").await;
    assert_eq!(eds.names(), [a.as_str()]);
    assert_eq!(eds.removed, [b.as_str()], "b does not exist: stop waiting");
    ads.ack(&cds).await;
    ads.ack(&eds).await;
    ads.quiet("ACKs are not answered, b is not reported again")
        .await;

    config.write(
        "b.yaml",
        &[
            service_yaml("b", 9090),
            workload("b", "v1", "127.0.1.62", 9090),
        ]
        .join("---\n"),
    );
    let cds = ads.recv(CDS, "cluster b").await;
    assert_eq!(cds.names(), [b.as_str()]);
    let eds = ads
        .recv(EDS, "the endpoints of b, without a new request")
        .await;
    assert_eq!(eds.names(), [b.as_str()]);
    assert!(eds.removed.is_empty());
    ads.ack(&cds).await;
    ads.ack(&eds).await;
    ads.quiet("ACKs are not answered").await;
}

// ---------------------------------------------------------------- make before break

fn reviews_config() -> String {
    [
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: default}\nspec:\n  selector: {app: reviews}\n  ports:\n  - {name: http, port: 9080}\n".to_string(),
        workload("reviews", "v1", "127.0.1.63", 9080),
        workload("reviews", "v2", "127.0.1.64", 9080),
    ]
    .join("---\n")
}

/// A DestinationRule with subsets v1 and v2 and a VirtualService that
/// splits reviews between them, in one file (one change).
const REVIEWS_ROUTING: &str = "apiVersion: networking.sextant.dev/v1alpha1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.sextant.dev/v1alpha1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: 50
";

/// Handed case 008 on the wire (SotW).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_new_subsets_come_before_the_routes_that_use_them() {
    let work = tempfile::tempdir().unwrap();
    let config = ConfigDir::new();
    config.write("reviews.yaml", &reviews_config());
    let sextant = Sextant::start(work.path(), config.path()).await;
    let node_id = "mbb.default";
    let default = cluster("reviews", 9080);
    let (v1, v2) = (subset("reviews", 9080, "v1"), subset("reviews", 9080, "v2"));

    let mut ads = Sotw::open(&sextant, node_id).await;
    ads.request(CDS, &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;
    assert_eq!(any_names(CDS, &cds.resources), [default.as_str()]);
    ads.request(EDS, &[&default]).await;
    let eds = ads.recv(EDS, "the endpoints").await;
    ads.ack(&cds, &[]).await;
    ads.ack(&eds, &[&default]).await;
    ads.request(LDS, &[]).await;
    let lds = ads.recv(LDS, "the listener").await;
    ads.request(RDS, &["outbound"]).await;
    let rds = ads.recv(RDS, "the routes").await;
    ads.ack(&lds, &[]).await;
    ads.ack(&rds, &["outbound"]).await;
    ads.quiet("all ACKed").await;

    config.write("reviews-routing.yaml", REVIEWS_ROUTING);
    let cds = ads.recv(CDS, "the new subset clusters, first").await;
    let clusters: BTreeSet<String> = any_names(CDS, &cds.resources).into_iter().collect();
    assert_eq!(
        clusters,
        BTreeSet::from([default.clone(), v1.clone(), v2.clone()])
    );
    ads.quiet("routes wait while the CDS response is unanswered")
        .await;

    // As Envoy does: the EDS request for the new clusters goes out while it
    // applies the CDS response, then the CDS ACK.
    let eds_names = [default.as_str(), v1.as_str(), v2.as_str()];
    ads.ack(&eds, &eds_names).await;
    let eds = ads.recv(EDS, "the endpoints of the new subsets").await;
    let assigned: BTreeSet<String> = any_names(EDS, &eds.resources).into_iter().collect();
    assert_eq!(assigned, clusters);
    for cla in &eds.resources {
        let cla = ClusterLoadAssignment::decode(cla.value.as_slice()).unwrap();
        assert!(
            !cla.endpoints.is_empty(),
            "{} has endpoints",
            cla.cluster_name
        );
    }
    ads.ack(&cds, &[]).await;
    ads.quiet("routes wait while the EDS response is unanswered")
        .await;

    ads.ack(&eds, &eds_names).await;
    let rds = ads.recv(RDS, "the routes, last").await;
    let routed = routed_clusters(&rds.resources[0].value);
    assert_eq!(routed, BTreeSet::from([v1.clone(), v2.clone()]));
    assert!(
        routed.is_subset(&clusters),
        "every routed cluster was sent before: {routed:?}"
    );
    ads.ack(&rds, &["outbound"]).await;
    ads.quiet("all ACKed").await;
}

/// Handed case 008 on the wire (delta).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_new_subsets_come_before_the_routes_that_use_them() {
    let work = tempfile::tempdir().unwrap();
    let config = ConfigDir::new();
    config.write("reviews.yaml", &reviews_config());
    let sextant = Sextant::start(work.path(), config.path()).await;
    let node_id = "mbb.default";
    let default = cluster("reviews", 9080);
    let (v1, v2) = (subset("reviews", 9080, "v1"), subset("reviews", 9080, "v2"));

    let mut ads = Delta::open(&sextant, node_id).await;
    ads.subscribe(CDS, &[], &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;
    ads.subscribe(EDS, &[&default], &[]).await;
    let eds = ads.recv(EDS, "the endpoints").await;
    ads.ack(&cds).await;
    ads.ack(&eds).await;
    ads.subscribe(LDS, &[], &[]).await;
    let lds = ads.recv(LDS, "the listener").await;
    ads.subscribe(RDS, &["outbound"], &[]).await;
    let rds = ads.recv(RDS, "the routes").await;
    ads.ack(&lds).await;
    ads.ack(&rds).await;
    ads.quiet("all ACKed").await;

    config.write("reviews-routing.yaml", REVIEWS_ROUTING);
    let cds = ads.recv(CDS, "the new subset clusters, first").await;
    assert_eq!(cds.names(), [v1.as_str(), v2.as_str()]);
    ads.quiet("routes wait while the CDS response is unanswered")
        .await;

    ads.subscribe(EDS, &[&v1, &v2], &[]).await;
    let eds = ads.recv(EDS, "the endpoints of the new subsets").await;
    assert_eq!(eds.names(), [v1.as_str(), v2.as_str()]);
    ads.ack(&cds).await;
    ads.quiet("routes wait while the EDS response is unanswered")
        .await;

    ads.ack(&eds).await;
    let rds = ads.recv(RDS, "the routes, last").await;
    let routed = routed_clusters(&rds.bodies["outbound"]);
    assert_eq!(routed, BTreeSet::from([v1.clone(), v2.clone()]));
    ads.ack(&rds).await;
    ads.quiet("all ACKed").await;
}

// ---------------------------------------------------------------- delta only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_reconnect_with_initial_resource_versions_gets_only_what_differs() {
    let work = tempfile::tempdir().unwrap();
    let (config, sextant) = serve_a(&work).await;
    config.write("b.yaml", &service_yaml("b", 9090));
    let node_id = "reconnect.default";
    let (a, b) = (cluster("a", 8080), cluster("b", 9090));
    wait_for(Duration::from_secs(5), "service b to be loaded", || async {
        let ir = sextant.admin_json("/debug/ir").await.to_string();
        ir.contains("b.default.svc.cluster.local").then_some(())
    })
    .await;

    let mut ads = Delta::open(&sextant, node_id).await;
    ads.subscribe(CDS, &[], &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;
    assert_eq!(cds.names(), [a.as_str(), b.as_str()]);
    ads.subscribe(EDS, &[&a, &b], &[]).await;
    let eds = ads.recv(EDS, "the endpoints").await;
    ads.ack(&cds).await;
    ads.ack(&eds).await;
    ads.quiet("all ACKed").await;
    drop(ads);

    // The proxy reconnects with what it has; b's version is made stale and
    // it claims a cluster the server does not know.
    let gone = cluster("gone", 1);
    let mut had = cds.versions.clone();
    had.insert(b.clone(), "0000000000000000".into());
    had.insert(gone.clone(), "1111111111111111".into());
    let mut ads = Delta::open(&sextant, node_id).await;
    ads.send(DeltaDiscoveryRequest {
        type_url: CDS.into(),
        initial_resource_versions: had.into_iter().collect(),
        ..Default::default()
    })
    .await;
    let cds2 = ads.recv(CDS, "what differs of the clusters").await;
    assert_eq!(cds2.names(), [b.as_str()], "a is not sent again");
    assert_eq!(cds2.versions[&b], cds.versions[&b]);
    assert_eq!(cds2.removed, [gone.as_str()]);
    assert_eq!(cds2.system_version, cds.system_version);

    // Endpoints all equal: answered, with nothing.
    ads.send(DeltaDiscoveryRequest {
        type_url: EDS.into(),
        resource_names_subscribe: strings(&[&a, &b]),
        initial_resource_versions: eds.versions.clone().into_iter().collect(),
        ..Default::default()
    })
    .await;
    let eds2 = ads.recv(EDS, "the endpoints, unchanged").await;
    assert!(eds2.versions.is_empty(), "{eds2:?}");
    assert!(eds2.removed.is_empty(), "{eds2:?}");
    ads.ack(&cds2).await;
    ads.ack(&eds2).await;
    ads.quiet("all ACKed").await;

    // The server knows the proxy runs a and b, although it sent only b.
    wait_for_sync(&sextant, node_id, "EDS", "SYNCED").await;
    let dump = sextant
        .admin_json(&format!("/config_dump?proxy={node_id}"))
        .await;
    let clusters = section(&dump, "ClustersConfigDump");
    assert_eq!(
        names(&clusters["dynamic_active_clusters"], "/cluster/name"),
        [a.clone(), b.clone()],
        "{clusters}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_deleted_service_is_removed_after_the_routes_move_off_it() {
    let work = tempfile::tempdir().unwrap();
    let (config, sextant) = serve_a(&work).await;
    config.write(
        "b.yaml",
        &[
            service_yaml("b", 9090),
            workload("b", "v1", "127.0.1.62", 9090),
        ]
        .join("---\n"),
    );
    let (a, b) = (cluster("a", 8080), cluster("b", 9090));
    wait_for(Duration::from_secs(5), "service b to be loaded", || async {
        let ir = sextant.admin_json("/debug/ir").await.to_string();
        ir.contains("b.default.svc.cluster.local").then_some(())
    })
    .await;

    let mut ads = Delta::open(&sextant, "removal.default").await;
    ads.subscribe(CDS, &[], &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;
    assert_eq!(cds.names(), [a.as_str(), b.as_str()]);
    ads.subscribe(EDS, &[&a, &b], &[]).await;
    let eds = ads.recv(EDS, "the endpoints").await;
    ads.ack(&cds).await;
    ads.ack(&eds).await;
    ads.subscribe(LDS, &[], &[]).await;
    let lds = ads.recv(LDS, "the listener").await;
    ads.subscribe(RDS, &["outbound"], &[]).await;
    let rds = ads.recv(RDS, "the routes").await;
    assert_eq!(
        routed_clusters(&rds.bodies["outbound"]),
        BTreeSet::from([a.clone(), b.clone()])
    );
    ads.ack(&lds).await;
    ads.ack(&rds).await;
    ads.quiet("all ACKed").await;

    config.remove("b.yaml");
    // First the routes stop using b; b stays until they are ACKed.
    let rds = ads.recv(RDS, "the routes without b, first").await;
    assert_eq!(
        routed_clusters(&rds.bodies["outbound"]),
        BTreeSet::from([a.clone()])
    );
    assert!(
        !virtual_hosts(&rds.bodies["outbound"])
            .iter()
            .any(|vh| vh.starts_with("b.")),
        "b's virtual host is gone"
    );
    ads.quiet("b stays while the routes are unanswered").await;
    ads.ack(&rds).await;
    let cds = ads.recv(CDS, "the removal of cluster b").await;
    assert!(cds.versions.is_empty(), "{cds:?}");
    assert_eq!(cds.removed, [b.as_str()]);
    let eds = ads.recv(EDS, "the removal of b's endpoints").await;
    assert!(eds.versions.is_empty(), "{eds:?}");
    assert_eq!(eds.removed, [b.as_str()]);
    ads.ack(&cds).await;
    ads.ack(&eds).await;
    ads.quiet("all ACKed").await;
}

// ---------------------------------------------------------------- refusal

fn assert_refused(status: tonic::Status) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("node"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_first_request_has_no_node_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let (_config, sextant) = serve_a(&work).await;

    let (tx, responses) = Sotw::open_raw(&sextant).await;
    tx.send(DiscoveryRequest {
        type_url: CDS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    match responses {
        Err(status) => assert_refused(status),
        Ok(mut responses) => match tokio::time::timeout(RECEIVE, responses.message()).await {
            Err(_) => panic!("SotW: no answer to a request without node"),
            Ok(Ok(message)) => panic!("SotW: a request without node was served: {message:?}"),
            Ok(Err(status)) => assert_refused(status),
        },
    }

    let (tx, responses) = Delta::open_raw(&sextant).await;
    tx.send(DeltaDiscoveryRequest {
        type_url: CDS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    match responses {
        Err(status) => assert_refused(status),
        Ok(mut responses) => match tokio::time::timeout(RECEIVE, responses.message()).await {
            Err(_) => panic!("delta: no answer to a request without node"),
            Ok(Ok(message)) => panic!("delta: a request without node was served: {message:?}"),
            Ok(Err(status)) => assert_refused(status),
        },
    }
    // Neither stream was registered.
    let proxies = sextant.admin_json("/debug/proxies").await;
    assert_eq!(proxies["proxies"], serde_json::json!([]), "{proxies}");
}

/// Services `a` and `b`, each with one workload at `a_ip` / 127.0.1.62.
fn two_services(a_ip: &str) -> String {
    [
        service_yaml("a", 8080),
        workload("a", "v1", a_ip, 8080),
        service_yaml("b", 9090),
        workload("b", "v1", "127.0.1.62", 9090),
    ]
    .join("---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_an_endpoint_only_change_sends_only_that_cluster_load_assignment() {
    let work = tempfile::tempdir().unwrap();
    let config = ConfigDir::new();
    config.write("ab.yaml", &two_services("127.0.1.61"));
    let sextant = Sextant::start(work.path(), config.path()).await;
    let (a, b) = (cluster("a", 8080), cluster("b", 9090));
    let mut ads = Sotw::open(&sextant, "endpoints-only.default").await;
    ads.request(CDS, &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;
    ads.ack(&cds, &[]).await;
    ads.request(EDS, &[&a, &b]).await;
    let eds = ads.recv(EDS, "the endpoints").await;
    ads.ack(&eds, &[&a, &b]).await;
    ads.request(LDS, &[]).await;
    let lds = ads.recv(LDS, "the listener").await;
    ads.ack(&lds, &[]).await;
    ads.request(RDS, &["outbound"]).await;
    let rds = ads.recv(RDS, "the routes").await;
    ads.ack(&rds, &["outbound"]).await;
    ads.quiet("everything is ACKed").await;

    // Workload a moves: only a's ClusterLoadAssignment is sent, nothing else.
    config.write("ab.yaml", &two_services("127.0.1.71"));
    let eds = ads.recv(EDS, "a's new endpoints").await;
    assert_eq!(any_names(EDS, &eds.resources), std::slice::from_ref(&a));
    ads.ack(&eds, &[&a, &b]).await;
    ads.quiet("no CDS, LDS or RDS after an endpoint-only change")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_an_endpoint_only_change_sends_only_that_cluster_load_assignment() {
    let work = tempfile::tempdir().unwrap();
    let config = ConfigDir::new();
    config.write("ab.yaml", &two_services("127.0.1.61"));
    let sextant = Sextant::start(work.path(), config.path()).await;
    let (a, b) = (cluster("a", 8080), cluster("b", 9090));
    let mut ads = Delta::open(&sextant, "endpoints-only-delta.default").await;
    ads.subscribe(CDS, &[], &[]).await;
    let cds = ads.recv(CDS, "the clusters").await;
    ads.ack(&cds).await;
    ads.subscribe(EDS, &[&a, &b], &[]).await;
    let eds = ads.recv(EDS, "the endpoints").await;
    ads.ack(&eds).await;
    ads.quiet("everything is ACKed").await;

    config.write("ab.yaml", &two_services("127.0.1.71"));
    let eds = ads.recv(EDS, "a's new endpoints").await;
    assert_eq!(eds.names(), [a.as_str()]);
    assert!(eds.removed.is_empty());
    ads.ack(&eds).await;
    ads.quiet("no CDS after an endpoint-only change").await;
}

/// Services in the slow-client test: enough that a CDS response is large
/// (hundreds of KiB), so a backlog that grew with every edit would show.
const SLOW_CLIENT_SERVICES: usize = 600;
/// Config edits while one proxy does not read its stream: its backlog is
/// full after about 16 + (flow-control windows / response size) of them;
/// memory is compared between the two checkpoints after that.
const SLOW_CLIENT_CHECKPOINTS: [u32; 2] = [26, 66];

/// A DestinationRule on `svc-0` whose connection limit is `n`: each value
/// changes one cluster, so every edit pushes a new CDS state of the world.
fn connection_limit(n: u32) -> String {
    format!(
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: DestinationRule\nmetadata: {{name: svc-0, namespace: default}}\nspec:\n  host: svc-0\n  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: {n}}}}}}}\n"
    )
}

/// A proxy that stops reading its stream (stuck, or on a congested link):
/// the server keeps a bounded backlog for it (flow control, then at most
/// 16 queued responses; its stream task then waits, and takes the newest
/// state when the proxy reads again), so its memory does not grow with the
/// number of changes, and the other proxies keep converging meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_a_proxy_that_stops_reading_holds_up_nobody_and_its_backlog_is_bounded() {
    let work = tempfile::tempdir().unwrap();
    let config = ConfigDir::new();
    let services: Vec<String> = (0..SLOW_CLIENT_SERVICES)
        .map(|i| service_yaml(&format!("svc-{i}"), 8080))
        .collect();
    config.write("services.yaml", &services.join("---\n"));
    config.write("limit.yaml", &connection_limit(1));
    let sextant = Sextant::start(work.path(), config.path()).await;

    // The stuck proxy asks for clusters and never reads a response. Its
    // HTTP/2 receive window is Envoy's default (64 KiB), not tonic's larger
    // one, so the backlog reaches the server's own bound within a few edits.
    let mut stuck = Sotw::open_with_window(&sextant, "stuck.default", 65_535).await;
    stuck.request(CDS, &[]).await;
    let mut healthy = Sotw::open(&sextant, "healthy.default").await;
    healthy.request(CDS, &[]).await;
    let first = healthy.recv(CDS, "the first CDS response").await;
    healthy.ack(&first, &[]).await;
    let cds_bytes = first.encoded_len() as u64;
    assert!(cds_bytes > 80 * 1024, "CDS is only {cds_bytes} bytes");

    let mut rss = Vec::new();
    let mut last_version = first.version_info.clone();
    let [half, last] = SLOW_CLIENT_CHECKPOINTS;
    for edit in 2..=last {
        config.write("limit.yaml", &connection_limit(edit));
        // Within RECEIVE (5 s) although the stuck stream's backlog is full.
        let response = healthy.recv(CDS, &format!("the CDS of edit {edit}")).await;
        assert_ne!(response.version_info, last_version);
        last_version = response.version_info.clone();
        healthy.ack(&response, &[]).await;
        if SLOW_CLIENT_CHECKPOINTS.contains(&edit) {
            rss.push(sextant.process.rss_bytes());
        }
    }
    // Between the checkpoints, a backlog that grew with every push would
    // add about one CDS response per edit.
    let unbounded = u64::from(last - half) * cds_bytes;
    let growth = rss[1].saturating_sub(rss[0]);
    eprintln!(
        "CDS {cds_bytes} bytes; RSS {} -> {} bytes over the last {} edits",
        rss[0],
        rss[1],
        last - half
    );
    assert!(
        growth < unbounded / 2,
        "sextant grew by {growth} bytes over {} edits while a proxy did not read \
         (one CDS response is {cds_bytes} bytes; an unbounded backlog would add ~{unbounded})\n{}",
        last - half,
        sextant.process.log()
    );

    // When the stuck proxy reads again, the stream is alive and ends on the
    // newest state.
    let mut seen = 0;
    loop {
        let response = stuck.recv(CDS, "the stuck proxy's backlog").await;
        seen += 1;
        if response.version_info == last_version {
            break;
        }
        assert!(seen <= last, "never reached the newest version");
    }
}

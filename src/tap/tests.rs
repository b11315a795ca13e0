use super::service::tap_entry;
use super::*;
use envoy_types::pb::envoy::data::accesslog::v3::{
    AccessLogCommon, HttpAccessLogEntry, HttpRequestProperties, HttpResponseProperties,
};
use envoy_types::pb::google::protobuf::{Duration, UInt32Value};

fn entry(service: &str, path: &str) -> TapEntry {
    TapEntry {
        service: service.into(),
        cluster: String::new(),
        start_time: None,
        method: "GET".into(),
        path: path.into(),
        authority: String::new(),
        status: Some(200),
        duration_ms: None,
        source: String::new(),
        node: String::new(),
        trace_id: None,
        request_id: String::new(),
    }
}

#[test]
fn clusters_name_their_service() {
    assert_eq!(
        service_of_cluster("outbound|9080|v1|reviews.shop.svc.cluster.local"),
        "reviews.shop"
    );
    assert_eq!(
        service_of_cluster("outbound|443||api.example.com"),
        "api.example.com"
    );
    assert_eq!(service_of_cluster("inbound|8080||"), "inbound|8080||");
}

#[test]
fn rings_are_bounded_and_subscribers_see_new_entries() {
    let hub = TapHub::new();
    let mut live = hub.subscribe();
    for i in 0..RING_CAPACITY + 5 {
        hub.record(entry("a.default", &format!("/{i}")));
    }
    hub.record(entry("b.default", "/b"));
    let kept = hub.recent("a.default");
    assert_eq!(kept.len(), RING_CAPACITY);
    assert_eq!(kept[0].path, "/5", "the oldest are dropped");
    assert_eq!(hub.recent("b.default").len(), 1);
    assert!(hub.recent("c.default").is_empty());
    assert_eq!(live.try_recv().unwrap().path, "/0");
}

#[test]
fn envoy_entries_become_tap_entries() {
    let envoy = HttpAccessLogEntry {
        common_properties: Some(AccessLogCommon {
            upstream_cluster: "outbound|80||b.default.svc.cluster.local".into(),
            duration: Some(Duration {
                seconds: 0,
                nanos: 2_500_000,
            }),
            ..Default::default()
        }),
        request: Some(HttpRequestProperties {
            request_method: envoy_types::pb::envoy::config::core::v3::RequestMethod::Post as i32,
            path: "/orders".into(),
            request_id: "r-1".into(),
            request_headers: [(
                "traceparent".to_string(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
            )]
            .into(),
            ..Default::default()
        }),
        response: Some(HttpResponseProperties {
            response_code: Some(UInt32Value { value: 503 }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let tap = tap_entry(
        &envoy,
        "spiffe://cluster.local/ns/default/sa/a",
        "a.default",
    );
    assert_eq!(tap.service, "b.default");
    assert_eq!(tap.method, "POST");
    assert_eq!(tap.status, Some(503));
    assert_eq!(tap.duration_ms, Some(2.5));
    assert_eq!(
        tap.trace_id.as_deref(),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
    assert_eq!(tap.source, "spiffe://cluster.local/ns/default/sa/a");
}

#[test]
fn long_fields_are_cut_to_the_bound() {
    use envoy_types::pb::envoy::data::accesslog::v3::{HttpAccessLogEntry, HttpRequestProperties};
    let entry = HttpAccessLogEntry {
        request: Some(HttpRequestProperties {
            path: format!("/{}", "é".repeat(4096)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let tapped = super::service::tap_entry(&entry, "src", "node");
    assert!(
        tapped.path.len() <= super::service::MAX_FIELD_BYTES,
        "{}",
        tapped.path.len()
    );
    assert!(tapped.path.starts_with("/é"));
}

fn entry_with(status: Option<u32>, duration_ms: Option<f64>, path: &str) -> TapEntry {
    TapEntry {
        service: "reviews.default".into(),
        cluster: "outbound|9080|v2|reviews.default.svc.cluster.local".into(),
        start_time: None,
        method: "POST".into(),
        path: path.into(),
        authority: "reviews:9080".into(),
        status,
        duration_ms,
        source: "spiffe://cluster.local/ns/shop/sa/productpage".into(),
        node: "productpage-v1.shop".into(),
        trace_id: None,
        request_id: "r-1".into(),
    }
}

#[test]
fn tap_filters_read_envoys_attribute_names() {
    let failed_slow = entry_with(Some(503), Some(320.5), "/api/items?page=2");
    let ok_fast = entry_with(Some(200), Some(3.0), "/health");
    for (expression, on_failed_slow, on_ok_fast) in [
        ("response.code >= 500", true, false),
        ("response.code == 200", false, true),
        (r#"request.duration > duration("250ms")"#, true, false),
        (r#"request.url_path == "/api/items""#, true, false),
        (
            r#"request.path.startsWith("/api") && request.method == "POST""#,
            true,
            false,
        ),
        (
            r#"request.host == "reviews:9080" && request.id == "r-1""#,
            true,
            true,
        ),
        (
            r#"source.principal.endsWith("/sa/productpage")"#,
            true,
            true,
        ),
        (
            r#"xds.cluster_name.contains("|v2|") && xds.node_id == "productpage-v1.shop""#,
            true,
            true,
        ),
        (r#"request.path.matches("^/h[a-z]+$")"#, false, true),
    ] {
        let filter = TapFilter::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        assert_eq!(filter.matches(&failed_slow), on_failed_slow, "{expression}");
        assert_eq!(filter.matches(&ok_fast), on_ok_fast, "{expression}");
    }
}

#[test]
fn a_request_without_the_attribute_does_not_match() {
    // Reset before any response: no code, no duration.
    let reset = entry_with(None, None, "/x");
    let filter = TapFilter::parse("response.code >= 500").unwrap();
    assert!(!filter.matches(&reset));
    let filter = TapFilter::parse("response.code < 500").unwrap();
    assert!(!filter.matches(&reset));
    let filter = TapFilter::parse(r#"request.method == "POST""#).unwrap();
    assert!(filter.matches(&reset));
}

#[test]
fn bad_tap_filters_say_why() {
    for (expression, reason) in [
        ("", "empty"),
        ("response.code >=", "not a CEL expression"),
        ("response.status >= 500", "status"),
        ("requests.path == \"/\"", "requests"),
        ("request.path", "must be a boolean"),
        ("response.code + 1", "must be a boolean"),
        (
            "request.headers[\"x\"] == \"y\"",
            "the attributes are request.method",
        ),
        // Nested comprehensions take exponential time: refused, not run.
        ("[1, 2, 3].all(a, [1, 2, 3].all(b, true))", "comprehensions"),
        (
            "request.path.size() < 7 || [1].exists(x, x == 1)",
            "comprehensions",
        ),
        ("[[1].map(x, x)] == [[1]]", "comprehensions"),
        (
            "{\"a\": [1].filter(x, x > 0)}.size() == 1",
            "comprehensions",
        ),
    ] {
        let err = TapFilter::parse(expression).expect_err(expression);
        assert!(err.contains(reason), "{expression}: {err}");
    }
    let long = format!("request.path == \"{}\"", "a".repeat(MAX_FILTER_LEN));
    assert!(TapFilter::parse(&long).unwrap_err().contains("at most"));
}

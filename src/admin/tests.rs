use super::*;
use crate::model::{Kind, ObjectKey};
use crate::translate::TranslateOptions;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn state() -> AdminState {
    AdminState {
        edges: Default::default(),
        tap: Default::default(),
        cache: Arc::new(SnapshotCache::new(TranslateOptions::default())),
        registry: Arc::new(Registry::default()),
        ready: Arc::new(AtomicBool::new(true)),
        diagnostics: Arc::new(RwLock::new(Vec::new())),
        metrics: Arc::new(Metrics::new()),
    }
}

async fn get(state: AdminState, path: &str) -> (StatusCode, String, String) {
    let response = router(state)
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn metrics_renders_every_family_as_openmetrics_text() {
    let state = state();
    let object = ObjectKey {
        kind: Kind::Service,
        namespace: "default".into(),
        name: "ratings".into(),
    };
    *state.diagnostics.write().unwrap() = vec![
        Diagnostic::error(&object, "spec.ports", "no ports"),
        Diagnostic::warning(&object, "spec.foo", "unknown field"),
        Diagnostic::warning(&object, "spec.bar", "unknown field"),
    ];
    let _proxy = state
        .metrics
        .proxy_connected(crate::metrics::XdsProtocol::Delta);
    state
        .metrics
        .pushed(crate::metrics::XdsProtocol::Delta, TypeUrl::Listener, 1234);

    let (status, content_type, body) = get(state, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    for (name, kind) in [
        ("sextant_connected_proxies", "gauge"),
        ("sextant_xds_pushes", "counter"),
        ("sextant_xds_response_bytes", "counter"),
        ("sextant_xds_nacks", "counter"),
        ("sextant_config_errors", "gauge"),
        ("sextant_config_warnings", "gauge"),
        ("sextant_translation_duration_seconds", "histogram"),
        ("sextant_debounce_wait_seconds", "histogram"),
        ("sextant_proxy_convergence_seconds", "histogram"),
    ] {
        assert!(
            body.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} {kind}:\n{body}"
        );
    }
    for line in [
        "sextant_connected_proxies{protocol=\"delta\"} 1\n",
        "sextant_connected_proxies{protocol=\"sotw\"} 0\n",
        "sextant_xds_pushes_total{type=\"lds\",protocol=\"delta\"} 1\n",
        "sextant_xds_response_bytes_total{type=\"lds\",protocol=\"delta\"} 1234\n",
        "sextant_xds_nacks_total{type=\"cds\"} 0\n",
        "sextant_config_errors 1\n",
        "sextant_config_warnings 2\n",
        "sextant_proxy_convergence_seconds_count 0\n",
    ] {
        assert!(body.contains(line), "{line}{body}");
    }
    assert!(body.ends_with("# EOF\n"), "{body}");
}

#[tokio::test]
async fn the_ui_and_its_assets_are_served_from_the_binary() {
    let (status, content_type, body) = get(state(), "/ui").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(body.contains("<script src=\"/ui/ui.js\">"), "{body}");
    assert!(!body.contains("https://"), "no external assets: {body}");
    let (status, content_type, body) = get(state(), "/ui/ui.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/javascript; charset=utf-8");
    assert!(body.contains("/debug/edges"), "{body}");
    let (status, content_type, _) = get(state(), "/ui/ui.css").await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "text/css; charset=utf-8")
    );
}

#[tokio::test]
async fn debug_edges_shows_the_window() {
    let (status, _, body) = get(state(), "/debug/edges").await;
    assert_eq!(status, StatusCode::OK);
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["window_seconds"], 60.0);
    assert_eq!(value["edges"], json!([]));
}

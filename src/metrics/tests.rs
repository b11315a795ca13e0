use super::*;

/// The value of the sample line that starts with `series ` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn every_family_is_exposed_from_the_start_with_its_type() {
    let text = Metrics::new().render();
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
        ("process_cpu_seconds", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_peak_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} {kind}:\n{text}"
        );
        assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Every labelled series exists at 0 before anything happened.
    for protocol in ["sotw", "delta"] {
        let series = format!("sextant_connected_proxies{{protocol=\"{protocol}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}:\n{text}");
        for t in ["cds", "eds", "lds", "rds"] {
            for name in [
                "sextant_xds_pushes_total",
                "sextant_xds_response_bytes_total",
            ] {
                let series = format!("{name}{{type=\"{t}\",protocol=\"{protocol}\"}}");
                assert_eq!(sample(&text, &series), Some(0.0), "{series}:\n{text}");
            }
        }
    }
    for t in ["cds", "eds", "lds", "rds"] {
        let series = format!("sextant_xds_nacks_total{{type=\"{t}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}:\n{text}");
    }
    for stage in ["resolve", "translate"] {
        let series = format!("sextant_translation_duration_seconds_count{{stage=\"{stage}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}:\n{text}");
    }
    assert!(text.contains("# UNIT sextant_xds_response_bytes bytes\n"));
    assert!(text.contains("# UNIT sextant_proxy_convergence_seconds seconds\n"));
}

#[test]
fn the_process_metrics_are_this_process() {
    // Their types are checked with every family's above.
    let text = Metrics::new().render();
    let pid = std::process::id();
    let after = crate::procfs::sample(pid).unwrap();
    let cpu = sample(&text, "process_cpu_seconds_total").unwrap();
    assert!(
        cpu >= 0.0 && cpu <= after.cpu.as_secs_f64(),
        "{cpu}:\n{text}"
    );
    let rss = sample(&text, "process_resident_memory_bytes").unwrap();
    let peak = sample(&text, "process_peak_resident_memory_bytes").unwrap();
    assert!(
        rss > 0.0 && peak >= rss && peak <= after.peak_rss_bytes as f64,
        "{text}"
    );
    let open = sample(&text, "process_open_fds").unwrap();
    assert!(open >= 3.0, "{text}");
    // The soft limit, as /proc/self/limits shows it ("Max open files  SOFT  HARD  files").
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    match sample(&text, "process_max_fds") {
        Some(max) => assert_eq!(max.to_string(), soft, "{text}"),
        None => assert_eq!(soft, "unlimited", "{text}"),
    }
}

#[test]
fn updates_land_on_their_series() {
    let metrics = Metrics::new();
    let sotw = metrics.proxy_connected(XdsProtocol::Sotw);
    let delta = metrics.proxy_connected(XdsProtocol::Delta);
    let delta2 = metrics.proxy_connected(XdsProtocol::Delta);
    drop(delta);
    metrics.pushed(XdsProtocol::Sotw, TypeUrl::Cluster, 100);
    metrics.pushed(XdsProtocol::Sotw, TypeUrl::Cluster, 20);
    metrics.pushed(XdsProtocol::Delta, TypeUrl::RouteConfiguration, 7);
    metrics.nacked(TypeUrl::Listener);
    metrics.set_config_diagnostics(2, 3);
    metrics.observe_translation(TranslationStage::Translate, Duration::from_millis(3));
    metrics.observe_debounce(Duration::from_millis(120));
    metrics.observe_convergence(Duration::from_millis(400));
    metrics.observe_convergence(Duration::from_secs(2));

    let text = metrics.render();
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}:\n{text}"));
    assert_eq!(value("sextant_connected_proxies{protocol=\"sotw\"}"), 1.0);
    assert_eq!(value("sextant_connected_proxies{protocol=\"delta\"}"), 1.0);
    assert_eq!(
        value("sextant_xds_pushes_total{type=\"cds\",protocol=\"sotw\"}"),
        2.0
    );
    assert_eq!(
        value("sextant_xds_response_bytes_total{type=\"cds\",protocol=\"sotw\"}"),
        120.0
    );
    assert_eq!(
        value("sextant_xds_pushes_total{type=\"rds\",protocol=\"delta\"}"),
        1.0
    );
    assert_eq!(
        value("sextant_xds_pushes_total{type=\"rds\",protocol=\"sotw\"}"),
        0.0
    );
    assert_eq!(value("sextant_xds_nacks_total{type=\"lds\"}"), 1.0);
    assert_eq!(value("sextant_config_errors"), 2.0);
    assert_eq!(value("sextant_config_warnings"), 3.0);
    assert_eq!(
        value("sextant_translation_duration_seconds_count{stage=\"translate\"}"),
        1.0
    );
    assert_eq!(
        value("sextant_translation_duration_seconds_count{stage=\"resolve\"}"),
        0.0
    );
    assert_eq!(value("sextant_debounce_wait_seconds_count"), 1.0);
    assert_eq!(value("sextant_proxy_convergence_seconds_count"), 2.0);
    assert_eq!(
        value("sextant_proxy_convergence_seconds_bucket{le=\"0.5\"}"),
        1.0
    );
    assert_eq!(
        value("sextant_proxy_convergence_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );

    drop((sotw, delta2));
    let text = metrics.render();
    assert_eq!(
        sample(&text, "sextant_connected_proxies{protocol=\"sotw\"}"),
        Some(0.0)
    );
}

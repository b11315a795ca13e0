//! Builders of route actions beyond plain forwarding: retries, fault
//! injection, redirects, mirrors, CORS, header changes and query-parameter
//! matchers.

use super::builders::{duration, string_matcher, StringPattern};
use crate::ir::policy::AbortStatus;
use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
    RuntimeFractionalPercent,
};
use envoy_types::pb::envoy::config::route::v3::{
    query_parameter_matcher, redirect_action, route, route_action, QueryParameterMatcher,
    RedirectAction, RetryPolicy, Route, RouteMatch,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{fault_delay, FaultDelay};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort, FaultAbort, HttpFault,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use envoy_types::util::pack_any;
use std::time::Duration;

/// Name of Envoy's fault filter, as used in `typed_per_filter_config`.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// Name of Envoy's CORS filter, as used in `typed_per_filter_config`.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// A request mirror policy copying `percent` of requests to `cluster`.
pub fn mirror_policy(cluster: &str, percent: f64) -> route_action::RequestMirrorPolicy {
    route_action::RequestMirrorPolicy {
        cluster: cluster.to_string(),
        runtime_fraction: Some(RuntimeFractionalPercent {
            default_value: Some(fractional_percent(percent)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A per-route CORS policy.
pub fn cors_policy(
    origins: &[StringMatcher],
    methods: &[String],
    headers: &[String],
    expose: &[String],
    max_age: Option<Duration>,
    credentials: Option<bool>,
) -> CorsPolicy {
    CorsPolicy {
        allow_origin_string_match: origins.to_vec(),
        allow_methods: methods.join(","),
        allow_headers: headers.join(","),
        expose_headers: expose.join(","),
        max_age: max_age.map(|d| d.as_secs().to_string()).unwrap_or_default(),
        allow_credentials: credentials.map(|value| BoolValue { value }),
        ..Default::default()
    }
}

/// Headers to write: `set` overwrites, `add` appends.
pub fn header_values(set: &[(String, String)], add: &[(String, String)]) -> Vec<HeaderValueOption> {
    let option = |(key, value): &(String, String), action: HeaderAppendAction| HeaderValueOption {
        header: Some(HeaderValue {
            key: key.clone(),
            value: value.clone(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    };
    set.iter()
        .map(|h| option(h, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .chain(
            add.iter()
                .map(|h| option(h, HeaderAppendAction::AppendIfExistsOrAdd)),
        )
        .collect()
}

/// A retry policy: `attempts` retries on `retry_on` conditions and
/// `status_codes`; with `remote_localities`, retries prefer priorities
/// (localities) not tried yet, as Istio maps `retryRemoteLocalities`
/// (`envoy.retry_priorities.previous_priorities`, update frequency 2).
pub fn retry_policy(
    attempts: u32,
    per_try_timeout: Option<Duration>,
    retry_on: &[String],
    status_codes: &[u32],
    remote_localities: bool,
) -> RetryPolicy {
    use envoy_types::pb::envoy::config::route::v3::retry_policy::{retry_priority, RetryPriority};
    use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
    RetryPolicy {
        retry_on: retry_on.join(","),
        num_retries: Some(UInt32Value { value: attempts }),
        per_try_timeout: per_try_timeout.map(duration),
        retriable_status_codes: status_codes.to_vec(),
        retry_priority: remote_localities.then(|| RetryPriority {
            name: "envoy.retry_priorities.previous_priorities".into(),
            config_type: Some(retry_priority::ConfigType::TypedConfig(pack_any(
                PreviousPrioritiesConfig {
                    update_frequency: 2,
                },
            ))),
        }),
        ..Default::default()
    }
}

/// A percentage with a denominator of a million, so 0.1 % stays exact.
pub fn fractional_percent(percent: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32,
        denominator: DenominatorType::Million as i32,
    }
}

/// The per-route config of Envoy's fault filter.
pub fn http_fault(delay: Option<(Duration, f64)>, abort: Option<(AbortStatus, f64)>) -> HttpFault {
    HttpFault {
        delay: delay.map(|(d, percent)| FaultDelay {
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(duration(d))),
            percentage: Some(fractional_percent(percent)),
        }),
        abort: abort.map(|(status, percent)| FaultAbort {
            error_type: Some(match status {
                AbortStatus::Http(code) => fault_abort::ErrorType::HttpStatus(u32::from(code)),
                AbortStatus::Grpc(code) => fault_abort::ErrorType::GrpcStatus(code),
            }),
            percentage: Some(fractional_percent(percent)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A route that answers with a redirect.
pub fn redirect_route(
    name: &str,
    matcher: RouteMatch,
    path: Option<&str>,
    host: Option<&str>,
    port: Option<u16>,
    scheme: Option<&str>,
    code: u16,
) -> Route {
    let response_code = match code {
        302 => redirect_action::RedirectResponseCode::Found,
        303 => redirect_action::RedirectResponseCode::SeeOther,
        307 => redirect_action::RedirectResponseCode::TemporaryRedirect,
        308 => redirect_action::RedirectResponseCode::PermanentRedirect,
        _ => redirect_action::RedirectResponseCode::MovedPermanently,
    };
    Route {
        name: name.to_string(),
        r#match: Some(matcher),
        action: Some(route::Action::Redirect(RedirectAction {
            host_redirect: host.unwrap_or_default().to_string(),
            port_redirect: port.map_or(0, u32::from),
            response_code: response_code as i32,
            scheme_rewrite_specifier: scheme
                .map(|s| redirect_action::SchemeRewriteSpecifier::SchemeRedirect(s.to_string())),
            path_rewrite_specifier: path
                .map(|p| redirect_action::PathRewriteSpecifier::PathRedirect(p.to_string())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A query parameter condition.
pub fn query_parameter_matcher(name: &str, pattern: StringPattern<'_>) -> QueryParameterMatcher {
    QueryParameterMatcher {
        name: name.to_string(),
        query_parameter_match_specifier: Some(
            query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(string_matcher(
                pattern,
            )),
        ),
    }
}

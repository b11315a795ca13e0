//! Conversions of the parts of a VirtualService route other than its
//! destinations: match conditions, policy (timeout, retries, fault, rewrite,
//! headers) and redirects. Validation has already checked their values.

use super::policy::{
    grpc_status_code, parse_duration, AbortStatus, Fault, HeaderChanges, HeaderOps, Redirect,
    Retry, Rewrite, RoutePolicy,
};
use super::{Match, StringMatch};
use crate::model::{self, HttpRoute};

/// A match condition; `None` when it names a port other than `vhost_port`
/// (the condition can never hold on this virtual host).
pub(super) fn condition(m: &model::HttpMatchRequest, vhost_port: Option<u16>) -> Option<Match> {
    if let (Some(wanted), Some(port)) = (m.port, vhost_port) {
        if wanted != u32::from(port) {
            return None;
        }
    }
    let pseudo = [
        (":method", &m.method),
        (":scheme", &m.scheme),
        (":authority", &m.authority),
    ];
    let mut headers: Vec<(String, StringMatch)> = pseudo
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_string(), string_match(value.as_ref()?)?)))
        .collect();
    headers.extend(
        m.headers
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), string_match(v)?))),
    );
    Some(Match {
        path: m.uri.as_ref().and_then(string_match),
        headers,
        without_headers: m
            .without_headers
            .iter()
            .map(|(k, v)| (k.clone(), string_match(v)))
            .collect(),
        query_params: m
            .query_params
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), string_match(v)?)))
            .collect(),
        ignore_case: m.ignore_uri_case,
        source_labels: m.source_labels.clone(),
        source_namespace: m.source_namespace.clone(),
    })
}

/// The one field set (exact, prefix or regex), if any.
pub(super) fn string_match(m: &model::StringMatch) -> Option<StringMatch> {
    m.exact
        .clone()
        .map(StringMatch::Exact)
        .or_else(|| m.prefix.clone().map(StringMatch::Prefix))
        .or_else(|| m.regex.clone().map(StringMatch::Regex))
}

fn duration(text: Option<&String>) -> Option<std::time::Duration> {
    text.and_then(|t| parse_duration(t).ok())
        .filter(|d| !d.is_zero())
}

/// Retry conditions Istio uses when `retryOn` is not set.
const ISTIO_DEFAULT_RETRY_ON: &str = "connect-failure,refused-stream,unavailable,cancelled,503";

pub(super) fn policy(http: &HttpRoute) -> RoutePolicy {
    let retry = http.retries.as_ref().filter(|r| r.attempts > 0).map(|r| {
        let conditions = r.retry_on.as_deref().unwrap_or(ISTIO_DEFAULT_RETRY_ON);
        let (codes, mut retry_on): (Vec<&str>, Vec<&str>) = conditions
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .partition(|c| c.parse::<u32>().is_ok());
        if !codes.is_empty() && !retry_on.contains(&"retriable-status-codes") {
            retry_on.push("retriable-status-codes");
        }
        Retry {
            attempts: r.attempts as u32,
            per_try_timeout: duration(r.per_try_timeout.as_ref()),
            retry_on: retry_on.into_iter().map(str::to_string).collect(),
            status_codes: codes.iter().filter_map(|c| c.parse().ok()).collect(),
            remote_localities: r.retry_remote_localities.unwrap_or(false),
        }
    });
    let percent = |p: &Option<model::Percent>| p.as_ref().map_or(100.0, |p| p.value);
    let fault = http.fault.as_ref().map(|f| Fault {
        delay: f
            .delay
            .as_ref()
            .and_then(|d| Some((parse_duration(&d.fixed_delay).ok()?, percent(&d.percentage)))),
        abort: f.abort.as_ref().and_then(|a| {
            let status = match (&a.http_status, &a.grpc_status) {
                (Some(s), _) => AbortStatus::Http(u16::try_from(*s).ok()?),
                (None, Some(name)) => AbortStatus::Grpc(grpc_status_code(name)?),
                (None, None) => return None,
            };
            Some((status, percent(&a.percentage)))
        }),
    });
    RoutePolicy {
        timeout: duration(http.timeout.as_ref()),
        retry,
        fault,
        rewrite: http.rewrite.as_ref().map(|r| Rewrite {
            uri: r.uri.clone(),
            authority: r.authority.clone(),
            regex: r
                .uri_regex_rewrite
                .as_ref()
                .map(|x| (x.pattern.clone(), x.rewrite.clone())),
        }),
        headers: header_changes(http.headers.as_ref()),
        mirrors: Vec::new(),
        cors: http.cors_policy.as_ref().map(|c| super::policy::Cors {
            origins: c.allow_origins.iter().filter_map(string_match).collect(),
            methods: c.allow_methods.clone(),
            headers: c.allow_headers.clone(),
            expose: c.expose_headers.clone(),
            max_age: c.max_age.as_deref().and_then(|t| parse_duration(t).ok()),
            credentials: c.allow_credentials,
        }),
    }
}

pub(super) fn header_changes(headers: Option<&model::Headers>) -> HeaderChanges {
    let ops = |o: Option<&model::HeaderOperations>| {
        o.map(|o| HeaderOps {
            set: o
                .set
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            add: o
                .add
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            remove: o.remove.iter().map(|k| k.to_ascii_lowercase()).collect(),
        })
        .unwrap_or_default()
    };
    HeaderChanges {
        request: ops(headers.and_then(|h| h.request.as_ref())),
        response: ops(headers.and_then(|h| h.response.as_ref())),
    }
}

pub(super) fn redirect(r: &model::HttpRedirect) -> Redirect {
    Redirect {
        uri: r.uri.clone(),
        authority: r.authority.clone(),
        port: r.port.and_then(|p| u16::try_from(p).ok()),
        scheme: r.scheme.clone(),
        code: r
            .redirect_code
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(301),
    }
}

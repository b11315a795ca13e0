//! Validation of one VirtualService HTTP route beyond its destinations:
//! extra match conditions, redirect / direct response, rewrite, timeout,
//! retries, fault injection and header changes.

use super::validate::{header_name, string_match};
use crate::diagnostic::Diagnostic;
use crate::ir::policy::parse_duration;
use crate::model::{HeaderOperations, Headers, HttpRoute, ObjectKey, StringMatch};

/// Envoy's retry conditions (`x-envoy-retry-on` and `x-envoy-retry-grpc-on`).
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Checks route `i` of `key`; errors go to `out`.
pub(super) fn http_route(key: &ObjectKey, i: usize, http: &HttpRoute, out: &mut Vec<Diagnostic>) {
    let base = format!("spec.http[{i}]");
    let error = |out: &mut Vec<Diagnostic>, field: String, message: String| {
        out.push(Diagnostic::error(key, field, message))
    };

    for (j, m) in http.matches.iter().enumerate() {
        let at = format!("{base}.match[{j}]");
        for (name, value) in [
            ("method", &m.method),
            ("scheme", &m.scheme),
            ("authority", &m.authority),
        ] {
            if let Some(value) = value {
                string_match(key, &format!("{at}.{name}"), value, out);
                no_empty_prefix(key, &format!("{at}.{name}"), value, out);
            }
        }
        if m.ignore_uri_case && m.uri.as_ref().is_some_and(|u| u.regex.is_some()) {
            let message = "ignoreUriCase does not apply to a regex; use (?i) in the regex";
            error(out, format!("{at}.ignoreUriCase"), message.into());
        }
        for (name, value) in &m.query_params {
            let field = format!("{at}.queryParams.{name}");
            if name.is_empty() {
                error(
                    out,
                    field.clone(),
                    "a query parameter name must not be empty".into(),
                );
            }
            string_match(key, &field, value, out);
            no_empty_prefix(key, &field, value, out);
        }
        for (name, value) in &m.without_headers {
            let field = format!("{at}.withoutHeaders.{name}");
            if let Err(reason) = header_name(name) {
                error(out, field.clone(), reason);
            }
            // An empty match means "the header is absent".
            if *value != StringMatch::default() {
                string_match(key, &field, value, out);
                no_empty_prefix(key, &field, value, out);
            }
        }
        if let Some(port) = m.port {
            if !(1..=65535).contains(&port) {
                error(
                    out,
                    format!("{at}.port"),
                    format!("port {port} is outside 1-65535"),
                );
            }
        }
        if http.rewrite.as_ref().is_some_and(|r| r.uri.is_some())
            && m.uri.as_ref().is_some_and(|u| u.regex.is_some())
        {
            error(
                out,
                format!("{base}.rewrite.uri"),
                "rewrite.uri replaces a prefix or exact path; it cannot follow a regex uri match"
                    .into(),
            );
        }
    }

    let actions = [
        !http.route.is_empty(),
        http.redirect.is_some(),
        http.direct_response.is_some(),
    ];
    match actions.iter().filter(|a| **a).count() {
        0 => error(
            out,
            format!("{base}.route"),
            "one of route, redirect or directResponse is required".into(),
        ),
        1 => {}
        _ => error(
            out,
            base.clone(),
            "only one of route, redirect and directResponse may be set".into(),
        ),
    }
    if let Some(r) = &http.redirect {
        if let Some(code) = r
            .redirect_code
            .filter(|c| ![301, 302, 303, 307, 308].contains(c))
        {
            error(
                out,
                format!("{base}.redirect.redirectCode"),
                format!("{code} is not 301, 302, 303, 307 or 308"),
            );
        }
        if let Some(scheme) = r
            .scheme
            .as_deref()
            .filter(|s| !matches!(*s, "http" | "https"))
        {
            error(
                out,
                format!("{base}.redirect.scheme"),
                format!("{scheme:?} is not http or https"),
            );
        }
        if let Some(port) = r.port.filter(|p| !(1..=65535).contains(p)) {
            error(
                out,
                format!("{base}.redirect.port"),
                format!("port {port} is outside 1-65535"),
            );
        }
        header_value(key, &format!("{base}.redirect.uri"), r.uri.as_deref(), out);
        if r.uri.as_deref().is_some_and(|u| !u.starts_with('/')) {
            error(
                out,
                format!("{base}.redirect.uri"),
                "must start with /".into(),
            );
        }
        if let Some(Err(reason)) = r.authority.as_deref().map(authority) {
            error(out, format!("{base}.redirect.authority"), reason);
        }
        header_value(
            key,
            &format!("{base}.redirect.authority"),
            r.authority.as_deref(),
            out,
        );
    }
    if let Some(d) = &http.direct_response {
        let body = d
            .body
            .as_ref()
            .and_then(|b| b.string.as_ref())
            .map_or(0, String::len);
        if body > 4096 {
            error(
                out,
                format!("{base}.directResponse.body.string"),
                format!("{body} bytes; Envoy accepts at most 4096"),
            );
        }
        if !(200..=599).contains(&d.status) {
            error(
                out,
                format!("{base}.directResponse.status"),
                format!("{} is not an HTTP status 200-599", d.status),
            );
        }
    }
    if let Some(r) = &http.rewrite {
        if http.redirect.is_some() || http.direct_response.is_some() {
            let message =
                "rewrite applies only to forwarded requests, not to redirect or directResponse";
            error(out, format!("{base}.rewrite"), message.into());
        }
        if r.uri.as_deref().is_some_and(|u| !u.starts_with('/')) {
            error(
                out,
                format!("{base}.rewrite.uri"),
                "must start with /".into(),
            );
        }
        if let Some(Err(reason)) = r.authority.as_deref().map(authority) {
            error(out, format!("{base}.rewrite.authority"), reason);
        }
        header_value(
            key,
            &format!("{base}.rewrite.authority"),
            r.authority.as_deref(),
            out,
        );
        header_value(key, &format!("{base}.rewrite.uri"), r.uri.as_deref(), out);
        if let Some(x) = &r.uri_regex_rewrite {
            let field = format!("{base}.rewrite.uriRegexRewrite");
            if r.uri.is_some() {
                error(
                    out,
                    field.clone(),
                    "set rewrite.uri or rewrite.uriRegexRewrite, not both".into(),
                );
            }
            if x.pattern.is_empty() {
                error(
                    out,
                    format!("{field}.match"),
                    "a regex must not be empty".into(),
                );
            } else if let Err(reason) = super::re2::re2_compatible(&x.pattern) {
                error(out, format!("{field}.match"), reason);
            } else if let Err(reason) = regex_substitution(&x.pattern, &x.rewrite) {
                error(out, format!("{field}.rewrite"), reason);
            }
            header_value(key, &format!("{field}.rewrite"), Some(&x.rewrite), out);
            if !x.rewrite.starts_with(['/', '\\']) {
                error(
                    out,
                    format!("{field}.rewrite"),
                    format!(
                        "{:?}: the new path starts with / (or with a group, \\1, that holds one)",
                        x.rewrite
                    ),
                );
            }
        }
    }
    duration(
        key,
        &format!("{base}.timeout"),
        http.timeout.as_deref(),
        out,
    );
    if let Some(r) = &http.retries {
        if r.attempts < 0 {
            error(
                out,
                format!("{base}.retries.attempts"),
                "attempts must not be negative".into(),
            );
        }
        duration(
            key,
            &format!("{base}.retries.perTryTimeout"),
            r.per_try_timeout.as_deref(),
            out,
        );
        for condition in r
            .retry_on
            .iter()
            .flat_map(|r| r.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            let status = condition
                .parse::<u32>()
                .is_ok_and(|c| (100..=599).contains(&c));
            if !status && !RETRY_ON.contains(&condition) {
                error(
                    out,
                    format!("{base}.retries.retryOn"),
                    format!(
                        "{condition:?} is neither an Envoy retry condition ({}) nor an HTTP status",
                        RETRY_ON.join(", ")
                    ),
                );
            }
        }
    }
    if let Some(f) = &http.fault {
        if let Some(d) = &f.delay {
            duration_at_least(
                key,
                &format!("{base}.fault.delay.fixedDelay"),
                Some(&d.fixed_delay),
                false,
                out,
            );
            percent(
                key,
                &format!("{base}.fault.delay.percentage.value"),
                d.percentage.as_ref().map(|p| p.value),
                out,
            );
        }
        if let Some(a) = &f.abort {
            match (a.http_status, a.grpc_status.as_deref()) {
                (Some(_), Some(_)) => error(
                    out,
                    format!("{base}.fault.abort"),
                    "set httpStatus or grpcStatus, not both".into(),
                ),
                (Some(s), None) if (200..=599).contains(&s) => {}
                (Some(s), None) => error(
                    out,
                    format!("{base}.fault.abort.httpStatus"),
                    format!("{s} is not an HTTP status 200-599"),
                ),
                (None, Some(name)) if crate::ir::policy::grpc_status_code(name).is_some() => {}
                (None, Some(name)) => error(
                    out,
                    format!("{base}.fault.abort.grpcStatus"),
                    format!(
                        "{name:?} is not a gRPC status name ({})",
                        crate::ir::policy::GRPC_STATUS_CODES.join(", ")
                    ),
                ),
                (None, None) => error(
                    out,
                    format!("{base}.fault.abort"),
                    "an abort needs httpStatus or grpcStatus".into(),
                ),
            }
            percent(
                key,
                &format!("{base}.fault.abort.percentage.value"),
                a.percentage.as_ref().map(|p| p.value),
                out,
            );
        }
    }
    percent(
        key,
        &format!("{base}.mirrorPercentage.value"),
        http.mirror_percentage.as_ref().map(|p| p.value),
        out,
    );
    for (j, m) in http.mirrors.iter().enumerate() {
        percent(
            key,
            &format!("{base}.mirrors[{j}].percentage.value"),
            m.percentage.as_ref().map(|p| p.value),
            out,
        );
    }
    if let Some(cors) = &http.cors_policy {
        for (j, origin) in cors.allow_origins.iter().enumerate() {
            string_match(
                key,
                &format!("{base}.corsPolicy.allowOrigins[{j}]"),
                origin,
                out,
            );
        }
        duration(
            key,
            &format!("{base}.corsPolicy.maxAge"),
            cors.max_age.as_deref(),
            out,
        );
        let lists = [
            ("allowMethods", &cors.allow_methods),
            ("allowHeaders", &cors.allow_headers),
            ("exposeHeaders", &cors.expose_headers),
        ];
        for (name, list) in lists {
            for (j, item) in list.iter().enumerate() {
                if item.is_empty() || item.contains([',', '\r', '\n', '\0', ' ']) {
                    error(
                        out,
                        format!("{base}.corsPolicy.{name}[{j}]"),
                        format!("{item:?} is not a single token"),
                    );
                }
            }
        }
    }
    headers(key, &format!("{base}.headers"), http.headers.as_ref(), out);
    for (j, dest) in http.route.iter().enumerate() {
        headers(
            key,
            &format!("{base}.route[{j}].headers"),
            dest.headers.as_ref(),
            out,
        );
    }
}

/// A duration; Envoy counts these in milliseconds, so a non-zero one under
/// 1 ms would silently become 0. Zero is allowed only where it means "off".
fn duration(key: &ObjectKey, field: &str, text: Option<&str>, out: &mut Vec<Diagnostic>) {
    duration_at_least(key, field, text, true, out);
}

fn duration_at_least(
    key: &ObjectKey,
    field: &str,
    text: Option<&str>,
    zero_ok: bool,
    out: &mut Vec<Diagnostic>,
) {
    match text.map(parse_duration) {
        Some(Err(reason)) => out.push(Diagnostic::error(key, field, reason)),
        Some(Ok(d)) if d.is_zero() && !zero_ok => {
            out.push(Diagnostic::error(key, field, "must be at least 1ms"))
        }
        Some(Ok(d)) if !d.is_zero() && d < std::time::Duration::from_millis(1) => {
            out.push(Diagnostic::error(
                key,
                field,
                "must be 0 or at least 1ms (Envoy counts milliseconds)",
            ))
        }
        _ => {}
    }
}

fn percent(key: &ObjectKey, field: &str, value: Option<f64>, out: &mut Vec<Diagnostic>) {
    if let Some(v) = value.filter(|v| !(0.0..=100.0).contains(v)) {
        out.push(Diagnostic::error(
            key,
            field,
            format!("{v} is not a percentage 0-100"),
        ));
    }
}

/// A value Envoy puts in a header: no CR, LF or NUL.
/// RE2's rule for a substitution (what Envoy checks): a backslash is
/// followed by a digit naming an existing capture group, or by a backslash.
fn regex_substitution(pattern: &str, rewrite: &str) -> Result<(), String> {
    let groups = regex_syntax::parse(pattern)
        .map(|h| h.properties().explicit_captures_len())
        .unwrap_or(0);
    let mut chars = rewrite.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            continue;
        }
        match chars.next() {
            Some('\\') => {}
            Some(d) if d.is_ascii_digit() => {
                let n = d.to_digit(10).unwrap_or(0) as usize;
                if n > groups {
                    return Err(format!(
                        "\\{n} refers to capture group {n}, but the pattern has {groups}"
                    ));
                }
            }
            _ => {
                return Err(
                    "a backslash must be followed by a group number or another backslash".into(),
                )
            }
        }
    }
    Ok(())
}

fn header_value(key: &ObjectKey, field: &str, value: Option<&str>, out: &mut Vec<Diagnostic>) {
    if value.is_some_and(|v| v.contains(['\r', '\n', '\0'])) {
        out.push(Diagnostic::error(
            key,
            field,
            "must not contain CR, LF or NUL",
        ));
    }
}

fn headers(key: &ObjectKey, field: &str, headers: Option<&Headers>, out: &mut Vec<Diagnostic>) {
    let Some(headers) = headers else { return };
    let mut ops = |side: &str, ops: Option<&HeaderOperations>| {
        let Some(ops) = ops else { return };
        let set = ops.set.keys().map(|n| (format!("set.{n}"), n));
        let add = ops.add.keys().map(|n| (format!("add.{n}"), n));
        let remove = ops
            .remove
            .iter()
            .enumerate()
            .map(|(k, n)| (format!("remove[{k}]"), n));
        for (at, name) in set.chain(add).chain(remove) {
            let at = format!("{field}.{side}.{at}");
            let lower = name.to_ascii_lowercase();
            if let Err(reason) = header_name(&lower) {
                out.push(Diagnostic::error(key, &at, reason));
            } else if lower.starts_with(':') || lower == "host" {
                out.push(Diagnostic::error(
                    key,
                    &at,
                    "pseudo-headers and host cannot be changed here (use rewrite.authority)",
                ));
            } else if lower.len() > 16384 {
                out.push(Diagnostic::error(
                    key,
                    &at,
                    "a header name is at most 16384 bytes",
                ));
            }
        }
        for (verb, entries) in [("set", &ops.set), ("add", &ops.add)] {
            for (name, value) in entries {
                let at = format!("{field}.{side}.{verb}.{name}");
                header_value(key, &at, Some(value), out);
                if value.len() > 16384 {
                    out.push(Diagnostic::error(
                        key,
                        &at,
                        "a header value is at most 16384 bytes",
                    ));
                }
            }
        }
    };
    ops("request", headers.request.as_ref());
    ops("response", headers.response.as_ref());
}

/// Envoy's string matchers need a non-empty prefix (only a path prefix may be empty).
fn no_empty_prefix(key: &ObjectKey, field: &str, m: &StringMatch, out: &mut Vec<Diagnostic>) {
    if m.prefix.as_deref() == Some("") {
        out.push(Diagnostic::error(
            key,
            format!("{field}.prefix"),
            "must not be empty (use regex \".*\" to match anything)",
        ));
    }
}

/// A host, optionally with `:port`, as an authority.
fn authority(text: &str) -> Result<(), String> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => (host, Some(port)),
        _ => (text, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!("{text:?} is not a host or host:port"))
    }
}

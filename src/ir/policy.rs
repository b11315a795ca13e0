//! What a route does besides choosing a destination: timeout, retries,
//! fault injection, rewrites and header changes; and redirects.

use serde::Serialize;
use std::time::Duration;

/// Per-route behaviour, all optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RoutePolicy {
    /// Overall timeout; `None` disables it (Istio's default).
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Fault injection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Path and authority rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    /// Header changes for every destination of the route.
    #[serde(skip_serializing_if = "HeaderChanges::is_empty")]
    pub headers: HeaderChanges,
    /// Mirror clusters with the percentage of requests copied to each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<(String, f64)>,
    /// Cross-origin resource sharing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
}

/// A CORS policy (Envoy's CORS filter).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cors {
    /// Allowed origins.
    pub origins: Vec<super::StringMatch>,
    /// Allowed methods.
    pub methods: Vec<String>,
    /// Allowed request headers.
    pub headers: Vec<String>,
    /// Exposed response headers.
    pub expose: Vec<String>,
    /// Preflight cache time.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub max_age: Option<Duration>,
    /// Credentials allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<bool>,
}

impl RoutePolicy {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == RoutePolicy::default()
    }
}

/// A retry policy (Envoy's `retry_policy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Retry {
    /// Retries after the first try (> 0).
    pub attempts: u32,
    /// Timeout of each try.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub per_try_timeout: Option<Duration>,
    /// Envoy retry conditions (`5xx`, `connect-failure`, ...).
    pub retry_on: Vec<String>,
    /// HTTP status codes to retry on (with `retriable-status-codes`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status_codes: Vec<u32>,
    /// Prefer endpoints of localities not tried yet.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub remote_localities: bool,
}

/// Fault injection for a share of requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Fault {
    /// Delay and the percentage of requests delayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<(Duration, f64)>,
    /// Status and the percentage of requests aborted with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<(AbortStatus, f64)>,
}

/// What an aborted request is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortStatus {
    /// An HTTP status, 200-599.
    Http(u16),
    /// A gRPC status code, 0-16.
    Grpc(u32),
}

/// gRPC status codes by name (<https://grpc.github.io/grpc/core/md_doc_statuscodes.html>).
pub const GRPC_STATUS_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The code of a gRPC status name (upper case), or `None`.
pub fn grpc_status_code(name: &str) -> Option<u32> {
    GRPC_STATUS_CODES
        .iter()
        .position(|n| *n == name)
        .map(|i| i as u32)
}

/// Rewrites before forwarding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    /// Replaces the matched path prefix (or the whole matched path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replaces the Host/authority header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Replaces every match of the RE2 pattern (first) in the path with the
    /// substitution (second).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<(String, String)>,
}

/// Header changes on requests and responses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderChanges {
    /// Changes to the request.
    pub request: HeaderOps,
    /// Changes to the response.
    pub response: HeaderOps,
}

impl HeaderChanges {
    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// Set, add and remove headers (names lower-case).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderOps {
    /// Overwrite.
    pub set: Vec<(String, String)>,
    /// Append.
    pub add: Vec<(String, String)>,
    /// Remove.
    pub remove: Vec<String>,
}

impl HeaderOps {
    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A redirect answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Redirect {
    /// New path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// New authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// New port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// New scheme.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// 301, 302, 303, 307 or 308.
    pub code: u16,
}

mod opt_duration {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format!("{}ms", d.as_millis())),
            None => s.serialize_none(),
        }
    }
}

/// The longest duration accepted, in seconds: protobuf allows 315,576,000,000 s,
/// but Envoy converts durations to signed 64-bit nanoseconds and rejects
/// longer ones ("Duration out-of-range"), so the limit is `i64::MAX` ns.
const MAX_SECONDS: u128 = 9_223_372_036;

/// Parses a Go duration (`"1.5s"`, `"250ms"`, `"1m30s"`, `"1µs"`), as Istio's
/// API takes them: one or more decimal numbers, each with a unit (`ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`). Hand-written because the crates at hand panic
/// or stall on some inputs (non-ASCII units, long numbers).
///
/// # Errors
/// A message when the text is not a non-negative Go duration up to Envoy's
/// limit of 9,223,372,036 s (about 292 years).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as \"1.5s\" or \"250ms\"");
    let mut rest = text.trim();
    if rest.starts_with('-') {
        return Err(format!("{text:?} is negative"));
    }
    rest = rest.strip_prefix('+').unwrap_or(rest);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.len() > 64 {
        return Err(bad());
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') || whole.len() > 18 {
            return Err(bad());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(bad)?;
        // Fraction digits beyond nanosecond precision do not matter.
        let mut unit_scale = scale;
        for digit in fraction.bytes().take(27) {
            unit_scale /= 10;
            part += u128::from(digit - b'0') * unit_scale;
        }
        nanos = nanos.checked_add(part).ok_or_else(bad)?;
        if nanos > i64::MAX as u128 {
            return Err(format!(
                "{text:?} is longer than Envoy's limit of {MAX_SECONDS} seconds"
            ));
        }
        rest = tail;
    }
    Ok(Duration::from_nanos(nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn go_durations_parse_and_bad_ones_are_refused_quickly() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        // Envoy's limit is i64 nanoseconds; longer values must not wrap.
        assert!(parse_duration("87660000h").is_err());
        assert!(parse_duration("20000000000s").is_err());
        assert!(parse_duration("9223372037s").is_err());
        assert_eq!(
            parse_duration("9223372036s"),
            Ok(Duration::from_secs(9_223_372_036))
        );
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1µs"), Ok(Duration::from_micros(1)));
        assert_eq!(
            parse_duration("0.12345678901234567890s"),
            Ok(Duration::from_nanos(123_456_789))
        );
        assert_eq!(
            parse_duration("2562047h"),
            Ok(Duration::from_secs(2_562_047 * 3600))
        );
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "-1s",
            "1e9s",
            "1.5",
            "5秒",
            "1sé",
            "1..5s",
            ".s",
            "99999999999999999h",
            "100000000h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}

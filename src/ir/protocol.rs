//! Which protocol a service port speaks, chosen as Istio chooses it
//! (<https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/>).

use serde::Serialize;

/// How the proxy handles a port's traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP/1.1 upstreams, routed by the outbound HTTP listener.
    #[default]
    Http,
    /// HTTP/2 upstreams (gRPC, `http2`, `h2c`), routed like HTTP.
    Http2,
    /// Opaque bytes (TCP, and TLS, MongoDB, MySQL, Redis, which Sextant does
    /// not parse): a TCP proxy listener per port.
    Tcp,
}

impl Protocol {
    /// Whether the port is routed by the HTTP route configuration.
    pub fn is_http(self) -> bool {
        self != Protocol::Tcp
    }

    /// Istio's protocol names (any case), as in a ServiceEntry port's
    /// `protocol`, an `appProtocol` or a port name's `<protocol>-` prefix.
    /// `None` for a name Istio does not know or Sextant cannot serve (UDP).
    pub fn from_istio_name(name: &str) -> Option<Protocol> {
        match name.to_ascii_lowercase().as_str() {
            "http" | "grpc-web" => Some(Protocol::Http),
            "http2" | "grpc" | "h2c" | "kubernetes.io/h2c" => Some(Protocol::Http2),
            "tcp" | "tls" | "https" | "mongo" | "mysql" | "redis" => Some(Protocol::Tcp),
            _ => None,
        }
    }

    /// A Kubernetes service port's protocol: `appProtocol` if Istio knows it,
    /// else the port name (`grpc`, or a `grpc-<suffix>` prefix, ...), else
    /// HTTP (where Istio would sniff the first bytes, Sextant assumes HTTP).
    pub fn of_service_port(name: Option<&str>, app_protocol: Option<&str>) -> Protocol {
        app_protocol
            .and_then(Protocol::from_istio_name)
            .or_else(|| name.and_then(Protocol::from_port_name))
            .unwrap_or(Protocol::Http)
    }

    /// The protocol a port name announces: the whole name or its prefix up
    /// to the first `-` (`grpc-web` as a whole).
    pub fn from_port_name(name: &str) -> Option<Protocol> {
        let lower = name.to_ascii_lowercase();
        if lower == "grpc-web" || lower.starts_with("grpc-web-") {
            return Some(Protocol::Http);
        }
        Protocol::from_istio_name(lower.split('-').next().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn port_names_and_app_protocols_choose_as_istio_does() {
        let of = Protocol::of_service_port;
        assert_eq!(of(Some("grpc-api"), None), Protocol::Http2);
        assert_eq!(of(Some("grpc-web"), None), Protocol::Http);
        assert_eq!(of(Some("tcp-db"), None), Protocol::Tcp);
        assert_eq!(of(Some("mysql"), None), Protocol::Tcp);
        assert_eq!(of(Some("http"), Some("tcp")), Protocol::Tcp);
        assert_eq!(of(Some("tcp"), Some("kubernetes.io/h2c")), Protocol::Http2);
        assert_eq!(of(Some("web"), None), Protocol::Http);
        assert_eq!(of(None, Some("unknown")), Protocol::Http);
        assert_eq!(Protocol::from_istio_name("UDP"), None);
        assert_eq!(Protocol::from_istio_name("HTTPS"), Some(Protocol::Tcp));
    }
}

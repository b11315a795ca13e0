//! Builders for mutual TLS between sidecars: SDS secret references, the
//! secrets themselves, and upstream / downstream TLS transport sockets.

use super::builders::{ads_config_source, string_matcher, StringPattern};
use envoy_types::pb::envoy::config::core::v3::{
    data_source, transport_socket, DataSource, TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
    secret,
    subject_alt_name_matcher::SanType,
    tls_parameters::TlsProtocol,
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    SubjectAltNameMatcher, TlsCertificate, TlsParameters, UpstreamTlsContext,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

/// Name of the SDS secret holding the workload's certificate and key (Istio's).
pub const CERTIFICATE_SECRET: &str = "default";
/// Name of the SDS secret holding the mesh's trust bundle (Istio's).
pub const ROOT_SECRET: &str = "ROOTCA";
/// Name of Envoy's TLS transport socket.
pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ads_config_source()),
    }
}

fn inline(text: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.to_string())),
        ..Default::default()
    })
}

/// The SDS secret [`CERTIFICATE_SECRET`]: a certificate chain and its key (PEM).
pub fn certificate_secret(chain_pem: &str, key_pem: &str) -> Secret {
    Secret {
        name: CERTIFICATE_SECRET.into(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(chain_pem),
            private_key: inline(key_pem),
            ..Default::default()
        })),
    }
}

/// The SDS secret [`ROOT_SECRET`]: the trust bundle (PEM).
pub fn root_secret(root_pem: &str) -> Secret {
    Secret {
        name: ROOT_SECRET.into(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: inline(root_pem),
                ..Default::default()
            },
        )),
    }
}

/// TLS 1.2 to 1.3 (Envoy's client default stops at 1.2).
fn tls_params() -> Option<TlsParameters> {
    Some(TlsParameters {
        tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
        tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
        ..Default::default()
    })
}

/// A context presenting [`CERTIFICATE_SECRET`] and checking the peer against
/// [`ROOT_SECRET`] and URI SANs matching one of `peer_uris` (each exact,
/// or a prefix when it ends in `/`).
fn common(peer_uris: &[String]) -> CommonTlsContext {
    let sans = peer_uris
        .iter()
        .map(|uri| SubjectAltNameMatcher {
            san_type: SanType::Uri as i32,
            matcher: Some(string_matcher(match uri.strip_suffix('/') {
                Some(_) => StringPattern::Prefix(uri),
                None => StringPattern::Exact(uri),
            })),
            ..Default::default()
        })
        .collect();
    CommonTlsContext {
        tls_params: tls_params(),
        tls_certificate_sds_secret_configs: vec![sds(CERTIFICATE_SECRET)],
        validation_context_type: Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext {
                    match_typed_subject_alt_names: sans,
                    ..Default::default()
                }),
                validation_context_sds_secret_config: Some(sds(ROOT_SECRET)),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// Client side of mutual TLS to a sidecar: present the workload certificate,
/// send `sni`, accept only a server whose URI SAN is one of `server_uris`.
pub fn upstream_mtls(sni: &str, server_uris: &[String]) -> TransportSocket {
    let context = UpstreamTlsContext {
        common_tls_context: Some(common(server_uris)),
        sni: sni.to_string(),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
    }
}

/// TLS origination with files on the proxy's host (DestinationRule `tls`
/// SIMPLE or MUTUAL): send `sni`; verify the server against `ca_file` (and
/// one of `server_names`, DNS or URI SANs, exact) when given, else do not
/// verify; present `client` (certificate and key files) when given.
pub fn upstream_tls_files(
    sni: &str,
    ca_file: Option<&str>,
    client: Option<(&str, &str)>,
    server_names: &[String],
) -> TransportSocket {
    let file = |path: &str| {
        Some(DataSource {
            specifier: Some(data_source::Specifier::Filename(path.to_string())),
            ..Default::default()
        })
    };
    let sans = server_names
        .iter()
        .flat_map(|name| {
            [SanType::Dns, SanType::Uri].map(|t| SubjectAltNameMatcher {
                san_type: t as i32,
                matcher: Some(string_matcher(StringPattern::Exact(name))),
                ..Default::default()
            })
        })
        .collect();
    let common = CommonTlsContext {
        tls_params: tls_params(),
        tls_certificates: client
            .map(|(cert, key)| TlsCertificate {
                certificate_chain: file(cert),
                private_key: file(key),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        validation_context_type: ca_file.map(|ca| {
            ValidationContextType::ValidationContext(CertificateValidationContext {
                trusted_ca: file(ca),
                match_typed_subject_alt_names: sans,
                ..Default::default()
            })
        }),
        ..Default::default()
    };
    let context = UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: sni.to_string(),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
    }
}

/// Plaintext: Envoy's raw buffer transport socket.
pub fn plaintext() -> TransportSocket {
    use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
    TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(
            RawBuffer::default(),
        ))),
    }
}

/// Server side of mutual TLS: present the workload certificate and require
/// a client certificate from the mesh CA whose URI SAN starts with
/// `client_uri_prefix` (`spiffe://<trust domain>/`).
pub fn downstream_mtls(client_uri_prefix: &str) -> TransportSocket {
    let context = DownstreamTlsContext {
        common_tls_context: Some(common(&[client_uri_prefix.to_string()])),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
    }
}

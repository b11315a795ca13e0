//! The CA root in a Kubernetes Secret (`sextant serve --kube`).
//!
//! The Secret (type `kubernetes.io/tls`, keys `tls.crt` and `tls.key`) is
//! read when it exists; otherwise a root is generated with
//! [`generate_root`](super::generate_root), as the directory store does,
//! and the Secret created. When the create fails with 409 Conflict (another
//! replica created it first), the Secret is read again and its root used,
//! so every replica signs under the same root. A Secret that exists but is
//! unusable is an error, never a reason to generate a new root.

use super::{CaConfig, CaError, CertificateAuthority};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Data key of the root certificate (PEM).
pub const CERT_KEY: &str = "tls.crt";
/// Data key of the root's PKCS#8 private key (PEM).
pub const KEY_KEY: &str = "tls.key";

/// The Secret that holds the CA root.
pub struct SecretStore {
    api: Api<Secret>,
    namespace: String,
    name: String,
}

impl SecretStore {
    /// The Secret `name` in `namespace`, through `client`.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        SecretStore {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Loads the CA from the Secret, creating the Secret with a new root
    /// on first start (see the module doc).
    ///
    /// # Errors
    /// [`CaError::Kube`] when the API server refuses a read or create (other
    /// than the 409 handled above); [`CaError::SecretIncomplete`] when a key
    /// is missing; otherwise as [`CertificateAuthority::from_root_pem`].
    pub async fn load_or_create(&self, config: &CaConfig) -> Result<CertificateAuthority, CaError> {
        let now = SystemTime::now();
        let existing = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| CaError::Kube {
                secret: self.label(),
                action: "reading",
                source,
            })?;
        let secret = match existing {
            Some(secret) => secret,
            None => {
                let (cert_pem, key_pem) = super::generate_root(config, now)?;
                match self.create(&cert_pem, &key_pem).await {
                    Ok(secret) => {
                        tracing::info!(
                            secret = self.label(),
                            "created the CA Secret with a new root"
                        );
                        secret
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        tracing::info!(
                            secret = self.label(),
                            "another replica created the CA Secret first; using its root"
                        );
                        self.api
                            .get(&self.name)
                            .await
                            .map_err(|source| CaError::Kube {
                                secret: self.label(),
                                action: "reading after a create conflict",
                                source,
                            })?
                    }
                    Err(source) => {
                        return Err(CaError::Kube {
                            secret: self.label(),
                            action: "creating",
                            source,
                        })
                    }
                }
            }
        };
        let field = |key: &'static str| -> Result<String, CaError> {
            let incomplete = || CaError::SecretIncomplete {
                secret: self.label(),
                key,
            };
            let bytes = secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .ok_or_else(incomplete)?;
            String::from_utf8(bytes.0.clone()).map_err(|_| incomplete())
        };
        let cert_pem = field(CERT_KEY)?;
        let key_pem = field(KEY_KEY)?;
        CertificateAuthority::from_root_pem(
            config,
            &format!("Secret {} {CERT_KEY}", self.label()),
            &format!("Secret {} {KEY_KEY}", self.label()),
            &cert_pem,
            &key_pem,
            now,
        )
    }

    async fn create(&self, cert_pem: &str, key_pem: &str) -> kube::Result<Secret> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "sextant".to_string(),
                )])),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".to_string()),
            data: Some(BTreeMap::from([
                (
                    CERT_KEY.to_string(),
                    ByteString(cert_pem.as_bytes().to_vec()),
                ),
                (KEY_KEY.to_string(), ByteString(key_pem.as_bytes().to_vec())),
            ])),
            ..Default::default()
        };
        self.api.create(&PostParams::default(), &secret).await
    }
}

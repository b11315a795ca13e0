//! The built-in certificate authority: issues SPIFFE X.509-SVIDs (workload
//! certificates) for SDS.
//!
//! The CA signs with one of two keys, both kept in a directory on disk so that
//! a restart never changes the trust root:
//! - a root it generated on first start ([`ROOT_CERT_FILE`], [`ROOT_KEY_FILE`]);
//!   the chain served to workloads is `[leaf]` and the trust bundle that root;
//! - or, when [`CaConfig::user_root`] is set, an intermediate it generated
//!   under the user's root ([`INTERMEDIATE_CERT_FILE`], [`INTERMEDIATE_KEY_FILE`]);
//!   the chain is `[leaf, intermediate]` and the trust bundle the user's root.
//!
//! Files that are half present or unreadable are errors, never a reason to
//! generate anew. Keys are ECDSA P-256; a user root may use any key type rcgen
//! signs with (ECDSA P-256/P-384, RSA, Ed25519) in PKCS#8 form.

mod error;
pub mod secret_store;
pub mod spiffe;
mod store;
pub mod workload_certs;

#[cfg(test)]
mod tests;

pub use error::CaError;
pub use spiffe::{SpiffeError, SpiffeId, TrustDomain};
pub use workload_certs::{CertSummary, WorkloadCerts};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{PairPaths, StoredPair};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// File name of the generated root certificate inside the CA directory.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// File name of the generated root's private key (mode 0600).
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// File name of the intermediate certificate issued under a user's root.
pub const INTERMEDIATE_CERT_FILE: &str = "intermediate-cert.pem";
/// File name of the intermediate's private key (mode 0600).
pub const INTERMEDIATE_KEY_FILE: &str = "intermediate-key.pem";

/// Default validity of a CA certificate the CA generates: 10 years.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Default validity of a workload certificate: 24 hours.
pub const DEFAULT_WORKLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// How far a generated CA certificate's `not_before` lies before its creation,
/// to tolerate clock skew.
pub const CA_BACKDATE: Duration = Duration::from_secs(5 * 60);
/// How far a workload certificate's `not_before` lies before its issue time
/// (but never before the CA's own `not_before`).
pub const WORKLOAD_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// 9999-12-31T23:59:59Z, the last second X.509 (GeneralizedTime) can express.
const LAST_X509_SECOND: i64 = 253_402_300_799;
/// Common name of a generated root.
const ROOT_COMMON_NAME: &str = "Sextant root CA";
/// Common name of a generated intermediate.
const INTERMEDIATE_COMMON_NAME: &str = "Sextant intermediate CA";

/// How the CA gets its signing certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaConfig {
    /// Trust domain of the identities issued; also the `O` of generated CA
    /// certificates. Default `cluster.local`.
    pub trust_domain: TrustDomain,
    /// Validity of a CA certificate generated here (the root, or the
    /// intermediate, which is cut to end with the user's root), whole seconds.
    /// Default [`DEFAULT_CA_VALIDITY`].
    pub ca_validity: Duration,
    /// A root supplied by the user; the CA then signs with an intermediate
    /// under it. `None` (default): the CA generates its own root.
    pub user_root: Option<UserRoot>,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            trust_domain: TrustDomain::default(),
            ca_validity: DEFAULT_CA_VALIDITY,
            user_root: None,
        }
    }
}

/// A user's root CA as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRoot {
    /// File with exactly one `CERTIFICATE` block: a CA certificate
    /// (basicConstraints CA:TRUE). It becomes the trust bundle as is.
    pub cert: PathBuf,
    /// File with the root's unencrypted PKCS#8 `PRIVATE KEY`.
    pub key: PathBuf,
}

/// A workload certificate with its key, ready for an SDS `tls_certificate`
/// and `validation_context`.
#[derive(Clone)]
pub struct IssuedCert {
    /// The identity in the certificate's URI SAN.
    pub spiffe_id: SpiffeId,
    /// PEM: the leaf, then the intermediate when signing under a user root.
    pub cert_chain_pem: String,
    /// PEM: the leaf's PKCS#8 private key. Never logged (see the `Debug` impl).
    pub private_key_pem: String,
    /// PEM: the trust bundle (the root certificate).
    pub root_pem: String,
    /// The leaf's serial number, lowercase hex without leading zeros.
    pub serial_hex: String,
    /// Start of the leaf's validity (whole seconds).
    pub not_before: SystemTime,
    /// End of the leaf's validity (whole seconds).
    pub not_after: SystemTime,
    /// When to replace the certificate: halfway from issue to `not_after`.
    pub rotate_at: SystemTime,
}

impl fmt::Debug for IssuedCert {
    /// Prints every field but the private key, which shows as `[redacted]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("spiffe_id", &self.spiffe_id.to_string())
            .field("cert_chain_pem", &self.cert_chain_pem)
            .field("private_key_pem", &"[redacted]")
            .field("root_pem", &self.root_pem)
            .field("serial_hex", &self.serial_hex)
            .field("not_before", &rfc3339(self.not_before))
            .field("not_after", &rfc3339(self.not_after))
            .field("rotate_at", &rfc3339(self.rotate_at))
            .finish()
    }
}

/// The certificate authority: a signing certificate and key, loaded once.
///
/// Immutable after loading; share it with `Arc` and call [`issue`](Self::issue)
/// from any task (signing takes well under a millisecond; it does not block on I/O).
pub struct CertificateAuthority {
    trust_domain: TrustDomain,
    issuer: Issuer<'static, KeyPair>,
    issuer_not_before: SystemTime,
    issuer_not_after: SystemTime,
    /// PEM of the certificates between the leaf and the root: empty or the
    /// intermediate.
    intermediates_pem: String,
    root_pem: String,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain.as_str())
            .field("intermediate", &!self.intermediates_pem.is_empty())
            .field("not_before", &rfc3339(self.issuer_not_before))
            .field("not_after", &rfc3339(self.issuer_not_after))
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads the CA from `dir`, generating and persisting what is missing
    /// (creating `dir` with mode 0700 if needed). Same as
    /// [`load_or_generate_at`](Self::load_or_generate_at) with the current time.
    ///
    /// # Errors
    /// As [`load_or_generate_at`](Self::load_or_generate_at).
    pub fn load_or_generate(dir: &Path, config: &CaConfig) -> Result<Self, CaError> {
        Self::load_or_generate_at(dir, config, SystemTime::now())
    }

    /// Loads the CA from `dir`, generating and persisting what is missing; `now`
    /// dates generated certificates and is the time the loaded ones must be
    /// valid at.
    ///
    /// Without a user root: loads [`ROOT_CERT_FILE`] and [`ROOT_KEY_FILE`], or
    /// generates a P-256 root (CN "Sextant root CA", O = trust domain) when
    /// neither exists. With a user root: loads it, then loads
    /// [`INTERMEDIATE_CERT_FILE`] and [`INTERMEDIATE_KEY_FILE`] or generates
    /// that intermediate (path length 0) when neither exists. A root file left
    /// in `dir` is then ignored.
    ///
    /// # Errors
    /// - [`CaError::TooShort`], [`CaError::TooLong`]: `ca_validity` under one
    ///   second, or ending after the year 9999.
    /// - [`CaError::HalfPresent`]: a certificate without its key or vice versa.
    /// - [`CaError::BadFile`]: unparsable PEM, not a CA, unsupported key.
    /// - [`CaError::KeyMismatch`]: the key is not the certificate's.
    /// - [`CaError::NotValidAt`]: a loaded certificate is expired or not yet valid.
    /// - [`CaError::NotIssuedByRoot`]: the stored intermediate is not the user root's.
    /// - [`CaError::Io`]: a file or `dir` cannot be read or written (a missing
    ///   user root file included).
    /// - [`CaError::Generate`], [`CaError::Random`]: key generation or signing failed.
    pub fn load_or_generate_at(
        dir: &Path,
        config: &CaConfig,
        now: SystemTime,
    ) -> Result<Self, CaError> {
        let now = whole_seconds(now);
        let ca_not_after = ca_not_after(config, now)?;
        store::ensure_dir(dir)?;
        match &config.user_root {
            None => {
                let paths = PairPaths::in_dir(dir, ROOT_CERT_FILE, ROOT_KEY_FILE);
                let root = match store::load_optional_pair(&paths)? {
                    Some(root) => root,
                    None => {
                        let (cert_pem, key_pem) = generate_root(config, now)?;
                        persist(&paths, &cert_pem, &key_pem)?
                    }
                };
                check_valid_at(&root, &paths.cert, now)?;
                let root_pem = root.cert_pem.clone();
                Self::new(config, root, String::new(), root_pem)
            }
            Some(user) => {
                let root_paths = PairPaths {
                    cert: user.cert.clone(),
                    key: user.key.clone(),
                };
                if dir.join(ROOT_CERT_FILE).exists() {
                    tracing::warn!(
                        dir = %dir.display(),
                        "ignoring {ROOT_CERT_FILE}: a user root is configured"
                    );
                }
                let root = store::read_pair(&root_paths)?;
                check_valid_at(&root, &root_paths.cert, now)?;
                let paths = PairPaths::in_dir(dir, INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE);
                let intermediate = match store::load_optional_pair(&paths)? {
                    Some(intermediate) => {
                        check_issued_by(&intermediate, &root, &paths, &root_paths)?;
                        intermediate
                    }
                    None => {
                        let not_before = (now - CA_BACKDATE).max(root.not_before);
                        let not_after = ca_not_after.min(root.not_after);
                        let params = ca_params(
                            INTERMEDIATE_COMMON_NAME,
                            &config.trust_domain,
                            BasicConstraints::Constrained(0),
                            not_before,
                            not_after,
                        )?;
                        let key = new_key()?;
                        let cert = params
                            .signed_by(&key, &issuer(&root)?)
                            .map_err(generate("signing the intermediate certificate"))?;
                        persist(&paths, &cert.pem(), &key.serialize_pem())?
                    }
                };
                check_valid_at(&intermediate, &paths.cert, now)?;
                let intermediates_pem = intermediate.cert_pem.clone();
                Self::new(config, intermediate, intermediates_pem, root.cert_pem)
            }
        }
    }

    /// The CA around a root kept outside a directory (such as a Kubernetes
    /// Secret): parses and checks the PEM pair as a directory's root files
    /// are checked, naming `cert_name` and `key_name` in errors; `now` is
    /// the time it must be valid at.
    ///
    /// # Errors
    /// [`CaError::BadFile`], [`CaError::KeyMismatch`], [`CaError::NotValidAt`]
    /// as for the root files of [`load_or_generate_at`](Self::load_or_generate_at).
    pub fn from_root_pem(
        config: &CaConfig,
        cert_name: &str,
        key_name: &str,
        cert_pem: &str,
        key_pem: &str,
        now: SystemTime,
    ) -> Result<Self, CaError> {
        let paths = PairPaths {
            cert: PathBuf::from(cert_name),
            key: PathBuf::from(key_name),
        };
        let root = store::parse_pair(&paths, cert_pem, key_pem)?;
        check_valid_at(&root, &paths.cert, whole_seconds(now))?;
        let root_pem = root.cert_pem.clone();
        Self::new(config, root, String::new(), root_pem)
    }

    /// The CA around a loaded signing pair.
    fn new(
        config: &CaConfig,
        signer: StoredPair,
        intermediates_pem: String,
        root_pem: String,
    ) -> Result<Self, CaError> {
        Ok(Self {
            trust_domain: config.trust_domain.clone(),
            issuer: issuer(&signer)?,
            issuer_not_before: signer.not_before,
            issuer_not_after: signer.not_after,
            intermediates_pem,
            root_pem,
        })
    }

    /// Issues a workload certificate for `id`, valid for `ttl` from `now`.
    ///
    /// The leaf has a fresh P-256 key, an empty subject with the SPIFFE ID as
    /// its only (critical) SAN, a random positive 128-bit serial, keyUsage
    /// digitalSignature + keyEncipherment, extKeyUsage serverAuth + clientAuth
    /// and basicConstraints CA:FALSE. `not_before` is `now` (whole seconds)
    /// minus [`WORKLOAD_BACKDATE`], but not before the CA's own `not_before`;
    /// `not_after` is `now + ttl` (`ttl` in whole seconds), cut to the CA's
    /// own `not_after`.
    ///
    /// # Errors
    /// - [`CaError::ForeignTrustDomain`]: `id` is in another trust domain.
    /// - [`CaError::TooShort`]: `ttl` under one second.
    /// - [`CaError::CaNotValidAt`]: the CA certificate is not valid at `now`.
    /// - [`CaError::Generate`], [`CaError::Random`]: key generation or signing failed.
    pub fn issue(
        &self,
        id: &SpiffeId,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<IssuedCert, CaError> {
        if id.trust_domain() != &self.trust_domain {
            return Err(CaError::ForeignTrustDomain {
                id: id.to_string(),
                trust_domain: self.trust_domain.to_string(),
            });
        }
        if ttl.as_secs() == 0 {
            return Err(CaError::TooShort {
                field: "ttl",
                value: ttl,
            });
        }
        let now = whole_seconds(now);
        if now < self.issuer_not_before || now >= self.issuer_not_after {
            return Err(CaError::CaNotValidAt {
                not_before: rfc3339(self.issuer_not_before),
                not_after: rfc3339(self.issuer_not_after),
                now: rfc3339(now),
            });
        }
        let not_before = now
            .checked_sub(WORKLOAD_BACKDATE)
            .map_or(self.issuer_not_before, |t| t.max(self.issuer_not_before));
        let not_after = now
            .checked_add(Duration::from_secs(ttl.as_secs()))
            .map_or(self.issuer_not_after, |t| t.min(self.issuer_not_after));

        let uri = Ia5String::try_from(id.to_string())
            .map_err(generate("encoding the SPIFFE ID as a URI SAN"))?;
        let (serial, serial_hex) = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial);
        params.not_before = OffsetDateTime::from(not_before);
        params.not_after = OffsetDateTime::from(not_after);
        let key = new_key()?;
        let leaf = params
            .signed_by(&key, &self.issuer)
            .map_err(generate("signing the workload certificate"))?;

        let half_life = not_after.duration_since(now).unwrap_or_default() / 2;
        Ok(IssuedCert {
            spiffe_id: id.clone(),
            cert_chain_pem: format!("{}{}", leaf.pem(), self.intermediates_pem),
            private_key_pem: key.serialize_pem(),
            root_pem: self.root_pem.clone(),
            serial_hex,
            not_before,
            not_after,
            rotate_at: now + half_life,
        })
    }

    /// The trust bundle: the root certificate as one PEM block.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The trust domain identities are issued in.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// End of the signing certificate's validity; no workload certificate
    /// outlives it.
    pub fn not_after(&self) -> SystemTime {
        self.issuer_not_after
    }
}

/// Parameters of a CA certificate the CA generates: CN, O = trust domain,
/// keyUsage keyCertSign + cRLSign, a random serial.
fn ca_params(
    common_name: &str,
    trust_domain: &TrustDomain,
    constraints: BasicConstraints,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain.as_str());
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?.0);
    params.not_before = OffsetDateTime::from(not_before);
    params.not_after = OffsetDateTime::from(not_after);
    Ok(params)
}

/// End of a new CA certificate's validity: `now` + `config.ca_validity`.
fn ca_not_after(config: &CaConfig, now: SystemTime) -> Result<SystemTime, CaError> {
    if config.ca_validity.as_secs() == 0 {
        return Err(CaError::TooShort {
            field: "ca_validity",
            value: config.ca_validity,
        });
    }
    now.checked_add(config.ca_validity)
        .filter(|t| *t <= store::from_unix(LAST_X509_SECOND))
        .ok_or(CaError::TooLong {
            field: "ca_validity",
            value: config.ca_validity,
        })
}

/// A new self-signed P-256 root (CN "Sextant root CA", O = trust domain),
/// valid from `now` - [`CA_BACKDATE`] for `config.ca_validity`, as PEM
/// (certificate, PKCS#8 key). Shared by the directory and Secret stores.
///
/// # Errors
/// [`CaError::TooShort`], [`CaError::TooLong`] for a bad validity;
/// [`CaError::Generate`], [`CaError::Random`] when generation fails.
pub fn generate_root(config: &CaConfig, now: SystemTime) -> Result<(String, String), CaError> {
    let now = whole_seconds(now);
    let params = ca_params(
        ROOT_COMMON_NAME,
        &config.trust_domain,
        BasicConstraints::Unconstrained,
        now - CA_BACKDATE,
        ca_not_after(config, now)?,
    )?;
    let key = new_key()?;
    let cert = params
        .self_signed(&key)
        .map_err(generate("signing the root certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a freshly generated pair, then parses it back as loading would.
fn persist(paths: &PairPaths, cert_pem: &str, key_pem: &str) -> Result<StoredPair, CaError> {
    store::write_pair(paths, cert_pem, key_pem)?;
    store::parse_pair(paths, cert_pem, key_pem)
}

/// An rcgen issuer for a stored CA pair.
fn issuer(pair: &StoredPair) -> Result<Issuer<'static, KeyPair>, CaError> {
    let key = KeyPair::try_from(pair.key.serialized_der())
        .map_err(generate("copying the CA private key"))?;
    Issuer::from_ca_cert_pem(&pair.cert_pem, key).map_err(generate("reading the CA certificate"))
}

/// A new ECDSA P-256 key.
fn new_key() -> Result<KeyPair, CaError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate("generating a P-256 key"))
}

/// A random positive 128-bit serial number and its hex form (no leading zeros).
fn random_serial() -> Result<(SerialNumber, String), CaError> {
    let mut bytes = [0u8; 16];
    loop {
        getrandom::fill(&mut bytes).map_err(CaError::Random)?;
        // Zero is not a valid serial number (RFC 5280 4.1.2.2).
        if bytes.iter().any(|b| *b != 0) {
            break;
        }
    }
    let significant = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
    let hex = significant
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let hex = hex.strip_prefix('0').unwrap_or(&hex).to_owned();
    Ok((SerialNumber::from_slice(&bytes), hex))
}

/// Checks that a CA certificate is valid at `now`.
fn check_valid_at(pair: &StoredPair, path: &Path, now: SystemTime) -> Result<(), CaError> {
    if now < pair.not_before || now > pair.not_after {
        return Err(CaError::NotValidAt {
            path: path.to_owned(),
            not_before: rfc3339(pair.not_before),
            not_after: rfc3339(pair.not_after),
            now: rfc3339(now),
        });
    }
    Ok(())
}

/// Checks that the stored intermediate names the root as issuer and carries
/// its signature.
fn check_issued_by(
    intermediate: &StoredPair,
    root: &StoredPair,
    paths: &PairPaths,
    root_paths: &PairPaths,
) -> Result<(), CaError> {
    // Both were parsed when loaded; parsing again cannot fail.
    let parsed = X509Certificate::from_der(&intermediate.cert_der)
        .ok()
        .zip(X509Certificate::from_der(&root.cert_der).ok());
    let issued = parsed.is_some_and(|((_, inter), (_, root))| {
        inter.issuer() == root.subject() && inter.verify_signature(Some(root.public_key())).is_ok()
    });
    if issued {
        Ok(())
    } else {
        Err(CaError::NotIssuedByRoot {
            intermediate: paths.cert.clone(),
            intermediate_key: paths.key.clone(),
            root: root_paths.cert.clone(),
        })
    }
}

/// `t` without its fraction of a second (certificates carry whole seconds).
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `t` as RFC 3339, for messages.
fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| format!("{t:?}"))
}

/// Builds a [`CaError::Generate`].
fn generate(what: &'static str) -> impl FnOnce(rcgen::Error) -> CaError {
    move |source| CaError::Generate { what, source }
}

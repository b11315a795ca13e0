//! Errors of the certificate authority, each naming the file or field at fault.

use super::spiffe::SpiffeError;
use std::path::PathBuf;
use std::time::Duration;

/// Why the CA could not load, generate or issue.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or creating the CA's Kubernetes Secret failed.
    #[error("Secret {secret}: {action}: {source}")]
    Kube {
        /// `namespace/name` of the Secret.
        secret: String,
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The API error.
        source: kube::Error,
    },
    /// The CA's Secret exists but lacks a key it must have.
    #[error("Secret {secret} has no data key {key:?} (expected tls.crt and tls.key)")]
    SecretIncomplete {
        /// `namespace/name` of the Secret.
        secret: String,
        /// The missing data key.
        key: &'static str,
    },
    /// Reading or writing a file or directory failed.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CA directory is a file, or lies under one.
    #[error(
        "the CA directory {} cannot be used: {} is a file, not a directory \
         (point --ca-dir at a directory; it is created if missing)",
        dir.display(),
        file.display()
    )]
    NotADirectory {
        /// The directory asked for.
        dir: PathBuf,
        /// The file in its way (`dir` itself or a parent).
        file: PathBuf,
    },
    /// One file of a certificate/key pair exists and the other does not. The
    /// CA never regenerates in this case: that would change the trust root.
    #[error(
        "{} exists but {} does not: restore the missing file, or remove both to \
         generate a new CA (workloads must then trust the new root)",
        present.display(),
        missing.display()
    )]
    HalfPresent {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A file does not hold what it should (unparsable PEM, not a CA, an
    /// unsupported key format, ...).
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "{} does not hold the private key of the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A CA certificate on disk is expired or not yet valid.
    #[error(
        "{}: the certificate is valid from {not_before} to {not_after}, not at {now}",
        path.display()
    )]
    NotValidAt {
        /// The certificate file.
        path: PathBuf,
        /// Start of its validity, RFC 3339.
        not_before: String,
        /// End of its validity, RFC 3339.
        not_after: String,
        /// The time it was checked at, RFC 3339.
        now: String,
    },
    /// The persisted intermediate was not issued by the configured root (the
    /// root was replaced). The CA does not replace the intermediate by itself.
    #[error(
        "{} was not issued by the root in {}: remove {} and {} to issue a new intermediate",
        intermediate.display(),
        root.display(),
        intermediate.display(),
        intermediate_key.display()
    )]
    NotIssuedByRoot {
        /// The intermediate certificate file.
        intermediate: PathBuf,
        /// Its key file.
        intermediate_key: PathBuf,
        /// The configured root certificate file.
        root: PathBuf,
    },
    /// A duration is shorter than the one-second resolution of certificates.
    #[error("{field} {value:?} is shorter than one second")]
    TooShort {
        /// The field: `ca_validity` or `ttl`.
        field: &'static str,
        /// The rejected value.
        value: Duration,
    },
    /// A duration reaches past 9999-12-31, the last date X.509 can express.
    #[error("{field} {value:?} ends after 9999-12-31, the last date a certificate can carry")]
    TooLong {
        /// The field: `ca_validity`.
        field: &'static str,
        /// The rejected value.
        value: Duration,
    },
    /// The CA cannot issue at the requested time.
    #[error(
        "the CA certificate is valid from {not_before} to {not_after}, not at {now}: \
         no certificate issued"
    )]
    CaNotValidAt {
        /// Start of the CA's validity, RFC 3339.
        not_before: String,
        /// End of the CA's validity, RFC 3339.
        not_after: String,
        /// The requested issue time, RFC 3339.
        now: String,
    },
    /// The SPIFFE ID is outside this CA's trust domain.
    #[error("SPIFFE ID {id} is outside this CA's trust domain {trust_domain}")]
    ForeignTrustDomain {
        /// The requested identity.
        id: String,
        /// The CA's trust domain.
        trust_domain: String,
    },
    /// Key generation or signing failed.
    #[error("{what}: {source}")]
    Generate {
        /// What was being generated, e.g. "signing the workload certificate".
        what: &'static str,
        /// The underlying error.
        source: rcgen::Error,
    },
    /// The operating system's random source failed.
    #[error("reading random bytes for a serial number: {0}")]
    Random(getrandom::Error),
    /// An identity part is invalid.
    #[error(transparent)]
    Identity(#[from] SpiffeError),
}

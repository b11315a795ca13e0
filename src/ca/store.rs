//! CA certificates and keys on disk: reading, checking and writing PEM pairs.
//!
//! A pair is a certificate file holding exactly one `CERTIFICATE` PEM block
//! and a key file holding one unencrypted PKCS#8 `PRIVATE KEY` block. Key
//! files are written with mode 0600. Writes go through a temporary file and a
//! rename, the key before the certificate, so a crash leaves at worst a key
//! without its certificate, which loading reports rather than repairs.

use super::error::CaError;
use rcgen::{KeyPair, PublicKeyData};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// Mode of key files.
const KEY_MODE: u32 = 0o600;
/// Mode of certificate files.
const CERT_MODE: u32 = 0o644;
/// Mode of a CA directory this module creates.
const DIR_MODE: u32 = 0o700;

/// Where a certificate and its key live.
#[derive(Clone, Debug)]
pub(crate) struct PairPaths {
    /// The certificate file.
    pub(crate) cert: PathBuf,
    /// The private key file.
    pub(crate) key: PathBuf,
}

impl PairPaths {
    /// The files `cert` and `key` inside `dir`.
    pub(crate) fn in_dir(dir: &Path, cert: &str, key: &str) -> Self {
        Self {
            cert: dir.join(cert),
            key: dir.join(key),
        }
    }
}

/// A CA certificate with its private key, checked to belong together.
pub(crate) struct StoredPair {
    /// The certificate as one normalized PEM block (no comments, LF endings).
    pub(crate) cert_pem: String,
    /// The certificate's DER.
    pub(crate) cert_der: Vec<u8>,
    /// The private key.
    pub(crate) key: KeyPair,
    /// Start of the certificate's validity (whole seconds).
    pub(crate) not_before: SystemTime,
    /// End of the certificate's validity (whole seconds).
    pub(crate) not_after: SystemTime,
}

/// Creates `dir` (mode 0700) if it does not exist.
///
/// # Errors
/// [`CaError::NotADirectory`] when `dir` (or a parent of it) is a file;
/// [`CaError::Io`] when it cannot be created.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), CaError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(file) = dir.ancestors().find(|p| p.is_file()) {
        return Err(CaError::NotADirectory {
            dir: dir.to_path_buf(),
            file: file.to_path_buf(),
        });
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io_err(dir, "creating the CA directory"))
}

/// Loads a pair that may not have been generated yet.
///
/// Returns `None` when neither file exists.
///
/// # Errors
/// [`CaError::HalfPresent`] when only one file exists; otherwise as [`read_pair`].
pub(crate) fn load_optional_pair(paths: &PairPaths) -> Result<Option<StoredPair>, CaError> {
    match (exists(&paths.cert)?, exists(&paths.key)?) {
        (false, false) => Ok(None),
        (true, false) => Err(CaError::HalfPresent {
            present: paths.cert.clone(),
            missing: paths.key.clone(),
        }),
        (false, true) => Err(CaError::HalfPresent {
            present: paths.key.clone(),
            missing: paths.cert.clone(),
        }),
        (true, true) => read_pair(paths).map(Some),
    }
}

/// Reads and checks a pair that must exist.
///
/// # Errors
/// [`CaError::Io`] when a file cannot be read (a missing file included);
/// otherwise as [`parse_pair`].
pub(crate) fn read_pair(paths: &PairPaths) -> Result<StoredPair, CaError> {
    let cert = read_text(&paths.cert)?;
    let key = read_text(&paths.key)?;
    warn_if_readable_by_others(&paths.key);
    parse_pair(paths, &cert, &key)
}

/// Parses a pair from PEM text and checks it: one CA certificate, one PKCS#8
/// key, and the key is the certificate's.
///
/// # Errors
/// [`CaError::BadFile`] naming the file when the PEM, certificate or key is
/// unusable or the certificate is not a CA; [`CaError::KeyMismatch`] when the
/// key is another certificate's.
pub(crate) fn parse_pair(
    paths: &PairPaths,
    cert_text: &str,
    key_text: &str,
) -> Result<StoredPair, CaError> {
    let cert_der = single_block(&paths.cert, cert_text, "CERTIFICATE")?;
    let key_der = single_block(&paths.key, key_text, "PRIVATE KEY")?;
    let bad_cert = |reason: String| CaError::BadFile {
        path: paths.cert.clone(),
        reason,
    };
    let (rest, cert) = X509Certificate::from_der(&cert_der)
        .map_err(|e| bad_cert(format!("not a valid X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(bad_cert(format!(
            "{} bytes of garbage after the certificate",
            rest.len()
        )));
    }
    check_ca(&cert).map_err(bad_cert)?;
    let key = KeyPair::try_from(key_der.as_slice()).map_err(|e| CaError::BadFile {
        path: paths.key.clone(),
        reason: format!(
            "not a usable PKCS#8 private key ({e}); ECDSA P-256/P-384, RSA and Ed25519 are supported"
        ),
    })?;
    if key.der_bytes() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(CaError::KeyMismatch {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
        });
    }
    let validity = cert.validity();
    let not_before = from_unix(validity.not_before.timestamp());
    let not_after = from_unix(validity.not_after.timestamp());
    Ok(StoredPair {
        cert_pem: encode_cert_pem(&cert_der),
        cert_der,
        key,
        not_before,
        not_after,
    })
}

/// Writes a pair: the key with mode 0600, then the certificate, each through a
/// temporary file and a rename.
///
/// # Errors
/// [`CaError::Io`] naming the file that could not be written.
pub(crate) fn write_pair(paths: &PairPaths, cert_pem: &str, key_pem: &str) -> Result<(), CaError> {
    write_atomic(&paths.key, key_pem, KEY_MODE)?;
    write_atomic(&paths.cert, cert_pem, CERT_MODE)
}

/// Encodes a certificate's DER as one PEM block.
pub(crate) fn encode_cert_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A point in time from Unix seconds, clamped at the epoch.
pub(crate) fn from_unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// Checks that a certificate may sign others.
fn check_ca(cert: &X509Certificate<'_>) -> Result<(), String> {
    let constraints = cert
        .basic_constraints()
        .map_err(|e| format!("unreadable basicConstraints: {e}"))?;
    if !constraints.is_some_and(|c| c.value.ca) {
        return Err("not a CA certificate (basicConstraints CA:TRUE is missing)".into());
    }
    let usage = cert
        .key_usage()
        .map_err(|e| format!("unreadable keyUsage: {e}"))?;
    if usage.is_some_and(|u| !u.value.key_cert_sign()) {
        return Err("its keyUsage does not allow keyCertSign".into());
    }
    Ok(())
}

/// The DER of the only PEM block in `text`, which must carry `tag`.
fn single_block(path: &Path, text: &str, tag: &str) -> Result<Vec<u8>, CaError> {
    let bad = |reason: String| CaError::BadFile {
        path: path.to_owned(),
        reason,
    };
    let blocks = pem::parse_many(text).map_err(|e| bad(format!("not valid PEM: {e}")))?;
    match blocks.as_slice() {
        [] if text.contains("-----BEGIN") => Err(bad(format!(
            "not valid PEM: a -----BEGIN line without a complete block \
             (truncated file?); expected one {tag:?} block"
        ))),
        [] => Err(bad(format!(
            "holds no PEM block; expected one {tag:?} block"
        ))),
        [block] if block.tag() == tag => Ok(block.contents().to_vec()),
        [block] if tag == "PRIVATE KEY" && block.tag().ends_with("PRIVATE KEY") => {
            Err(bad(format!(
                "holds a {:?} block; expected an unencrypted PKCS#8 \"PRIVATE KEY\" \
             (convert with `openssl pkcs8 -topk8 -nocrypt`)",
                block.tag()
            )))
        }
        [block] => Err(bad(format!(
            "holds a {:?} PEM block; expected {tag:?}",
            block.tag()
        ))),
        more => Err(bad(format!(
            "holds {} PEM blocks; expected exactly one {tag:?} block",
            more.len()
        ))),
    }
}

/// Whether a path exists; errors other than "not found" are reported.
fn exists(path: &Path) -> Result<bool, CaError> {
    match fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path, "checking")(e)),
    }
}

/// Reads a file as UTF-8 text.
fn read_text(path: &Path) -> Result<String, CaError> {
    let bytes = fs::read(path).map_err(io_err(path, "reading"))?;
    String::from_utf8(bytes).map_err(|_| CaError::BadFile {
        path: path.to_owned(),
        reason: "not PEM text (not valid UTF-8)".into(),
    })
}

/// Logs a warning when a key file's mode lets others read it.
fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "CA key file is readable by group or others; expected mode 600");
        }
    }
}

/// Writes `text` to `path` through `path.tmp` and a rename, with `mode`.
fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<(), CaError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp, "creating"))?;
    // `mode` applies only to new files: a leftover temporary file keeps its own.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(&tmp, "setting the mode of"))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err(&tmp, "writing"))?;
    fs::rename(&tmp, path).map_err(io_err(path, "renaming the temporary file to"))?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir, "syncing"))?;
    }
    Ok(())
}

/// Builds a [`CaError::Io`] for `path`.
fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> CaError {
    let path = path.to_owned();
    move |source| CaError::Io {
        path,
        action,
        source,
    }
}

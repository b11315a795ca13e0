//! Workload identities: SPIFFE trust domains and IDs of the form
//! `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
//!
//! Names follow the SPIFFE ID specification (trust domain characters) and
//! Kubernetes' rules (a namespace is a DNS-1123 label, a service account a
//! DNS-1123 subdomain), so every accepted ID is also a valid SPIFFE ID.

use std::fmt;
use std::str::FromStr;

#[cfg(test)]
mod tests;

/// Longest trust domain accepted, in bytes (the SPIFFE spec's limit).
const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// Longest DNS-1123 label, in bytes.
const MAX_LABEL_LEN: usize = 63;
/// Longest DNS-1123 subdomain, in bytes.
const MAX_SUBDOMAIN_LEN: usize = 253;

/// The trust domain used when none is configured.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// A part of a workload identity that is not valid, naming the part and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    /// The trust domain breaks the SPIFFE rules.
    #[error("trust domain {value:?}: {reason}")]
    TrustDomain {
        /// The rejected trust domain.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The namespace is not a DNS-1123 label.
    #[error("namespace {value:?}: {reason}")]
    Namespace {
        /// The rejected namespace.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The service account is not a DNS-1123 subdomain.
    #[error("service account {value:?}: {reason}")]
    ServiceAccount {
        /// The rejected service account.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The string does not have the shape `spiffe://<td>/ns/<ns>/sa/<sa>`.
    #[error("SPIFFE ID {value:?}: {reason}")]
    Id {
        /// The rejected string.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
}

/// A SPIFFE trust domain such as `cluster.local`: lowercase letters, digits,
/// `.`, `-` and `_`, at most 255 bytes, with no scheme, port or path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Validates a trust domain name.
    ///
    /// # Errors
    /// [`SpiffeError::TrustDomain`] when the name is empty, too long, has a
    /// scheme, port or path, or has a character SPIFFE does not allow
    /// (uppercase letters included).
    pub fn new(name: &str) -> Result<Self, SpiffeError> {
        let reject = |reason: String| SpiffeError::TrustDomain {
            value: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(reject("is empty".into()));
        }
        if name.len() > MAX_TRUST_DOMAIN_LEN {
            return Err(reject(format!(
                "is {} bytes long; the limit is {MAX_TRUST_DOMAIN_LEN}",
                name.len()
            )));
        }
        if name.contains("://") {
            return Err(reject(
                "has a scheme; give the bare name, e.g. example.org".into(),
            ));
        }
        if name.contains(':') {
            return Err(reject(
                "has a port; give the bare name, e.g. example.org".into(),
            ));
        }
        if name.contains('/') {
            return Err(reject(
                "has a path; give the bare name, e.g. example.org".into(),
            ));
        }
        for (i, c) in name.char_indices() {
            if c.is_ascii_uppercase() {
                return Err(reject(format!(
                    "uppercase letter {c:?} at byte {i}; trust domains are lowercase"
                )));
            }
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')) {
                return Err(reject(format!(
                    "character {c:?} at byte {i} is not allowed \
                     (lowercase letters, digits, '.', '-', '_')"
                )));
            }
        }
        Ok(Self(name.to_owned()))
    }

    /// The name, e.g. `cluster.local`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TrustDomain {
    /// `cluster.local`.
    fn default() -> Self {
        Self(DEFAULT_TRUST_DOMAIN.to_owned())
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A workload identity, `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`
/// (Istio's shape), with every part validated.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    trust_domain: TrustDomain,
    namespace: String,
    service_account: String,
}

impl SpiffeId {
    /// Builds the identity of a service account in a namespace.
    ///
    /// # Errors
    /// [`SpiffeError::Namespace`] when the namespace is not a DNS-1123 label
    /// (at most 63 of `a-z`, `0-9`, `-`, starting and ending alphanumeric);
    /// [`SpiffeError::ServiceAccount`] when the service account is not a
    /// DNS-1123 subdomain (at most 253 bytes of such labels joined by `.`).
    pub fn new(
        trust_domain: TrustDomain,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeError> {
        dns1123_label(namespace).map_err(|reason| SpiffeError::Namespace {
            value: namespace.to_owned(),
            reason,
        })?;
        dns1123_subdomain(service_account).map_err(|reason| SpiffeError::ServiceAccount {
            value: service_account.to_owned(),
            reason,
        })?;
        Ok(Self {
            trust_domain,
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The Kubernetes namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Kubernetes service account.
    pub fn service_account(&self) -> &str {
        &self.service_account
    }
}

impl fmt::Display for SpiffeId {
    /// Writes the URI, `spiffe://<td>/ns/<ns>/sa/<sa>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeError;

    /// Parses `spiffe://<td>/ns/<ns>/sa/<sa>` exactly: no other path, query or
    /// fragment, no trailing slash.
    ///
    /// # Errors
    /// [`SpiffeError::Id`] for the wrong shape; the other variants name the
    /// part that is invalid.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = |reason: &str| SpiffeError::Id {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = s
            .strip_prefix("spiffe://")
            .ok_or_else(|| shape("must start with spiffe://"))?;
        let (trust_domain, path) = rest.split_once('/').ok_or_else(|| {
            shape(
                "has no path; expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>",
            )
        })?;
        let trust_domain = TrustDomain::new(trust_domain)?;
        match path.split('/').collect::<Vec<_>>().as_slice() {
            ["ns", namespace, "sa", service_account] => {
                Self::new(trust_domain, namespace, service_account)
            }
            _ => Err(shape("path must be /ns/<namespace>/sa/<service-account>")),
        }
    }
}

/// Checks a DNS-1123 label (Kubernetes namespace rules).
fn dns1123_label(value: &str) -> Result<(), String> {
    if value.len() > MAX_LABEL_LEN {
        return Err(format!(
            "is {} bytes long; a DNS-1123 label has at most {MAX_LABEL_LEN}",
            value.len()
        ));
    }
    label_chars(value, "a DNS-1123 label")
}

/// Checks a DNS-1123 subdomain (Kubernetes service account rules).
fn dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.len() > MAX_SUBDOMAIN_LEN {
        return Err(format!(
            "is {} bytes long; a DNS-1123 subdomain has at most {MAX_SUBDOMAIN_LEN}",
            value.len()
        ));
    }
    value
        .split('.')
        .try_for_each(|part| label_chars(part, "each dot-separated part of a DNS-1123 subdomain"))
}

/// Checks the characters of one label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn label_chars(label: &str, what: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    for (i, c) in label.char_indices() {
        if c.is_ascii_uppercase() {
            return Err(format!(
                "uppercase letter {c:?}; {what} is lowercase letters, digits and '-'"
            ));
        }
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(format!(
                "character {c:?} at byte {i} is not allowed; \
                 {what} is lowercase letters, digits and '-'"
            ));
        }
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("{what} must start and end with a letter or digit"));
    }
    Ok(())
}

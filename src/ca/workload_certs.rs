//! Certificates currently issued to workloads: one per SPIFFE ID, issued on
//! first use and replaced once past its half-life.

use super::{CaError, CertificateAuthority, IssuedCert, SpiffeId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Issued certificates by identity. Cheap to share behind an `Arc`; methods
/// take `&self` and hold a short lock (signing takes well under a millisecond).
pub struct WorkloadCerts {
    ca: CertificateAuthority,
    ttl: Duration,
    issued: Mutex<BTreeMap<SpiffeId, Arc<IssuedCert>>>,
}

/// What `/debug/certs` shows of one certificate (never the key).
#[derive(Clone, Debug, Serialize)]
pub struct CertSummary {
    /// `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
    pub spiffe_id: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: u64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: u64,
    /// When it will be replaced, seconds since the Unix epoch.
    pub rotate_at: u64,
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl WorkloadCerts {
    /// A registry issuing certificates valid for `ttl` (at least 1 s).
    pub fn new(ca: CertificateAuthority, ttl: Duration) -> Self {
        WorkloadCerts {
            ca,
            ttl,
            issued: Mutex::new(BTreeMap::new()),
        }
    }

    /// The CA's trust domain.
    pub fn trust_domain(&self) -> &super::TrustDomain {
        self.ca.trust_domain()
    }

    /// The trust bundle (root certificate), PEM.
    pub fn root_pem(&self) -> &str {
        self.ca.root_pem()
    }

    /// The certificate of `id` at `now`: the one issued before unless `now`
    /// is past its rotation time, else a new one.
    ///
    /// # Errors
    /// [`CaError`] when the CA cannot issue (expired CA, foreign trust domain).
    pub fn current(&self, id: &SpiffeId, now: SystemTime) -> Result<Arc<IssuedCert>, CaError> {
        let mut issued = self.issued.lock().expect("certs lock");
        if let Some(cert) = issued.get(id).filter(|c| now < c.rotate_at) {
            return Ok(cert.clone());
        }
        let cert = Arc::new(self.ca.issue(id, self.ttl, now)?);
        tracing::info!(
            spiffe_id = %id,
            serial = cert.serial_hex,
            "issued a workload certificate"
        );
        issued.insert(id.clone(), cert.clone());
        Ok(cert)
    }

    /// Replaces every certificate whose rotation time is past at `now`;
    /// returns how many were replaced.
    ///
    /// # Errors
    /// [`CaError`] of the first certificate the CA could not issue (the old
    /// one stays until then).
    pub fn rotate_due(&self, now: SystemTime) -> Result<usize, CaError> {
        let mut issued = self.issued.lock().expect("certs lock");
        let due: Vec<SpiffeId> = issued
            .iter()
            .filter(|(_, c)| now >= c.rotate_at)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            let cert = Arc::new(self.ca.issue(id, self.ttl, now)?);
            tracing::info!(spiffe_id = %id, serial = cert.serial_hex, "rotated a workload certificate");
            issued.insert(id.clone(), cert);
        }
        Ok(due.len())
    }

    /// The earliest rotation time of the issued certificates.
    pub fn next_rotation(&self) -> Option<SystemTime> {
        let issued = self.issued.lock().expect("certs lock");
        issued.values().map(|c| c.rotate_at).min()
    }

    /// Every issued certificate, by SPIFFE ID (no keys).
    pub fn summaries(&self) -> Vec<CertSummary> {
        let issued = self.issued.lock().expect("certs lock");
        issued
            .values()
            .map(|c| CertSummary {
                spiffe_id: c.spiffe_id.to_string(),
                serial: c.serial_hex.clone(),
                not_before: epoch(c.not_before),
                not_after: epoch(c.not_after),
                rotate_at: epoch(c.rotate_at),
            })
            .collect()
    }
}

impl std::fmt::Debug for WorkloadCerts {
    /// The trust domain, TTL and issued identities; never keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadCerts")
            .field("trust_domain", &self.trust_domain().as_str())
            .field("ttl", &self.ttl)
            .field("issued", &self.summaries().len())
            .finish()
    }
}

use super::*;
use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, PublicKeyData};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use x509_parser::public_key::PublicKey;

// ---------------------------------------------------------------- helpers

/// The DER of every PEM block in `text`.
fn ders(text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(text)
        .expect("valid PEM")
        .into_iter()
        .map(pem::Pem::into_contents)
        .collect()
}

/// Parses one DER certificate.
fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).expect("valid certificate");
    assert!(rest.is_empty());
    cert
}

/// Unix seconds of `t`.
fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The current time in whole seconds (real time, so openssl agrees).
fn now() -> SystemTime {
    whole_seconds(SystemTime::now())
}

/// `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
fn id(ns: &str, sa: &str) -> SpiffeId {
    SpiffeId::new(TrustDomain::default(), ns, sa).unwrap()
}

/// Mode bits of a file.
fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Writes a self-signed P-256 CA made with rcgen to `dir`, valid for a year.
fn write_user_root(dir: &Path, common_name: &str) -> UserRoot {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example Org");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let start = OffsetDateTime::now_utc();
    params.not_before = start - time::Duration::hours(1);
    params.not_after = start + time::Duration::days(365);
    let cert = params.self_signed(&key).unwrap();
    let root = UserRoot {
        cert: dir.join(format!("{common_name}-cert.pem")),
        key: dir.join(format!("{common_name}-key.pem")),
    };
    fs::write(&root.cert, cert.pem()).unwrap();
    fs::write(&root.key, key.serialize_pem()).unwrap();
    root
}

/// A config that signs under `root`.
fn with_root(root: UserRoot) -> CaConfig {
    CaConfig {
        user_root: Some(root),
        ..CaConfig::default()
    }
}

/// An `openssl` command; fails the test when openssl cannot run.
fn openssl() -> Command {
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => Command::new("openssl"),
        Ok(out) => panic!(
            "`openssl version` failed ({}): this test needs a working openssl on PATH",
            out.status
        ),
        Err(e) => panic!(
            "this test needs openssl on PATH ({e}): install it, e.g. `apt-get install openssl`"
        ),
    }
}

/// Runs `openssl verify -x509_strict -purpose <purpose>` on the issued chain
/// against `root_pem`, in a fresh directory.
fn openssl_verify(root_pem: &str, chain_pem: &str, purpose: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let chain = ders(chain_pem);
    fs::write(dir.path().join("root.pem"), root_pem).unwrap();
    fs::write(
        dir.path().join("leaf.pem"),
        store::encode_cert_pem(&chain[0]),
    )
    .unwrap();
    let untrusted: String = chain[1..]
        .iter()
        .map(|der| store::encode_cert_pem(der))
        .collect();
    let mut cmd = openssl();
    cmd.current_dir(dir.path())
        .args(["verify", "-x509_strict", "-purpose", purpose])
        .args(["-CAfile", "root.pem"]);
    if !untrusted.is_empty() {
        fs::write(dir.path().join("untrusted.pem"), untrusted).unwrap();
        cmd.args(["-untrusted", "untrusted.pem"]);
    }
    cmd.arg("leaf.pem").output().expect("run openssl verify")
}

/// Asserts that openssl accepts the chain for both TLS purposes.
fn assert_openssl_accepts(root_pem: &str, chain_pem: &str) {
    for purpose in ["sslserver", "sslclient"] {
        let out = openssl_verify(root_pem, chain_pem, purpose);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("leaf.pem: OK"),
            "openssl verify -purpose {purpose} rejected the chain:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------- generated root

#[test]
fn generated_root_persists_with_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default()).unwrap();
    let second = CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default()).unwrap();
    assert_eq!(first.root_pem(), second.root_pem());
    assert_eq!(
        fs::read_to_string(dir.path().join(ROOT_CERT_FILE)).unwrap(),
        first.root_pem()
    );
    assert_eq!(mode(&dir.path().join(ROOT_KEY_FILE)), 0o600);
    assert!(!dir.path().join(INTERMEDIATE_CERT_FILE).exists());
    // The second CA signs with the persisted key: its leaves chain to the first root.
    let issued = second
        .issue(&id("default", "default"), DEFAULT_WORKLOAD_TTL, now())
        .unwrap();
    let root_der = &ders(first.root_pem())[0];
    let leaf_der = &ders(&issued.cert_chain_pem)[0];
    assert!(parse(leaf_der)
        .verify_signature(Some(parse(root_der).public_key()))
        .is_ok());
}

#[test]
fn generated_root_is_a_p256_ca_for_the_trust_domain() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now();
    let config = CaConfig {
        trust_domain: TrustDomain::new("example.org").unwrap(),
        ca_validity: Duration::from_secs(2 * 365 * 24 * 3600),
        user_root: None,
    };
    let ca = CertificateAuthority::load_or_generate_at(dir.path(), &config, t0).unwrap();
    let der = &ders(ca.root_pem())[0];
    let root = parse(der);
    let cn: Vec<_> = root.subject().iter_common_name().collect();
    let org: Vec<_> = root.subject().iter_organization().collect();
    assert_eq!(cn.len(), 1);
    assert_eq!(cn[0].as_str().unwrap(), "Sextant root CA");
    assert_eq!(org[0].as_str().unwrap(), "example.org");
    assert_eq!(root.subject(), root.issuer());
    assert!(root.basic_constraints().unwrap().unwrap().value.ca);
    let usage = root.key_usage().unwrap().unwrap().value;
    assert!(usage.key_cert_sign() && usage.crl_sign());
    assert!(!usage.digital_signature());
    assert_eq!(
        root.validity().not_before.timestamp(),
        unix(t0) - CA_BACKDATE.as_secs() as i64
    );
    assert_eq!(
        root.validity().not_after.timestamp(),
        unix(t0) + 2 * 365 * 24 * 3600
    );
    assert_eq!(ca.not_after(), t0 + config.ca_validity);
    assert_eq!(
        root.public_key().algorithm.algorithm,
        OID_KEY_TYPE_EC_PUBLIC_KEY
    );
    assert!(root.verify_signature(None).is_ok(), "self-signed");
}

#[test]
fn creates_a_missing_directory_with_mode_0700() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("state/ca");
    CertificateAuthority::load_or_generate(&dir, &CaConfig::default()).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert!(dir.join(ROOT_KEY_FILE).is_file());
}

#[test]
fn a_file_in_place_of_the_directory_is_named() {
    let parent = tempfile::tempdir().unwrap();
    let file = parent.path().join("ca");
    std::fs::write(&file, "not a directory").unwrap();
    for dir in [file.clone(), file.join("nested")] {
        let err = CertificateAuthority::load_or_generate(&dir, &CaConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{} is a file, not a directory", file.display()))
                && err.contains("--ca-dir"),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------- workload certificates

#[test]
fn leaf_carries_the_spiffe_identity_and_verifies_against_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default()).unwrap();
    let t0 = now();
    let spiffe_id = id("bookinfo", "bookinfo-productpage");
    let issued = ca.issue(&spiffe_id, Duration::from_secs(3600), t0).unwrap();
    assert_eq!(issued.spiffe_id, spiffe_id);
    assert_eq!(issued.root_pem, ca.root_pem());

    let chain = ders(&issued.cert_chain_pem);
    assert_eq!(chain.len(), 1, "chain is [leaf] under a generated root");
    let leaf = parse(&chain[0]);

    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI(
            "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage"
        )]
    );
    assert!(san.critical, "SAN is critical with an empty subject");
    assert_eq!(leaf.subject().iter().count(), 0);

    let constraints = leaf.basic_constraints().unwrap().unwrap().value;
    assert!(!constraints.ca);
    assert!(!leaf.is_ca());
    let usage = leaf.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && usage.key_encipherment());
    assert!(!usage.key_cert_sign() && !usage.crl_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);

    let spki = leaf.public_key();
    assert_eq!(spki.algorithm.algorithm, OID_KEY_TYPE_EC_PUBLIC_KEY);
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .unwrap()
        .as_oid()
        .unwrap();
    assert_eq!(curve, OID_EC_P256);
    match spki.parsed().unwrap() {
        PublicKey::EC(point) => assert_eq!(point.key_size(), 256),
        other => panic!("expected an EC key, got {other:?}"),
    }

    // Validity: the TTL from the issue time, back-dated by WORKLOAD_BACKDATE.
    let validity = leaf.validity();
    assert_eq!(validity.not_before.timestamp(), unix(t0) - 300);
    assert_eq!(validity.not_after.timestamp(), unix(t0) + 3600);
    assert_eq!(issued.not_before, t0 - WORKLOAD_BACKDATE);
    assert_eq!(issued.not_after, t0 + Duration::from_secs(3600));
    assert_eq!(issued.rotate_at, t0 + Duration::from_secs(1800));

    // Serial: positive, at most 128 bits, reported in hex.
    assert!(leaf.raw_serial()[0] < 0x80, "DER INTEGER is positive");
    assert!(leaf.serial.bits() <= 128 && leaf.serial.bits() > 64);
    assert_eq!(issued.serial_hex, format!("{:x}", leaf.serial));

    // Signed by the root, and not by some other CA.
    let root_der = &ders(ca.root_pem())[0];
    let root = parse(root_der);
    assert_eq!(leaf.issuer(), root.subject());
    assert!(leaf.verify_signature(Some(root.public_key())).is_ok());
    let other_dir = tempfile::tempdir().unwrap();
    let other =
        CertificateAuthority::load_or_generate(other_dir.path(), &CaConfig::default()).unwrap();
    let other_der = &ders(other.root_pem())[0];
    assert!(leaf
        .verify_signature(Some(parse(other_der).public_key()))
        .is_err());

    // The private key is the leaf's.
    let key = KeyPair::from_pem(&issued.private_key_pem).unwrap();
    assert_eq!(key.der_bytes(), spki.subject_public_key.data.as_ref());
}

#[test]
fn short_ttl_in_whole_seconds_and_rotation_at_half_life() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default()).unwrap();
    let t0 = now();
    let issued = ca
        .issue(
            &id("default", "default"),
            Duration::from_millis(5_700),
            t0 + Duration::from_millis(400),
        )
        .unwrap();
    let leaf_der = &ders(&issued.cert_chain_pem)[0];
    let leaf = parse(leaf_der);
    assert_eq!(leaf.validity().not_after.timestamp(), unix(t0) + 5);
    assert_eq!(
        leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp(),
        5 + 300
    );
    assert_eq!(issued.rotate_at, t0 + Duration::from_millis(2_500));
}

#[test]
fn serials_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default()).unwrap();
    let a = ca
        .issue(&id("a", "a"), DEFAULT_WORKLOAD_TTL, now())
        .unwrap();
    let b = ca
        .issue(&id("a", "a"), DEFAULT_WORKLOAD_TTL, now())
        .unwrap();
    assert_ne!(a.serial_hex, b.serial_hex);
    assert_ne!(a.private_key_pem, b.private_key_pem);
}

#[test]
fn back_dating_stops_at_the_ca_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now();
    let ca =
        CertificateAuthority::load_or_generate_at(dir.path(), &CaConfig::default(), t0).unwrap();
    let ca_not_before = t0 - CA_BACKDATE;
    let issued = ca
        .issue(
            &id("default", "default"),
            Duration::from_secs(60),
            t0 - Duration::from_secs(240),
        )
        .unwrap();
    assert_eq!(issued.not_before, ca_not_before);
    let leaf_der = &ders(&issued.cert_chain_pem)[0];
    assert_eq!(
        parse(leaf_der).validity().not_before.timestamp(),
        unix(ca_not_before)
    );
    let err = ca
        .issue(
            &id("default", "default"),
            Duration::from_secs(60),
            ca_not_before - Duration::from_secs(1),
        )
        .unwrap_err();
    assert!(matches!(err, CaError::CaNotValidAt { .. }), "{err}");
}

#[test]
fn ttl_is_cut_to_the_ca_not_after() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now();
    let config = CaConfig {
        ca_validity: Duration::from_secs(3600),
        ..CaConfig::default()
    };
    let ca = CertificateAuthority::load_or_generate_at(dir.path(), &config, t0).unwrap();
    let issued = ca
        .issue(&id("default", "default"), DEFAULT_WORKLOAD_TTL, t0)
        .unwrap();
    assert_eq!(issued.not_after, t0 + Duration::from_secs(3600));
    assert_eq!(issued.rotate_at, t0 + Duration::from_secs(1800));
    let err = ca
        .issue(
            &id("default", "default"),
            DEFAULT_WORKLOAD_TTL,
            t0 + Duration::from_secs(3600),
        )
        .unwrap_err();
    assert!(err.to_string().contains("no certificate issued"), "{err}");
}

#[test]
fn issue_rejects_a_foreign_trust_domain_and_sub_second_ttls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default()).unwrap();
    let foreign = SpiffeId::new(TrustDomain::new("example.org").unwrap(), "a", "b").unwrap();
    let err = ca.issue(&foreign, DEFAULT_WORKLOAD_TTL, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SPIFFE ID spiffe://example.org/ns/a/sa/b is outside this CA's trust domain cluster.local"
    );
    let err = ca
        .issue(&id("a", "b"), Duration::from_millis(999), now())
        .unwrap_err();
    assert_eq!(err.to_string(), "ttl 999ms is shorter than one second");
}

#[test]
fn debug_output_redacts_the_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default()).unwrap();
    let issued = ca
        .issue(&id("default", "default"), DEFAULT_WORKLOAD_TTL, now())
        .unwrap();
    let debug = format!("{issued:?} {issued:#?} {ca:?}");
    assert!(debug.contains("[redacted]"));
    assert!(!debug.contains("PRIVATE KEY"));
    for line in issued
        .private_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
    {
        assert!(!debug.contains(line), "key material in Debug output");
    }
    assert!(debug.contains("spiffe://cluster.local/ns/default/sa/default"));
}

#[test]
fn openssl_accepts_a_leaf_under_the_generated_root() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default()).unwrap();
    let issued = ca
        .issue(&id("default", "sleep"), DEFAULT_WORKLOAD_TTL, now())
        .unwrap();
    assert_openssl_accepts(&issued.root_pem, &issued.cert_chain_pem);
    // And openssl is not simply saying yes: another root is rejected.
    let other_dir = tempfile::tempdir().unwrap();
    let other =
        CertificateAuthority::load_or_generate(other_dir.path(), &CaConfig::default()).unwrap();
    let out = openssl_verify(other.root_pem(), &issued.cert_chain_pem, "sslserver");
    assert!(!out.status.success(), "openssl accepted a foreign root");
}

// ---------------------------------------------------------------- intermediate under a user root

#[test]
fn intermediate_mode_chains_leaf_to_intermediate_to_user_root() {
    let roots = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let user_root = write_user_root(roots.path(), "user-root");
    let user_root_pem = fs::read_to_string(&user_root.cert).unwrap();
    let config = with_root(user_root);
    let t0 = now();
    let ca = CertificateAuthority::load_or_generate_at(dir.path(), &config, t0).unwrap();
    assert_eq!(
        ders(ca.root_pem()),
        ders(&user_root_pem),
        "bundle is the user root"
    );

    let issued = ca
        .issue(&id("default", "default"), DEFAULT_WORKLOAD_TTL, t0)
        .unwrap();
    assert_eq!(ders(&issued.root_pem), ders(&user_root_pem));
    let chain = ders(&issued.cert_chain_pem);
    assert_eq!(chain.len(), 2, "chain is [leaf, intermediate]");
    let (leaf, intermediate) = (parse(&chain[0]), parse(&chain[1]));
    let root_der = &ders(&user_root_pem)[0];
    let root = parse(root_der);

    let constraints = intermediate.basic_constraints().unwrap().unwrap().value;
    assert!(constraints.ca);
    assert_eq!(constraints.path_len_constraint, Some(0));
    assert_eq!(intermediate.issuer(), root.subject());
    assert!(intermediate
        .verify_signature(Some(root.public_key()))
        .is_ok());
    assert!(intermediate.validity().not_after <= root.validity().not_after);
    assert_eq!(leaf.issuer(), intermediate.subject());
    assert!(leaf
        .verify_signature(Some(intermediate.public_key()))
        .is_ok());
    assert!(leaf.verify_signature(Some(root.public_key())).is_err());

    // Persisted: the intermediate files, not a root of our own.
    assert_eq!(
        ders(&fs::read_to_string(dir.path().join(INTERMEDIATE_CERT_FILE)).unwrap())[0],
        chain[1]
    );
    assert_eq!(mode(&dir.path().join(INTERMEDIATE_KEY_FILE)), 0o600);
    assert!(!dir.path().join(ROOT_CERT_FILE).exists());

    // A restart keeps the intermediate.
    let again = CertificateAuthority::load_or_generate(dir.path(), &config).unwrap();
    let reissued = again
        .issue(&id("default", "default"), DEFAULT_WORKLOAD_TTL, now())
        .unwrap();
    assert_eq!(ders(&reissued.cert_chain_pem)[1], chain[1]);

    assert_openssl_accepts(&issued.root_pem, &issued.cert_chain_pem);
}

#[test]
fn openssl_made_rsa_user_root_is_usable_and_survives_a_restart() {
    let roots = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let user_root = UserRoot {
        cert: roots.path().join("ca.crt"),
        key: roots.path().join("ca.key"),
    };
    let out = openssl()
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/C=US/O=Example Org/CN=Example RSA Root"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .arg("-keyout")
        .arg(&user_root.key)
        .arg("-out")
        .arg(&user_root.cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = with_root(user_root);
    let ca = CertificateAuthority::load_or_generate(dir.path(), &config).unwrap();
    let issued = ca
        .issue(&id("default", "default"), DEFAULT_WORKLOAD_TTL, now())
        .unwrap();
    assert_openssl_accepts(&issued.root_pem, &issued.cert_chain_pem);
    // The stored intermediate still matches the root after a restart.
    CertificateAuthority::load_or_generate(dir.path(), &config).unwrap();
}

#[test]
fn intermediate_from_another_root_is_an_error_not_a_replacement() {
    let roots = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = with_root(write_user_root(roots.path(), "first"));
    CertificateAuthority::load_or_generate(dir.path(), &first).unwrap();
    let stored = fs::read(dir.path().join(INTERMEDIATE_CERT_FILE)).unwrap();
    let second = with_root(write_user_root(roots.path(), "second"));
    let err = CertificateAuthority::load_or_generate(dir.path(), &second).unwrap_err();
    assert!(matches!(err, CaError::NotIssuedByRoot { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(INTERMEDIATE_CERT_FILE), "{message}");
    assert!(message.contains("second-cert.pem"), "{message}");
    assert_eq!(
        fs::read(dir.path().join(INTERMEDIATE_CERT_FILE)).unwrap(),
        stored
    );
}

// ---------------------------------------------------------------- files that are wrong

/// Generates a root in a fresh directory and returns its file contents.
fn generated_root_files() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default()).unwrap();
    (
        fs::read_to_string(dir.path().join(ROOT_CERT_FILE)).unwrap(),
        fs::read_to_string(dir.path().join(ROOT_KEY_FILE)).unwrap(),
    )
}

/// Loads a CA from a directory holding exactly `files`, expects an error, and
/// checks that the files are untouched and no other file appeared.
fn load_error(files: &[(&str, &str)]) -> CaError {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    let err = CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default())
        .expect_err("loading should fail");
    for (name, text) in files {
        assert_eq!(&fs::read_to_string(dir.path().join(name)).unwrap(), text);
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), files.len());
    err
}

#[test]
fn certificate_without_key_is_an_error() {
    let (cert, _) = generated_root_files();
    let err = load_error(&[(ROOT_CERT_FILE, &cert)]);
    assert!(matches!(err, CaError::HalfPresent { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("root-cert.pem exists but") && message.contains("root-key.pem does not"),
        "{message}"
    );
}

#[test]
fn key_without_certificate_is_an_error() {
    let (_, key) = generated_root_files();
    let message = load_error(&[(ROOT_KEY_FILE, &key)]).to_string();
    assert!(
        message.contains("root-key.pem exists but") && message.contains("root-cert.pem does not"),
        "{message}"
    );
}

#[test]
fn garbage_pem_is_an_error_naming_the_file() {
    let (cert, key) = generated_root_files();
    let message = load_error(&[(ROOT_CERT_FILE, "garbage"), (ROOT_KEY_FILE, &key)]).to_string();
    assert!(
        message.contains("root-cert.pem: holds no PEM block"),
        "{message}"
    );

    let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n";
    let message = load_error(&[(ROOT_CERT_FILE, broken), (ROOT_KEY_FILE, &key)]).to_string();
    assert!(
        message.contains("root-cert.pem: not valid PEM"),
        "{message}"
    );

    let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let message = load_error(&[(ROOT_CERT_FILE, bad_base64), (ROOT_KEY_FILE, &key)]).to_string();
    assert!(
        message.contains("root-cert.pem: not valid PEM"),
        "{message}"
    );

    let two = format!("{cert}{cert}");
    let message = load_error(&[(ROOT_CERT_FILE, &two), (ROOT_KEY_FILE, &key)]).to_string();
    assert!(
        message.contains("root-cert.pem: holds 2 PEM blocks"),
        "{message}"
    );

    let not_x509 = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
    let message = load_error(&[(ROOT_CERT_FILE, &not_x509), (ROOT_KEY_FILE, &key)]).to_string();
    assert!(
        message.contains("root-cert.pem: not a valid X.509 certificate"),
        "{message}"
    );

    let message = load_error(&[(ROOT_CERT_FILE, &cert), (ROOT_KEY_FILE, "garbage\n")]).to_string();
    assert!(
        message.contains("root-key.pem: holds no PEM block"),
        "{message}"
    );

    let bad_key = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1, 2, 3]));
    let message = load_error(&[(ROOT_CERT_FILE, &cert), (ROOT_KEY_FILE, &bad_key)]).to_string();
    assert!(
        message.contains("root-key.pem: not a usable PKCS#8 private key"),
        "{message}"
    );

    let sec1 = pem::encode(&pem::Pem::new("EC PRIVATE KEY", vec![1, 2, 3]));
    let message = load_error(&[(ROOT_CERT_FILE, &cert), (ROOT_KEY_FILE, &sec1)]).to_string();
    assert!(
        message.contains("root-key.pem: holds a \"EC PRIVATE KEY\" block")
            && message.contains("openssl pkcs8 -topk8 -nocrypt"),
        "{message}"
    );
}

#[test]
fn key_of_another_certificate_is_an_error() {
    let (cert, _) = generated_root_files();
    let (_, other_key) = generated_root_files();
    let message = load_error(&[(ROOT_CERT_FILE, &cert), (ROOT_KEY_FILE, &other_key)]).to_string();
    assert!(
        message.contains("root-key.pem does not hold the private key of the certificate in")
            && message.contains("root-cert.pem"),
        "{message}"
    );
}

#[test]
fn expired_root_is_an_error_not_a_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now();
    let config = CaConfig {
        ca_validity: Duration::from_secs(3600),
        ..CaConfig::default()
    };
    CertificateAuthority::load_or_generate_at(dir.path(), &config, t0).unwrap();
    let stored = fs::read(dir.path().join(ROOT_CERT_FILE)).unwrap();
    let err = CertificateAuthority::load_or_generate_at(
        dir.path(),
        &config,
        t0 + Duration::from_secs(7200),
    )
    .unwrap_err();
    assert!(matches!(err, CaError::NotValidAt { .. }), "{err}");
    assert!(err
        .to_string()
        .contains("root-cert.pem: the certificate is valid from"));
    assert_eq!(fs::read(dir.path().join(ROOT_CERT_FILE)).unwrap(), stored);
}

#[test]
fn bad_ca_validity_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for (validity, expected) in [
        (Duration::ZERO, "ca_validity 0ns is shorter than one second"),
        (Duration::from_secs(10_000 * 365 * 24 * 3600), "ca_validity"),
    ] {
        let config = CaConfig {
            ca_validity: validity,
            ..CaConfig::default()
        };
        let err = CertificateAuthority::load_or_generate(dir.path(), &config).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn user_root_problems_name_the_file() {
    let roots = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut root = write_user_root(roots.path(), "user-root");
    root.key = roots.path().join("missing-key.pem");
    let message = CertificateAuthority::load_or_generate(dir.path(), &with_root(root))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("missing-key.pem: reading: No such file"),
        "{message}"
    );

    // A workload certificate is not a CA.
    let ca = CertificateAuthority::load_or_generate(dir.path(), &CaConfig::default()).unwrap();
    let leaf = ca
        .issue(&id("default", "default"), DEFAULT_WORKLOAD_TTL, now())
        .unwrap();
    let not_ca = UserRoot {
        cert: roots.path().join("leaf.pem"),
        key: roots.path().join("leaf-key.pem"),
    };
    fs::write(&not_ca.cert, &leaf.cert_chain_pem).unwrap();
    fs::write(&not_ca.key, &leaf.private_key_pem).unwrap();
    let other = tempfile::tempdir().unwrap();
    let message = CertificateAuthority::load_or_generate(other.path(), &with_root(not_ca))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("leaf.pem: not a CA certificate"),
        "{message}"
    );
}

#[test]
fn half_present_intermediate_is_an_error() {
    let roots = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = with_root(write_user_root(roots.path(), "user-root"));
    CertificateAuthority::load_or_generate(dir.path(), &config).unwrap();
    fs::remove_file(dir.path().join(INTERMEDIATE_KEY_FILE)).unwrap();
    let message = CertificateAuthority::load_or_generate(dir.path(), &config)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("intermediate-cert.pem exists but")
            && message.contains("intermediate-key.pem does not"),
        "{message}"
    );
}

#[test]
fn ca_is_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CertificateAuthority>();
    assert_send_sync::<IssuedCert>();
}

use super::*;

#[test]
fn spiffe_id_round_trips() {
    let text = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews.v2";
    let parsed: SpiffeId = text.parse().unwrap();
    assert_eq!(parsed.trust_domain().as_str(), "cluster.local");
    assert_eq!(parsed.namespace(), "bookinfo");
    assert_eq!(parsed.service_account(), "bookinfo-reviews.v2");
    assert_eq!(parsed.to_string(), text);
    assert_eq!(
        SpiffeId::new(TrustDomain::default(), "kube-system", "default")
            .unwrap()
            .to_string(),
        "spiffe://cluster.local/ns/kube-system/sa/default"
    );
    let td: TrustDomain = "prod_1.example-corp.com".parse().unwrap();
    assert_eq!(td.to_string(), "prod_1.example-corp.com");
}

#[test]
fn spiffe_id_shape_errors() {
    for (text, expected) in [
        (
            "https://cluster.local/ns/a/sa/b",
            "must start with spiffe://",
        ),
        ("spiffe://cluster.local", "has no path"),
        ("spiffe://cluster.local/ns/a", "path must be /ns/"),
        ("spiffe://cluster.local/ns/a/sa/b/c", "path must be /ns/"),
        ("spiffe://cluster.local/ns/a/sa/b/", "path must be /ns/"),
        ("spiffe://cluster.local/sa/b/ns/a", "path must be /ns/"),
        (
            "spiffe://Cluster.local/ns/a/sa/b",
            "trust domain \"Cluster.local\"",
        ),
        ("spiffe://cluster.local:8080/ns/a/sa/b", "has a port"),
        (
            "spiffe://cluster.local/ns/a/sa/b?x=1",
            "service account \"b?x=1\"",
        ),
        ("spiffe://cluster.local/ns//sa/b", "namespace \"\""),
    ] {
        let err = text.parse::<SpiffeId>().unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn invalid_namespace_and_service_account_name_the_field() {
    let err = SpiffeId::new(TrustDomain::default(), "Bad_NS", "default").unwrap_err();
    assert!(matches!(err, SpiffeError::Namespace { .. }));
    assert_eq!(
        err.to_string(),
        "namespace \"Bad_NS\": uppercase letter 'B'; a DNS-1123 label is lowercase letters, digits and '-'"
    );
    let long = "a".repeat(64);
    for (ns, expected) in [
        ("bad_ns", "character '_' at byte 3 is not allowed"),
        ("-ns", "must start and end with a letter or digit"),
        ("ns-", "must start and end with a letter or digit"),
        ("a.b", "character '.' at byte 1 is not allowed"),
        (
            long.as_str(),
            "is 64 bytes long; a DNS-1123 label has at most 63",
        ),
    ] {
        let err = SpiffeId::new(TrustDomain::default(), ns, "default")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("namespace "), "{ns}: {err}");
        assert!(err.contains(expected), "{ns}: {err}");
    }
    assert!(SpiffeId::new(TrustDomain::default(), &"a".repeat(63), "default").is_ok());

    let long = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(62),
    ]
    .join(".");
    assert_eq!(long.len(), 254);
    for (sa, expected) in [
        ("My-SA", "uppercase letter 'M'"),
        ("sa..x", "must not be empty"),
        ("sa.-x", "must start and end with a letter or digit"),
        ("", "must not be empty"),
        (
            long.as_str(),
            "is 254 bytes long; a DNS-1123 subdomain has at most 253",
        ),
    ] {
        let err = SpiffeId::new(TrustDomain::default(), "default", sa)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("service account "), "{sa}: {err}");
        assert!(err.contains(expected), "{sa}: {err}");
    }
    assert!(SpiffeId::new(TrustDomain::default(), "default", "my.sa-1").is_ok());
}

#[test]
fn invalid_trust_domains_name_the_field() {
    for (name, expected) in [
        ("spiffe://x", "trust domain \"spiffe://x\": has a scheme"),
        (
            "Foo.com",
            "trust domain \"Foo.com\": uppercase letter 'F' at byte 0; trust domains are lowercase",
        ),
        ("", "trust domain \"\": is empty"),
        ("example.org:443", "has a port"),
        ("example.org/path", "has a path"),
        ("exa mple.org", "character ' ' at byte 3 is not allowed"),
    ] {
        let err = TrustDomain::new(name).unwrap_err();
        assert!(matches!(err, SpiffeError::TrustDomain { .. }));
        assert!(err.to_string().contains(expected), "{name}: {err}");
    }
    assert!(TrustDomain::new(&"a".repeat(256)).is_err());
    assert!(TrustDomain::new(&"a".repeat(255)).is_ok());
    assert_eq!(TrustDomain::default().as_str(), "cluster.local");
}

//! A synthetic mesh, deterministic by seed, for benchmarks and load tests.
//!
//! [`generate`] writes ordinary file-source YAML (one file per namespace):
//! Services with HTTP/HTTP2 ports, WorkloadEntries as their endpoints with
//! `version` labels, a DestinationRule per service (load balancing, sometimes
//! outlier detection and connection limits, and the version subsets), and on
//! a share of the services a VirtualService with a header match, weighted
//! subsets, retries and a timeout. [`store`] parses that YAML with the real
//! parser ([`crate::source::parse::parse_documents`]), so benchmarks measure
//! the objects a user's files would produce.
//!
//! Endpoint addresses are `10.x.y.z`, numbered in order; they are never
//! meant to receive traffic. The same [`WorldSpec`] (seed included) always
//! gives the same bytes.

use crate::source::parse::parse_documents;
use crate::store::Store;
use std::fmt::Write as _;

/// The shape of a synthetic mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorldSpec {
    /// Namespaces `ns-0` .. `ns-{n-1}`; service `i` lives in `ns-{i % n}`.
    pub namespaces: usize,
    /// Services `svc-0` .. `svc-{n-1}`.
    pub services: usize,
    /// Ports per service: port 80 (`http`), then 8080, 8081, ... named
    /// `http-<k>`, `http2-<k>` or `grpc-<k>` by the seed.
    pub ports_per_service: usize,
    /// WorkloadEntries per service, each with its own address.
    pub endpoints_per_service: usize,
    /// DestinationRule subsets per service (`v1` .. `vN`); endpoint `e` of a
    /// service has label `version: v{e % N + 1}`. 0: DestinationRules without subsets.
    pub subsets: usize,
    /// Percentage (0..=100) of services that get a VirtualService; which
    /// ones is drawn from the seed.
    pub routed_percent: u8,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for WorldSpec {
    /// 100 services in 10 namespaces, 2 ports, 3 endpoints, 2 subsets, 30 % routed, seed 1.
    fn default() -> Self {
        WorldSpec {
            namespaces: 10,
            services: 100,
            ports_per_service: 2,
            endpoints_per_service: 3,
            subsets: 2,
            routed_percent: 30,
            seed: 1,
        }
    }
}

impl WorldSpec {
    /// The default shape with `services` services, one namespace per 100
    /// services (at least one).
    pub fn with_services(services: usize) -> Self {
        WorldSpec {
            services,
            namespaces: services.div_ceil(100).max(1),
            ..WorldSpec::default()
        }
    }

    /// Why the spec cannot be generated, if it cannot.
    ///
    /// # Errors
    /// A message naming the field that is out of range.
    pub fn check(&self) -> Result<(), String> {
        if self.namespaces == 0 {
            return Err("namespaces must be at least 1".into());
        }
        if self.ports_per_service == 0 {
            return Err("ports_per_service must be at least 1".into());
        }
        // Ports 8080 + k - 1 for k >= 1 must stay below 65536.
        if self.ports_per_service > 1000 {
            return Err("ports_per_service must be at most 1000".into());
        }
        if self.subsets > 100 {
            return Err(
                "subsets must be at most 100 (route weights are positive and sum to 100)".into(),
            );
        }
        if self.routed_percent > 100 {
            return Err("routed_percent must be at most 100".into());
        }
        let endpoints = self.services.checked_mul(self.endpoints_per_service);
        // Addresses 10.0.0.1 .. 10.255.255.255.
        if endpoints.is_none_or(|n| n >= 1 << 24) {
            return Err("services × endpoints_per_service must be below 16777216".into());
        }
        Ok(())
    }
}

/// How many objects a [`Generated`] world holds, and how many clusters its IR has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Services.
    pub services: usize,
    /// WorkloadEntries.
    pub workload_entries: usize,
    /// DestinationRules (one per service).
    pub destination_rules: usize,
    /// VirtualServices.
    pub virtual_services: usize,
    /// Outbound clusters the IR gets: services × ports × (1 + subsets).
    pub clusters: usize,
}

/// A generated mesh: one YAML file per namespace, in namespace order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// `(file name, multi-document YAML)`, e.g. `("ns-0.yaml", "...")`.
    pub files: Vec<(String, String)>,
    /// What the files hold.
    pub counts: Counts,
}

/// Generates the mesh of `spec`.
///
/// # Panics
/// When [`WorldSpec::check`] fails.
pub fn generate(spec: &WorldSpec) -> Generated {
    if let Err(problem) = spec.check() {
        panic!("invalid WorldSpec: {problem}");
    }
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let mut files: Vec<String> = vec![String::new(); spec.namespaces];
    let mut counts = Counts::default();
    let mut address = 0u32;
    for i in 0..spec.services {
        let ns = i % spec.namespaces;
        let out = &mut files[ns];
        let name = format!("svc-{i}");
        let namespace = format!("ns-{ns}");
        service(out, &mut rng, spec, &name, &namespace);
        counts.services += 1;
        for e in 0..spec.endpoints_per_service {
            address += 1;
            workload_entry(out, spec, &name, &namespace, e, address);
            counts.workload_entries += 1;
        }
        destination_rule(out, &mut rng, spec, &name, &namespace);
        counts.destination_rules += 1;
        if rng.u8(0..100) < spec.routed_percent {
            virtual_service(out, &mut rng, spec, &name, &namespace);
            counts.virtual_services += 1;
        }
        counts.clusters += spec.ports_per_service * (1 + spec.subsets);
    }
    Generated {
        files: files
            .into_iter()
            .enumerate()
            .map(|(ns, text)| (format!("ns-{ns}.yaml"), text))
            .collect(),
        counts,
    }
}

/// The whole mesh of `spec` as one multi-document YAML text.
pub fn yaml(spec: &WorldSpec) -> String {
    generate(spec)
        .files
        .into_iter()
        .map(|(_, text)| text)
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A store holding the mesh of `spec`, parsed by the file source's parser,
/// one origin per namespace file (as `sextant serve` would load the
/// directory that `sextant synth` writes).
pub fn store(spec: &WorldSpec) -> Store {
    let mut store = Store::new();
    for (file, text) in generate(spec).files {
        store.apply(&file, parse_documents(&file, &text));
    }
    store
}

fn separator(out: &mut String) {
    if !out.is_empty() {
        out.push_str("---\n");
    }
}

fn service(out: &mut String, rng: &mut fastrand::Rng, spec: &WorldSpec, name: &str, ns: &str) {
    separator(out);
    let _ = write!(
        out,
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{app: {name}}}\n  ports:\n"
    );
    for k in 0..spec.ports_per_service {
        let (port_name, port) = if k == 0 {
            ("http".to_string(), 80)
        } else {
            let protocol = ["http", "http2", "grpc"][rng.usize(0..3)];
            (format!("{protocol}-{k}"), 8079 + k)
        };
        let _ = writeln!(
            out,
            "    - {{name: {port_name}, port: {port}, targetPort: {}}}",
            port + 1000
        );
    }
}

fn workload_entry(out: &mut String, spec: &WorldSpec, name: &str, ns: &str, e: usize, n: u32) {
    separator(out);
    let version = e % spec.subsets.max(1) + 1;
    let [_, a, b, c] = n.to_be_bytes();
    let _ = write!(
        out,
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {{name: {name}-{e}, namespace: {ns}}}\nspec:\n  address: 10.{a}.{b}.{c}\n  labels: {{app: {name}, version: v{version}}}\n  serviceAccount: {name}\n"
    );
}

fn destination_rule(
    out: &mut String,
    rng: &mut fastrand::Rng,
    spec: &WorldSpec,
    name: &str,
    ns: &str,
) {
    separator(out);
    let lb = ["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"][rng.usize(0..3)];
    let _ = write!(
        out,
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {name}\n  trafficPolicy:\n    loadBalancer: {{simple: {lb}}}\n"
    );
    if rng.u8(0..4) == 0 {
        let _ = write!(
            out,
            "    connectionPool:\n      tcp: {{maxConnections: {}}}\n      http: {{http1MaxPendingRequests: {}}}\n    outlierDetection: {{consecutive5xxErrors: {}, interval: 10s, baseEjectionTime: 30s}}\n",
            rng.u32(10..1000),
            rng.u32(10..1000),
            rng.u32(1..10),
        );
    }
    if spec.subsets > 0 {
        out.push_str("  subsets:\n");
        for s in 1..=spec.subsets {
            let _ = writeln!(out, "    - {{name: v{s}, labels: {{version: v{s}}}}}");
        }
    }
}

fn virtual_service(
    out: &mut String,
    rng: &mut fastrand::Rng,
    spec: &WorldSpec,
    name: &str,
    ns: &str,
) {
    separator(out);
    let _ = write!(
        out,
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{name}]\n  http:\n"
    );
    // A header match to the last subset (or the service), with retries.
    let canary = match spec.subsets {
        0 => format!("{{host: {name}}}"),
        n => format!("{{host: {name}, subset: v{n}}}"),
    };
    let _ = write!(
        out,
        "    - name: canary\n      match:\n        - headers: {{x-user: {{exact: user-{}}}}}\n        - headers: {{x-canary: {{exact: \"true\"}}}}\n          uri: {{prefix: /api/}}\n      route:\n        - destination: {canary}\n      retries: {{attempts: {}, perTryTimeout: 2s, retryOn: \"5xx,connect-failure\"}}\n",
        rng.u32(0..1000),
        rng.u32(1..5),
    );
    // The default route: weighted over the subsets.
    out.push_str("    - name: default\n      route:\n");
    if spec.subsets == 0 {
        let _ = writeln!(out, "        - destination: {{host: {name}}}");
    } else {
        for (s, weight) in weights(rng, spec.subsets).into_iter().enumerate() {
            let _ = writeln!(
                out,
                "        - destination: {{host: {name}, subset: v{}}}\n          weight: {weight}",
                s + 1
            );
        }
    }
    let _ = write!(
        out,
        "      timeout: {}s\n      retries: {{attempts: {}, retryOn: \"5xx,reset\"}}\n",
        rng.u32(1..30),
        rng.u32(1..4),
    );
}

/// `n` positive weights summing to 100 (1 <= `n` <= 100), drawn from `rng`.
fn weights(rng: &mut fastrand::Rng, n: usize) -> Vec<u32> {
    let raw: Vec<u32> = (0..n).map(|_| rng.u32(1..=10)).collect();
    let sum: u32 = raw.iter().sum();
    // 1 each, and the other 100 - n shared in proportion to `raw`.
    let spare = 100 - n as u32;
    let mut weights: Vec<u32> = raw.iter().map(|r| 1 + r * spare / sum).collect();
    weights[0] += 100 - weights.iter().sum::<u32>();
    weights
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn small() -> WorldSpec {
        WorldSpec {
            namespaces: 4,
            services: 40,
            ports_per_service: 3,
            endpoints_per_service: 3,
            subsets: 3,
            routed_percent: 50,
            seed: 7,
        }
    }

    #[test]
    fn same_seed_same_yaml_other_seed_other_yaml() {
        let spec = small();
        assert_eq!(yaml(&spec), yaml(&spec));
        let other = WorldSpec { seed: 8, ..small() };
        assert_ne!(yaml(&spec), yaml(&other));
    }

    #[test]
    fn loads_without_errors_and_counts_match() {
        let spec = small();
        let generated = generate(&spec);
        let counts = generated.counts;
        assert_eq!(counts.services, 40);
        assert_eq!(counts.workload_entries, 120);
        assert_eq!(counts.destination_rules, 40);
        assert!(counts.virtual_services > 0 && counts.virtual_services < 40);
        assert_eq!(generated.files.len(), 4);

        let store = store(&spec);
        let (world, _) = store.world();
        let of = |kind: Kind| world.keys().filter(|k| k.kind == kind).count();
        assert_eq!(of(Kind::Service), counts.services);
        assert_eq!(of(Kind::WorkloadEntry), counts.workload_entries);
        assert_eq!(of(Kind::DestinationRule), counts.destination_rules);
        assert_eq!(of(Kind::VirtualService), counts.virtual_services);
        assert_eq!(world.len(), 40 + 120 + 40 + counts.virtual_services);

        let (ir, diagnostics) = crate::ir::resolve(&store);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        assert_eq!(ir.clusters.len(), counts.clusters);
        assert_eq!(ir.clusters.len(), 40 * 3 * 4);
        let options = crate::translate::TranslateOptions::default();
        let per_class = crate::translate::diagnostics_for_every_namespace(&ir, &options);
        assert!(per_class.is_empty(), "{per_class:#?}");
        // Every endpoint landed in its service's clusters.
        let endpoints: usize = ir
            .clusters
            .values()
            .filter(|c| c.subset.is_none())
            .map(|c| c.endpoints.len())
            .sum();
        assert_eq!(endpoints, 40 * 3 * 3);
    }

    #[test]
    fn the_whole_yaml_parses_as_one_file() {
        let spec = WorldSpec {
            subsets: 0,
            ..small()
        };
        let parsed = parse_documents("all.yaml", &yaml(&spec));
        assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
        assert_eq!(parsed.objects.len(), {
            let c = generate(&spec).counts;
            c.services + c.workload_entries + c.destination_rules + c.virtual_services
        });
    }

    #[test]
    fn weights_are_positive_and_sum_to_100() {
        let mut rng = fastrand::Rng::with_seed(3);
        for n in [1, 2, 3, 7, 20, 99, 100] {
            let w = weights(&mut rng, n);
            assert_eq!(w.len(), n);
            assert!(w.iter().all(|w| *w >= 1));
            assert_eq!(w.iter().sum::<u32>(), 100, "{w:?}");
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(WorldSpec {
            namespaces: 0,
            ..small()
        }
        .check()
        .is_err());
        assert!(WorldSpec {
            routed_percent: 101,
            ..small()
        }
        .check()
        .is_err());
        assert!(WorldSpec::with_services(1000).check().is_ok());
        assert_eq!(WorldSpec::with_services(1000).namespaces, 10);
    }
}

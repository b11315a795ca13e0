//! Sextant: a service-mesh control plane that translates Kubernetes-style
//! mesh configuration into Envoy v3 xDS resources and streams them to stock
//! Envoy sidecars over ADS.
//!
//! Data flows one way through the modules, one pipeline stage each:
//! [`source`] (YAML directory) → [`store`] (validated objects) → [`ir`]
//! (resolved world) → [`translate`] (Envoy resources per proxy, built with the
//! small proto builders in [`envoy`]) → [`cache`] (encoded, content-hashed
//! resources) → [`server`] (ADS streams). [`admin`] reads from the cache and
//! the server's stream registry. [`ca`] is the built-in certificate authority
//! that issues SPIFFE workload certificates (X.509-SVIDs) for SDS.
//! [`tap`] and [`edges`] receive what sidecars stream back (access logs,
//! stats) for the live tap and the per-edge golden signals; [`slo`]
//! measures ServiceLevelObjectives on those signals.
//! [`metrics`] holds the Prometheus metrics
//! that the cache, the server and `sextant serve` update and the admin
//! endpoint renders, with the process's own CPU, memory and descriptors
//! read by [`procfs`]. [`synth`] generates synthetic meshes for benchmarks
//! and load tests; [`load`] is the load tool (`sextant-load`) that runs
//! many simulated proxies against a server. [`crds`] generates the
//! CustomResourceDefinitions of our kinds from the [`model`] types.

pub mod admin;
pub mod bootstrap;
pub mod ca;
pub mod cache;
pub mod crds;
pub mod diagnostic;
pub mod edges;
pub mod envoy;
pub mod ir;
pub mod load;
pub mod metrics;
pub mod model;
pub mod procfs;
pub mod proxy;
pub mod server;
pub mod slo;
pub mod source;
pub mod store;
pub mod synth;
pub mod tap;
pub mod token;
pub mod translate;

//! The end-to-end tests, as one test binary (one link, one copy of the
//! dependency tree on disk): every module starts real `sextant` and Envoy
//! processes on loopback through [`harness`]. Run one area with a filter,
//! e.g. `cargo test --test integration mtls::`.

mod fake_kube;
mod harness;

mod admin;
mod authorization;
mod bad_input;
mod cluster_update;
mod destination_policies;
mod edges;
mod endpoints;
mod external_name;
mod host_conflicts;
mod istio_tasks;
mod kube_mode;
mod load_smoke;
mod make_before_break;
mod manifests;
mod metrics;
mod mtls;
mod nack_visibility;
mod proxyless_grpc;
mod rbac_validate;
mod regex_dialect;
mod resilience;
mod route_policies;
mod scoping;
mod service_entries;
mod shared_routes;
mod slo;
mod source_matches;
mod tap;
mod tcp_services;
mod telemetry;
mod traffic_shifting;
mod ui;
mod weights;
mod xds_protocol;

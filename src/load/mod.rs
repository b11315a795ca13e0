//! `sextant-load`: many simulated proxies on ADS streams against a real
//! `sextant serve`, measuring cold sync, convergence after config changes,
//! bytes per type, and the server's CPU and memory (issue 7).
//!
//! One job per module: [`world`] holds and edits the synthetic config
//! directory, [`server`] starts the server under test, [`proxy`] is one
//! simulated proxy's stream ([`ads`] its HTTP/2 connection, [`scan`] the
//! reading of its responses as they arrive, [`receive`] what it takes
//! from them), [`watch`] records when each proxy saw a
//! change, [`run`] drives cold sync and the scenarios, [`report`] prints
//! and serializes the results, [`stats`] summarizes samples; the server's
//! CPU and memory come from [`crate::procfs`].
//!
//! The numbers are for benchmarks (see `BENCHMARKS.md`), not tests: the
//! tool and the server share the machine, so the tool's own CPU use is part
//! of every figure.

mod ads;
mod error;
pub mod proxy;
mod receive;
pub mod report;
pub mod run;
mod scan;
pub mod server;
pub mod stats;
pub mod watch;
pub mod world;

pub use error::LoadError;
pub use proxy::Protocol;
pub use report::Report;
pub use run::{LoadConfig, Target};

//! Benchmarks for mlplatform (`make bench`, never a test): the admission webhook against a
//! no-op axum+rustls ceiling on the same machine in the same run.
pub mod child;
pub mod connect_bench;
pub mod load;
pub mod noop;
pub mod pki;
pub mod procfs;
pub mod review;
pub mod stats;
pub mod webhook_bench;

//! Benchmarks for mlplatform (`make bench`, never a test): the admission webhook against a
//! null server of its own stack (no parse) and a no-op that parses into `serde_json::Value`,
//! on the same machine in the same run.
pub mod child;
pub mod connect_bench;
pub mod load;
pub mod noop;
pub mod null;
pub mod pki;
pub mod procfs;
pub mod review;
pub mod stats;
pub mod webhook_bench;

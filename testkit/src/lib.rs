//! Test infrastructure for mlplatform: an in-memory Kubernetes API server reached through
//! kube's real client and real kubectl ([`kube_double`]), and a moto_server launcher for
//! AWS calls through the real AWS SDK ([`moto`]).

pub mod kube_double;
pub mod moto;

pub use kube_double::{KubeDouble, RecordedRequest};
pub use moto::{Moto, unique_name};

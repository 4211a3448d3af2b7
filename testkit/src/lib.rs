//! Test infrastructure for mlplatform: an in-memory Kubernetes API server reached through
//! kube's real client and real kubectl ([`kube_double`]), and a moto_server launcher for
//! AWS calls through the real AWS SDK ([`moto`]), with a stand-in in front of it for the
//! EKS operations moto lacks ([`eks_standin`]).

pub mod cel_runtime;
pub mod eks_standin;
pub mod kube_double;
pub mod moto;

pub use eks_standin::EksStandIn;
pub use kube_double::{KubeDouble, RecordedRequest};
pub use moto::{Moto, unique_name};

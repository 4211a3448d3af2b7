//! `kubectl mlplatform`: connect ML platform vendors to an Amazon EKS cluster, safely.
//!
//! Logic lives here; `main.rs` only parses flags and maps the outcome to an exit code.

pub mod arn;
pub mod aws;
pub mod aws_auth;
pub mod common;

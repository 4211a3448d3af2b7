//! `kubectl mlplatform`: connect ML platform vendors to an Amazon EKS cluster, safely.
//!
//! Logic lives here; `main.rs` only parses flags and maps the outcome to an exit code.
//! Shape of every command: resolve inputs (no I/O) → preflight reads (parallel, no writes) →
//! pure plan (`plan`, steps in `steps`) → one executor runs exactly the plan's steps
//! (`execute`, in the order `schedule` gives) → one report (`output`).

pub mod access_entry;
mod access_migration;
mod arn;
pub mod aws;
pub mod aws_auth;
mod aws_auth_edit;
mod bundle;
pub mod cli;
pub mod cluster_access;
pub mod commands;
pub mod common;
mod doctor;
mod eks_access;
mod eks_pod_identity;
pub mod execute;
pub mod facts;
mod irsa;
mod kube_io;
pub mod logging;
pub mod objects;
pub mod oidc;
pub mod output;
pub mod plan;
pub mod pod_identity;
mod policy_document;
mod policy_install;
pub mod profile;
mod role_reconciler;
mod schedule;
mod security_group;
pub mod steps;
mod vocabulary;
pub mod webhook_install;

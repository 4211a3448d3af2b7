//! The plugin's integration tests, one test binary (one link instead of one per file).
//!
//! Each module was a test binary of its own; they now share a process, so process-wide state
//! is shared too: one moto_server (`Moto::shared`), and [`support::OIDC_LOCK`] for the OIDC
//! provider moto gives every cluster of a region. Never set process environment variables
//! here: pass them to the child processes instead.

mod support;

mod access_entry_apply;
mod access_entry_mocks;
mod aws_auth_cli;
mod aws_auth_golden;
mod aws_auth_migrate_cli;
mod aws_auth_store;
mod aws_mocks;
mod aws_moto;
mod completion;
mod connect_cli;
mod doctor_cli;
mod irsa_cli;
mod irsa_migrate_cli;
mod krew;
mod kubectl_plugin;
mod namespace_cli;
mod oidc_cli;
mod oidc_mocks;
mod oidc_thumbprint;
mod plan_golden;
mod pod_identity_cli;
mod policy_cli;
mod profiles_cli;
mod profiles_golden;
mod security_group_cli;
mod version;
mod webhook_cli;
mod webhook_cli_connect;

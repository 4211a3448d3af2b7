//! Test infrastructure for mlplatform.

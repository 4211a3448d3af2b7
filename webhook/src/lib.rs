//! mlplatform-webhook library.

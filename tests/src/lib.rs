//! Shared helpers for Mote cross-crate tests.

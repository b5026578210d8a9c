//! Helpers for the end-to-end tests (network namespaces, captures, the lab runner).

//! The storage conformance suite on SQLite.

mod conformance;
mod support;

conformance!(support::Backend::Sqlite);

//! The storage conformance suite on a real PostgreSQL server, started by the test itself (see
//! `support/pg.rs`), each test in a database of its own.

mod conformance;
mod support;

conformance!(support::Backend::Postgres);

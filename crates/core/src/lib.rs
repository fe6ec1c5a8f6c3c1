//! fieldkit-core.

//! fieldkit-link.

//! fieldkit-profile.

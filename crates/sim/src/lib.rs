//! fieldkit-sim.

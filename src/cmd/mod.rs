//! One module per command group.

pub(crate) mod audit;
pub(crate) mod identify;
pub(crate) mod ports;
pub(crate) mod profiles;
pub(crate) mod sim;

//! One module per command group.

pub(crate) mod audit;
pub(crate) mod check;
pub(crate) mod demo;
pub(crate) mod entitlement;
pub(crate) mod identify;
pub(crate) mod image;
pub(crate) mod keys;
pub(crate) mod material;
pub(crate) mod package;
pub(crate) mod ports;
pub(crate) mod profiles;
pub(crate) mod recall;
pub(crate) mod sim;
pub(crate) mod trust;
pub(crate) mod update;

//! Airlock: an External Secrets Operator compatible operator whose secret backends run as
//! sandboxed WebAssembly components.

pub mod backend;
pub mod cli;
pub mod controller;
pub mod crd;
#[doc(hidden)]
pub mod fuzz;
pub mod kube_client;
pub mod kube_credentials;
pub mod logging;
pub mod metrics;
pub mod registry;
pub mod runtime;
pub mod template;

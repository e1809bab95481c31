//! sula — suggestive labelling by adaptive latent-space sampling.
//!
//! The library holds everything the `sula` binary and the tests use: tissue label maps,
//! the plane-strain FEA labelling tool, dataset I/O, rendering of stress previews and the
//! torch device probe. The binary (`src/main.rs`) only parses arguments and calls in here.

pub mod app;
pub mod cli;
pub mod data;
pub mod device;
pub mod experiment;
pub mod export;
pub mod fea;
pub mod io;
pub mod labels;
pub mod metrics;
pub mod model;
pub mod project;
pub mod render;
pub mod sampling;
pub mod worker;

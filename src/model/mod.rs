//! Models on tch (docs/DESIGN.md §Models): the VAE over (image, one-hot label map), the stress
//! regressor F, their training loops, checkpoints and the gradient through the generator.
//! This module and `device` are the only places that touch tch; everything leaving it is
//! plain data (`Vec<f32>`, label maps).

pub mod assess;
pub mod augment;
pub mod checkpoint;
pub mod data;
pub mod evaluate;
pub mod filter;
pub mod gradient;
pub mod optim;
pub mod prior;
pub mod regressor;
pub mod train;
pub mod uncertainty;
pub mod vae;

use thiserror::Error;

/// Why a model operation failed.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    #[error("{path}: {message}")]
    Checkpoint {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    NoLabelMaps(#[from] evaluate::NoLabelMaps),
}

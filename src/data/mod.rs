//! Datasets on disk and synthetic label maps.

pub mod layout;
pub mod mask;
pub mod shapes;

//! Datasets on disk and synthetic label maps.

pub mod dataset;
pub mod dicom;
pub mod layout;
pub mod mask;
pub mod phantom;
pub mod shapes;

//! Raster output for people to look at: colour maps, text, stress previews with colour bars.

pub mod colormap;
pub mod sheet;
pub mod stress;
pub mod text;

pub use stress::{StressPreview, stress_preview};

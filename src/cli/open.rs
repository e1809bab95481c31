//! How a command opens its pool: pixel spacing, and for DICOM pullbacks the frames and crop.

use clap::Args;

use crate::data::dataset::OpenOptions;
use crate::data::dicom::{CropSpec, FrameSelection};

#[derive(Debug, Clone, Args)]
pub struct OpenArgs {
    /// Pixel spacing in mm, for sources that do not record it (or to override them).
    #[arg(long, value_name = "MM")]
    pub pixel_mm: Option<f64>,
    /// DICOM: frames to take from each pullback, START:END:STEP (END exclusive).
    #[arg(long, value_name = "START:END:STEP")]
    pub frames: Option<FrameSelection>,
    /// DICOM: crop to the imaging circle (`auto`), keep the whole frame (`full`), or a
    /// square X,Y,SIZE in pixels.
    #[arg(long, value_name = "auto|full|X,Y,SIZE", default_value = "auto")]
    pub crop: CropSpec,
}

impl OpenArgs {
    pub fn options(&self) -> OpenOptions {
        OpenOptions {
            pixel_mm: self.pixel_mm,
            frames: self.frames.unwrap_or_default(),
            crop: self.crop,
        }
    }
}

//! The seeded synthetic IVUS phantom (docs/DESIGN.md §Phantom), the embedded default dataset: sampled
//! geometry → label map → pseudo-B-mode image. Each frame has its own random stream
//! derived from (seed, index), so output is byte-identical for a seed whatever the
//! number of threads.

pub mod geometry;
pub mod render;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::labels::LabelMap;
pub use geometry::{Geometry, GeometryRanges};

/// Resolution, field of view and sampling ranges of a phantom.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhantomConfig {
    /// Image side in pixels.
    pub size: usize,
    /// Side of the square field of view in mm.
    pub fov_mm: f64,
    pub ranges: GeometryRanges,
}

impl PhantomConfig {
    /// The default phantom at `size`² over a 9 mm field of view.
    pub fn new(size: usize) -> PhantomConfig {
        PhantomConfig {
            size,
            fov_mm: 9.0,
            ranges: GeometryRanges::default(),
        }
    }

    pub fn pixel_mm(&self) -> f64 {
        self.fov_mm / self.size as f64
    }
}

/// Per-frame record written to `meta/<id>.json`: the sampled geometry (mm, degrees) and
/// what the rasterised label map measures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrameMeta {
    pub id: String,
    pub seed: u64,
    pub index: u64,
    pub pixel_mm: f64,
    pub geometry: Geometry,
    /// Measured on the label map: lumen and EEM areas (mm²), plaque burden.
    pub lumen_area_mm2: f64,
    pub eem_area_mm2: f64,
    pub measured_plaque_burden: f64,
}

/// One generated frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: Vec<u8>,
    pub labels: LabelMap,
    pub meta: FrameMeta,
}

/// The id of frame `index` ("frame_00042").
pub fn frame_id(index: u64) -> String {
    format!("frame_{index:05}")
}

/// Generates frame `index` of the phantom with `seed`.
pub fn generate(config: &PhantomConfig, seed: u64, index: u64) -> Frame {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    let geometry = Geometry::sample(&mut rng, &config.ranges);
    let size = config.size;
    let pixel_mm = config.pixel_mm();
    let centre = size as f64 / 2.0;
    let labels = crate::labels::seal_lumen(LabelMap::from_fn(size, size, |row, col| {
        let p = [
            (col as f64 + 0.5 - centre) * pixel_mm,
            (row as f64 + 0.5 - centre) * pixel_mm,
        ];
        geometry.echo_at(p).tissue()
    }));
    let image = render::render(&geometry, size, config.fov_mm, &mut rng);
    let counts = labels.class_counts();
    let pixel_area = pixel_mm * pixel_mm;
    let lumen_area_mm2 = counts[1] as f64 * pixel_area;
    let eem_area_mm2 = (counts[1] + counts[2] + counts[3] + counts[4]) as f64 * pixel_area;
    let meta = FrameMeta {
        id: frame_id(index),
        seed,
        index,
        pixel_mm,
        measured_plaque_burden: 1.0 - lumen_area_mm2 / eem_area_mm2.max(f64::MIN_POSITIVE),
        lumen_area_mm2,
        eem_area_mm2,
        geometry,
    };
    Frame {
        image,
        labels,
        meta,
    }
}

//! `sula eval-vae`: Dice per class and image error of a VAE on held-out frames, and a
//! picture of originals, reconstructions and prior samples.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use image::{Rgb, RgbImage};

use super::train::DeviceChoice;
use crate::data::dataset::Dataset;
use crate::labels::Tissue;
use crate::model::checkpoint;
use crate::model::data::FrameSet;
use crate::model::evaluate::{Decoded, evaluate, prior_usable_fraction, reconstruct, sample_prior};
use crate::render::sheet::tissue_color;
use crate::render::text::draw_text;
use crate::render::write_rgb_png;

#[derive(Debug, Args)]
pub struct EvalVaeArgs {
    /// VAE checkpoint (.safetensors with its .json sidecar).
    #[arg(long, value_name = "CKPT.safetensors")]
    vae: PathBuf,
    /// Held-out dataset.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Picture: originals vs reconstructions (image and labels), and samples from N(0, I).
    #[arg(long, value_name = "PICTURE.png")]
    png: Option<PathBuf>,
    /// Seed for the prior samples.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

pub fn run(args: &EvalVaeArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let (_vs, vae, _) = checkpoint::load_vae(&args.vae, device, None)?;
    let data = FrameSet::load(&Dataset::open(&args.data, None)?, vae.config.size, false)?;
    let evaluation = evaluate(&vae, &data, device);
    println!(
        "VAE {} on {} held-out frames at {}²",
        args.vae.display(),
        evaluation.frames,
        vae.config.size
    );
    for (tissue, dice) in Tissue::ALL.iter().zip(evaluation.dice) {
        match dice {
            Some(d) => println!("  Dice {:<8} {d:.3}", tissue.name()),
            None => println!("  Dice {:<8} (absent)", tissue.name()),
        }
    }
    println!(
        "  image MSE      {:.5} (grey levels in [0, 1]; RMSE {:.3})",
        evaluation.image_mse,
        evaluation.image_mse.sqrt()
    );
    crate::model::train::seed_torch(args.seed);
    let usable = prior_usable_fraction(&vae, 200, device);
    println!(
        "  N(0, I) samples usable by the FEA (closed vessel): {:.1} % of 200",
        100.0 * usable
    );
    if let Some(png) = &args.png {
        let count = data.len().min(8);
        let indices: Vec<usize> = (0..count).collect();
        let recon = reconstruct(&vae, &data, &indices, device);
        crate::model::train::seed_torch(args.seed);
        let samples = sample_prior(&vae, 16, device);
        let originals: Vec<Decoded> = indices
            .iter()
            .map(|&i| Decoded {
                image: data.images[i].clone(),
                labels: data.labels[i].clone(),
            })
            .collect();
        let picture = picture(
            &[
                ("originals", &originals),
                ("reconstructions", &recon),
                ("samples from N(0, I)", &samples[..8]),
                ("", &samples[8..]),
            ],
            vae.config.size,
        );
        write_rgb_png(png, &picture)?;
        println!("picture → {}", png.display());
    }
    Ok(())
}

/// Rows of (image, label map) pairs with a caption per row.
fn picture(rows: &[(&str, &[Decoded])], size: usize) -> RgbImage {
    let scale = (96 / size).max(1) as u32;
    let tile = size as u32 * scale;
    let columns = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(1) as u32;
    let (gap, caption) = (4u32, 18u32);
    let width = columns * (2 * tile + 3 * gap) + gap;
    let height = rows.len() as u32 * (tile + caption + gap) + gap;
    let mut out = RgbImage::from_pixel(width, height, Rgb([18, 18, 22]));
    for (r, (title, items)) in rows.iter().enumerate() {
        let y0 = gap + r as u32 * (tile + caption + gap);
        draw_text(
            &mut out,
            gap as f32,
            y0 as f32,
            13.0,
            title,
            [220, 220, 220],
        );
        for (c, item) in items.iter().enumerate() {
            let x0 = gap + c as u32 * (2 * tile + 3 * gap);
            for row in 0..size {
                for col in 0..size {
                    let grey = item.image[row * size + col];
                    let label = tissue_color(item.labels.get(row, col));
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (x, y) = (
                                col as u32 * scale + dx,
                                y0 + caption + row as u32 * scale + dy,
                            );
                            out.put_pixel(x0 + x, y, Rgb([grey; 3]));
                            out.put_pixel(x0 + tile + gap + x, y, Rgb(label));
                        }
                    }
                }
            }
        }
    }
    out
}

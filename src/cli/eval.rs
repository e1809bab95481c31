//! `sula eval-vae`: Dice per class and image error of a VAE on held-out frames, the share
//! of prior draws and of moved points that decode to a vessel the FEA can label, the
//! plaque arcs of real and decoded label maps, and a picture of real frames,
//! reconstructions, prior draws and moved points; with `--pool`, for the loop's default
//! (pool) generator too.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use image::{Rgb, RgbImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::train::DeviceChoice;
use crate::data::dataset::Dataset;
use crate::fea::FeaParams;
use crate::labels::{LabelMap, Tissue};
use crate::metrics::percentile;
use crate::model::checkpoint;
use crate::model::data::FrameSet;
use crate::model::evaluate::{
    Decoded, VaeEvaluation, decode_latents, draw_latents, encode_means, evaluate, reconstruct,
    usable_fraction,
};
use crate::model::gradient::{Normalisation, latent_gradients, move_latent, norm};
use crate::model::prior::LatentPrior;
use crate::model::vae::Vae;
use crate::render::sheet::tissue_color;
use crate::render::text::draw_text;
use crate::render::write_rgb_png;
use crate::sampling::Generator;
use crate::sampling::pool::Pool;

#[derive(Debug, Args)]
pub struct EvalVaeArgs {
    /// VAE checkpoint (.safetensors with its .json sidecar).
    #[arg(long, value_name = "CKPT.safetensors")]
    vae: PathBuf,
    /// Held-out dataset.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Stress regressor F whose loss gradient moves the held-out embeddings for the
    /// validity of η-moved points (needs stress maps in --data); without it they move in
    /// random directions.
    #[arg(long, value_name = "F.safetensors")]
    regressor: Option<PathBuf>,
    /// Pool frames whose encoder posteriors and residuals make the loop's default
    /// generator (`sula experiment --generator pool`): with it, the draws of the arcs and
    /// the picture come from their aggregate posterior and decoded images carry their
    /// residuals as speckle, as in the loop; without it, the fitted prior and Gaussian
    /// speckle.
    #[arg(long, value_name = "DIR")]
    pool: Option<PathBuf>,
    /// Draws (and moved points) per validity share.
    #[arg(long, default_value_t = 200)]
    draws: usize,
    /// Picture: real frames, reconstructions, prior draws and η-moved points, each as
    /// image | label map | FEA stress.
    #[arg(long, value_name = "PICTURE.png")]
    png: Option<PathBuf>,
    /// Seed for the draws and directions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// Unit directions in latent space for moving `latents`: F's normalised loss gradient
/// through the decoder when `regressor` is given, else random.
fn directions(
    args: &EvalVaeArgs,
    vae: &Vae,
    data: &FrameSet,
    latents: &[Vec<f32>],
    device: tch::Device,
    rng: &mut impl rand::Rng,
) -> Result<(Vec<Vec<f32>>, &'static str)> {
    let Some(path) = &args.regressor else {
        let random = latents
            .iter()
            .map(|z| {
                let g: Vec<f32> = z.iter().map(|_| StandardNormal.sample(rng)).collect();
                let n = norm(&g).max(f32::MIN_POSITIVE);
                g.iter().map(|v| v / n).collect()
            })
            .collect();
        return Ok((random, "random directions"));
    };
    if data.stress.is_none() {
        bail!(
            "{}: --regressor needs stress maps in the held-out data (sula label --dataset)",
            args.data.display()
        );
    }
    let (_fvs, regressor, sidecar) = checkpoint::load_regressor(path, device, Some(data.size))?;
    let pressure = sidecar.data["pressure_kpa"]
        .as_f64()
        .unwrap_or(crate::fea::DEFAULT_PRESSURE_KPA);
    let indices: Vec<usize> = (0..latents.len()).collect();
    let mut out = Vec::with_capacity(latents.len());
    for chunk in indices.chunks(64) {
        let targets = data.stress_batch(chunk, pressure, device);
        let solid = data.solid_batch(chunk, device);
        let points: Vec<Vec<f32>> = chunk.iter().map(|&i| latents[i].clone()).collect();
        for g in latent_gradients(vae, &regressor, &points, &targets, Some(&solid), device) {
            out.push(move_latent(
                &vec![0.0; g.gradient.len()],
                &g.gradient,
                1.0,
                Normalisation::L2,
            ));
        }
    }
    Ok((out, "F's loss gradient"))
}

pub fn run(args: &EvalVaeArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let (_vs, vae, _) = checkpoint::load_vae(&args.vae, device, None)?;
    let data = FrameSet::load(&Dataset::open(&args.data, None)?, vae.config.size, false)?;
    print_fit(args, &vae, &evaluate(&vae, &data, device)?);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let prior = vae.prior();
    let prior_draws = draw_latents(&prior, args.draws, &mut rng);
    let standard = draw_latents(&LatentPrior::standard(prior.dim()), args.draws, &mut rng);
    println!("  decoded to a closed vessel the FEA can label:");
    println!(
        "    draws from the fitted prior ({} Gaussians)  {:>5.1} % of {}",
        prior.weights.iter().filter(|w| **w > 0.0).count(),
        100.0 * usable_fraction(&vae, &prior_draws, device)?,
        args.draws
    );
    println!(
        "    draws from N(0, I)                       {:>5.1} % of {}",
        100.0 * usable_fraction(&vae, &standard, device)?,
        args.draws
    );
    let count = args.draws.min(data.len());
    let embedded: Vec<Vec<f32>> = encode_means(&vae, &data, device)
        .into_iter()
        .take(count)
        .collect();
    let (unit, how) = directions(args, &vae, &data, &embedded, device, &mut rng)?;
    let moved = |eta: f32| -> Vec<Vec<f32>> {
        embedded
            .iter()
            .zip(&unit)
            .map(|(z, d)| z.iter().zip(d).map(|(z, d)| z + eta * d).collect())
            .collect()
    };
    for eta in [1.0f32, 2.0] {
        println!(
            "    real embeddings moved by η = {eta} ({how})  {:>5.1} % of {count}",
            100.0 * usable_fraction(&vae, &moved(eta), device)?
        );
    }
    let pool = args
        .pool
        .as_ref()
        .map(|dir| open_pool(dir, &vae, device))
        .transpose()?;
    let (prior_draws, prior_name) = match &pool {
        Some(pool) => {
            let draws = pool.draw(&vae, Generator::Pool, args.draws, &mut rng);
            println!(
                "    draws from the pool's aggregate posterior ({} frames)  {:>5.1} % of {}",
                pool.len(),
                100.0 * usable_fraction(&vae, &draws, device)?,
                args.draws
            );
            (draws, "draws from the pool's aggregate posterior")
        }
        None => (prior_draws, "draws from the fitted prior"),
    };
    let decode = |latents: &[Vec<f32>]| match &pool {
        Some(pool) => pool.decode(&vae, Generator::Pool, latents, device),
        None => decode_latents(&vae, latents, device),
    };
    let all: Vec<usize> = (0..data.len()).collect();
    let reconstructions = reconstruct(&vae, &data, &all, device)?;
    let drawn = decode(&prior_draws)?;
    println!(
        "  plaque arcs around the lumen (share of frames holding it; median, 90th percentile, share ≥ 180° where held):"
    );
    for (name, maps) in [
        ("real frames", data.labels.iter().collect::<Vec<_>>()),
        (
            "reconstructions",
            reconstructions.iter().map(|d| &d.labels).collect(),
        ),
        ("prior draws", drawn.iter().map(|d| &d.labels).collect()),
    ] {
        let summaries = [Tissue::Lipid, Tissue::Calcium].map(|t| arc_summary(&maps, t));
        println!(
            "    {name:<16} lipid {}   calcium {}",
            summaries[0], summaries[1]
        );
    }
    if let Some(png) = &args.png {
        let columns = data.len().min(6);
        let indices: Vec<usize> = (0..columns).collect();
        let originals: Vec<Decoded> = indices
            .iter()
            .map(|&i| Decoded {
                image: data.images[i].clone(),
                labels: data.labels[i].clone(),
            })
            .collect();
        let recon = reconstruct(&vae, &data, &indices, device)?;
        let samples = decode(&prior_draws[..columns.min(prior_draws.len())])?;
        let moved_samples = decode(&moved(1.0)[..columns.min(count)])?;
        let moved_title = format!("real embeddings moved by η = 1 ({how})");
        let picture = picture(
            &[
                ("real frames", &originals),
                ("reconstructions G(E(x))", &recon),
                (prior_name, &samples),
                (&moved_title, &moved_samples),
            ],
            vae.config.size,
        );
        write_rgb_png(png, &picture)?;
        println!("picture → {}", png.display());
    }
    Ok(())
}

/// How well the VAE reconstructs the held-out frames: Dice per class, image error, grain.
fn print_fit(args: &EvalVaeArgs, vae: &Vae, evaluation: &VaeEvaluation) {
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
        "  image MSE      {:.5} (decoder mean, grey levels in [0, 1]; RMSE {:.3}); speckle grain {:.2} px",
        evaluation.image_mse,
        evaluation.image_mse.sqrt(),
        vae.grain()
    );
}

/// `--pool`: the loop's pool generator over the frames of `dir`.
fn open_pool(
    dir: &std::path::Path,
    vae: &crate::model::vae::Vae,
    device: tch::Device,
) -> Result<Pool> {
    let frames = FrameSet::load(&Dataset::open(dir, None)?, vae.config.size, false)?;
    if frames.is_empty() {
        bail!("{}: the pool holds no frame to draw from", dir.display());
    }
    let ids = (0..frames.len()).map(|i| i.to_string()).collect();
    Ok(Pool::new(ids, frames, FeaParams::default(), vae, device))
}

/// How often `tissue` appears in `maps` and how far it wraps round the lumen where it
/// does, in one line: what a generator's label maps must reproduce of real plaque.
fn arc_summary(maps: &[&LabelMap], tissue: Tissue) -> String {
    let arcs: Vec<f64> = maps
        .iter()
        .filter_map(|m| m.arc_degrees(tissue))
        .filter(|arc| *arc > 0.0)
        .collect();
    if arcs.is_empty() {
        return format!("in 0 of {} frames", maps.len());
    }
    let wide = arcs.iter().filter(|arc| **arc >= 180.0).count();
    format!(
        "{:>3.0} % {:>4.0}° {:>4.0}° {:>3.0} %",
        100.0 * arcs.len() as f64 / maps.len() as f64,
        percentile(&arcs, 0.5),
        percentile(&arcs, 0.9),
        100.0 * wide as f64 / arcs.len() as f64
    )
}

/// Rows of samples with a caption per row, each drawn as image | label map | FEA stress
/// (turbo, per sample's own range; grey where the map is not a closed vessel).
pub(super) fn picture(rows: &[(&str, &[Decoded])], size: usize) -> RgbImage {
    let fea = FeaParams::default();
    let turbo = crate::render::colormap::ColorMap::turbo();
    let scale = (96 / size).max(1) as u32;
    let tile = size as u32 * scale;
    let columns = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(1) as u32;
    let (gap, caption) = (4u32, 18u32);
    let cell = 3 * tile + 2 * gap;
    let width = columns * (cell + 3 * gap) + gap;
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
        let stresses: Vec<Option<Vec<f32>>> = items
            .par_iter()
            .map(|item| crate::fea::stress_label(&item.labels, &fea))
            .collect();
        for (c, (item, stress)) in items.iter().zip(&stresses).enumerate() {
            let x0 = gap + c as u32 * (cell + 3 * gap);
            let range = stress
                .as_ref()
                .map(|s| crate::render::stress::stress_range(s, &item.labels));
            for row in 0..size {
                for col in 0..size {
                    let tissue = item.labels.get(row, col);
                    let grey = item.image[row * size + col];
                    let stress_rgb = match (stress, range) {
                        (Some(s), Some((lo, hi))) if tissue.is_solid() => {
                            turbo.map(f64::from(s[row * size + col]), lo, hi)
                        }
                        (Some(_), _) => [0, 0, 0],
                        (None, _) => [70, 70, 70],
                    };
                    let panels = [[grey; 3], tissue_color(tissue), stress_rgb];
                    for (k, rgb) in panels.into_iter().enumerate() {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                out.put_pixel(
                                    x0 + k as u32 * (tile + gap) + col as u32 * scale + dx,
                                    y0 + caption + row as u32 * scale + dy,
                                    Rgb(rgb),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

//! `sula learning-curve` and `sula tstr`: what F can learn from real frames as the set
//! grows (the random baseline's ceiling), and whether the generator's samples are worth
//! training on (train on synthetic, test on real). Both train fresh F's for a fixed number
//! of optimiser steps and score them on a real test set.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rayon::prelude::*;

use super::train::DeviceChoice;
use crate::data::dataset::{Dataset, MaskSource};
use crate::fea::{DEFAULT_PRESSURE_KPA, FeaParams};
use crate::metrics::FrameMetrics;
use crate::model::assess::{self, Assessment, FitConfig};
use crate::model::checkpoint;
use crate::model::data::FrameSet;
use crate::model::evaluate::{
    Decoded, ResidualBank, Texture, decode_latents_as, decode_latents_with_residuals, draw_latents,
    encode_means, encode_posteriors,
};
use crate::model::prior::LatentPrior;
use crate::model::regressor::RegressorConfig;
use crate::model::train::{Control, Progress};

#[derive(Debug, Args)]
pub struct FitArgs {
    /// Labelled real test frames (with stress maps), never trained on.
    #[arg(long, value_name = "DIR")]
    test: PathBuf,
    /// Working resolution.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Optimiser steps for every F, whatever its training-set size.
    #[arg(long, default_value_t = 1500)]
    steps: usize,
    /// Channels of F at full resolution.
    #[arg(long, default_value_t = RegressorConfig::new(64).width)]
    width: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Write the table as JSON too.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LearningCurveArgs {
    /// Labelled real pool (with stress maps) to draw random training sets from.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Training-set sizes.
    #[arg(long, value_delimiter = ',', default_value = "40,80,160,320,640,1200")]
    sizes: Vec<usize>,
    /// Plot of test MSE against size.
    #[arg(long, value_name = "PLOT.png")]
    png: Option<PathBuf>,
    #[command(flatten)]
    fit: FitArgs,
}

#[derive(Debug, Args)]
pub struct TstrArgs {
    /// VAE checkpoint whose samples are measured.
    #[arg(long, value_name = "CKPT.safetensors")]
    vae: PathBuf,
    /// Labelled real pool (with stress maps): the real training frames, and the frames
    /// reconstructed.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Frames in each training set.
    #[arg(long, default_value_t = 320)]
    count: usize,
    /// Decode the mean images without speckle (to measure what the speckle model buys).
    #[arg(long)]
    no_speckle: bool,
    /// Draw each decoded image's noise from the standardised residuals of real pool frames
    /// (those not among the `--count` real training frames), each turned by a random
    /// symmetry, times the sample's own fitted spread: the real noise in place of a
    /// parametric one.
    #[arg(long, conflicts_with = "no_speckle")]
    pool_residuals: bool,
    /// Draw the prior samples from the aggregate posterior of the pool frames not among
    /// the `--count` real training frames (a random such frame, then z ~ N(μ, diag σ²)
    /// from its encoder) instead of the VAE's fitted mixture: new points where real
    /// frames' codes are, in their proportions.
    #[arg(long)]
    aggregate_posterior: bool,
    /// Also train on the reconstructions paired with their real frames' label and stress
    /// maps: separates what the decoded label maps cost from what the decoded images cost.
    #[arg(long)]
    real_stress_row: bool,
    /// Also write every test frame's metrics under each training set's F (one row per
    /// training set and frame, with the frame's id): which frames decoded samples teach F
    /// worse than real ones.
    #[arg(long, value_name = "FRAMES.csv")]
    per_frame: Option<PathBuf>,
    /// Also write the first six frames of each training set, image | label map | FEA
    /// stress: what F was taught, to look at before believing the ratios.
    #[arg(long, value_name = "PICTURE.png")]
    png: Option<PathBuf>,
    #[command(flatten)]
    fit: FitArgs,
}

impl FitArgs {
    fn fit_config(&self) -> Result<FitConfig> {
        Ok(FitConfig {
            regressor: RegressorConfig {
                width: self.width,
                ..RegressorConfig::new(self.size)
            },
            steps: self.steps,
            batch_size: self.batch_size.max(1),
            learning_rate: self.lr,
            seed: self.seed,
            pressure_kpa: DEFAULT_PRESSURE_KPA,
        })
    }

    fn load(&self, dir: &std::path::Path, what: &str) -> Result<FrameSet> {
        let set = FrameSet::load(&Dataset::open(dir, None)?, self.size, true)?;
        if set.is_empty() {
            bail!("{}: the {what} has no labelled frames", dir.display());
        }
        Ok(set)
    }
}

/// One row of a table: a training set and its F's test metrics.
#[derive(Debug, serde::Serialize)]
struct Row {
    name: String,
    assessment: Assessment,
}

fn fit_with_bar(
    fit: &FitConfig,
    name: &str,
    data: &FrameSet,
    test: &FrameSet,
    device: tch::Device,
) -> Result<(Assessment, Vec<Option<FrameMetrics>>)> {
    let bar = ProgressBar::new(fit.steps as u64).with_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} steps, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("F on {name} ({} frames)", data.len()));
    let mut on_progress = |_: &Progress| {
        bar.inc(1);
        Control::Continue
    };
    let outcome = assess::fit_and_test(fit, data, test, device, &mut on_progress)?;
    bar.finish_and_clear();
    Ok(outcome)
}

fn print_table(rows: &[Row], reference: Option<f64>, trivial: &FrameMetrics) {
    println!(
        "{:<34} {:>6} {:>6} {:>10} {:>9} {:>7} {:>7} {:>9}",
        "training set", "frames", "steps", "MSE kPa²", "accuracy", "R²", "peak", "MSE ratio"
    );
    for row in rows {
        let m = &row.assessment.metrics;
        let ratio = reference.map_or(String::from("—"), |r| format!("{:.2}", m.mse / r));
        println!(
            "{:<34} {:>6} {:>6} {:>10.1} {:>9.3} {:>7.3} {:>7.3} {:>9}",
            row.name,
            row.assessment.train_frames,
            row.assessment.steps,
            m.mse,
            m.accuracy,
            m.r2,
            m.peak_error,
            ratio
        );
    }
    println!(
        "{:<34} {:>6} {:>6} {:>10.1} {:>9.3} {:>7.3} {:>7} {:>9}",
        "per-pixel mean map", "", "", trivial.mse, trivial.accuracy, trivial.r2, "", ""
    );
}

fn write_json(path: &Option<PathBuf>, value: serde_json::Value) -> Result<()> {
    if let Some(path) = path {
        crate::io::atomic::write_bytes(path, serde_json::to_string_pretty(&value)?.as_bytes())?;
        println!("table → {}", path.display());
    }
    Ok(())
}

pub fn run_learning_curve(args: &LearningCurveArgs) -> Result<()> {
    let fit = args.fit.fit_config()?;
    let device = args.fit.device.resolve()?;
    let pool = args.fit.load(&args.data, "pool")?;
    let test = args.fit.load(&args.fit.test, "test set")?;
    if args.sizes.is_empty() || args.sizes.contains(&0) {
        bail!("--sizes must list training-set sizes of at least 1");
    }
    if let Some(&too_many) = args.sizes.iter().find(|&&n| n > pool.len()) {
        bail!(
            "--sizes asks for {too_many} frames but {} has {}",
            args.data.display(),
            pool.len()
        );
    }
    println!(
        "learning curve of F on random real frames, {} steps each, {device:?}; test {} frames",
        fit.steps,
        test.len()
    );
    let mut rows = Vec::new();
    for &n in &args.sizes {
        let data = assess::random_subset(&pool, n, args.fit.seed);
        let (assessment, _) = fit_with_bar(&fit, &format!("{n} random"), &data, &test, device)?;
        rows.push(Row {
            name: format!("{n} random real frames"),
            assessment,
        });
    }
    let (_, trivial) = assess::mean_map_metrics(&pool, &test);
    print_table(&rows, None, &trivial);
    if let Some(png) = &args.png {
        let points: Vec<(usize, f64)> = rows
            .iter()
            .map(|r| (r.assessment.train_frames, r.assessment.metrics.mse))
            .collect();
        crate::experiment::plot::write_learning_curve(png, &points, trivial.mse, fit.steps)?;
        println!("plot → {}", png.display());
    }
    write_json(
        &args.fit.json,
        serde_json::json!({ "fit": fit, "rows": rows, "per_pixel_mean": trivial }),
    )
}

/// The ids of `dir`'s annotated frames, in the order [`FrameSet::load`] reads them.
fn annotated_ids(dir: &std::path::Path, expected: usize) -> Result<Vec<String>> {
    let ids: Vec<String> = Dataset::open(dir, None)?
        .frames
        .into_iter()
        .filter(|f| !matches!(f.mask, MaskSource::Missing))
        .map(|f| f.id)
        .collect();
    if ids.len() != expected {
        bail!(
            "{}: {} frames are annotated but {expected} were read",
            dir.display(),
            ids.len()
        );
    }
    Ok(ids)
}

/// `training_set,frame_id,mse,accuracy,peak_error,r2`, one line per training set and
/// scored test frame.
fn write_per_frame(
    path: &std::path::Path,
    ids: &[String],
    per_frame: &[(String, Vec<Option<FrameMetrics>>)],
) -> Result<()> {
    let mut text = String::from("training_set,frame_id,mse,accuracy,peak_error,r2\n");
    for (name, frames) in per_frame {
        for (id, metrics) in ids.iter().zip(frames) {
            if let Some(m) = metrics {
                text.push_str(&format!(
                    "{name},{id},{:.6},{:.6},{:.6},{:.6}\n",
                    m.mse, m.accuracy, m.peak_error, m.r2
                ));
            }
        }
    }
    crate::io::atomic::write_bytes(path, text.as_bytes())?;
    println!("per-frame metrics → {}", path.display());
    Ok(())
}

/// The first six frames of the real, reconstructed and drawn training sets as a picture.
fn write_training_sets(
    png: &std::path::Path,
    sets: &[&FrameSet; 3],
    draws_caption: &str,
    size: usize,
) -> Result<()> {
    let first = |set: &FrameSet| -> Vec<Decoded> {
        set.images
            .iter()
            .zip(&set.labels)
            .take(6)
            .map(|(image, labels)| Decoded {
                image: image.clone(),
                labels: labels.clone(),
            })
            .collect()
    };
    let [real, reconstructions, draws] = sets.map(first);
    let picture = super::eval::picture(
        &[
            ("real training frames", &real),
            ("their reconstructions G(E(x))", &reconstructions),
            (draws_caption, &draws),
        ],
        size,
    );
    crate::render::write_rgb_png(png, &picture)?;
    println!("picture → {}", png.display());
    Ok(())
}

/// Decoded samples labelled by the FEA, as a training set; unlabellable ones are dropped.
fn labelled(decoded: Vec<Decoded>, size: usize) -> (FrameSet, usize) {
    let fea = FeaParams::default();
    let stress: Vec<Option<Vec<f32>>> = decoded
        .par_iter()
        .map(|d| crate::fea::stress_label(&d.labels, &fea))
        .collect();
    let mut set = FrameSet::empty_labelled(size);
    let mut dropped = 0;
    for (d, s) in decoded.into_iter().zip(stress) {
        match s {
            Some(s) => set.push_labelled(d.image, d.labels, s),
            None => dropped += 1,
        }
    }
    (set, dropped)
}

/// Mixed into `--seed` for the generator that picks residual fields.
const RESIDUAL_PICK_SEED: u64 = 0x7265_7369_6475_616c;

pub fn run_tstr(args: &TstrArgs) -> Result<()> {
    let fit = args.fit.fit_config()?;
    let device = args.fit.device.resolve()?;
    let (_vs, vae, _) = checkpoint::load_vae(&args.vae, device, Some(args.fit.size))?;
    let pool = args.fit.load(&args.data, "pool")?;
    let test = args.fit.load(&args.fit.test, "test set")?;
    let test_ids = args
        .per_frame
        .as_ref()
        .map(|_| annotated_ids(&args.fit.test, test.len()))
        .transpose()?;
    if args.count == 0 || args.count > pool.len() {
        bail!(
            "--count {} must be between 1 and the pool's {} frames",
            args.count,
            pool.len()
        );
    }
    let texture = if args.no_speckle {
        Texture::Mean
    } else {
        Texture::Speckle
    };
    let (real, rest) = assess::random_split(&pool, args.count, args.fit.seed);
    let residuals = residual_picks(args, &vae, &rest, pool.len(), device)?;
    let residuals = std::cell::RefCell::new(residuals);
    let decode = |latents: &[Vec<f32>]| -> Result<Vec<Decoded>> {
        let mut out = Vec::with_capacity(latents.len());
        for chunk in latents.chunks(64) {
            match residuals.borrow_mut().as_mut() {
                Some((bank, rng)) => {
                    let picks: Vec<_> = chunk.iter().map(|_| bank.pick(rng)).collect();
                    out.extend(decode_latents_with_residuals(
                        &vae, chunk, &picks, bank, device,
                    )?);
                }
                None => out.extend(decode_latents_as(&vae, chunk, device, texture)?),
            }
        }
        Ok(out)
    };
    let decoded_reconstructions = decode(&encode_means(&vae, &real, device))?;
    let with_real_stress = args.real_stress_row.then(|| FrameSet {
        images: decoded_reconstructions
            .iter()
            .map(|d| d.image.clone())
            .collect(),
        ..real.clone()
    });
    let (reconstructions, recon_dropped) = labelled(decoded_reconstructions, args.fit.size);
    // Draw from the prior until `count` samples are labellable (at most 10× as many draws).
    let prior = if args.aggregate_posterior {
        LatentPrior::from_posteriors(&encode_posteriors(&vae, &rest, device)).map_err(|e| {
            anyhow::anyhow!(
                "--aggregate-posterior needs pool frames outside the {} real training frames, and {} has {}: {e}",
                args.count,
                args.data.display(),
                pool.len()
            )
        })?
    } else {
        vae.prior()
    };
    let (draws, drawn) = draw_labelled(&prior, args.count, args.fit.size, args.fit.seed, decode)?;
    println!(
        "train on synthetic, test on real: {} steps each, {device:?}; test {} frames; decoded images {}",
        fit.steps,
        test.len(),
        match texture {
            _ if args.pool_residuals =>
                format!("with noise from {} real frames' residuals", rest.len()),
            Texture::Mean => "without speckle (mean)".to_string(),
            Texture::Speckle => "with speckle".to_string(),
        }
    );
    if args.aggregate_posterior {
        println!(
            "prior draws from the aggregate posterior of {} pool frames",
            rest.len()
        );
    }
    println!(
        "reconstructions labelled: {} of {} ({recon_dropped} not a closed vessel); prior draws labelled: {} of {drawn}",
        reconstructions.len(),
        real.len(),
        draws.len()
    );
    if let Some(png) = &args.png {
        let caption = if args.aggregate_posterior {
            "draws from the pool's aggregate posterior"
        } else {
            "draws from the VAE's prior"
        };
        write_training_sets(
            png,
            &[&real, &reconstructions, &draws],
            caption,
            args.fit.size,
        )?;
    }
    let sets = [
        (format!("{} random real frames", args.count), &real),
        (
            "reconstructions G(E(x)) of them".to_string(),
            &reconstructions,
        ),
        ("draws from the VAE's prior".to_string(), &draws),
    ]
    .into_iter()
    .chain(with_real_stress.as_ref().map(|set| {
        (
            "reconstructions with the real frames' stress".to_string(),
            set,
        )
    }));
    let (rows, per_frame, skipped) = fit_each(sets, &fit, &test, device)?;
    if let (Some(path), Some(ids)) = (&args.per_frame, &test_ids) {
        write_per_frame(path, ids, &per_frame)?;
    }
    let (_, trivial) = assess::mean_map_metrics(&pool, &test);
    let reference = rows[0].assessment.metrics.mse;
    print_table(&rows, Some(reference), &trivial);
    write_tstr_json(args, &fit, &rows, &skipped, drawn, &trivial)
}

/// Draws from `prior` until `count` samples decode to a vessel the FEA labels (at most 10×
/// as many draws); returns them and how many points were drawn.
fn draw_labelled(
    prior: &LatentPrior,
    count: usize,
    size: usize,
    seed: u64,
    decode: impl Fn(&[Vec<f32>]) -> Result<Vec<Decoded>>,
) -> Result<(FrameSet, usize)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut draws = FrameSet::empty_labelled(size);
    let mut drawn = 0;
    while draws.len() < count && drawn < 10 * count {
        let need = count - draws.len();
        let latents = draw_latents(prior, need, &mut rng);
        drawn += need;
        let (set, _) = labelled(decode(&latents)?, size);
        let stress = set.stress.unwrap_or_default();
        for ((image, labels), stress) in set.images.into_iter().zip(set.labels).zip(stress) {
            draws.push_labelled(image, labels, stress);
        }
    }
    Ok((draws, drawn))
}

/// Per-frame test metrics under each training set's F, named by set.
type PerFrame = Vec<(String, Vec<Option<FrameMetrics>>)>;

/// Trains an F on each named training set and scores it on `test`; an empty set is
/// skipped and named. Returns the rows, each F's per-frame metrics and the skipped sets.
fn fit_each<'a>(
    sets: impl Iterator<Item = (String, &'a FrameSet)>,
    fit: &FitConfig,
    test: &FrameSet,
    device: tch::Device,
) -> Result<(Vec<Row>, PerFrame, Vec<String>)> {
    let mut rows = Vec::new();
    let mut per_frame = Vec::new();
    let mut skipped = Vec::new();
    for (name, set) in sets {
        if set.is_empty() {
            println!("{name}: none decoded to a closed vessel the FEA can label; skipped");
            skipped.push(name);
            continue;
        }
        let (assessment, frames) = fit_with_bar(fit, &name, set, test, device)?;
        per_frame.push((name.clone(), frames));
        rows.push(Row { name, assessment });
    }
    Ok((rows, per_frame, skipped))
}

/// With `--pool-residuals`: the residual bank of the pool frames outside the real training
/// set, and the generator that picks a residual for each decoded sample.
fn residual_picks(
    args: &TstrArgs,
    vae: &crate::model::vae::Vae,
    rest: &FrameSet,
    pool_len: usize,
    device: tch::Device,
) -> Result<Option<(ResidualBank, rand_chacha::ChaCha8Rng)>> {
    if !args.pool_residuals {
        return Ok(None);
    }
    let bank = ResidualBank::from_frames(vae, rest, device).with_context(|| {
        format!(
            "--pool-residuals needs pool frames outside the {} real training frames, and {} has {}",
            args.count,
            args.data.display(),
            pool_len
        )
    })?;
    // Picks come from their own generator, so the prior draws' latent points are the
    // same as with a parametric noise and the two runs pair point by point.
    let picks = rand_chacha::ChaCha8Rng::seed_from_u64(args.fit.seed ^ RESIDUAL_PICK_SEED);
    Ok(Some((bank, picks)))
}

/// `--json`: the table, the TSTR ratios and how the decoded samples were made.
fn write_tstr_json(
    args: &TstrArgs,
    fit: &FitConfig,
    rows: &[Row],
    skipped: &[String],
    drawn: usize,
    trivial: &FrameMetrics,
) -> Result<()> {
    let ratio = |prefix: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(prefix))
            .and_then(|r| assess::tstr_ratio(&r.assessment.metrics, &rows[0].assessment.metrics))
    };
    write_json(
        &args.fit.json,
        serde_json::json!({
            "vae": args.vae.display().to_string(),
            "speckle": !args.no_speckle,
            "pool_residuals": args.pool_residuals,
            "aggregate_posterior": args.aggregate_posterior,
            "fit": fit,
            "rows": rows,
            "skipped": skipped,
            "tstr_ratio_reconstructions": ratio("reconstructions G"),
            "tstr_ratio_prior": ratio("draws"),
            "tstr_ratio_reconstructions_real_stress": ratio("reconstructions with"),
            "prior_draws": drawn,
            "per_pixel_mean": trivial,
        }),
    )
}

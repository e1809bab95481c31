//! `sula label`: FEA stress maps for one mask or a whole dataset.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::data::layout::SulaLayout;
use crate::data::mask::read_mask;
use crate::fea::{DEFAULT_PRESSURE_KPA, FeaParams, FeaSolver, Materials, StressMeasure};
use crate::io::npy;
use crate::labels::{LabelMap, seal_thin_wall, sealed_warning};
use crate::render::{StressPreview, stress_preview, write_rgb_png};

/// Default pixel spacing when neither the flag nor `dataset.json` gives one.
const DEFAULT_PIXEL_MM: f64 = 0.0625;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["mask", "dataset"]))]
pub struct LabelArgs {
    /// Label map to solve (8-bit PNG, values 0–4).
    #[arg(long, value_name = "MASK.png", requires = "out")]
    mask: Option<PathBuf>,
    /// Where to write the stress map (float32 .npy, kPa, row-major).
    #[arg(long, value_name = "STRESS.npy")]
    out: Option<PathBuf>,
    /// Colour-mapped preview PNG with a kPa colour bar (single mask only).
    #[arg(long, value_name = "PREVIEW.png", requires = "mask")]
    png: Option<PathBuf>,
    /// Label every frame of a sula-layout dataset into DIR/stress/.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "png"])]
    dataset: Option<PathBuf>,
    /// Relabel frames that already have a stress map.
    #[arg(long, requires = "dataset")]
    force: bool,
    /// Label only frames I, I+N, I+2N, … (0-based), e.g. 3/8 for job 3 of an 8-job array.
    #[arg(long, value_name = "I/N", requires = "dataset", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Pixel side in mm (stresses do not depend on it; displacements do). Default: the
    /// dataset's `pixel_mm`, else 0.0625.
    #[arg(long, value_name = "MM")]
    pixel_mm: Option<f64>,
    /// Luminal pressure in kPa (default 110 mmHg).
    #[arg(long, value_name = "KPA", default_value_t = DEFAULT_PRESSURE_KPA)]
    pressure_kpa: f64,
    /// Materials JSON: {"fibrous": {"youngs_modulus_kpa": 600, "poisson_ratio": 0.49}, "lipid": …, "calcium": …}.
    #[arg(long, value_name = "M.json")]
    materials: Option<PathBuf>,
    /// Which stress to write.
    #[arg(long, value_enum, default_value_t = StressMeasure::MaxPrincipal)]
    field: StressMeasure,
}

fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("shard must look like I/N, got {text:?}"))?;
    let i: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("shard index {i:?} is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("shard count {n:?} is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n} is out of range: need 0 ≤ I < N"));
    }
    Ok((i, n))
}

pub fn run(args: &LabelArgs) -> Result<()> {
    let materials = match &args.materials {
        Some(path) => Materials::load(path)?,
        None => Materials::default(),
    };
    let params = |pixel_mm: f64| FeaParams {
        materials,
        pressure_kpa: args.pressure_kpa,
        pixel_mm,
        ..FeaParams::default()
    };
    match (&args.mask, &args.dataset) {
        (Some(mask), _) => {
            let out = args.out.as_ref().expect("clap requires --out with --mask");
            let params = params(args.pixel_mm.unwrap_or(DEFAULT_PIXEL_MM));
            label_one(mask, out, args.png.as_deref(), &params, args.field)
        }
        (None, Some(dir)) => {
            let layout = SulaLayout::open(dir)?;
            let pixel_mm = match args.pixel_mm {
                Some(mm) => mm,
                None => layout.pixel_mm()?.unwrap_or(DEFAULT_PIXEL_MM),
            };
            label_dataset(&layout, &params(pixel_mm), args)
        }
        (None, None) => unreachable!("clap requires --mask or --dataset"),
    }
}

fn label_one(
    mask: &Path,
    out: &Path,
    png: Option<&Path>,
    params: &FeaParams,
    measure: StressMeasure,
) -> Result<()> {
    let (labels, sealed) = read_sealed(mask)?;
    let field = FeaSolver::default()
        .solve(&labels, params)
        .with_context(|| format!("{}", mask.display()))?;
    let stress = field.measure(measure);
    npy::write_f32(out, labels.height(), labels.width(), &stress)?;
    if let Some(png) = png {
        let title = format!("{} (kPa)", measure.title());
        let image = stress_preview(&StressPreview {
            stress: &stress,
            labels: &labels,
            title: &title,
        });
        write_rgb_png(png, &image)?;
    }
    let mut solid: Vec<f32> = stress
        .iter()
        .zip(labels.values())
        .filter(|(_, l)| (2..=4).contains(*l))
        .map(|(s, _)| *s)
        .collect();
    solid.sort_by(f32::total_cmp);
    let p99 = solid[((solid.len() - 1) as f64 * 0.99).round() as usize];
    println!(
        "{}: {} DOF, {} peak {:.1} kPa (99th percentile {:.1} kPa), max displacement {:.4} mm, {:.0} ms → {}",
        mask.display(),
        field.dofs,
        measure.title(),
        solid.last().copied().unwrap_or(0.0),
        p99,
        field.max_displacement_mm,
        field.timings.total_ms(),
        out.display()
    );
    if sealed > 0 {
        eprintln!("warning: {}: {}", mask.display(), sealed_warning(sealed));
    }
    if field.load_imbalance > 1e-6 {
        eprintln!(
            "warning: {}: the wall does not enclose the lumen; the net pressure force ({:.1} % of the load) is balanced by inertia relief",
            mask.display(),
            100.0 * field.load_imbalance
        );
    }
    Ok(())
}

fn label_dataset(layout: &SulaLayout, params: &FeaParams, args: &LabelArgs) -> Result<()> {
    let ids = layout.mask_ids()?;
    if ids.is_empty() {
        bail!(
            "{}: masks/ holds no PNG label maps",
            layout.root().display()
        );
    }
    let (shard, shards) = args.shard.unwrap_or((0, 1));
    let selected: Vec<&String> = ids.iter().skip(shard).step_by(shards).collect();
    let todo: Vec<&String> = selected
        .iter()
        .copied()
        .filter(|id| args.force || !layout.stress_path(id).exists())
        .collect();
    let skipped = selected.len() - todo.len();
    let stress_dir = layout.stress_dir();
    std::fs::create_dir_all(&stress_dir)
        .with_context(|| format!("cannot create {}", stress_dir.display()))?;

    let bar = ProgressBar::new(todo.len() as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} labelling {pos}/{len} [{bar:30}] {per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let start = Instant::now();
    let results: Vec<Result<usize>> = todo
        .par_iter()
        .map_init(FeaSolver::default, |solver, id| {
            let result = label_frame(solver, layout, id, params, args.field);
            bar.inc(1);
            result
        })
        .collect();
    bar.finish_and_clear();
    let mut failures = Vec::new();
    for (id, result) in todo.iter().zip(results) {
        match result {
            Ok(0) => {}
            Ok(sealed) => eprintln!(
                "warning: {}: {}",
                layout.mask_path(id).display(),
                sealed_warning(sealed)
            ),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let done = todo.len() - failures.len();
    println!(
        "labelled {done} frames in {seconds:.1} s ({:.1} frames/s){} into {}",
        done as f64 / seconds.max(1e-9),
        if skipped > 0 {
            format!(", skipped {skipped} already labelled (use --force to redo)")
        } else {
            String::new()
        },
        stress_dir.display()
    );
    if !failures.is_empty() {
        for failure in failures.iter().take(10) {
            eprintln!("  {failure}");
        }
        bail!(
            "{} of {} frames failed; the first: {}",
            failures.len(),
            todo.len(),
            failures[0]
        );
    }
    Ok(())
}

fn label_frame(
    solver: &mut FeaSolver,
    layout: &SulaLayout,
    id: &str,
    params: &FeaParams,
    measure: StressMeasure,
) -> Result<usize> {
    let mask = layout.mask_path(id);
    let (labels, sealed) = read_sealed(&mask)?;
    let field = solver
        .solve(&labels, params)
        .with_context(|| format!("{}", mask.display()))?;
    npy::write_f32(
        &layout.stress_path(id),
        labels.height(),
        labels.width(),
        &field.measure(measure),
    )?;
    Ok(sealed)
}

/// A mask as it enters: a lumen touching the outside at a few pixels is sealed (the count
/// comes back for a warning); a wider opening is solved as it is, its net pressure force
/// balanced by inertia relief and warned about after the solve.
fn read_sealed(mask: &Path) -> Result<(LabelMap, usize)> {
    Ok(seal_thin_wall(read_mask(mask)?))
}

//! `sula phantom`: write a seeded synthetic IVUS dataset in the sula layout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::data::layout::{DatasetManifest, SulaWriter};
use crate::data::phantom::{self, Frame, PhantomConfig};
use crate::fea::{FeaParams, FeaSolver, StressMeasure};
use crate::render::sheet::{SheetFrame, contact_sheet};
use crate::render::write_rgb_png;

#[derive(Debug, Args)]
pub struct PhantomArgs {
    /// Number of frames.
    #[arg(long, default_value_t = 1200)]
    count: u64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Random seed; the same seed gives byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Field of view (square side) in mm.
    #[arg(long, default_value_t = 9.0)]
    fov_mm: f64,
    /// Output folder (must not exist yet).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Also label every frame with the FEA solver into stress/ (max principal, kPa).
    #[arg(long)]
    with_stress: bool,
    /// Contact sheet (image | label map | stress) of the first 16 frames.
    #[arg(long, value_name = "SHEET.png")]
    preview: Option<PathBuf>,
}

pub fn run(args: &PhantomArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    if !(16..=1024).contains(&args.size) {
        bail!(
            "--size {} is out of range: use 16 to 1024 pixels",
            args.size
        );
    }
    if !(args.fov_mm.is_finite() && (6.0..=20.0).contains(&args.fov_mm)) {
        bail!(
            "--fov-mm {} is out of range: use 6 to 20 mm (the vessel must fit)",
            args.fov_mm
        );
    }
    let config = PhantomConfig {
        fov_mm: args.fov_mm,
        ..PhantomConfig::new(args.size)
    };
    let fea = FeaParams {
        pixel_mm: config.pixel_mm(),
        ..FeaParams::default()
    };
    let writer = SulaWriter::create(&args.out)?;
    let bar = ProgressBar::new(args.count).with_style(
        ProgressStyle::with_template(
            "{spinner} generating {pos}/{len} [{bar:30}] {per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let start = Instant::now();
    let result = (0..args.count)
        .into_par_iter()
        .map_init(FeaSolver::default, |solver, index| {
            let frame = phantom::generate(&config, args.seed, index);
            let outcome = write_frame(&writer, &frame, args.with_stress.then_some((solver, &fea)));
            bar.inc(1);
            outcome
        })
        .collect::<Result<Vec<()>>>();
    bar.finish_and_clear();
    if let Err(error) = result {
        writer.abandon();
        return Err(error);
    }
    let seconds = start.elapsed().as_secs_f64();
    let manifest = DatasetManifest {
        format: DatasetManifest::FORMAT.to_string(),
        version: 1,
        count: args.count as usize,
        image_size: [args.size, args.size],
        pixel_mm: config.pixel_mm(),
        provenance: serde_json::json!({
            "source": "sula phantom",
            "sula_version": env!("CARGO_PKG_VERSION"),
            "command": std::env::args().collect::<Vec<_>>().join(" "),
        }),
        generator: Some(serde_json::json!({
            "kind": "ivus-phantom",
            "seed": args.seed,
            "config": config,
        })),
        stress: args.with_stress.then(|| {
            serde_json::json!({
                "field": StressMeasure::MaxPrincipal,
                "unit": "kPa",
                "pressure_kpa": fea.pressure_kpa,
                "materials": fea.materials,
            })
        }),
    };
    let out = writer.finish(&manifest)?;
    println!(
        "wrote {} frames ({}×{} px, {:.4} mm/px{}) to {} in {:.1} s ({:.0} frames/s)",
        args.count,
        args.size,
        args.size,
        config.pixel_mm(),
        if args.with_stress {
            ", with stress"
        } else {
            ""
        },
        out.display(),
        seconds,
        args.count as f64 / seconds.max(1e-9)
    );
    if let Some(sheet) = &args.preview {
        write_preview(sheet, &config, args.seed, args.count.min(16), &fea)?;
    }
    Ok(())
}

fn write_frame(
    writer: &SulaWriter,
    frame: &Frame,
    fea: Option<(&mut FeaSolver, &FeaParams)>,
) -> Result<()> {
    let id = &frame.meta.id;
    writer.write_image_and_mask(id, &frame.image, &frame.labels)?;
    let meta = serde_json::to_string_pretty(&frame.meta).expect("meta serialises");
    writer.write(&format!("meta/{id}.json"), meta.as_bytes())?;
    if let Some((solver, params)) = fea {
        let field = solver
            .solve(&frame.labels, params)
            .with_context(|| format!("phantom frame {id}"))?;
        let stress = field.measure(StressMeasure::MaxPrincipal);
        writer.write_stress(id, &frame.labels, &stress)?;
    }
    Ok(())
}

/// Writes the contact sheet of the first `count` frames (stress computed for the sheet).
pub fn write_preview(
    path: &Path,
    config: &PhantomConfig,
    seed: u64,
    count: u64,
    fea: &FeaParams,
) -> Result<()> {
    let frames: Vec<Frame> = (0..count)
        .map(|i| phantom::generate(config, seed, i))
        .collect();
    let mut solver = FeaSolver::default();
    let stresses = frames
        .iter()
        .map(|f| {
            solver
                .solve(&f.labels, fea)
                .map(|s| s.measure(StressMeasure::MaxPrincipal))
                .with_context(|| format!("phantom frame {}", f.meta.id))
        })
        .collect::<Result<Vec<_>>>()?;
    let tiles: Vec<SheetFrame> = frames
        .iter()
        .zip(&stresses)
        .map(|(f, s)| SheetFrame {
            image: &f.image,
            labels: &f.labels,
            stress: Some(s),
        })
        .collect();
    let sheet = contact_sheet(&tiles, 2);
    write_rgb_png(path, &sheet)?;
    println!("contact sheet of {count} frames → {}", path.display());
    Ok(())
}

//! `sula info`: detect a dataset's layout and summarise it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use rayon::prelude::*;

use crate::data::dataset::{Dataset, MaskSource, SpacingSource};
use crate::labels::Tissue;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Dataset folder (sula or MICCAI 2011 layout).
    dir: PathBuf,
    /// Pixel spacing in mm, for layouts that do not record it.
    #[arg(long, value_name = "MM")]
    pixel_mm: Option<f64>,
}

pub fn run(args: &InfoArgs) -> Result<()> {
    let dataset = Dataset::open(&args.dir, args.pixel_mm)?;
    // Reads every frame once: sizes and class fractions, and any unreadable file surfaces.
    let summaries = (0..dataset.frames.len())
        .into_par_iter()
        .map(|i| {
            let frame = dataset.load(i, None)?;
            Ok((
                (frame.width, frame.height),
                frame.labels.map(|l| l.class_counts()),
            ))
        })
        .collect::<Result<Vec<_>, crate::io::IoError>>()?;
    let mut sizes: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut classes = [0usize; 5];
    for (size, counts) in &summaries {
        *sizes.entry(*size).or_default() += 1;
        if let Some(counts) = counts {
            for (total, n) in classes.iter_mut().zip(counts) {
                *total += n;
            }
        }
    }
    let total = dataset.frames.len();
    let annotated = dataset.annotated();
    let with_stress = dataset.frames.iter().filter(|f| f.stress.is_some()).count();
    println!("{}", dataset.root.display());
    let provenance = dataset.manifest.as_ref().and_then(|m| {
        m.provenance
            .get("source")
            .and_then(|s| s.as_str())
            .map(str::to_owned)
    });
    match provenance {
        Some(source) => println!("  layout:        {} (from {source})", dataset.kind),
        None => println!("  layout:        {}", dataset.kind),
    }
    println!(
        "  frames:        {total} ({annotated} annotated, {} unannotated, {with_stress} with stress maps)",
        total - annotated
    );
    let size_text: Vec<String> = sizes
        .iter()
        .map(|((w, h), n)| {
            if sizes.len() == 1 {
                format!("{w}×{h} px")
            } else {
                format!("{w}×{h} px ({n} frames)")
            }
        })
        .collect();
    println!("  image size:    {}", size_text.join(", "));
    let source = match dataset.spacing_source {
        SpacingSource::Manifest => "from dataset.json",
        SpacingSource::Option => "from --pixel-mm",
        SpacingSource::Default => "default; not recorded in the files, set it with --pixel-mm",
    };
    println!("  pixel spacing: {:.4} mm ({source})", dataset.pixel_mm);
    let labelled: usize = classes.iter().sum();
    if labelled > 0 {
        let fractions: Vec<String> = Tissue::ALL
            .iter()
            .map(|t| {
                format!(
                    "{} {:.1} %",
                    t.name(),
                    100.0 * classes[*t as usize] as f64 / labelled as f64
                )
            })
            .collect();
        println!("  label classes: {}", fractions.join(", "));
    }
    let contours = dataset
        .frames
        .iter()
        .filter(|f| matches!(f.mask, MaskSource::Contours { .. }))
        .count();
    if contours > 0 {
        println!("  label maps:    {contours} rasterised from lum_/med_ contour files");
    }
    Ok(())
}

//! `sula info`: detect a dataset's layout and summarise it; for DICOM, the pullbacks'
//! patient-free facts (never a patient identifier).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use rayon::prelude::*;

use super::open::OpenArgs;
use crate::data::dataset::{Dataset, LayoutKind, MaskSource, SpacingSource};
use crate::data::dicom::FrameReader;
use crate::labels::Tissue;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Dataset folder (sula or MICCAI 2011 layout), DICOM file, or folder of DICOM files.
    path: PathBuf,
    #[command(flatten)]
    open: OpenArgs,
}

pub fn run(args: &InfoArgs) -> Result<()> {
    let dataset = Dataset::open_with(&args.path, &args.open.options())?;
    println!("{}", dataset.root.display());
    if dataset.kind == LayoutKind::Dicom {
        print_pullbacks(&dataset)?;
    } else {
        print_folder(&dataset)?;
    }
    let source = match dataset.spacing_source {
        SpacingSource::Manifest => "from dataset.json".to_owned(),
        SpacingSource::Option => "from --pixel-mm".to_owned(),
        SpacingSource::Default => {
            "default; not recorded in the files, set it with --pixel-mm".to_owned()
        }
        SpacingSource::Dicom(source) => source.describe().to_owned(),
        SpacingSource::Unknown => {
            "unknown: the files record none; this default is assumed, set it with --pixel-mm"
                .to_owned()
        }
    };
    println!(
        "  pixel spacing: {:.4} mm per stored pixel ({source})",
        dataset.pixel_mm
    );
    Ok(())
}

fn print_pullbacks(dataset: &Dataset) -> Result<()> {
    let total: usize = dataset.pullbacks.iter().map(|p| p.selected).sum();
    println!(
        "  layout:        DICOM, {} pullback{}",
        dataset.pullbacks.len(),
        if dataset.pullbacks.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    println!("  frames:        {total} selected (0 annotated, {total} unannotated)");
    for pullback in &dataset.pullbacks {
        let s = &pullback.series;
        // Decoding the first frame proves the syntax and photometric interpretation work.
        FrameReader::open(&s.files[0])?.grey(0)?;
        println!("  {}:", s.name);
        let files = if s.files.len() > 1 {
            format!(" in {} single-frame files", s.files.len())
        } else {
            String::new()
        };
        println!(
            "    frames:          {} of {}{files}",
            pullback.selected,
            s.frame_count()
        );
        if s.declared_count() > s.frame_count() {
            println!(
                "    cut short:       only {} of the {} declared frames are whole; the pixel data ends early (the file may be truncated)",
                s.frame_count(),
                s.declared_count()
            );
        }
        println!("    size:            {}×{} px", s.cols, s.rows);
        println!("    transfer syntax: {}", s.transfer_syntax_name);
        println!(
            "    photometric:     {}, {}-bit",
            s.photometric, s.bits_allocated
        );
        match s.spacing {
            Some((mm, source)) => {
                println!("    spacing:         {mm:.4} mm ({})", source.describe())
            }
            None => println!("    spacing:         unknown (not recorded in the file)"),
        }
        match s.frame_rate {
            Some(rate) => println!("    frame rate:      {rate:.1} frames/s"),
            None => println!("    frame rate:      not recorded"),
        }
        let crop = pullback.crop;
        println!(
            "    crop:            {} px square at ({}, {})",
            crop.size, crop.x, crop.y
        );
    }
    Ok(())
}

fn print_folder(dataset: &Dataset) -> Result<()> {
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

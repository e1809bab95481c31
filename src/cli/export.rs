//! `sula export`: the hard samples of a finished (or interrupted) run, for offline
//! annotation (docs/DESIGN.md §Export), written atomically to a new folder.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::train::DeviceChoice;
use crate::export::run::{Rounds, collect_run};
use crate::export::write_export;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Run folder: the results folder of `sula experiment`, or a run the app saved.
    #[arg(long, visible_alias = "experiment", value_name = "RUN_DIR")]
    run: PathBuf,
    /// Rounds to export (e.g. 5,6,7); by default every round with moved samples.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "N,N,...",
        conflicts_with = "last"
    )]
    rounds: Option<Vec<usize>>,
    /// Export only the last N rounds.
    #[arg(long, value_name = "N")]
    last: Option<usize>,
    /// Repeats to export (e.g. 0,2); by default all.
    #[arg(long, value_delimiter = ',', value_name = "R,R,...")]
    repeats: Option<Vec<usize>>,
    /// New folder to write (refused if it exists).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

pub fn run(args: &ExportArgs) -> Result<()> {
    if args.out.exists() {
        bail!(
            "{} already exists; choose a new folder for the export",
            args.out.display()
        );
    }
    let rounds = match (&args.rounds, args.last) {
        (Some(rounds), _) => Rounds::Only(rounds.clone()),
        (None, Some(0)) => bail!("--last must be at least 1"),
        (None, Some(n)) => Rounds::Last(n),
        (None, None) => Rounds::All,
    };
    let device = args.device.resolve()?;
    let export = collect_run(&args.run, args.repeats.as_deref(), &rounds, device)?;
    let samples = &export.collected.samples;
    let bar = ProgressBar::new(samples.len() as u64).with_style(
        ProgressStyle::with_template("{spinner} writing {pos}/{len} [{bar:30}] ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let out = write_export(&args.out, samples, &export.info, &mut |k| {
        bar.set_position(k as u64);
        Ok(())
    })?;
    bar.finish_and_clear();
    let origin = match samples.first().map(|s| s.entry.origin.name()) {
        Some("real") => "real pool frames (SNN)",
        _ => "generated samples (SI)",
    };
    println!(
        "exported {} {origin} from rounds {:?} of repeats {:?} to {}{}",
        samples.len(),
        export.rounds,
        export.repeats,
        out.display(),
        if export.collected.skipped > 0 {
            format!(
                " ({} could not be labelled by the FEA again and were left out)",
                export.collected.skipped
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

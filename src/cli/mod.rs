//! The `sula` command line (docs/DESIGN.md §Command line). Each subcommand lives in its own file; this one
//! parses arguments and turns any failure into one clear line and a non-zero exit.

mod bench;
mod bench_ui;
mod eval;
mod eval_regressor;
mod experiment;
mod export;
mod info;
mod label;
mod measure;
mod open;
mod phantom;
mod project;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::device::ComputeDevice;

/// Suggestive labelling by adaptive latent-space sampling, on IVUS cross-sections.
#[derive(Debug, Parser)]
#[command(name = "sula", disable_version_flag = true)]
struct Cli {
    /// Print the version and the torch device sula would use.
    #[arg(short = 'V', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compute FEA stress maps (the annotation) from tissue label maps.
    Label(label::LabelArgs),
    /// Write a seeded synthetic IVUS dataset (sula layout).
    Phantom(phantom::PhantomArgs),
    /// Detect a dataset's layout (or a DICOM pullback's facts) and summarise it.
    Info(info::InfoArgs),
    /// Train the VAE on a dataset's images and label maps (images alone for an unannotated pool).
    TrainVae(train::TrainVaeArgs),
    /// Train the stress regressor F on a dataset's images and stress maps.
    Train(train::TrainArgs),
    /// Evaluate a VAE on held-out frames (Dice per class, image error, picture).
    EvalVae(eval::EvalVaeArgs),
    /// Evaluate a trained F on held-out frames (metrics with and without plaque, tissue Dice).
    EvalF(eval_regressor::EvalRegressorArgs),
    /// F's test MSE against the number of random real training frames (fixed steps).
    LearningCurve(measure::LearningCurveArgs),
    /// Train on synthetic, test on real: F on the VAE's samples against F on real frames.
    Tstr(measure::TstrArgs),
    /// Run the adaptive-sampling vs random-baseline study and plot its curves.
    Experiment(experiment::ExperimentArgs),
    /// Export a run's hard samples for offline annotation (a sula dataset with a manifest).
    Export(export::ExportArgs),
    /// The annotation round trip on real data: start a project on a pool.
    #[command(subcommand)]
    Project(project::ProjectCommand),
    /// Write the next batch of a project's frames to annotate.
    Suggest(project::SuggestArgs),
    /// Bring an annotated batch back into its project, label it with the FEA, train F.
    Import(project::ImportArgs),
    /// Measure performance and print a table.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Open the desktop app (what `sula` alone does), optionally on a project folder.
    App {
        /// A project folder (from `sula project new`) to open.
        #[arg(long, value_name = "P")]
        project: Option<std::path::PathBuf>,
    },
}

/// The version line: crate version, libtorch and the compute device.
pub fn version_line() -> String {
    format!(
        "sula {} (libtorch {}, {})",
        env!("CARGO_PKG_VERSION"),
        crate::device::LIBTORCH_VERSION,
        ComputeDevice::detect()
    )
}

/// Entry point of the binary: no arguments open the desktop app.
pub fn main() -> ExitCode {
    crate::device::keep_freed_memory_for_reuse();
    let cli = Cli::parse();
    if cli.version {
        println!("{}", version_line());
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        Some(Command::Label(args)) => label::run(&args),
        Some(Command::Phantom(args)) => phantom::run(&args),
        Some(Command::Info(args)) => info::run(&args),
        Some(Command::TrainVae(args)) => train::run_vae(&args),
        Some(Command::Train(args)) => train::run_regressor(&args),
        Some(Command::EvalVae(args)) => eval::run(&args),
        Some(Command::EvalF(args)) => eval_regressor::run(&args),
        Some(Command::LearningCurve(args)) => measure::run_learning_curve(&args),
        Some(Command::Tstr(args)) => measure::run_tstr(&args),
        Some(Command::Experiment(args)) => experiment::run(&args),
        Some(Command::Export(args)) => export::run(&args),
        Some(Command::Project(command)) => project::run_project(&command),
        Some(Command::Suggest(args)) => project::run_suggest(&args),
        Some(Command::Import(args)) => project::run_import(&args),
        Some(Command::Bench(command)) => bench::run(&command),
        Some(Command::App { project }) => open_app(project),
        None => open_app(None),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// Runs the desktop app; without a display that is one clear error.
fn open_app(project: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    crate::app::run_native(project).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the window ({e}); use a subcommand (`sula --help`) without a display"
        )
    })
}

/// The error and its causes joined on one line (without repeating a cause already in
/// its parent's message).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

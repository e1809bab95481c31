//! `sula experiment`: the adaptive-vs-random study from the command line (docs/DESIGN.md §Study).
//! Rows go to `results.csv` as each round finishes; `--resume` continues a study that
//! was interrupted, rerunning only the arm and repeat that had not finished. `--shard`
//! splits the repeats between processes that share a GPU, and `--merge` gathers them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::train::DeviceChoice;
use crate::device::ComputeDevice;
use crate::experiment::source::{DataSource, MAX_DEFAULT_VALIDATION, default_validation};
use crate::experiment::study::{self, Study};
use crate::experiment::{Protocol, ResultsDir, RunLog, StudySettings, VaeRef, schedule};
use crate::model::regressor::RegressorConfig;
use crate::model::train::Control;
use crate::sampling::{
    Arm, Context, Defaults, Generator, LoopConfig, Mode, Movers, Normalisation, Pool, RoundZero,
    Setting, Variant, chosen, redrawn_note,
};

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Results folder (results.csv, results.json, curves.png, rounds/).
    #[arg(long, value_name = "RESULTS_DIR")]
    out: PathBuf,
    /// Dataset folder to use instead of the phantom (sula or MICCAI 2011 layout).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Independent test folder for --data; without it a fraction of --data is held out.
    #[arg(long, value_name = "DIR", requires = "data")]
    test: Option<PathBuf>,
    /// Share of --data held out as the test set when --test is not given.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Pixel spacing in mm for layouts that do not record it.
    #[arg(long, value_name = "MM")]
    pixel_mm: Option<f64>,
    /// Phantom pool frames and seed.
    #[arg(long, default_value_t = 1200)]
    pool_count: usize,
    #[arg(long, default_value_t = 1)]
    pool_seed: u64,
    /// Phantom test frames and seed (independent of the pool).
    #[arg(long, default_value_t = 300)]
    test_count: usize,
    #[arg(long, default_value_t = 2)]
    test_seed: u64,
    /// VAE checkpoint; by default the phantom VAE shipped in the binary (64²).
    #[arg(long, value_name = "CKPT.safetensors")]
    vae: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Mode::Si)]
    mode: Mode,
    #[arg(long, value_enum, default_value_t = Protocol::Default)]
    protocol: Protocol,
    /// The arms to run, each repeat from the same initial F and round 0 (random is also
    /// accepted for baseline).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Arm::ALL)]
    arms: Vec<Arm>,
    /// Repeats of each arm (different seeds); by default 10 on a CUDA device, 5 on the CPU.
    #[arg(long)]
    repeats: Option<usize>,
    /// Training-set sizes after each round, e.g. 40,80,160 (overrides --n0/--k/--budget).
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    sizes: Option<Vec<usize>>,
    /// Initial training-set size (round 0).
    #[arg(long)]
    n0: Option<usize>,
    /// Samples added per round.
    #[arg(long)]
    k: Option<usize>,
    /// Final training-set size.
    #[arg(long)]
    budget: Option<usize>,
    #[arg(long)]
    epochs_per_round: Option<usize>,
    /// Where η and the variant start from: the setting chosen on the validation split
    /// (docs/FINDINGS.md), or the paper's literal reading; the flags below override either.
    /// `--select` always starts from the paper's reading.
    #[arg(long, value_enum, default_value_t = Defaults::Chosen)]
    variant: Defaults,
    /// Step size η along the normalised gradient, in latent units.
    #[arg(long)]
    step: Option<f32>,
    #[arg(long, value_enum, default_value_t = Normalisation::L2)]
    normalisation: Normalisation,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Channels of F at full resolution.
    #[arg(long, default_value_t = RegressorConfig::new(64).width)]
    width: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Adaptive round 0: draws from the generator's prior, or random real frames (the
    /// same as the random arm's).
    #[arg(long, value_enum)]
    round_zero: Option<RoundZero>,
    /// Which training-set members move each round.
    #[arg(long, value_enum)]
    movers: Option<Movers>,
    /// Only real members move (generated ones are not moved again).
    #[arg(long)]
    no_chaining: bool,
    /// SNN: snap outside the typical nearest-neighbour distance of every training member.
    #[arg(long)]
    snap_radius: bool,
    /// Keep z' within the typical nearest-neighbour distance of a real embedding.
    #[arg(long)]
    trust_region: bool,
    /// Control: step along a random direction of length η instead of F's loss gradient.
    #[arg(long)]
    random_direction: bool,
    /// Where new latent points come from and what noise decoded images carry: the pool's
    /// aggregate posterior with real frames' residuals, or the VAE's fitted prior with
    /// Gaussian speckle (docs/FINDINGS.md).
    #[arg(long, value_enum, default_value_t = Generator::Pool)]
    generator: Generator,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Continue the study in --out, keeping its finished rows.
    #[arg(long)]
    resume: bool,
    /// Pool frames held out (seeded by --seed) as the labelled validation split that every
    /// choice is made on; the rest is the candidate pool of every arm. Default: 20 % of the
    /// pool, at most 200.
    #[arg(long)]
    validation: Option<usize>,
    /// Choose η, the variant and k on the validation split instead of running the study:
    /// writes selection.json to --out. The test set is never loaded.
    #[arg(long, conflicts_with = "resume")]
    select: bool,
    /// Run only the repeats r with r mod COUNT = INDEX, so that several processes can share
    /// one GPU (each is launch-bound at 64²); gather their folders with --merge.
    #[arg(long, value_name = "INDEX/COUNT", value_parser = parse_shard, conflicts_with = "select")]
    shard: Option<Shard>,
    /// Folders of the same study (shards, interrupted runs, runs of some of its --arms or
    /// of fewer repeats) whose finished arms this study starts from: rows and rounds are
    /// copied into --out, and only the arms and repeats none of them finished are run.
    #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with = "select")]
    merge: Vec<PathBuf>,
    /// With --merge: summarise only the repeats that every arm finished, and run nothing
    /// (an interim report between GPU leases; the shards resume later).
    #[arg(long, requires = "merge")]
    gather_only: bool,
}

/// One of several processes that split a study's repeats between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    fn includes(self, repeat: usize) -> bool {
        repeat % self.count == self.index
    }
}

fn parse_shard(text: &str) -> std::result::Result<Shard, String> {
    let invalid = || format!("--shard takes INDEX/COUNT with 0 ≤ INDEX < COUNT, not {text:?}");
    let (index, count) = text.split_once('/').ok_or_else(invalid)?;
    let index: usize = index.trim().parse().map_err(|_| invalid())?;
    let count: usize = count.trim().parse().map_err(|_| invalid())?;
    if index >= count {
        return Err(invalid());
    }
    Ok(Shard { index, count })
}

impl ExperimentArgs {
    /// `--validation`, or the split sized from the pool of `pool` frames, said aloud.
    fn validation_for(&self, pool: usize) -> usize {
        self.validation.unwrap_or_else(|| {
            let count = default_validation(pool);
            println!(
                "validation split: {count} of the pool's {pool} frames (20 %, at most {MAX_DEFAULT_VALIDATION}; --validation N sets it)"
            );
            count
        })
    }

    /// `--repeats`, or the default for the device: paired repeats are cheap on a GPU and
    /// narrow the intervals; 5 keep the CPU study within its 30 minutes.
    fn repeats(&self, device: tch::Device) -> Result<usize> {
        match self.repeats {
            Some(0) => bail!("--repeats must be at least 1"),
            Some(repeats) => Ok(repeats),
            None if device.is_cuda() => Ok(10),
            None => Ok(5),
        }
    }

    fn loop_config(&self) -> Result<LoopConfig> {
        let setting = match (self.select, self.variant) {
            (false, Defaults::Chosen) => chosen(self.mode),
            (true, _) | (false, Defaults::Paper) => Setting::PAPER,
        };
        let (n0, k, budget, epochs) = self.protocol.sizes();
        let k = setting.samples_per_round(k);
        let sizes = match &self.sizes {
            Some(sizes) => sizes.clone(),
            None => LoopConfig::sizes_from(
                self.n0.unwrap_or(n0),
                self.k.unwrap_or(k),
                self.budget.unwrap_or(budget),
            )?,
        };
        let base = setting.variant;
        let config = LoopConfig {
            mode: self.mode,
            sizes,
            epochs_per_round: self.epochs_per_round.unwrap_or(epochs),
            step: self.step.unwrap_or(setting.step),
            normalisation: self.normalisation,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            regressor_width: self.width,
            seed: self.seed,
            variant: Variant {
                round_zero: self.round_zero.unwrap_or(base.round_zero),
                movers: self.movers.unwrap_or(base.movers),
                chaining: base.chaining && !self.no_chaining,
                snap_radius: base.snap_radius || self.snap_radius,
                trust_region: base.trust_region || self.trust_region,
                random_direction: base.random_direction || self.random_direction,
            },
            generator: self.generator,
        };
        config.validate()?;
        Ok(config)
    }

    /// The data source with absolute folder paths, so an export run from another working
    /// folder finds the same frames.
    fn source(&self) -> DataSource {
        let absolute = |path: &PathBuf| std::path::absolute(path).unwrap_or_else(|_| path.clone());
        match &self.data {
            Some(data) => DataSource::Folder {
                data: absolute(data),
                test: self.test.as_ref().map(absolute),
                test_fraction: self.test_fraction,
                split_seed: self.seed,
                pixel_mm: self.pixel_mm,
            },
            None => DataSource::Phantom {
                pool_count: self.pool_count,
                pool_seed: self.pool_seed,
                test_count: self.test_count,
                test_seed: self.test_seed,
            },
        }
    }
}

pub fn run(args: &ExperimentArgs) -> Result<()> {
    let started = Instant::now();
    let config = args.loop_config()?;
    let source = args.source();
    let device = args.device.resolve()?;
    let repeats = args.repeats(device)?;
    let vae_ref = match &args.vae {
        Some(path) => VaeRef::File(
            std::fs::canonicalize(path)
                .with_context(|| format!("cannot open the VAE checkpoint {}", path.display()))?,
        ),
        None => VaeRef::Embedded,
    };
    let (_vs, vae) = vae_ref.load(Path::new("."), device)?;
    let size = vae.config.size;
    if args.select {
        return run_select(args, &config, &source, &vae, device, repeats, started);
    }
    let compute = ComputeDevice::detect();
    println!(
        "sula experiment: {} mode, sizes {:?}, {} repeats, {compute}",
        config.mode.name(),
        config.sizes,
        repeats
    );
    let data = source.load(size)?.label_test();
    for sealed in &data.sealed {
        eprintln!(
            "warning: {}: {}",
            sealed.id,
            crate::labels::sealed_warning(sealed.pixels)
        );
    }
    let validation = args.validation_for(data.pool.ids.len());
    let (data, _validation) = hold_out_validation(data, validation, args.seed)?;
    let test = data.test;
    if test.is_empty() {
        bail!("no test frame could be labelled by the FEA");
    }
    println!(
        "pool {} frames, test {} frames labelled by the FEA{} at {size}²",
        data.pool.ids.len(),
        test.len(),
        if data.dropped > 0 {
            format!(" ({} could not be labelled and are left out)", data.dropped)
        } else {
            String::new()
        }
    );
    let mut arms = args.arms.clone();
    arms.sort_unstable();
    arms.dedup();
    let settings = StudySettings {
        loop_config: config.clone(),
        arms: arms.clone(),
        repeats,
        validation,
        data: source.clone(),
        size,
        vae: vae_ref,
    };
    let gathered = study::gather(
        &settings,
        &args.out,
        args.resume,
        &args.merge,
        args.gather_only,
    )?;
    for note in &gathered.notes {
        println!("{note}");
    }

    let pool = Pool::new(data.pool.ids, data.pool.set, data.fea, &vae, device);
    let ctx = Context {
        vae: &vae,
        pool: &pool,
        test: &test,
        device,
    };
    let provenance = serde_json::json!({
        "sula_version": env!("CARGO_PKG_VERSION"),
        "libtorch": crate::device::LIBTORCH_VERSION,
        "device": compute.to_string(),
        "test_frames": test.len(),
        "pool_frames": pool.len(),
        "validation_frames": validation,
        "merged_from": gathered.merged_from,
    });
    let log = RunLog::create(
        &args.out,
        settings.clone(),
        provenance,
        &gathered.rows,
        true,
        started,
    )?;
    let started_with = study::finished_arms(&gathered.rows);
    let pending: Vec<(Arm, usize)> = schedule(&arms, repeats)
        .into_iter()
        .filter(|_| !args.gather_only)
        .filter(|pair| !started_with.contains(pair))
        .filter(|&(_, repeat)| args.shard.is_none_or(|shard| shard.includes(repeat)))
        .collect();
    let mut study = Study::new(settings, gathered.rows, pending, Some(log), &ctx)?;
    run_to_the_end(&mut study, &ctx)?;

    let summary = study.finish(test.len())?;
    print_table(&summary);
    let dir = ResultsDir::new(&args.out);
    println!(
        "wrote {}, {} and {} in {:.0} s",
        dir.csv().display(),
        dir.json().display(),
        dir.curves().display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs every pending round of `study` with a progress bar, printing a line per round.
fn run_to_the_end(study: &mut Study, ctx: &Context) -> Result<()> {
    let bar = ProgressBar::new(1000).with_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {percent}% ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut on_progress = |p: &study::StudyProgress| {
        bar.set_message(format!(
            "{} repeat {}/{}",
            p.arm.name(),
            p.repeat + 1,
            p.repeats
        ));
        bar.set_position((p.fraction * 1000.0) as u64);
        Control::Continue
    };
    while let Some(round) = study.next_round(ctx, &mut on_progress)? {
        round.saved?;
        let record = round.record;
        let line = format!(
            "{:>8} repeat {} size {:>4}: MSE {:>9.1} kPa², accuracy {:.3}{}",
            record.arm.name(),
            record.repeat,
            record.size,
            record.metrics.mse,
            record.metrics.accuracy,
            redrawn_note(record.rejected)
        );
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// Per arm and size: test MSE and accuracy (mean ± std over repeats), the paired
/// difference to random with its 95 % interval, and the share of random's labels the arm
/// needs to reach random's MSE at that size.
fn print_table(summary: &crate::experiment::Summary) {
    println!(
        "\n  arm        size   test MSE (± std)       accuracy (± std)   − random [95 % CI]            labels for random's MSE"
    );
    for arm in &summary.arms {
        for p in &arm.points {
            let paired = arm
                .paired_differences
                .iter()
                .find(|d| d.size == p.size)
                .map_or_else(String::new, |d| {
                    format!("{:+.1} [{:+.1}, {:+.1}]", d.mean, d.lower, d.upper)
                });
            let saving = match arm.label_savings.iter().find(|l| l.size == p.size) {
                Some(saving) => saving.ratio.map_or_else(
                    || "not reached".to_string(),
                    |r| format!("{:.0} %", 100.0 * r),
                ),
                None => String::new(),
            };
            println!(
                "  {:<9} {:>5}   {:>9.1} ± {:<8.1}   {:.3} ± {:.3}      {paired:<28}  {saving}",
                arm.arm.name(),
                p.size,
                p.mse_mean,
                p.mse_std,
                p.accuracy_mean,
                p.accuracy_std,
            );
        }
    }
}

/// The pool without a validation split of `count` frames chosen by `seed` (none when 0).
fn hold_out_validation(
    data: crate::experiment::source::LabelledStudy,
    count: usize,
    seed: u64,
) -> Result<(
    crate::experiment::source::LabelledStudy,
    Option<crate::model::data::FrameSet>,
)> {
    if count == 0 {
        return Ok((data, None));
    }
    let (data, validation) = data
        .split_validation(count, seed)
        .map_err(anyhow::Error::msg)?;
    Ok((data, Some(validation)))
}

/// `sula experiment --select`: the search of [`crate::experiment::select`] on the
/// validation split, written to `--out/selection.json`.
fn run_select(
    args: &ExperimentArgs,
    config: &LoopConfig,
    source: &DataSource,
    vae: &crate::model::vae::Vae,
    device: tch::Device,
    repeats: usize,
    started: Instant,
) -> Result<()> {
    let size = vae.config.size;
    let data = source.load_pool(size)?.label_test();
    let count = args.validation_for(data.pool.ids.len());
    let (data, validation) = hold_out_validation(data, count, args.seed)?;
    let Some(validation) = validation.filter(|v| !v.is_empty()) else {
        bail!("--select needs a validation split: pass --validation N with N ≥ 1");
    };
    let path = args.out.join("selection.json");
    if path.exists() {
        bail!("{} already exists; choose another --out", path.display());
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let pool = Pool::new(data.pool.ids, data.pool.set, data.fea, vae, device);
    let ctx = Context {
        vae,
        pool: &pool,
        test: &validation,
        device,
    };
    println!(
        "sula experiment --select: {} mode, sizes {:?}, {} repeats per setting, candidate pool {} frames, validation {} frames, {}",
        config.mode.name(),
        config.sizes,
        repeats,
        pool.len(),
        validation.len(),
        ComputeDevice::detect()
    );
    let selection = crate::experiment::select::select(
        config,
        repeats,
        &ctx,
        &mut |line| println!("  {line}"),
        &mut |_| Control::Continue,
    )?;
    let mut json = serde_json::to_value(&selection)?;
    json["wall_s"] = serde_json::json!(started.elapsed().as_secs_f64());
    crate::io::atomic::write_bytes(&path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    println!("chosen: {}", selection.reason);
    println!(
        "run it with: sula experiment --mode {} {}",
        config.mode.name(),
        flags(&selection.winner)
    );
    println!(
        "wrote {} in {:.0} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The command-line flags that give `config`'s step, variant, sizes and epochs per round.
/// They start from the paper's reading, as the search does, so that the chosen defaults
/// (which may switch on other variants) cannot add to them.
fn flags(config: &LoopConfig) -> String {
    let v = &config.variant;
    let sizes: Vec<String> = config.sizes.iter().map(usize::to_string).collect();
    let mut flags = vec![
        "--variant paper".to_string(),
        format!("--step {}", config.step),
        format!("--sizes {}", sizes.join(",")),
        format!("--epochs-per-round {}", config.epochs_per_round),
    ];
    if v.round_zero == RoundZero::Real {
        flags.push("--round-zero real".into());
    }
    if v.movers == Movers::HighestLoss {
        flags.push("--movers highest-loss".into());
    }
    if !v.chaining {
        flags.push("--no-chaining".into());
    }
    if v.snap_radius {
        flags.push("--snap-radius".into());
    }
    if v.trust_region {
        flags.push("--trust-region".into());
    }
    if v.random_direction {
        flags.push("--random-direction".into());
    }
    if config.generator == Generator::Fitted {
        flags.push("--generator fitted".into());
    }
    flags.join(" ")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExperimentArgs,
    }

    fn config_of(line: &str) -> LoopConfig {
        let words = std::iter::once("experiment").chain(line.split_whitespace());
        Cli::try_parse_from(words)
            .unwrap()
            .args
            .loop_config()
            .unwrap()
    }

    #[test]
    fn printed_flags_rebuild_the_winner_whatever_the_chosen_defaults() {
        for mode in [Mode::Si, Mode::Snn] {
            let base = config_of(&format!("--out x --mode {} --variant paper", mode.name()));
            let winners = [
                LoopConfig {
                    step: 0.25,
                    sizes: vec![40, 120, 200, 240],
                    epochs_per_round: 4,
                    variant: Variant {
                        movers: Movers::HighestLoss,
                        ..base.variant
                    },
                    ..base.clone()
                },
                LoopConfig {
                    step: 2.0,
                    variant: Variant {
                        round_zero: RoundZero::Real,
                        chaining: false,
                        snap_radius: true,
                        trust_region: true,
                        random_direction: true,
                        ..base.variant
                    },
                    generator: Generator::Fitted,
                    ..base.clone()
                },
                base.clone(),
            ];
            for winner in winners {
                let line = format!("--out x --mode {} {}", mode.name(), flags(&winner));
                assert_eq!(config_of(&line), winner, "{line}");
            }
        }
    }
}

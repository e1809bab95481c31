//! The adaptive-sampling study on tiny settings (32², tens of frames, one epoch per
//! round): `sula experiment` writes well-formed results in both modes and resumes; the
//! loop's invariants hold when driven through the library; `sula export` turns a finished
//! run into a dataset whose pixels and manifest match the run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use sula::data::dataset::Dataset;
use sula::experiment::results::read_csv;
use sula::experiment::run::read_rounds;
use sula::experiment::source::DataSource;
use sula::experiment::source::phantom_frames;
use sula::experiment::{ResultsFile, schedule};
use sula::export::collect::MovedRef;
use sula::export::{ExportManifest, SampleOrigin};
use sula::fea::FeaParams;
use sula::fea::stress_label;
use sula::model::checkpoint;
use sula::model::evaluate::{decode_latents, draw_latents, encode_posteriors};
use sula::sampling::pool::label_all;
use sula::sampling::{
    Arm, ArmRun, Context, LoopConfig, Mode, MovedSample, Normalisation, Origin, Pool,
};
use sula::sampling::{Generator, Movers, RoundZero, Variant};
use tch::Device;

mod common;

fn sula() -> Command {
    common::sula_command()
}

fn run_ok(command: &mut Command) -> String {
    let out = command.output().expect("sula runs");
    assert!(
        out.status.success(),
        "sula failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small VAE trained once at 32² on the phantom, shared by every test here.
fn vae_32() -> &'static Path {
    static VAE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = VAE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("phantom");
        let ckpt = dir.path().join("vae32.safetensors");
        run_ok(
            sula()
                .args([
                    "phantom", "--count", "200", "--size", "32", "--seed", "5", "--out",
                ])
                .arg(&data),
        );
        run_ok(
            sula()
                .args([
                    "train-vae",
                    "--size",
                    "32",
                    "--epochs",
                    "20",
                    "--device",
                    "cpu",
                    "--data",
                ])
                .arg(&data)
                .arg("--out")
                .arg(&ckpt),
        );
        (dir, ckpt)
    });
    path
}

fn tiny_study(out: &Path, mode: &str) -> Command {
    tiny_study_of_repeats(out, mode, 2)
}

fn tiny_study_of_repeats(out: &Path, mode: &str, repeats: usize) -> Command {
    let mut command = sula();
    command
        .args(["experiment", "--mode", mode, "--sizes", "6,12", "--repeats"])
        .arg(repeats.to_string())
        .args([
            "--epochs-per-round",
            "1",
            "--batch-size",
            "4",
            "--pool-count",
            "40",
        ])
        .args([
            "--test-count",
            "10",
            "--validation",
            "8",
            "--device",
            "cpu",
            "--vae",
        ])
        .arg(vae_32())
        .arg("--out")
        .arg(out);
    command
}

/// A finished tiny study per mode, run once and shared by the tests that read it.
fn finished_run(mode: &str) -> &'static Path {
    static RUNS: OnceLock<Vec<(&str, tempfile::TempDir, PathBuf)>> = OnceLock::new();
    let runs = RUNS.get_or_init(|| {
        ["si", "snn"]
            .into_iter()
            .map(|mode| {
                let dir = tempfile::tempdir().unwrap();
                let out = dir.path().join("results");
                run_ok(&mut tiny_study(&out, mode));
                (mode, dir, out)
            })
            .collect()
    });
    let (_, _, out) = runs.iter().find(|(m, _, _)| *m == mode).expect("si or snn");
    out
}

#[test]
fn tiny_study_writes_results_in_both_modes() {
    for mode in ["si", "snn"] {
        let out = finished_run(mode);
        let rows = read_csv(&out.join("results.csv")).unwrap();
        assert_eq!(rows.len(), 4 * 2 * 2, "{mode}: arms × repeats × sizes");
        for (arm, repeat) in schedule(&Arm::ALL, 2) {
            let sizes: Vec<usize> = rows
                .iter()
                .filter(|r| r.arm == arm && r.repeat == repeat)
                .map(|r| r.size)
                .collect();
            assert_eq!(sizes, [6, 12], "{mode} {arm:?} {repeat}");
        }
        for r in &rows {
            assert_eq!(r.mode.name(), mode);
            assert!(r.mse.is_finite() && r.mse > 0.0, "{r:?}");
            assert!((0.0..=1.0).contains(&r.accuracy), "{r:?}");
            assert!(r.wall_s > 0.0);
        }
        let json: ResultsFile =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        assert!(json.finished);
        let summary = json.summary.unwrap();
        assert_eq!(summary.arms.len(), 4);
        assert!(
            summary
                .arms
                .iter()
                .all(|a| a.points.len() == 2 && a.points[0].repeats == 2)
        );
        assert_eq!(json.config["loop"]["mode"], mode);
        assert!(
            json.provenance["device"]
                .as_str()
                .unwrap()
                .starts_with("CPU")
        );
        // MSE, accuracy and the paired-difference panel.
        let curves = image::open(out.join("curves.png")).unwrap();
        assert_eq!((curves.width(), curves.height()), (2000, 560));
        for arm in summary.arms.iter().filter(|a| a.arm != Arm::Baseline) {
            assert_eq!(arm.paired_differences.len(), 2, "{:?}", arm.arm);
            assert!(
                arm.paired_differences
                    .iter()
                    .all(|d| d.pairs == 2 && d.lower <= d.mean && d.mean <= d.upper)
            );
            assert_eq!(arm.label_savings.len(), 2);
        }
        // The pool strategies record the score of each frame they picked.
        for arm in ["core-set", "tta"] {
            let rounds: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(out.join(format!("rounds/{arm}_repeat0.json"))).unwrap(),
            )
            .unwrap();
            let scores = rounds[1]["scores"].as_array().unwrap();
            assert_eq!(scores.len(), 6, "{arm}: one score per added frame");
            assert!(scores.iter().all(|s| s.as_f64().unwrap() >= 0.0));
        }
        let rounds: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("rounds/adaptive_repeat1.json")).unwrap(),
        )
        .unwrap();
        let moved = rounds[1]["moved"].as_array().unwrap();
        assert!(!moved.is_empty(), "round 1 moves latent points");
        for m in moved {
            for field in [
                "z",
                "z_moved",
                "loss_before",
                "loss_moved",
                "gradient_norm",
                "nearest_real_id",
                "nearest_distance",
            ] {
                assert!(!m[field].is_null(), "{field} recorded");
            }
        }
    }
}

#[test]
fn resume_keeps_finished_rows_and_redoes_the_interrupted_arm() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    run_ok(&mut tiny_study(&out, "snn"));
    let complete = std::fs::read_to_string(out.join("results.csv")).unwrap();
    // Interrupted during the last arm: its second row never made it.
    let lines: Vec<&str> = complete.lines().collect();
    std::fs::write(
        out.join("results.csv"),
        lines[..lines.len() - 1].join("\n") + "\n",
    )
    .unwrap();
    let refused = tiny_study(&out, "snn").output().unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--resume"), "{message}");
    run_ok(tiny_study(&out, "snn").arg("--resume"));
    // CPU runs are deterministic: the redone arm gives the same numbers except its time.
    let strip_time = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(',').collect();
                f.remove(10);
                f.join(",")
            })
            .collect()
    };
    let resumed = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(strip_time(&resumed), strip_time(&complete));
    let other = tiny_study(&out, "snn")
        .args(["--resume", "--step", "3"])
        .output()
        .unwrap();
    assert!(
        !other.status.success(),
        "resuming with other settings is refused"
    );
}

/// The lines of a results.csv without the wall-time column, which no two runs share.
fn csv_without_time(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(10);
            f.join(",")
        })
        .collect()
}

#[test]
fn the_other_modes_pool_arms_are_merged_and_equal_a_run_of_their_own() {
    let (si, snn) = (finished_run("si"), finished_run("snn"));
    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("snn");
    let log = run_ok(tiny_study(&merged, "snn").arg("--merge").arg(si));
    assert!(
        log.contains("only its random, core-set and TTA arms are merged"),
        "{log}"
    );
    assert!(
        log.contains("adaptive repeat 0 size"),
        "SNN's own arm runs: {log}"
    );
    assert!(
        !log.contains("baseline repeat 0 size"),
        "random is not rerun: {log}"
    );
    // The merged pool arms are the rows SNN's own run gave them (CPU runs are
    // deterministic), and carry SNN's mode.
    let sorted = |path: &Path| {
        let mut rows = csv_without_time(&path.join("results.csv"));
        rows.sort();
        rows
    };
    assert_eq!(sorted(&merged), sorted(snn));
    // Settings the pool arms depend on must still agree.
    let other = tiny_study(&dir.path().join("other"), "snn")
        .args(["--seed", "9", "--merge"])
        .arg(si)
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("was written with other settings"),
        "{other:?}"
    );
}

#[test]
fn a_study_with_fewer_repeats_is_merged_into_one_with_more() {
    let complete = finished_run("si");
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one");
    run_ok(&mut tiny_study_of_repeats(&one, "si", 1));
    let merged = dir.path().join("two");
    let log = run_ok(tiny_study(&merged, "si").arg("--merge").arg(&one));
    assert!(!log.contains("repeat 0 size"), "repeat 0 is merged: {log}");
    assert!(
        log.contains("adaptive repeat 1 size"),
        "repeat 1 runs: {log}"
    );
    assert_eq!(
        csv_without_time(&merged.join("results.csv")),
        csv_without_time(&complete.join("results.csv"))
    );
    // The other way round, a study keeps only the repeats it has.
    let fewer = dir.path().join("fewer");
    let log = run_ok(
        tiny_study_of_repeats(&fewer, "si", 1)
            .arg("--merge")
            .arg(complete),
    );
    assert!(!log.contains("repeat 0 size"), "nothing is rerun: {log}");
    assert_eq!(
        csv_without_time(&fewer.join("results.csv")),
        csv_without_time(&one.join("results.csv"))
    );
}

#[test]
fn shards_merged_give_the_whole_study() {
    let complete = finished_run("si");
    let dir = tempfile::tempdir().unwrap();
    let shard = |index: usize| {
        let out = dir.path().join(format!("shard{index}"));
        run_ok(tiny_study(&out, "si").args(["--shard", &format!("{index}/2")]));
        let rows = read_csv(&out.join("results.csv")).unwrap();
        assert!(
            rows.iter().all(|r| r.repeat == index),
            "shard {index}/2 runs only its repeat"
        );
        let json: ResultsFile =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        assert!(!json.finished, "a shard alone is not the whole study");
        out
    };
    let (first, second) = (shard(0), shard(1));
    let merged = dir.path().join("merged");
    let output = tiny_study(&merged, "si")
        .arg("--merge")
        .args([&first, &second])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(!log.contains("repeat 0 size"), "nothing is rerun: {log}");
    // CPU runs are deterministic: the merged rows are the whole study's but for times.
    assert_eq!(
        csv_without_time(&merged.join("results.csv")),
        csv_without_time(&complete.join("results.csv"))
    );
    let summary = |path: &Path| {
        let json: ResultsFile =
            serde_json::from_str(&std::fs::read_to_string(path.join("results.json")).unwrap())
                .unwrap();
        assert!(json.finished);
        serde_json::to_value(json.summary.unwrap()).unwrap()
    };
    // The merged rows come from results.csv, written to six decimals.
    assert_close(&summary(&merged), &summary(complete), "summary");
    assert!(merged.join("rounds/tta_repeat1.json").exists());

    // A repeat split between processes that each run some of the arms merges into the
    // same study.
    let arm_groups: Vec<PathBuf> = ["adaptive,baseline", "core-set,tta"]
        .into_iter()
        .enumerate()
        .map(|(index, arms)| {
            let out = dir.path().join(format!("arms{index}"));
            run_ok(tiny_study(&out, "si").args(["--shard", "1/2", "--arms", arms]));
            out
        })
        .collect();
    let by_arm = dir.path().join("by-arm");
    let log = run_ok(
        tiny_study(&by_arm, "si")
            .arg("--merge")
            .arg(&first)
            .args(&arm_groups),
    );
    assert!(!log.contains("repeat 1 size"), "nothing is rerun: {log}");
    assert_eq!(
        csv_without_time(&by_arm.join("results.csv")),
        csv_without_time(&complete.join("results.csv"))
    );

    // Between leases: a shard whose last arm did not finish its repeat is gathered
    // without that repeat, and nothing is run.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    // It was also written while F still had an input blur, set to none: it reads as today's.
    let mut older: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(second.join("results.json")).unwrap())
            .unwrap();
    older["config"]["loop"]["regressor_input_blur"] = 0.0.into();
    std::fs::write(partial.join("results.json"), older.to_string()).unwrap();
    let csv = std::fs::read_to_string(second.join("results.csv")).unwrap();
    let unfinished: Vec<&str> = csv.lines().filter(|l| !l.starts_with("tta,")).collect();
    std::fs::write(partial.join("results.csv"), unfinished.join("\n") + "\n").unwrap();
    let gathered = dir.path().join("gathered");
    let log = run_ok(
        tiny_study(&gathered, "si")
            .arg("--gather-only")
            .arg("--merge")
            .args([&first, &partial]),
    );
    assert!(
        !log.contains("repeat 0 size") && !log.contains("repeat 1 size"),
        "nothing is run: {log}"
    );
    let rows = read_csv(&gathered.join("results.csv")).unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.repeat == 0),
        "only the repeat every arm finished is kept"
    );
    let json: ResultsFile =
        serde_json::from_str(&std::fs::read_to_string(gathered.join("results.json")).unwrap())
            .unwrap();
    assert!(!json.finished);
    assert_eq!(json.provenance["merged_from"].as_array().unwrap().len(), 2);
    let summary = json.summary.unwrap();
    assert!(
        summary
            .arms
            .iter()
            .flat_map(|arm| &arm.points)
            .all(|point| point.repeats == 1),
        "{summary:?}"
    );

    let twice = tiny_study(&dir.path().join("twice"), "si")
        .arg("--merge")
        .args([&first, &first])
        .output()
        .unwrap();
    assert!(!twice.status.success());
    let message = String::from_utf8_lossy(&twice.stderr);
    assert!(message.contains("merge each repeat once"), "{message}");
    let other = tiny_study(&dir.path().join("other"), "si")
        .args(["--epochs-per-round", "3", "--merge"])
        .arg(&first)
        .output()
        .unwrap();
    assert!(
        !other.status.success(),
        "merging a study of other settings is refused"
    );
    let fewer_arms = tiny_study(&dir.path().join("fewer"), "si")
        .args(["--arms", "adaptive,baseline", "--merge"])
        .arg(&first)
        .output()
        .unwrap();
    assert!(!fewer_arms.status.success());
    let message = String::from_utf8_lossy(&fewer_arms.stderr);
    assert!(
        message.contains("holds the core-set arm"),
        "merging arms this study does not run is refused, naming the arm: {message}"
    );
}

/// Equal JSON, numbers within a relative 1e-5.
fn assert_close(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0),
                "{at}: {x} ≠ {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_close(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (key, x) in x {
                assert_close(x, &y[key], &format!("{at}.{key}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// Runs `check` with a context over a pool and test set at 32² and the shared VAE.
/// Libtorch has one random generator per process. The tests that train in this process hold
/// this while they run, so each sees the stream its own seed starts rather than whatever a
/// test running beside it left.
fn torch_rng() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn with_context(check: impl FnOnce(&Context, &sula::model::data::FrameSet)) {
    let _rng = torch_rng();
    let (vs, vae, _) = checkpoint::load_vae(vae_32(), Device::Cpu, Some(32)).unwrap();
    let fea = FeaParams {
        pixel_mm: 9.0 / 32.0,
        ..FeaParams::default()
    };
    let pool = phantom_frames(32, 48, 11);
    let (test, _) = label_all(phantom_frames(32, 12, 12).set, &fea);
    let pool = Pool::new(pool.ids, pool.set, fea, &vae, Device::Cpu);
    let ctx = Context {
        vae: &vae,
        pool: &pool,
        test: &test,
        device: Device::Cpu,
    };
    check(&ctx, &test);
    drop(vs);
}

fn config(mode: Mode) -> LoopConfig {
    LoopConfig {
        mode,
        sizes: vec![8, 16, 24],
        epochs_per_round: 2,
        step: 1.0,
        normalisation: Normalisation::L2,
        batch_size: 4,
        learning_rate: 1e-3,
        regressor_width: 8,
        seed: 3,
        variant: Variant::default(),
        generator: Generator::default(),
    }
}

fn quiet(_: &sula::model::train::Progress) -> sula::model::train::Control {
    sula::model::train::Control::Continue
}

fn run_to_budget(arm: Arm, mode: Mode, ctx: &Context) -> ArmRun {
    let mut run = ArmRun::new(arm, &config(mode), 0, ctx).unwrap();
    while !run.is_finished() {
        run.step(ctx, &mut quiet).unwrap();
    }
    run
}

#[test]
fn snn_takes_each_pool_frame_once_and_never_a_test_frame() {
    with_context(|ctx, test| {
        let run = run_to_budget(Arm::Adaptive, Mode::Snn, ctx);
        let mut taken: Vec<usize> = run
            .members
            .iter()
            .map(|m| match m.origin {
                Origin::Pool(i) => i,
                Origin::Generated => panic!("SNN adds only real frames"),
            })
            .collect();
        assert_eq!(taken.len(), 24);
        taken.sort_unstable();
        taken.dedup();
        assert_eq!(taken.len(), 24, "a pool frame was taken twice");
        for image in &run.train.images {
            assert!(
                !test.images.contains(image),
                "a test frame entered training"
            );
        }
        // Each moved point's SNN pick is the nearest pool frame that was still unused.
        let round = &run.history[1];
        assert!(
            round
                .moved
                .iter()
                .all(|m| matches!(m.added, Some(Origin::Pool(i)) if i == m.nearest_real))
        );
    });
}

#[test]
fn moved_points_are_harder_and_both_arms_take_the_same_steps() {
    with_context(|ctx, _| {
        let adaptive = run_to_budget(Arm::Adaptive, Mode::Si, ctx);
        let baseline = run_to_budget(Arm::Baseline, Mode::Si, ctx);
        let moved: Vec<_> = adaptive.history.iter().flat_map(|r| &r.moved).collect();
        assert!(moved.len() >= 16);
        let before = moved.iter().map(|m| m.loss_before).sum::<f64>() / moved.len() as f64;
        let after = moved.iter().map(|m| m.loss_moved).sum::<f64>() / moved.len() as f64;
        assert!(
            after > before,
            "moving along the gradient raised the loss: {before} → {after}"
        );
        for m in &moved {
            let step: f32 =
                m.z.iter()
                    .zip(&m.z_moved)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt();
            assert!(
                (step - 1.0).abs() < 1e-3,
                "an L2-normalised step of η = 1 moved {step}"
            );
        }
        let sizes = |run: &ArmRun| {
            run.history
                .iter()
                .map(|r| (r.size, r.steps))
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(&adaptive), sizes(&baseline));
        assert_eq!(sizes(&adaptive), [(8, 4), (16, 12), (24, 24)]);
        assert!(
            baseline
                .members
                .iter()
                .all(|m| matches!(m.origin, Origin::Pool(_)))
        );
        assert!(
            adaptive
                .members
                .iter()
                .all(|m| m.origin == Origin::Generated)
        );
    });
}

/// The moved samples of the last round that joined the training set, by export id.
fn last_round_moved(run: &Path) -> Vec<(String, MovedSample)> {
    let mut joined = Vec::new();
    for repeat in 0..2 {
        let records = read_rounds(run, Arm::Adaptive, repeat).unwrap();
        let last = records.last().unwrap();
        for (index, m) in last.moved.iter().enumerate() {
            if m.added.is_some() {
                let at = MovedRef {
                    repeat,
                    round: last.round,
                    index,
                };
                joined.push((at.id(), m.clone()));
            }
        }
    }
    joined
}

#[test]
fn export_round_trips_through_sula_info_with_a_consistent_manifest() {
    let (vs, vae, _) = checkpoint::load_vae(vae_32(), Device::Cpu, Some(32)).unwrap();
    let pool = phantom_frames(32, 40, 1);
    // The tiny study's candidates: its 40 pool frames less the 8 held out by seed 1, whose
    // posteriors and residuals the pool generator decoded the run's samples with.
    let candidates = DataSource::Phantom {
        pool_count: 40,
        pool_seed: 1,
        test_count: 10,
        test_seed: 2,
    }
    .load_pool(32)
    .unwrap()
    .label_test()
    .split_validation(8, 1)
    .unwrap()
    .0;
    let run_pool = Pool::new(
        candidates.pool.ids,
        candidates.pool.set,
        candidates.fea,
        &vae,
        Device::Cpu,
    );
    for mode in ["si", "snn"] {
        let run = finished_run(mode);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("hard");
        let said = run_ok(
            sula()
                .args(["export", "--last", "1", "--device", "cpu", "--run"])
                .arg(run)
                .arg("--out")
                .arg(&out),
        );
        let expected = last_round_moved(run);
        assert!(!expected.is_empty());
        assert!(
            said.contains(&format!("exported {}", expected.len())),
            "{said}"
        );

        let info = run_ok(sula().arg("info").arg(&out));
        assert!(
            info.contains(&format!(
                "{0} ({0} annotated, 0 unannotated, {0} with stress maps)",
                expected.len()
            )),
            "{info}"
        );

        let manifest = ExportManifest::read(&out).unwrap();
        assert_eq!(manifest.samples.len(), expected.len(), "{mode}");
        assert_eq!(manifest.latent_dim, vae.config.latent_dim);
        let dataset = Dataset::open(&out, None).unwrap();
        let fea = FeaParams {
            pixel_mm: dataset.pixel_mm,
            ..FeaParams::default()
        };
        for (id, moved) in &expected {
            let entry = manifest.samples.iter().find(|e| &e.id == id).unwrap();
            assert_eq!(entry.latent, moved.z_moved);
            assert_eq!(entry.latent_original.as_ref(), Some(&moved.z));
            assert_eq!(entry.nearest_real_id, moved.nearest_real_id);
            assert_eq!(entry.nearest_distance, moved.nearest_distance);
            assert_eq!(entry.loss_kpa2, Some(moved.loss_moved));
            assert_eq!(entry.loss_before_kpa2, Some(moved.loss_before));
            assert_eq!(entry.gradient_norm, Some(moved.gradient_norm));
            assert_eq!(entry.round, Some(1));
            assert!(entry.projected.iter().all(|v| v.is_finite()));

            let index = dataset.frames.iter().position(|f| &f.id == id).unwrap();
            let frame = dataset.load(index, None).unwrap();
            let labels = frame.labels.unwrap();
            // The pixels are those the run trained on: the real frame (SNN) or G(z') (SI).
            let (image, truth) = match mode {
                "snn" => {
                    assert_eq!(entry.origin, SampleOrigin::Real);
                    assert_eq!(entry.pool_id.as_ref(), Some(&moved.nearest_real_id));
                    let i = pool
                        .ids
                        .iter()
                        .position(|p| p == &moved.nearest_real_id)
                        .unwrap();
                    (pool.set.images[i].clone(), pool.set.labels[i].clone())
                }
                _ => {
                    assert_eq!(entry.origin, SampleOrigin::Generated);
                    assert_eq!(entry.pool_id, None);
                    let decoded = run_pool
                        .decode(
                            &vae,
                            Generator::Pool,
                            std::slice::from_ref(&moved.z_moved),
                            Device::Cpu,
                        )
                        .unwrap()
                        .remove(0);
                    (decoded.image, decoded.labels)
                }
            };
            // The residual bank is computed from the pool in batches, whose float sums may
            // round differently in another process, so a pixel may land one grey level off.
            let off: Vec<u8> = frame
                .image
                .iter()
                .zip(&image)
                .map(|(a, b)| a.abs_diff(*b))
                .filter(|&d| d > 0)
                .collect();
            assert!(
                off.iter().all(|&d| d <= 1) && off.len() * 100 <= image.len(),
                "{mode} {id}: {} pixels off, by up to {:?}",
                off.len(),
                off.iter().max()
            );
            if mode == "si" {
                let speckled =
                    decode_latents(&vae, std::slice::from_ref(&moved.z_moved), Device::Cpu)
                        .unwrap()
                        .remove(0);
                assert_ne!(
                    frame.image, speckled.image,
                    "{id}: not the pool generator's"
                );
            }

            assert_eq!(labels, truth, "{mode} {id}");
            assert_eq!(frame.stress, stress_label(&labels, &fea), "{mode} {id}");
        }

        let csv = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        for field in [
            "id",
            "origin",
            "pool_id",
            "nearest_real_id",
            "nearest_distance",
            "x",
            "y",
            "round",
            "loss_kpa2",
            "gradient_norm",
            "z_0",
        ] {
            assert!(header.contains(&field), "manifest.csv has {field}");
        }
        let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), manifest.samples.len());
        for (row, entry) in rows.iter().zip(&manifest.samples) {
            assert_eq!(row.len(), header.len());
            assert_eq!(row[column("id")], entry.id);
            assert_eq!(row[column("nearest_real_id")], entry.nearest_real_id);
            let loss: f64 = row[column("loss_kpa2")].parse().unwrap();
            assert_eq!(Some(loss), entry.loss_kpa2);
            let z0: f32 = row[column("z_0")].parse().unwrap();
            assert_eq!(z0, entry.latent[0]);
        }

        let again = sula()
            .args(["export", "--device", "cpu", "--run"])
            .arg(run)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(!again.status.success());
        let message = String::from_utf8_lossy(&again.stderr);
        assert!(message.contains("already exists"), "{message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }
    drop(vs);
}

#[test]
fn export_names_what_is_wrong_with_its_arguments() {
    let run = finished_run("si");
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (vec!["--rounds", "9"], "none of the requested rounds ran"),
        (vec!["--repeats", "5"], "repeat 5 does not exist"),
        (vec!["--last", "0"], "--last must be at least 1"),
    ] {
        let failed = sula()
            .args(["export", "--device", "cpu", "--run"])
            .arg(run)
            .args(&args)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert!(!failed.status.success());
        let message = String::from_utf8_lossy(&failed.stderr);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    let missing = sula()
        .args(["export", "--run"])
        .arg(dir.path().join("nowhere"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(
        message.contains("nowhere") && message.contains("is not a folder"),
        "{message}"
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn an_image_only_vae_runs_snn_and_refuses_si_with_the_reason() {
    use sula::model::train::{self, LrSchedule, TrainConfig};
    use sula::model::vae::{Vae, VaeConfig};
    let fea = FeaParams {
        pixel_mm: 9.0 / 32.0,
        ..FeaParams::default()
    };
    let frames = phantom_frames(32, 48, 11);
    // The VAE sees the images only, as it would on an unannotated pool.
    let images = sula::model::data::FrameSet {
        labels: Vec::new(),
        stress: None,
        ..frames.set.clone()
    };
    let _rng = torch_rng();
    train::seed_torch(2);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let mut vae = Vae::new(
        &vs.root(),
        VaeConfig {
            latent_dim: 4,
            width: 8,
            prior_components: 2,
            labelled: false,
            ..VaeConfig::new(32)
        },
    );
    let training = TrainConfig {
        epochs: 1,
        batch_size: 8,
        learning_rate: 3e-3,
        seed: 2,
        schedule: LrSchedule::Constant,
        augment: false,
    };
    train::train_vae(&mut vae, &vs, &images, &training, &mut quiet).unwrap();
    let (test, _) = label_all(phantom_frames(32, 12, 12).set, &fea);
    let pool = Pool::new(frames.ids, frames.set, fea, &vae, Device::Cpu);
    let ctx = Context {
        vae: &vae,
        pool: &pool,
        test: &test,
        device: Device::Cpu,
    };
    let refused = ArmRun::new(Arm::Adaptive, &config(Mode::Si), 0, &ctx)
        .err()
        .expect("SI needs decoded label maps")
        .to_string();
    assert!(
        refused.contains("image-only") && refused.contains("SNN"),
        "{refused}"
    );
    let run = run_to_budget(Arm::Adaptive, Mode::Snn, &ctx);
    assert_eq!(run.members.len(), 24);
    assert!(run.history[1].moved.iter().all(|m| m.added.is_some()));
}

fn with_variant(mode: Mode, variant: Variant) -> LoopConfig {
    LoopConfig {
        variant,
        ..config(mode)
    }
}

fn run_config(arm: Arm, config: &LoopConfig, ctx: &Context) -> ArmRun {
    let mut run = ArmRun::new(arm, config, 0, ctx).unwrap();
    while !run.is_finished() {
        run.step(ctx, &mut quiet).unwrap();
    }
    run
}

#[test]
fn a_real_round_zero_takes_the_random_arms_frames_and_without_chaining_only_real_members_move() {
    with_context(|ctx, _| {
        let variant = Variant {
            round_zero: RoundZero::Real,
            chaining: false,
            ..Variant::default()
        };
        let config = with_variant(Mode::Si, variant);
        let adaptive = run_config(Arm::Adaptive, &config, ctx);
        let baseline = run_config(Arm::Baseline, &config, ctx);
        let round_zero = |run: &ArmRun| run.history[0].added.clone();
        assert!(
            round_zero(&adaptive)
                .iter()
                .all(|o| matches!(o, Origin::Pool(_)))
        );
        assert_eq!(round_zero(&adaptive), round_zero(&baseline));
        for round in &adaptive.history[1..] {
            assert!(
                round
                    .moved
                    .iter()
                    .all(|m| matches!(m.original_origin, Origin::Pool(_))),
                "a generated member moved without chaining"
            );
        }
        // SI with prior draws and no chaining has nothing real to move: refused.
        let refused = with_variant(
            Mode::Si,
            Variant {
                chaining: false,
                ..Variant::default()
            },
        );
        assert!(refused.validate().is_err());
    });
}

#[test]
fn the_random_direction_control_steps_eta_away_from_the_gradient() {
    with_context(|ctx, _| {
        let gradient = LoopConfig {
            step: 2.0,
            ..with_variant(Mode::Snn, Variant::default())
        };
        let random = LoopConfig {
            variant: Variant {
                random_direction: true,
                ..gradient.variant
            },
            ..gradient.clone()
        };
        let first_moves = |config: &LoopConfig| {
            let run = run_config(Arm::Adaptive, config, ctx);
            run.history[1].moved.clone()
        };
        let (along, control) = (first_moves(&gradient), first_moves(&random));
        assert!(!control.is_empty());
        assert_eq!(along.len(), control.len());
        let step = |m: &sula::sampling::MovedSample| -> Vec<f32> {
            m.z_moved.iter().zip(&m.z).map(|(a, b)| a - b).collect()
        };
        let mut cosines = Vec::new();
        for (g, r) in along.iter().zip(&control) {
            assert_eq!(g.z, r.z, "the same members move in both runs");
            assert!((r.step_taken - 2.0).abs() < 1e-3, "step {}", r.step_taken);
            let (a, b) = (step(g), step(r));
            let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            cosines.push(f64::from(dot / 4.0).abs());
        }
        let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
        assert!(
            mean < 0.5,
            "random steps are not the gradient's: mean |cos| {mean}"
        );
        assert_eq!(
            first_moves(&random)
                .iter()
                .map(|m| m.z_moved.clone())
                .collect::<Vec<_>>(),
            control
                .iter()
                .map(|m| m.z_moved.clone())
                .collect::<Vec<_>>(),
            "the control is seeded"
        );
    });
}

#[test]
fn the_trust_region_keeps_moved_points_near_real_embeddings() {
    with_context(|ctx, _| {
        let config = LoopConfig {
            step: 8.0,
            ..with_variant(
                Mode::Snn,
                Variant {
                    trust_region: true,
                    ..Variant::default()
                },
            )
        };
        let run = run_config(Arm::Adaptive, &config, ctx);
        let radius = ctx.pool.typical_spacing;
        let moved: Vec<_> = run.history.iter().flat_map(|r| &r.moved).collect();
        assert!(!moved.is_empty());
        for m in &moved {
            let (_, d) = ctx.pool.nearest(&m.z_moved, |_| true).unwrap();
            assert!(
                d <= radius * 1.0001,
                "z' at {d} from the pool, radius {radius}"
            );
            assert!(m.step_taken <= 8.0 + 1e-3);
        }
        assert!(
            moved.iter().any(|m| m.clipped),
            "a step of 8 should leave the region"
        );
    });
}

#[test]
fn the_snapping_radius_keeps_snaps_away_from_the_training_set() {
    with_context(|ctx, _| {
        let config = with_variant(
            Mode::Snn,
            Variant {
                snap_radius: true,
                ..Variant::default()
            },
        );
        let run = run_config(Arm::Adaptive, &config, ctx);
        let radius = ctx.pool.typical_spacing;
        for round in &run.history[1..] {
            let earlier: Vec<&Vec<f32>> = run
                .members
                .iter()
                .filter(|m| m.round < round.round)
                .map(|m| &m.latent)
                .collect();
            for m in &round.moved {
                let Some(Origin::Pool(i)) = m.added else {
                    panic!("SNN adds pool frames")
                };
                if m.outside_radius == Some(true) {
                    let e = &ctx.pool.embeddings[i];
                    assert!(
                        earlier
                            .iter()
                            .all(|z| sula::sampling::geometry::distance(e, z) > radius)
                    );
                } else {
                    assert_eq!(m.outside_radius, Some(false));
                }
            }
        }
    });
}

#[test]
fn highest_loss_moves_the_members_f_fits_worst() {
    with_context(|ctx, _| {
        let config = with_variant(
            Mode::Snn,
            Variant {
                movers: Movers::HighestLoss,
                ..Variant::default()
            },
        );
        let mut run = ArmRun::new(Arm::Adaptive, &config, 0, ctx).unwrap();
        run.step(ctx, &mut quiet).unwrap();
        let losses = run.member_losses(ctx);
        let mut ranked: Vec<usize> = (0..losses.len()).collect();
        ranked.sort_by(|a, b| losses[*b].total_cmp(&losses[*a]));
        run.step(ctx, &mut quiet).unwrap();
        let originals: Vec<usize> = run.history[1].moved.iter().map(|m| m.original).collect();
        assert_eq!(originals, ranked[..originals.len()]);
    });
}

#[test]
fn si_walks_on_when_a_round_moves_members_twice_and_never_trains_on_a_copy() {
    with_context(|ctx, _| {
        for movers in [Movers::Random, Movers::HighestLoss] {
            // k = 16 from 8 members: every member moves about twice in round 1.
            let config = LoopConfig {
                sizes: vec![8, 24, 40],
                ..with_variant(
                    Mode::Si,
                    Variant {
                        movers,
                        ..Variant::default()
                    },
                )
            };
            let run = run_config(Arm::Adaptive, &config, ctx);
            assert_eq!(run.members.len(), 40);
            let mut images = run.train.images.clone();
            images.sort_unstable();
            images.dedup();
            assert_eq!(images.len(), 40, "{movers:?}: a decoded sample was a copy");
            let moved = &run.history[1].moved;
            assert!(moved.iter().any(|m| m.walk_step >= 2));
            for m in moved {
                let earlier = moved
                    .iter()
                    .find(|e| e.original == m.original && e.walk_step + 1 == m.walk_step);
                match m.walk_step {
                    1 => assert_eq!(m.z, run.members[m.original].latent),
                    _ => assert_eq!(
                        Some(&m.z),
                        earlier.map(|e| &e.z_moved),
                        "a second move starts where the first ended"
                    ),
                }
            }
        }
    });
}

#[test]
fn every_arm_starts_from_the_same_real_frames_and_takes_the_same_steps() {
    with_context(|ctx, _| {
        let mut paired = config(Mode::Snn);
        paired.variant.round_zero = RoundZero::Real;
        let runs: Vec<ArmRun> = Arm::ALL
            .into_iter()
            .map(|arm| {
                let mut run = ArmRun::new(arm, &paired, 0, ctx).unwrap();
                while !run.is_finished() {
                    run.step(ctx, &mut quiet).unwrap();
                }
                run
            })
            .collect();
        let round_zero = |run: &ArmRun| -> Vec<Origin> { run.history[0].added.clone() };
        for run in &runs[1..] {
            assert_eq!(round_zero(run), round_zero(&runs[0]), "{:?}", run.arm);
            assert_eq!(run.steps(), runs[0].steps(), "{:?}", run.arm);
            assert_eq!(
                run.history[0].metrics, runs[0].history[0].metrics,
                "same F after round 0"
            );
        }
        // After round 0 they part: each strategy picks its own frames.
        let round_one = |arm: Arm| {
            runs.iter().find(|r| r.arm == arm).unwrap().history[1]
                .added
                .clone()
        };
        assert_ne!(round_one(Arm::CoreSet), round_one(Arm::Baseline));
        assert_ne!(round_one(Arm::Tta), round_one(Arm::CoreSet));
    });
}

#[test]
fn core_set_picks_the_frame_farthest_from_the_training_set() {
    with_context(|ctx, _| {
        let mut run = ArmRun::new(Arm::CoreSet, &config(Mode::Snn), 0, ctx).unwrap();
        run.step(ctx, &mut quiet).unwrap();
        let members: Vec<Vec<f32>> = run.members.iter().map(|m| m.latent.clone()).collect();
        let taken: Vec<usize> = run.history[0]
            .added
            .iter()
            .map(|o| match o {
                Origin::Pool(i) => *i,
                Origin::Generated => unreachable!(),
            })
            .collect();
        let spread = |i: usize| {
            members
                .iter()
                .map(|m| sula::sampling::geometry::distance(&ctx.pool.embeddings[i], m))
                .fold(f32::INFINITY, f32::min)
        };
        let farthest = (0..ctx.pool.len())
            .filter(|i| !taken.contains(i))
            .max_by(|&a, &b| spread(a).total_cmp(&spread(b)))
            .unwrap();
        run.step(ctx, &mut quiet).unwrap();
        let round = &run.history[1];
        assert_eq!(round.added[0], Origin::Pool(farthest));
        assert!((round.scores[0] - f64::from(spread(farthest))).abs() < 1e-5);
    });
}

#[test]
fn tta_picks_the_frames_whose_prediction_varies_most() {
    with_context(|ctx, _| {
        let mut run = ArmRun::new(Arm::Tta, &config(Mode::Snn), 0, ctx).unwrap();
        run.step(ctx, &mut quiet).unwrap();
        let used: Vec<usize> = run
            .members
            .iter()
            .map(|m| match m.origin {
                Origin::Pool(i) => i,
                Origin::Generated => unreachable!(),
            })
            .collect();
        let unused: Vec<usize> = (0..ctx.pool.len()).filter(|i| !used.contains(i)).collect();
        let variance = run.tta_variance(ctx, &unused);
        let mut ranked: Vec<(usize, f64)> = unused.into_iter().zip(variance).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        run.step(ctx, &mut quiet).unwrap();
        let round = &run.history[1];
        let expected: Vec<Origin> = ranked[..8].iter().map(|&(i, _)| Origin::Pool(i)).collect();
        assert_eq!(round.added, expected);
        assert!(round.scores.windows(2).all(|w| w[0] >= w[1]));
        assert!(round.scores[0] > 0.0);
    });
}

/// `sula experiment` on a dataset folder with a separate test folder, tiny settings.
fn folder_study(pool: &Path, test: &Path, out: &Path, extra: &[&str]) -> String {
    run_ok(
        sula()
            .args([
                "experiment",
                "--mode",
                "snn",
                "--sizes",
                "6,12",
                "--repeats",
                "1",
            ])
            .args([
                "--epochs-per-round",
                "1",
                "--batch-size",
                "4",
                "--validation",
                "8",
            ])
            .args(["--device", "cpu", "--data"])
            .arg(pool)
            .arg("--test")
            .arg(test)
            .arg("--vae")
            .arg(vae_32())
            .arg("--out")
            .arg(out)
            .args(extra),
    )
}

#[test]
fn selection_is_made_on_validation_and_never_reads_the_test_set() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, test) = (dir.path().join("pool"), dir.path().join("test"));
    for (folder, count, seed) in [(&pool, "40", "11"), (&test, "12", "12")] {
        run_ok(
            sula()
                .args(["phantom", "--count", count, "--size", "32", "--seed", seed])
                .args(["--with-stress", "--out"])
                .arg(folder),
        );
    }
    let selection = |name: &str| -> serde_json::Value {
        let out = dir.path().join(name);
        let text = folder_study(&pool, &test, &out, &["--select"]);
        assert!(text.contains("run it with: sula experiment"), "{text}");
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("selection.json")).unwrap())
                .unwrap();
        json.as_object_mut().unwrap().remove("wall_s");
        json
    };
    let test_mse = |name: &str| -> Vec<f64> {
        let out = dir.path().join(name);
        folder_study(&pool, &test, &out, &["--arms", "baseline"]);
        read_csv(&out.join("results.csv"))
            .unwrap()
            .iter()
            .map(|r| r.mse)
            .collect()
    };
    let before = selection("select_before");
    let reported_before = test_mse("study_before");
    assert_eq!(before["validation_frames"], 8);
    let trials = before["stages"][0]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 5, "every η of the grid is tried");
    assert!(
        trials
            .iter()
            .all(|t| t["mean"].as_f64().unwrap().is_finite())
    );

    // Poison the test labels: every test frame gets another frame's stress map.
    let stress = test.join("stress");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&stress)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let contents: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    for (k, file) in files.iter().enumerate() {
        std::fs::write(file, &contents[(k + 1) % contents.len()]).unwrap();
    }
    let reported_after = test_mse("study_after");
    assert_ne!(
        reported_before, reported_after,
        "the poisoning changes what the test set reports"
    );
    // But not the selection: the same trials, kept settings and winner, and the same
    // validation scores (to float rounding, which libtorch's threads may reorder under
    // load).
    let after = selection("select_after");
    assert_eq!(after["winner"], before["winner"], "the same winner");
    let stages = |json: &serde_json::Value| -> Vec<(String, Vec<(String, f64)>)> {
        json["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|stage| {
                let trials = stage["trials"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| {
                        let label = t["label"].as_str().unwrap().to_string();
                        (label, t["mean"].as_f64().unwrap_or(f64::INFINITY))
                    })
                    .collect();
                (stage["kept"].as_str().unwrap().to_string(), trials)
            })
            .collect()
    };
    let (old, new) = (stages(&before), stages(&after));
    assert_eq!(old.len(), new.len());
    for ((kept_before, trials_before), (kept_after, trials_after)) in old.iter().zip(&new) {
        assert_eq!(kept_before, kept_after);
        for ((label, a), (label_after, b)) in trials_before.iter().zip(trials_after) {
            assert_eq!(label, label_after);
            assert!(
                (a - b).abs() <= 1e-3 * a.abs().max(1.0),
                "{label}: {a} before, {b} after poisoning the test set"
            );
        }
    }
}

#[test]
fn the_pool_generator_draws_round_pool_codes_and_the_loop_trains_on_its_decoded_images() {
    with_context(|ctx, _| {
        let posteriors = encode_posteriors(ctx.vae, &ctx.pool.frames, Device::Cpu);
        // Within 10 posterior spreads of some pool frame's code (a 32-dimensional standard
        // normal draw has norm 5.7 ± 0.7).
        let near_a_code = |z: &Vec<f32>| {
            posteriors.iter().any(|(mu, sigma)| {
                let d: f32 = z
                    .iter()
                    .zip(mu.iter().zip(sigma))
                    .map(|(z, (m, s))| ((z - m) / s).powi(2))
                    .sum();
                d.sqrt() < 10.0
            })
        };
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let pooled = ctx.pool.draw(ctx.vae, Generator::Pool, 100, &mut rng);
        let fitted = ctx.pool.draw(ctx.vae, Generator::Fitted, 100, &mut rng);
        assert!(pooled.iter().all(near_a_code));
        // Exactly the draws of the pool's aggregate posterior, not the VAE's fitted prior.
        let aggregate = sula::model::prior::LatentPrior::from_posteriors(&posteriors).unwrap();
        let mut same = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        assert_eq!(pooled, draw_latents(&aggregate, 100, &mut same));
        assert_ne!(pooled, fitted);

        // One image per point, whatever else is decoded with it; the noise is the pool's,
        // not the Gaussian speckle; the label map is the decoder's either way.
        let decode = |generator, points: &[Vec<f32>]| {
            ctx.pool
                .decode(ctx.vae, generator, points, Device::Cpu)
                .unwrap()
        };
        let together = decode(Generator::Pool, &pooled[..6]);
        let reversed: Vec<Vec<f32>> = pooled[..6].iter().rev().cloned().collect();
        let apart = decode(Generator::Pool, &reversed);
        let speckled = decode(Generator::Fitted, &pooled[..6]);
        for (i, sample) in together.iter().enumerate() {
            assert_eq!(sample.image, apart[5 - i].image);
            assert_eq!(sample.labels, speckled[i].labels);
            assert_ne!(sample.image, speckled[i].image);
        }

        // SI trains on exactly those images, and the run records the generator.
        let run = run_config(Arm::Adaptive, &config(Mode::Si), ctx);
        assert_eq!(run.config.generator, Generator::Pool);
        let generated: Vec<usize> = (0..run.members.len())
            .filter(|&i| run.members[i].origin == Origin::Generated)
            .collect();
        assert!(generated.len() >= 16);
        let latents: Vec<Vec<f32>> = generated
            .iter()
            .map(|&i| run.members[i].latent.clone())
            .collect();
        for (&i, sample) in generated.iter().zip(decode(Generator::Pool, &latents)) {
            assert_eq!(run.train.images[i], sample.image);
        }
    });
}

#[test]
fn studies_recorded_before_the_generator_option_read_as_the_fitted_one() {
    let mut json = serde_json::to_value(config(Mode::Si)).unwrap();
    assert_eq!(json["generator"], "pool");
    json.as_object_mut().unwrap().remove("generator");
    let older: LoopConfig = serde_json::from_value(json).unwrap();
    assert_eq!(older.generator, Generator::Fitted);
}

#[test]
fn a_study_run_with_f_input_blur_is_refused_naming_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let settings = serde_json::json!({
        "config": {"loop": {"regressor_input_blur": 1.5}},
        "provenance": {},
        "finished": true,
        "summary": null,
    });
    std::fs::write(dir.path().join("results.json"), settings.to_string()).unwrap();
    let refused = sula::experiment::run::StudySettings::read(dir.path())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("results.json"), "{refused}");
    assert!(refused.contains("input blur"), "{refused}");
    assert!(
        refused.contains(sula::model::checkpoint::RETIRED_VARIANTS_TAG),
        "{refused}"
    );
}

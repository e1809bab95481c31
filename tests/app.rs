//! The desktop app driven through egui_kittest with the real worker on tiny settings
//! (32², 40 pool frames, a 2-epoch VAE), exports included. Every wait polls a condition on the app's state
//! with a deadline; queries go by accessible label.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use sula::app::{
    DataSettings, ProjectSettings, Settings, Stage1Settings, Stage2Settings, SulaApp, Workspace,
};
use sula::data::dataset::Dataset;
use sula::export::{ExportManifest, SampleOrigin};
use sula::sampling::Mode;
use sula::worker::{Command, FrameState};

/// The tests of this file one at a time: libtorch's random generator is global to the
/// process, so a study's rows depend on no other test training at the same moment (the
/// app has one worker; here every test has its own).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn tiny_settings() -> Settings {
    Settings {
        data: DataSettings {
            size: 32,
            phantom_pool: 40,
            phantom_test: 10,
            ..DataSettings::default()
        },
        stage1: Stage1Settings {
            vae_epochs: 2,
            latent_dim: 8,
        },
        stage2: Stage2Settings {
            mode: Mode::Snn,
            n0: 4,
            k: 4,
            budget: 12,
            epochs_per_round: 1,
            save_runs: false,
            ..Stage2Settings::default()
        },
        ..Settings::default()
    }
}

fn harness() -> Harness<'static, SulaApp> {
    Harness::builder()
        .with_size(egui::vec2(1600.0, 1000.0))
        .build_eframe(|cc| SulaApp::with_settings(&cc.egui_ctx, tiny_settings()))
}

/// Steps the UI until `done` holds, failing after two minutes.
fn wait_until(harness: &mut Harness<'_, SulaApp>, what: &str, done: impl Fn(&SulaApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(harness.state()) {
        if Instant::now() >= deadline {
            let v = &harness.state().shared;
            panic!(
                "timed out waiting for {what}: busy {}, progress {:?}, notice {:?}, errors {:?}",
                v.busy, v.progress, v.notice, v.errors
            );
        }
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.step();
}

/// Runs the sula binary built for these tests; fails with its stderr unless it succeeds.
fn run_sula(command: &mut std::process::Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn idle(app: &SulaApp) -> bool {
    !app.shared.busy
}

fn with_vae() -> Harness<'static, SulaApp> {
    let mut h = harness();
    wait_until(&mut h, "the phantom", |a| a.data.name.is_some() && idle(a));
    h.get_by_label("Train VAE").click();
    h.step();
    wait_until(&mut h, "the VAE and the latent scatter", |a| {
        !a.shared.points.is_empty() && idle(a)
    });
    h
}

#[test]
fn opens_on_the_phantom_with_the_device_badge() {
    let _serial = serial();
    let mut h = harness();
    wait_until(&mut h, "the phantom", |a| a.data.name.is_some());
    h.get_by_label(&sula::device::ComputeDevice::detect().to_string());
    h.get_by_label("phantom (seed 1)");
    h.get_by_label_contains("40 pool frames, 10 test frames");
}

#[test]
fn a_mode_switch_takes_that_modes_chosen_setting_and_the_paper_button_its_reading() {
    let _serial = serial();
    use sula::sampling::{Setting, chosen};
    let mut h = harness();
    wait_until(&mut h, "the phantom", |a| a.data.name.is_some());
    h.get_by_label("SI").click();
    h.step();
    let s = &h.state().stage2.settings;
    assert_eq!(s.mode, Mode::Si);
    assert_eq!((s.step, s.k), (chosen(Mode::Si).step, 40));
    assert_eq!(s.variant, chosen(Mode::Si).variant);

    h.get_by_label("Variant of the method").click();
    h.step();
    h.get_by_label("paper's reading").click();
    h.step();
    let s = &h.state().stage2.settings;
    assert_eq!((s.step, s.k, s.variant), (1.0, 40, Setting::PAPER.variant));

    h.get_by_label("SNN").click();
    h.step();
    let s = &h.state().stage2.settings;
    assert_eq!((s.step, s.k), (chosen(Mode::Snn).step, 40));
    assert_eq!(s.variant, chosen(Mode::Snn).variant);
    assert_eq!(
        s.n0, 4,
        "a mode switch leaves the rest of the protocol alone"
    );
}

#[test]
fn training_the_vae_draws_a_loss_curve_and_the_latent_scatter() {
    let _serial = serial();
    let h = with_vae();
    let app = h.state();
    assert!(
        app.stage1.losses.len() >= 2,
        "one loss point per batch or epoch"
    );
    assert_eq!(
        app.shared.points.len(),
        40,
        "every pool frame is in the latent view"
    );
    assert!(
        app.stage1
            .origin
            .as_deref()
            .unwrap()
            .contains("trained here")
    );
    h.get_by_label("Save VAE…");
    h.get_by_label_contains("PCA of the pool's encoder means");
}

#[test]
fn stepping_draws_arrows_and_sample_rows_with_stress() {
    let _serial = serial();
    let mut h = with_vae();
    // Compare with the pool strategies too: four arms per round.
    h.get_by_label("core-set").click();
    h.get_by_label("TTA").click();
    h.step();
    assert!(h.state().stage2.settings.core_set && h.state().stage2.settings.tta);
    h.get_by_label("Step").click();
    h.step();
    wait_until(&mut h, "round 0", |a| a.curves.rows.len() == 4 && idle(a));
    assert!(h.state().latent.arrows.is_empty(), "round 0 moves nothing");
    let status = h.state().shared.progress.clone().map(|(what, _, _)| what);
    assert_eq!(
        status.as_deref(),
        Some("Round 0 done: press Step or Run"),
        "the bar says the round is done, not the arm that trained last"
    );
    // Space is the step shortcut, also right after a click on a checkbox (which then
    // has the focus, and must not take the Space as a click of its own).
    h.get_by_label("teaching mode").click();
    h.step();
    h.key_press(egui::Key::Space);
    h.step();
    wait_until(&mut h, "round 1", |a| a.curves.rows.len() == 8 && idle(a));
    assert!(
        h.state().teaching.settings.enabled,
        "Space did not toggle the checkbox"
    );
    let app = h.state();
    assert_eq!(app.latent.arrows.len(), 4, "k = 4 points moved");
    assert_eq!(app.latent.training.len(), 8);
    assert!(!app.samples.pairs.is_empty());
    for (original, moved) in &app.samples.pairs {
        assert!(original.stress.is_some() && moved.stress.is_some());
        assert!(moved.prediction.is_some());
    }
    assert!(h.get_all_by_label_contains("original #").count() >= 1);
    // The results table lists every arm, with the paired difference and label savings.
    h.get_by_label("− random [95 % CI]");
    h.get_by_label("labels for random's MSE");
    for arm in ["adaptive", "baseline", "core-set", "tta"] {
        assert!(
            h.get_all_by_label(arm).count() >= 2,
            "{arm}: a row per size"
        );
    }
    // The latent view colours the pool by the arm that chose each frame.
    let chosen = &h.state().latent.chosen;
    assert_eq!(chosen.len(), 4);
    for (arm, frames) in chosen {
        assert_eq!(frames.len(), 8, "{arm:?}: 8 real frames in SNN mode");
        assert!(frames.iter().any(|&(_, round)| round == 1));
    }
    h.get_by_label("chosen by arm").click();
    h.step();
    assert_eq!(
        h.state().latent.settings.color_by,
        sula::app::latent_view::ColorBy::ChosenBy
    );
    // Teaching mode captions what the round did.
    h.state_mut().teaching.settings.enabled = true;
    h.step();
    h.get_by_label_contains("Round 1:");
    h.get_by_label_contains("Press Space for the next round");
}

#[test]
fn cancel_stops_a_run() {
    let _serial = serial();
    let mut h = with_vae();
    h.state_mut().stage2.settings.epochs_per_round = 500;
    h.get_by_label("Run").click();
    h.step();
    wait_until(&mut h, "training to start", |a| {
        a.shared.progress.as_ref().is_some_and(|(_, f, _)| *f > 0.0)
    });
    h.get_by_label("Cancel").click();
    h.step();
    let cancelled = |a: &SulaApp| {
        a.shared
            .progress
            .as_ref()
            .is_some_and(|(w, _, _)| w.starts_with("Cancelled"))
    };
    wait_until(&mut h, "the run to stop", |a| cancelled(a) && idle(a));
    let (what, _, _) = h.state().shared.progress.clone().unwrap();
    assert!(what.starts_with("Cancelled"), "{what}");
    assert!(h.state().curves.rows.is_empty(), "no round finished");
}

#[test]
fn a_bad_folder_is_reported_and_the_app_keeps_working() {
    let _serial = serial();
    let mut h = harness();
    wait_until(&mut h, "the phantom", |a| a.data.name.is_some() && idle(a));
    h.state_mut().open_folder("/nonexistent/ivus".into());
    wait_until(&mut h, "the error", |a| {
        !a.shared.errors.is_empty() && idle(a)
    });
    h.get_by_label_contains("/nonexistent/ivus");
    h.get_by_label("Generate phantom").click();
    h.step();
    wait_until(&mut h, "the phantom again", |a| {
        a.data.name.is_some() && idle(a)
    });
    h.get_by_label("Train VAE");
}

#[test]
fn a_worker_panic_is_reported_and_the_app_starts_again() {
    let _serial = serial();
    let mut h = harness();
    wait_until(&mut h, "the phantom", |a| a.data.name.is_some() && idle(a));
    h.state().send(Command::Crash);
    wait_until(&mut h, "the crash report", |a| !a.shared.errors.is_empty());
    h.get_by_label_contains("the worker crashed");
    h.get_by_label("Generate phantom").click();
    h.step();
    wait_until(&mut h, "the phantom after the crash", |a| {
        a.data.name.is_some() && idle(a)
    });
    h.get_by_label("Train VAE").click();
    h.step();
    wait_until(&mut h, "a VAE after the crash", |a| {
        !a.shared.points.is_empty() && idle(a)
    });
}

/// Exports to `out` through the button `button`, waiting for the worker's answer.
fn export_via(h: &mut Harness<'_, SulaApp>, button: &str, out: &std::path::Path) {
    let target = out.to_path_buf();
    h.state_mut().export.choose_folder = Box::new(move || Some(target.clone()));
    h.state_mut().shared.notice = None;
    h.get_by_label(button).click();
    h.step();
    wait_until(h, "the export", |a| {
        idle(a) && (a.shared.notice.is_some() || !a.shared.errors.is_empty())
    });
}

/// Shift+drags from near the latent plot's bottom-right corner to near its top-left one.
fn box_select_everything(h: &mut Harness<'_, SulaApp>) {
    let above = h
        .get_by_label_contains("PCA of the pool's encoder means")
        .rect();
    let below = h.get_by_label_contains("Selected:").rect();
    let from = egui::pos2(above.right() - 30.0, below.top() - 90.0);
    let to = egui::pos2(above.left() + 60.0, above.bottom() + 20.0);
    let button = |pos, pressed| egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::SHIFT,
    };
    h.event(egui::Event::ModifiersChanged(egui::Modifiers::SHIFT));
    h.hover_at(from);
    h.step();
    h.event(button(from, true));
    h.step();
    for i in 1..=10 {
        h.hover_at(from.lerp(to, i as f32 / 10.0));
        h.step();
    }
    h.event(button(to, false));
    h.step();
    h.event(egui::Event::ModifiersChanged(egui::Modifiers::NONE));
    h.step();
}

#[test]
fn rounds_and_selections_export_to_datasets_and_the_run_is_saved() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut h = with_vae();
    h.state_mut().stage2.settings.save_runs = true;
    h.state_mut().stage2.settings.runs_dir = Some(dir.path().join("runs"));
    for rows in [2, 4] {
        h.get_by_label("Step").click();
        h.step();
        wait_until(&mut h, "a round", |a| {
            a.curves.rows.len() == rows && idle(a)
        });
    }
    let run = h
        .state()
        .stage2
        .run_folder
        .clone()
        .expect("the study has a run folder");
    assert!(run.starts_with(dir.path().join("runs")));
    for file in [
        "results.json",
        "results.csv",
        "vae.safetensors",
        "rounds/adaptive_repeat0.json",
    ] {
        assert!(run.join(file).is_file(), "{file} in the run folder");
    }

    // The last round's moved samples (SNN: the real frames that joined).
    let rounds = dir.path().join("rounds_export");
    export_via(&mut h, "Export rounds…", &rounds);
    assert!(
        h.state().shared.errors.is_empty(),
        "{:?}",
        h.state().shared.errors
    );
    h.get_by_label_contains("Exported 4 samples");
    let manifest = ExportManifest::read(&rounds).unwrap();
    assert_eq!(manifest.samples.len(), 4, "k = 4 moved samples in round 1");
    assert!(
        manifest
            .samples
            .iter()
            .all(|e| e.round == Some(1) && e.origin == SampleOrigin::Real)
    );
    assert_eq!(Dataset::open(&rounds, None).unwrap().frames.len(), 4);

    // Shift+drag over (nearly) the whole plot selects the pool frames and this round's
    // moved points inside the box.
    box_select_everything(&mut h);
    let (selected, moved) = {
        let selection = &h.state().latent.selection;
        (selection.pool.clone(), selection.moved.clone())
    };
    assert!(
        selected.len() >= 30,
        "{} pool frames in the box",
        selected.len()
    );
    assert!(!moved.is_empty(), "moved points in the box");
    let arrows = &h.state().latent.arrows;
    assert!(
        moved
            .iter()
            .all(|at| arrows.iter().any(|a| a.at == *at && a.joined))
    );
    h.get_by_label(&format!(
        "Selected: {} pool frames, {} moved samples",
        selected.len(),
        moved.len()
    ));
    let picked = dir.path().join("picked");
    export_via(&mut h, "Export selection…", &picked);
    let manifest = ExportManifest::read(&picked).unwrap();
    assert_eq!(manifest.samples.len(), selected.len() + moved.len());
    let ids: Vec<&str> = manifest.samples.iter().map(|e| e.id.as_str()).collect();
    for at in &moved {
        assert!(ids.contains(&at.id().as_str()), "{ids:?}");
    }
    for &i in &selected {
        let pool_id = &h.state().shared.points[i].id;
        let entry = manifest
            .samples
            .iter()
            .find(|e| e.pool_id.as_ref() == Some(pool_id) && e.id.starts_with("pool_"))
            .unwrap();
        assert!(entry.loss_kpa2.is_some() && entry.gradient_norm.is_some());
        assert_eq!(entry.latent, h.state().shared.points[i].latent);
    }

    // The same folder again is refused, and what is there stays.
    export_via(&mut h, "Export selection…", &picked);
    assert!(
        h.state()
            .shared
            .errors
            .iter()
            .any(|e| e.contains("already exists")),
        "{:?}",
        h.state().shared.errors
    );
    assert_eq!(
        ExportManifest::read(&picked).unwrap().samples.len(),
        selected.len() + moved.len()
    );

    // The saved run exports headlessly too.
    let headless = dir.path().join("headless");
    run_sula(
        std::process::Command::new(env!("CARGO_BIN_EXE_sula"))
            .args(["export", "--device", "cpu", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&headless),
    );
    let from_disk = ExportManifest::read(&headless).unwrap();
    let from_app = ExportManifest::read(&rounds).unwrap();
    let key = |m: &ExportManifest| {
        let mut v: Vec<(String, Option<String>)> = m
            .samples
            .iter()
            .map(|e| (e.id.clone(), e.pool_id.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&from_disk), key(&from_app));
}

#[test]
fn a_pullback_goes_through_suggest_annotate_and_import_in_the_app() {
    let _serial = serial();
    use sula::data::mask::write_mask;
    use sula::data::phantom::{PhantomConfig, generate};
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1600.0, 1000.0))
        .build_eframe(|cc| {
            SulaApp::with_settings(
                &cc.egui_ctx,
                Settings {
                    project: ProjectSettings {
                        project_vae_epochs: 1,
                        import_epochs: 1,
                        suggest_count: 3,
                    },
                    ..tiny_settings()
                },
            )
        });
    wait_until(&mut h, "the phantom", |a| a.data.name.is_some() && idle(a));
    let pullback = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/dicom/pullback/phantom.dcm");
    let project = dir.path().join("project");
    h.state_mut().new_project(pullback, project.clone());
    wait_until(&mut h, "the project", |a| {
        a.project.open.is_some() && idle(a)
    });
    assert_eq!(
        h.state().shared.points.len(),
        24,
        "every pullback frame is in the latent view"
    );
    h.get_by_label_contains("24 frames: 0 annotated");
    h.get_by_label("Suggest frames to annotate…");

    let batch = dir.path().join("batch");
    h.state_mut().suggest_frames(batch.clone());
    wait_until(&mut h, "the batch", |a| {
        a.project.open.as_ref().is_some_and(|p| p.pending == 3) && idle(a)
    });
    // The annotator draws the frames' true label maps.
    let manifest = ExportManifest::read(&batch).unwrap();
    for sample in &manifest.samples {
        let pool_id = sample.pool_id.clone().unwrap();
        let index: u64 = pool_id.rsplit('/').next().unwrap().parse().unwrap();
        let labels = generate(&PhantomConfig::new(64), 7, index).labels;
        write_mask(&batch.join(format!("masks/{}.png", sample.id)), &labels).unwrap();
    }
    h.state_mut().import_annotations(batch);
    wait_until(&mut h, "the import", |a| {
        a.project.open.as_ref().is_some_and(|p| p.annotated == 3) && idle(a)
    });
    assert!(
        h.state().shared.errors.is_empty(),
        "{:?}",
        h.state().shared.errors
    );
    h.get_by_label("Project rounds");
    // The rounds table's strategy; the study's controls (with a checkbox of that name) are
    // not shown on a project.
    assert_eq!(h.get_all_by_label("core-set").count(), 1);
    assert_eq!(h.state().workspace, Workspace::Project);
    h.get_by_label("Stage 2 · annotation loop");
    assert!(h.query_by_label("Stage 2 · adaptive sampling").is_none());
    let origin = h.state().stage1.origin.clone().unwrap();
    assert!(origin.contains("project's image-only VAE"), "{origin}");
    assert_eq!(h.state().stage1.reconstructions.len(), 4);

    // Samples: the imported frames with the FEA's stress and F's prediction.
    let open = h.state().project.open.clone().unwrap();
    assert_eq!(open.imported_samples.len(), 3);
    assert!(
        open.imported_samples
            .iter()
            .all(|s| s.stress.is_some() && s.prediction.is_some())
    );
    h.get_by_label("Last import");

    // Round 1 by the gradient: its arrows, the frames' states, F's predictions on the
    // frames out for annotation.
    h.state_mut().suggest_frames(dir.path().join("batch2"));
    wait_until(&mut h, "the gradient batch", |a| {
        a.project.open.as_ref().is_some_and(|p| p.pending == 3) && idle(a)
    });
    let open = h.state().project.open.clone().unwrap();
    assert_eq!(open.arrows.len(), 3);
    let count = |state| open.states.iter().filter(|s| **s == state).count();
    assert_eq!(count(FrameState::Annotated), 3);
    assert_eq!(count(FrameState::Suggested), 3);
    assert_eq!(count(FrameState::Pool), 18);
    assert!(
        open.suggested_samples
            .iter()
            .all(|s| s.stress.is_none() && s.prediction.is_some())
    );
    h.get_by_label("Out for annotation");
    h.get_by_label("gradient step z to z'");

    // Retraining the VAE on the pool switches the project to the new one.
    h.get_by_label("Retrain on the pool").click();
    h.step();
    wait_until(&mut h, "the retrained VAE", |a| {
        a.stage1
            .origin
            .as_ref()
            .is_some_and(|o| o.contains("state-"))
            && idle(a)
    });
    assert_eq!(h.state().shared.points.len(), 24);
    assert!(
        h.state().shared.errors.is_empty(),
        "{:?}",
        h.state().shared.errors
    );

    // Back to the study: the phantom, no project in any panel (and at 32² no VAE until
    // one is trained: the project's was never the study's).
    h.state_mut().switch_to(Workspace::Study);
    wait_until(&mut h, "the study's data", |a| {
        a.data.name.as_ref().is_some_and(|n| n.contains("phantom")) && idle(a)
    });
    assert!(h.state().project.open.is_none());
    assert!(h.state().stage1.origin.is_none() && h.state().shared.points.is_empty());
    h.get_by_label("Stage 2 · adaptive sampling");
    drop(h);

    // `sula app --project P` starts on the project and never generates the phantom.
    let mut h = Harness::builder()
        .with_size(egui::vec2(1600.0, 1000.0))
        .build_eframe(|cc| SulaApp::on_project(&cc.egui_ctx, tiny_settings(), project.clone()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(h.state().project.open.is_some() && idle(h.state())) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the project"
        );
        let name = h.state().data.name.clone().unwrap_or_default();
        assert!(!name.contains("phantom"), "the phantom was loaded: {name}");
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(h.state().workspace, Workspace::Project);
    assert!(
        h.state()
            .data
            .name
            .as_ref()
            .unwrap()
            .starts_with("project ")
    );
    assert_eq!(h.state().shared.points.len(), 24);
}

#[test]
fn a_study_run_in_the_app_gives_the_rows_sula_experiment_gives() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut h = with_vae();
    h.state_mut().stage2.settings.save_runs = true;
    h.state_mut().stage2.settings.runs_dir = Some(dir.path().join("runs"));
    h.get_by_label("Run").click();
    h.step();
    // Two arms (adaptive, random) of three rounds (4, 8, 12 frames), one repeat.
    wait_until(&mut h, "the whole study", |a| {
        a.curves.rows.len() == 6 && idle(a)
    });
    let app_run = h.state().stage2.run_folder.clone().expect("a run folder");
    let settings = |run: &std::path::Path| -> serde_json::Value {
        let text = std::fs::read_to_string(run.join("results.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["config"].clone()
    };
    let app = settings(&app_run);
    let config = &app["loop"];
    let data = &app["data"];
    let sizes: Vec<String> = config["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let variant = &config["variant"];
    let switches: Vec<&str> = [
        ("chaining", false, "--no-chaining"),
        ("snap_radius", true, "--snap-radius"),
        ("trust_region", true, "--trust-region"),
        ("random_direction", true, "--random-direction"),
    ]
    .into_iter()
    .filter(|&(key, on, _)| variant[key].as_bool() == Some(on))
    .map(|(_, _, flag)| flag)
    .collect();
    let cli_run = dir.path().join("cli");
    run_sula(
        std::process::Command::new(env!("CARGO_BIN_EXE_sula"))
            .args([
                "experiment",
                "--device",
                "cpu",
                "--validation",
                "0",
                "--repeats",
                "1",
            ])
            .args(["--arms", "adaptive,baseline", "--mode", "snn"])
            .args(["--sizes", &sizes.join(",")])
            .args([
                "--epochs-per-round",
                &config["epochs_per_round"].to_string(),
            ])
            .args(["--step", &config["step"].to_string()])
            .args(["--variant", "paper"])
            .args(["--round-zero", variant["round_zero"].as_str().unwrap()])
            .args(["--movers", variant["movers"].as_str().unwrap()])
            .args(switches)
            .args(["--seed", &config["seed"].to_string()])
            .args(["--pool-count", &data["pool_count"].to_string()])
            .args(["--pool-seed", &data["pool_seed"].to_string()])
            .args(["--test-count", &data["test_count"].to_string()])
            .args(["--test-seed", &data["test_seed"].to_string()])
            .arg("--vae")
            .arg(app_run.join("vae.safetensors"))
            .arg("--out")
            .arg(&cli_run),
    );
    assert_eq!(settings(&cli_run)["loop"], *config, "the same study");
    let rows = |run: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(run.join("results.csv"))
            .unwrap()
            .lines()
            .map(|line| {
                let mut fields: Vec<&str> = line.split(',').collect();
                fields.remove(10); // wall_s
                fields.join(",")
            })
            .collect()
    };
    assert_eq!(rows(&cli_run), rows(&app_run));
    assert_eq!(rows(&app_run).len(), 7, "header and six rows");
}

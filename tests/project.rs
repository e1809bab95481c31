//! The annotation round trip from the command line, on a phantom pullback that pydicom
//! wrote as RLE-compressed DICOM (tests/data/dicom/pullback/phantom.dcm, 24 frames of the
//! phantom with seed 7 at 64²): project new → suggest → masks filled from the phantom's
//! truth → import → suggest again, the second batch drawn by the gradient. A bad batch is
//! refused whole and leaves the project as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sula::data::mask::{write_grey_png, write_mask};
use sula::data::phantom::{PhantomConfig, generate};
use sula::data::shapes::thin_walled_diamond;
use sula::export::ExportManifest;
use sula::render::sheet::tissue_color;

fn pullback() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dicom/pullback/phantom.dcm")
}

fn sula(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sula"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    ok_output(&args.join(" "), sula(args))
}

/// The standard output of a run (`sula what`) that must succeed.
fn ok_output(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "sula {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `sula project new` on the fixture pullback into `out`, on the CPU, with `extra` flags.
fn project_new(out: &Path, extra: &[&str]) -> Output {
    let pool = pullback();
    let mut args = vec!["project", "new", "--pool", s(&pool), "--out", s(out)];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--device", "cpu"]);
    sula(&args)
}

/// The phantom frame behind a pool id `phantom/000NN`.
fn truth(pool_id: &str) -> sula::labels::LabelMap {
    let index: u64 = pool_id.rsplit('/').next().unwrap().parse().unwrap();
    generate(&PhantomConfig::new(64), 7, index).labels
}

/// Everything in the project folder, with file contents, to compare before and after.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn suggest_annotate_import_and_suggest_again_by_the_gradient() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let validation = dir.path().join("validation");
    ok(&[
        "phantom",
        "--count",
        "6",
        "--size",
        "32",
        "--seed",
        "9",
        "--out",
        s(&validation),
    ]);
    ok_output(
        "project new",
        project_new(
            &project,
            &[
                "--size",
                "32",
                "--epochs",
                "2",
                "--latent-dim",
                "4",
                "--width",
                "8",
                "--pixel-mm",
                "0.140625",
                "--validation",
                s(&validation),
            ],
        ),
    );
    let sidecar = std::fs::read_to_string(project.join("vae.json")).unwrap();
    assert!(sidecar.contains("\"labelled\": false"), "{sidecar}");

    // Round 0: a core-set batch of real frames, as the scanner shows them.
    let first = dir.path().join("batch1");
    let printed = ok(&[
        "suggest",
        s(&project),
        "--count",
        "4",
        "--out",
        s(&first),
        "--device",
        "cpu",
    ]);
    assert!(printed.contains("by core-set"), "{printed}");
    let manifest = ExportManifest::read(&first).unwrap();
    // What annotation tools import comes with the batch.
    let coco: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("coco.json")).unwrap()).unwrap();
    assert_eq!(
        coco["images"].as_array().unwrap().len(),
        manifest.samples.len()
    );
    let tasks = std::fs::read_to_string(first.join("label-studio/tasks.json")).unwrap();
    assert!(tasks.contains(&format!("\"sula_id\": \"{}\"", manifest.samples[0].id)));
    assert!(first.join("label-studio/config.xml").is_file());
    assert_eq!(manifest.samples.len(), 4);
    assert_eq!(manifest.source["strategy"], "core-set");
    assert!(first.join("README.md").is_file());
    assert_eq!(std::fs::read_dir(first.join("masks")).unwrap().count(), 0);
    for sample in &manifest.samples {
        let (w, h) =
            image::image_dimensions(first.join(format!("images/{}.png", sample.id))).unwrap();
        assert_eq!((w, h), (64, 64));
    }
    let info = ok(&["info", s(&first)]);
    assert!(info.contains("4 unannotated"), "{info}");

    // A bad batch: a value outside 0–4, a wrong size, a file for a frame not suggested, and
    // a lumen open to the outside. All four are listed; nothing changes.
    let bad = dir.path().join("bad");
    copy_dir(&first, &bad);
    let ids: Vec<(String, String)> = manifest
        .samples
        .iter()
        .map(|e| (e.id.clone(), e.pool_id.clone().unwrap()))
        .collect();
    write_grey_png(
        &bad.join(format!("masks/{}.png", ids[0].0)),
        64,
        64,
        &[7; 64 * 64],
    )
    .unwrap();
    write_grey_png(
        &bad.join(format!("masks/{}.png", ids[1].0)),
        32,
        32,
        &[0; 32 * 32],
    )
    .unwrap();
    write_mask(&bad.join("masks/not_suggested.png"), &truth(&ids[2].1)).unwrap();
    let mut open = vec![1u8; 64 * 64];
    open[..64].fill(0);
    write_grey_png(&bad.join(format!("masks/{}.png", ids[3].0)), 64, 64, &open).unwrap();
    let before = snapshot(&project);
    let refused = sula(&[
        "import",
        s(&project),
        "--annotations",
        s(&bad),
        "--epochs",
        "1",
        "--device",
        "cpu",
    ]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("nothing was imported, because 4 files failed"),
        "{message}"
    );
    assert!(message.contains("invalid label value 7"), "{message}");
    assert!(
        message.contains("is 32×32 but its image is 64×64"),
        "{message}"
    );
    assert!(
        message.contains("not_suggested is not a frame of this batch"),
        "{message}"
    );
    assert!(
        message.contains("the lumen is not closed inside the wall"),
        "{message}"
    );
    assert_eq!(
        snapshot(&project),
        before,
        "a refused import changed the project"
    );

    // The annotator fills three masks from the truth (one painted in the palette colours),
    // draws one with a wall thinner than a pixel, where the lumen touches the outside
    // corner to corner at 3 pixels, and leaves the fourth frame out.
    for (k, (stem, pool_id)) in ids.iter().take(3).enumerate() {
        let labels = truth(pool_id);
        let path = first.join(format!("masks/{stem}.png"));
        match k {
            0 => {
                let colour = image::RgbImage::from_fn(64, 64, |x, y| {
                    let t = labels.get(y as usize, x as usize);
                    image::Rgb(tissue_color(t))
                });
                colour.save(&path).unwrap();
            }
            1 => write_mask(&path, &thin_walled_diamond(64, 3)).unwrap(),
            _ => write_mask(&path, &labels).unwrap(),
        }
    }
    let imported = sula(&[
        "import",
        s(&project),
        "--annotations",
        s(&first),
        "--epochs",
        "1",
        "--device",
        "cpu",
    ]);
    let warnings = String::from_utf8_lossy(&imported.stderr).into_owned();
    assert!(
        warnings.contains(&format!(
            "warning: {}: the lumen touched the outside at 3 pixels",
            first.join(format!("masks/{}.png", ids[1].0)).display()
        )),
        "{warnings}"
    );
    let imported = ok_output("import", imported);
    assert!(
        imported.contains("3 frames imported (3 annotated in all)"),
        "{imported}"
    );
    assert!(imported.contains("back in the pool"), "{imported}");
    assert!(
        imported.contains("F on the validation split (6 frames)"),
        "{imported}"
    );
    assert!(
        !imported.contains("before training on it"),
        "the first import has no F to score the batch with: {imported}"
    );
    let again = sula(&[
        "import",
        s(&project),
        "--annotations",
        s(&first),
        "--device",
        "cpu",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("imported already"));

    // Round 1: drawn by the gradient from the annotated frames, none of them again and
    // none of the frames already suggested.
    let second = dir.path().join("batch2");
    let printed = ok(&[
        "suggest",
        s(&project),
        "--count",
        "3",
        "--out",
        s(&second),
        "--device",
        "cpu",
    ]);
    assert!(
        printed.contains("round 1") && printed.contains("gradient-snn"),
        "{printed}"
    );
    let manifest2 = ExportManifest::read(&second).unwrap();
    for entry in &manifest2.samples {
        assert!(entry.loss_kpa2.is_some_and(f64::is_finite), "{entry:?}");
        assert!(entry.gradient_norm.is_some() && entry.latent_original.is_some());
        assert!(
            !ids.iter()
                .take(3)
                .any(|(_, id)| Some(id) == entry.pool_id.as_ref()),
            "an annotated frame was suggested again"
        );
    }

    // The second batch comes back: F is scored on it before it trains on it, and the
    // project's history keeps that score beside the validation split's.
    for entry in &manifest2.samples {
        let labels = truth(entry.pool_id.as_ref().unwrap());
        write_mask(&second.join(format!("masks/{}.png", entry.id)), &labels).unwrap();
    }
    let imported = ok(&[
        "import",
        s(&project),
        "--annotations",
        s(&second),
        "--epochs",
        "1",
        "--device",
        "cpu",
    ]);
    assert!(
        imported.contains("F on this batch before training on it (3 frames): MSE"),
        "{imported}"
    );
    let history = sula::project::Project::open(&project).unwrap().history;
    let new_batch = |round: usize| {
        history.batches[round]
            .imported
            .as_ref()
            .unwrap()
            .new_batch
            .clone()
    };
    assert!(new_batch(0).is_none());
    let scored = new_batch(1).expect("round 1's batch was scored before training");
    assert_eq!(scored["frames"], 3, "{scored}");
    assert!(
        scored["metrics"]["mse"]
            .as_f64()
            .is_some_and(f64::is_finite)
    );

    // The gradient round keeps each move (annotated frame → z' → snapped frame) for the
    // app's arrows; round 0 has none.
    assert!(history.batches[0].moves.is_empty());
    let moves = &history.batches[1].moves;
    assert_eq!(moves.len(), 3);
    for (entry, step) in manifest2.samples.iter().zip(moves) {
        assert_eq!(Some(&step.frame), entry.pool_id.as_ref());
        assert_eq!(step.moved.len(), entry.latent.len());
        assert!(history.annotated().contains(&step.from.as_str()));
    }

    // Retraining the VAE switches to a new one in the next state; a stopped retraining
    // leaves the project exactly as it was.
    let mut opened = sula::project::Project::open(&project).unwrap();
    let before = snapshot(&project);
    let stopped = opened
        .retrain_vae(1, tch::Device::Cpu, &mut |_| {
            sula::model::train::Control::Stop
        })
        .unwrap();
    assert!(stopped.is_none());
    assert_eq!(snapshot(&project), before);
    let old_vae = std::fs::read(opened.vae_path()).unwrap();
    let losses = opened
        .retrain_vae(1, tch::Device::Cpu, &mut |_| {
            sula::model::train::Control::Continue
        })
        .unwrap()
        .expect("it ran to the end");
    assert_eq!(losses.len(), 1);
    let reopened = sula::project::Project::open(&project).unwrap();
    assert!(reopened.vae_path().starts_with(reopened.state_dir()));
    assert_ne!(std::fs::read(reopened.vae_path()).unwrap(), old_vae);
    assert_eq!(reopened.history, history);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn a_labelled_vae_and_a_missing_project_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = sula(&[
        "suggest",
        s(dir.path()),
        "--count",
        "2",
        "--out",
        s(&dir.path().join("b")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a sula project"));
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/phantom64_vae.safetensors");
    let out = sula(&[
        "project",
        "new",
        "--pool",
        s(&pullback()),
        "--out",
        s(&dir.path().join("p")),
        "--vae",
        s(&shipped),
        "--device",
        "cpu",
    ]);
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("image-only VAE"), "{message}");
    assert!(!dir.path().join("p").exists());
}

#[test]
fn a_project_can_reuse_an_image_only_vae_and_start_at_random() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    ok_output(
        "project new",
        project_new(
            &first,
            &[
                "--size",
                "32",
                "--epochs",
                "1",
                "--latent-dim",
                "4",
                "--width",
                "8",
            ],
        ),
    );
    // A second project on frames 0–11 reuses the first one's VAE instead of training.
    let second = dir.path().join("second");
    let printed = ok_output(
        "project new",
        project_new(
            &second,
            &[
                "--size",
                "32",
                "--frames",
                "0:12",
                "--vae",
                s(&first.join("vae.safetensors")),
            ],
        ),
    );
    assert!(!printed.contains("training an image-only VAE"), "{printed}");
    assert_eq!(
        std::fs::read(first.join("vae.safetensors")).unwrap(),
        std::fs::read(second.join("vae.safetensors")).unwrap()
    );
    let batch = dir.path().join("batch");
    let printed = ok(&[
        "suggest",
        s(&second),
        "--count",
        "5",
        "--out",
        s(&batch),
        "--round-zero",
        "random",
        "--device",
        "cpu",
    ]);
    assert!(printed.contains("by random"), "{printed}");
    let manifest = ExportManifest::read(&batch).unwrap();
    assert_eq!(manifest.source["strategy"], "random");
    for entry in &manifest.samples {
        let index: usize = entry
            .pool_id
            .as_ref()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(index < 12, "frame {index} is outside --frames 0:12");
    }
    // Asking for more frames than are free is refused and writes nothing.
    let too_many = dir.path().join("too_many");
    let out = sula(&[
        "suggest",
        s(&second),
        "--count",
        "8",
        "--out",
        s(&too_many),
        "--device",
        "cpu",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("7 frames neither annotated nor waiting")
    );
    assert!(!too_many.exists());
}

//! The `sula` binary end to end: label one mask, a dataset (shards, skipping, failures),
//! version and bench output, and one-line errors.

use std::path::Path;
use std::process::{Command, Output};

use sula::data::mask::{write_grey_png, write_mask};
use sula::data::shapes::{annulus, plaque, thin_walled_diamond};
use sula::io::npy;

fn sula(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sula"))
        .args(args)
        .output()
        .expect("the sula binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn version_names_the_device() {
    let out = sula(&["--version"]);
    assert!(out.status.success());
    let line = text(&out.stdout);
    assert!(line.starts_with("sula "), "{line}");
    assert!(
        line.contains("CPU · ") || line.contains("CUDA · "),
        "{line}"
    );
}

#[test]
fn label_one_mask_writes_npy_and_preview() {
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("m.png");
    write_mask(&mask, &plaque(48, 0.0)).unwrap();
    let (npy_path, png) = (dir.path().join("s.npy"), dir.path().join("s.png"));
    let out = sula(&[
        "label",
        "--mask",
        path(&mask),
        "--out",
        path(&npy_path),
        "--png",
        path(&png),
        "--field",
        "von-mises",
        "--pressure-kpa",
        "16",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stress = npy::read_f32(&npy_path).unwrap();
    assert_eq!((stress.height, stress.width), (48, 48));
    assert!(stress.data.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(stress.data.iter().any(|v| *v > 5.0));
    let preview = image::open(&png).unwrap();
    assert!(preview.width() > 384 && preview.height() > 384);
    assert!(text(&out.stdout).contains("von Mises"));
}

#[test]
fn bad_mask_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("bad.png");
    write_grey_png(&mask, 2, 2, &[0, 1, 7, 2]).unwrap();
    let out_path = dir.path().join("s.npy");
    let out = sula(&["label", "--mask", path(&mask), "--out", path(&out_path)]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.png") && err.contains("7"), "{err}");
    assert!(!out_path.exists());

    let no_lumen = dir.path().join("nolumen.png");
    write_grey_png(&no_lumen, 2, 2, &[2, 2, 2, 0]).unwrap();
    let out = sula(&["label", "--mask", path(&no_lumen), "--out", path(&out_path)]);
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("nolumen.png") && err.contains("lumen"),
        "{err}"
    );
}

#[test]
fn a_thin_wall_is_sealed_with_a_warning_counting_its_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("thin.png");
    write_mask(&mask, &thin_walled_diamond(40, 3)).unwrap();
    let out_path = dir.path().join("s.npy");
    let out = sula(&["label", "--mask", path(&mask), "--out", path(&out_path)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("thin.png: the lumen touched the outside at 3 pixels")
            && !err.contains("inertia relief"),
        "{err}"
    );
    assert!(out_path.exists());
}

#[test]
fn label_dataset_with_shards_skipping_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("masks")).unwrap();
    for k in 0..5 {
        let mask = annulus(32, 5.0 + k as f64, 13.0);
        write_mask(&dir.path().join(format!("masks/f{k}.png")), &mask).unwrap();
    }
    let root = path(dir.path());
    let stress = |k: usize| dir.path().join(format!("stress/f{k}.npy"));

    let out = sula(&["label", "--dataset", root, "--shard", "0/2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let labelled: Vec<bool> = (0..5).map(|k| stress(k).exists()).collect();
    assert_eq!(labelled, [true, false, true, false, true]);

    let before = std::fs::metadata(stress(0)).unwrap().modified().unwrap();
    let out = sula(&["label", "--dataset", root]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("skipped 3"),
        "{}",
        text(&out.stdout)
    );
    assert!((0..5).all(|k| stress(k).exists()));
    assert_eq!(
        std::fs::metadata(stress(0)).unwrap().modified().unwrap(),
        before
    );

    write_grey_png(&dir.path().join("masks/f9.png"), 2, 2, &[9, 9, 9, 9]).unwrap();
    let out = sula(&["label", "--dataset", root, "--force"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("f9.png") && err.contains("1 of 6 frames failed"),
        "{err}"
    );
    assert!(stress(4).exists() && !dir.path().join("stress/f9.npy").exists());

    let out = sula(&["label", "--dataset", root, "--shard", "2/2"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("out of range"));
}

#[test]
fn materials_file_is_used_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("m.png");
    write_mask(&mask, &plaque(32, 0.0)).unwrap();
    let materials = dir.path().join("materials.json");
    std::fs::write(
        &materials,
        r#"{"fibrous": {"youngs_modulus_kpa": 600, "poisson_ratio": 0.49},
            "lipid": {"youngs_modulus_kpa": 600, "poisson_ratio": 0.49},
            "calcium": {"youngs_modulus_kpa": 600, "poisson_ratio": 0.49}}"#,
    )
    .unwrap();
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    assert!(
        sula(&["label", "--mask", path(&mask), "--out", path(&a)])
            .status
            .success()
    );
    let out = sula(&[
        "label",
        "--mask",
        path(&mask),
        "--out",
        path(&b),
        "--materials",
        path(&materials),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(
        npy::read_f32(&a).unwrap().data,
        npy::read_f32(&b).unwrap().data
    );

    std::fs::write(&materials, r#"{"fibrous": {"youngs_modulus_kpa": -1}}"#).unwrap();
    let out = sula(&[
        "label",
        "--mask",
        path(&mask),
        "--out",
        path(&b),
        "--materials",
        path(&materials),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("materials.json"));
}

#[test]
fn bench_prints_a_table() {
    let out = sula(&[
        "bench",
        "fea",
        "--sizes",
        "32",
        "--repeats",
        "1",
        "--batch",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("total ms") && table.lines().any(|l| l.trim_start().starts_with("32 ")),
        "{table}"
    );
}

//! `sula import` on what annotation tools export, with files those tools wrote
//! (tests/fixtures/annotations, made by scripts/label_studio_roundtrip.py against a real
//! Label Studio 1.23.2 and by pycocotools 2.0.11): four 64² phantom frames whose truth
//! label maps are committed beside them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod common;

use sula::labels::LabelMap;
use sula::project::annotations::read_annotations;

const STEMS: [&str; 4] = ["frame_00006", "frame_00011", "frame_00025", "frame_00035"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/annotations")
}

fn truth(stem: &str) -> LabelMap {
    sula::project::annotations::read_label_png(&fixtures().join(format!("truth/{stem}.png")))
        .unwrap()
}

/// Reads the fixture `file` as the only file of a batch's masks/ folder.
fn read_fixture(file: &str) -> (BTreeMap<String, LabelMap>, Vec<String>) {
    let masks = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join(file), masks.path().join(file)).unwrap();
    let stems: Vec<String> = STEMS.iter().map(|s| s.to_string()).collect();
    let sizes = stems.iter().map(|s| (s.clone(), (64, 64))).collect();
    let (found, problems) = read_annotations(masks.path(), &stems, &sizes);
    let maps = found.into_iter().map(|a| (a.stem, a.labels)).collect();
    (maps, problems)
}

/// Pixels where `a` and `b` differ.
fn differing(a: &LabelMap, b: &LabelMap) -> usize {
    a.values()
        .iter()
        .zip(b.values())
        .filter(|(x, y)| x != y)
        .count()
}

#[test]
fn label_studio_json_and_pycocotools_rle_read_back_as_the_truth_to_the_pixel() {
    for file in ["label-studio-export.json", "pycocotools-rle.json"] {
        let (maps, problems) = read_fixture(file);
        assert!(problems.is_empty(), "{file}: {problems:?}");
        assert_eq!(maps.len(), 4, "{file}");
        for stem in STEMS {
            assert_eq!(differing(&maps[stem], &truth(stem)), 0, "{file}: {stem}");
        }
    }
}

#[test]
fn label_studio_coco_exports_bring_back_their_polygons() {
    // The plain COCO export leaves brush strokes out: lipid and calcium come back as the
    // vessel's fibrous wall, everything else to the pixel.
    let (maps, problems) = read_fixture("label-studio-coco.json");
    assert!(problems.is_empty(), "{problems:?}");
    for stem in STEMS {
        let walls: Vec<u8> = truth(stem)
            .values()
            .iter()
            .map(|&v| if v >= 2 { 2 } else { v })
            .collect();
        let expected = LabelMap::new(64, 64, walls).unwrap();
        assert_eq!(differing(&maps[stem], &expected), 0, "{stem}");
    }
    // "Brush labels to COCO" keeps the brushes as outlines of whole pixels: close, not exact.
    let (maps, problems) = read_fixture("label-studio-brush-to-coco.json");
    assert!(problems.is_empty(), "{problems:?}");
    let wrong: usize = STEMS.iter().map(|s| differing(&maps[*s], &truth(s))).sum();
    assert!(wrong < 4 * 64 * 64 / 40, "{wrong} pixels differ");
}

fn sula(args: &[&str]) -> std::process::Output {
    common::sula_command().args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = sula(args);
    assert!(
        out.status.success(),
        "sula {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sula_import_takes_label_studio_s_export_and_refuses_a_label_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    ok(&[
        "phantom",
        "--count",
        "40",
        "--size",
        "64",
        "--seed",
        "1",
        "--out",
        &at("pool"),
    ]);
    let new = [
        "project",
        "new",
        "--pool",
        &at("pool"),
        "--size",
        "32",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
    ];
    ok(&[&new[..], &[&at("P")]].concat());
    ok(&[
        "suggest",
        &at("P"),
        "--count",
        "4",
        "--round-zero",
        "random",
        "--out",
        &at("batch"),
        "--device",
        "cpu",
    ]);
    let mut stems: Vec<String> = std::fs::read_dir(dir.path().join("batch/images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().replace(".png", ""))
        .collect();
    stems.sort();
    assert_eq!(
        stems, STEMS,
        "the fixtures' batch is remade with the same frames"
    );

    // A label the batch did not offer: refused whole, naming the file, the task and the label.
    let export = std::fs::read_to_string(fixtures().join("label-studio-export.json")).unwrap();
    let masks = dir.path().join("batch/masks");
    std::fs::write(
        masks.join("export.json"),
        export.replacen("\"lipid\"", "\"plaque\"", 1),
    )
    .unwrap();
    let import = [
        "import",
        &at("P"),
        "--annotations",
        &at("batch"),
        "--epochs",
        "1",
        "--device",
        "cpu",
    ];
    let refused = sula(&import);
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        message.contains("export.json (task") && message.contains("\"plaque\""),
        "{message}"
    );

    std::fs::write(masks.join("export.json"), export).unwrap();
    let printed = ok(&import);
    assert!(printed.contains("4 frames imported"), "{printed}");
}

/// Every leaf of a JSON value, as a path of keys and indices.
fn leaves(value: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                path.push(key.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            out.push(path.clone());
            for (k, child) in items.iter().enumerate() {
                path.push(k.to_string());
                leaves(child, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

#[test]
fn tool_files_with_damaged_values_give_problems_naming_the_file_never_a_panic() {
    use rand::{Rng, SeedableRng};
    let replacements = [
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(1e300),
        serde_json::json!(u64::MAX),
        serde_json::json!(""),
        serde_json::json!("lumen"),
        serde_json::json!([]),
        serde_json::json!([[1e9, -1e9], [0, 0], [5, 5]]),
        serde_json::json!({}),
        serde_json::json!(null),
        serde_json::json!([255, 255, 255, 255]),
    ];
    let cases: u64 = std::env::var("SULA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let stems: Vec<String> = STEMS.iter().map(|s| s.to_string()).collect();
    let sizes = stems.iter().map(|s| (s.clone(), (64, 64))).collect();
    let mut refused = 0;
    for file in [
        "label-studio-export.json",
        "label-studio-coco.json",
        "pycocotools-rle.json",
        "label-studio-brush-to-coco.json",
    ] {
        let original: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixtures().join(file)).unwrap()).unwrap();
        let mut paths = Vec::new();
        leaves(&original, &mut Vec::new(), &mut paths);
        for case in 0..cases {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(case);
            let mut damaged = original.clone();
            for _ in 0..rng.gen_range(1..4) {
                let path = &paths[rng.gen_range(0..paths.len())];
                let pointer: String = path.iter().map(|key| format!("/{key}")).collect();
                // An earlier replacement may have removed the place.
                if let Some(place) = damaged.pointer_mut(&pointer) {
                    *place = replacements[rng.gen_range(0..replacements.len())].clone();
                }
            }
            let masks = tempfile::tempdir().unwrap();
            let path = masks.path().join(file);
            std::fs::write(&path, serde_json::to_vec(&damaged).unwrap()).unwrap();
            let read = std::panic::catch_unwind(|| read_annotations(masks.path(), &stems, &sizes));
            let (found, problems) =
                read.unwrap_or_else(|_| panic!("{file}, case {case}: panicked"));
            for problem in &problems {
                assert!(
                    problem.starts_with(&path.display().to_string()),
                    "{file}, case {case}: {problem}"
                );
            }
            refused += usize::from(!problems.is_empty());
            for annotation in found {
                assert_eq!(
                    annotation.labels.values().len(),
                    64 * 64,
                    "{file}, case {case}"
                );
            }
        }
    }
    // The damage reaches the readers: many cases are refused, not all.
    assert!(
        refused > 0 && refused < 4 * cases as usize,
        "{refused} refused"
    );
}

//! Dataset loaders: sula layout round trip, MICCAI 2011 contour rasterisation, resampling,
//! and bad input that must be a clear error naming the file, never a panic.

use std::path::Path;
use std::process::Command;

use sula::data::dataset::{Dataset, LayoutKind, read_contour};
use sula::data::mask::{read_mask, write_grey_png, write_mask};
use sula::data::shapes::annulus;

fn sula(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sula"))
        .args(args)
        .output()
        .unwrap()
}

fn circle(cx: f64, cy: f64, r: f64, n: usize) -> Vec<[f64; 2]> {
    (0..n)
        .map(|k| {
            let t = std::f64::consts::TAU * k as f64 / n as f64;
            [cx + r * t.cos(), cy + r * 0.8 * t.sin()]
        })
        .collect()
}

fn shoelace(points: &[[f64; 2]]) -> f64 {
    let n = points.len();
    (0..n)
        .map(|k| points[k][0] * points[(k + 1) % n][1] - points[(k + 1) % n][0] * points[k][1])
        .sum::<f64>()
        .abs()
        / 2.0
}

fn write_contour(path: &Path, points: &[[f64; 2]], separator: &str) {
    let text: String = points
        .iter()
        .map(|[x, y]| format!("{x:.3}{separator}{y:.3}\n"))
        .collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn sula_layout_round_trip_and_resampling() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    let run = sula(&[
        "phantom",
        "--count",
        "4",
        "--size",
        "32",
        "--seed",
        "9",
        "--out",
        out.to_str().unwrap(),
        "--with-stress",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let dataset = Dataset::open(&out, None).unwrap();
    assert_eq!(dataset.kind, LayoutKind::Sula);
    assert_eq!(dataset.frames.len(), 4);
    assert!((dataset.pixel_mm - 9.0 / 32.0).abs() < 1e-12);
    let config = sula::data::phantom::PhantomConfig::new(32);
    let frame = dataset.load(2, None).unwrap();
    let generated = sula::data::phantom::generate(&config, 9, 2);
    assert_eq!(frame.image, generated.image);
    assert_eq!(frame.labels.as_ref(), Some(&generated.labels));
    assert_eq!(frame.stress.as_ref().map(Vec::len), Some(32 * 32));
    let small = dataset.load(2, Some(16)).unwrap();
    assert_eq!(
        (small.width, small.height, small.image.len()),
        (16, 16, 256)
    );
    assert!((small.pixel_mm - 2.0 * frame.pixel_mm).abs() < 1e-12);
    assert!(small.labels.unwrap().values().iter().all(|v| *v <= 4));

    // The same seed gives byte-identical frames.
    let again = dir.path().join("q");
    assert!(
        sula(&[
            "phantom",
            "--count",
            "4",
            "--size",
            "32",
            "--seed",
            "9",
            "--out",
            again.to_str().unwrap()
        ])
        .status
        .success()
    );
    for sub in [
        "images/frame_00003.png",
        "masks/frame_00001.png",
        "meta/frame_00000.json",
    ] {
        assert_eq!(
            std::fs::read(out.join(sub)).unwrap(),
            std::fs::read(again.join(sub)).unwrap(),
            "{sub}"
        );
    }
    // An existing target is refused.
    let refused = sula(&[
        "phantom",
        "--count",
        "1",
        "--size",
        "32",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));

    let info = sula(&["info", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success());
    assert!(
        text.contains("layout:        sula")
            && text.contains("4 annotated")
            && text.contains("4 with stress"),
        "{text}"
    );
}

#[test]
fn miccai_contours_rasterise_to_their_polygon_areas() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("Training_Set/Data_set_B");
    std::fs::create_dir_all(set.join("DCM")).unwrap();
    std::fs::create_dir_all(set.join("LABELS")).unwrap();
    let size = 200;
    for stem in ["frame_01_0001_003", "frame_01_0002_003"] {
        write_grey_png(
            &set.join(format!("DCM/{stem}.png")),
            size,
            size,
            &vec![90; size * size],
        )
        .unwrap();
    }
    let lumen = circle(100.0, 96.0, 35.0, 180);
    let media = circle(102.0, 100.0, 70.0, 240);
    write_contour(&set.join("LABELS/lum_frame_01_0001_003.txt"), &lumen, ", ");
    write_contour(&set.join("LABELS/med_frame_01_0001_003.txt"), &media, ",");

    let dataset = Dataset::open(dir.path(), Some(0.026)).unwrap();
    assert_eq!(dataset.kind, LayoutKind::Miccai2011);
    assert_eq!((dataset.frames.len(), dataset.annotated()), (2, 1));
    let annotated = dataset
        .frames
        .iter()
        .position(|f| f.id.ends_with("0001_003"))
        .unwrap();
    let labels = dataset.load(annotated, None).unwrap().labels.unwrap();
    let counts = labels.class_counts();
    let (lumen_area, wall_area) = (shoelace(&lumen), shoelace(&media) - shoelace(&lumen));
    assert!(
        (counts[1] as f64 - lumen_area).abs() / lumen_area < 0.01,
        "{} vs {lumen_area}",
        counts[1]
    );
    assert!(
        (counts[2] as f64 - wall_area).abs() / wall_area < 0.01,
        "{} vs {wall_area}",
        counts[2]
    );
    let unannotated = 1 - annotated;
    assert!(dataset.load(unannotated, None).unwrap().labels.is_none());

    let info = sula(&["info", dir.path().to_str().unwrap(), "--pixel-mm", "0.026"]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("MICCAI 2011")
            && text.contains("1 annotated, 1 unannotated")
            && text.contains("0.0260 mm"),
        "{text}"
    );
}

fn expect_error(result: Result<impl std::fmt::Debug, sula::io::IoError>, names: &str) {
    let message = result.expect_err("bad input must be an error").to_string();
    assert!(message.contains(names), "{message:?} should name {names}");
}

#[test]
fn bad_input_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    let empty = root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    expect_error(Dataset::open(&empty, None), "empty");
    let out = sula(&["info", empty.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("empty"));

    let orphan = root.join("orphan");
    std::fs::create_dir_all(orphan.join("images")).unwrap();
    std::fs::create_dir_all(orphan.join("masks")).unwrap();
    write_grey_png(&orphan.join("images/a.png"), 8, 8, &[0; 64]).unwrap();
    // An image without a label map is an unannotated frame of a partly annotated pool…
    let partly = Dataset::open(&orphan, None).unwrap();
    assert_eq!((partly.frames.len(), partly.annotated()), (1, 0));
    // …but a label map without its image is an error.
    write_mask(&orphan.join("masks/b.png"), &annulus(8, 1.0, 3.0)).unwrap();
    expect_error(Dataset::open(&orphan, None), "b.png");

    let sized = root.join("sized");
    std::fs::create_dir_all(sized.join("images")).unwrap();
    std::fs::create_dir_all(sized.join("masks")).unwrap();
    write_grey_png(&sized.join("images/a.png"), 32, 32, &[0; 1024]).unwrap();
    write_mask(&sized.join("masks/a.png"), &annulus(16, 3.0, 6.0)).unwrap();
    let dataset = Dataset::open(&sized, None).unwrap();
    expect_error(dataset.load(0, None), "masks/a.png");

    let seven = root.join("seven.png");
    write_grey_png(&seven, 4, 4, &[7; 16]).unwrap();
    expect_error(read_mask(&seven), "seven.png");

    let truncated = root.join("truncated.png");
    write_mask(&truncated, &annulus(32, 5.0, 10.0)).unwrap();
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    expect_error(read_mask(&truncated), "truncated.png");

    let junk = root.join("lum_junk.txt");
    std::fs::write(&junk, "1.0, 2.0\n3.0, 4.0\nhello\n5.0, 6.0\n").unwrap();
    let message = read_contour(&junk).unwrap_err().to_string();
    assert!(
        message.contains("lum_junk.txt") && message.contains("line 3"),
        "{message}"
    );
}

/// A sula-layout dataset at `root` of 64² frames, one per mask.
fn write_dataset(root: &Path, masks: &[(&str, sula::labels::LabelMap)]) {
    for sub in ["images", "masks"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    for (id, mask) in masks {
        write_mask(&root.join(format!("masks/{id}.png")), mask).unwrap();
        write_grey_png(
            &root.join(format!("images/{id}.png")),
            64,
            64,
            &[90; 64 * 64],
        )
        .unwrap();
    }
}

#[test]
fn a_thin_wall_is_sealed_on_loading_at_the_stored_and_the_working_size() {
    use sula::data::shapes::thin_walled_diamond;
    use sula::labels::check_closed_lumen;

    let dir = tempfile::tempdir().unwrap();
    let closed = thin_walled_diamond(64, 0);
    write_dataset(
        dir.path(),
        &[("c", closed), ("thin", thin_walled_diamond(64, 3))],
    );
    let dataset = Dataset::open(dir.path(), None).unwrap();
    for size in [None, Some(32)] {
        let frame = dataset.load(1, size).unwrap();
        assert_eq!(frame.sealed, 3);
        assert_eq!(check_closed_lumen(&frame.labels.unwrap()), Ok(()));
        let closed = dataset.load(0, size).unwrap();
        assert_eq!(closed.sealed, 0);
        assert_eq!(check_closed_lumen(&closed.labels.unwrap()), Ok(()));
    }
}

/// The held-out data of the issue: frames whose wall touches the outside at a few
/// corners were left unlabelled by the FEA; now they are sealed, labelled and reported.
#[test]
fn a_study_keeps_a_thin_walled_test_frame_labelled_and_reports_it() {
    use sula::data::shapes::thin_walled_diamond;
    use sula::experiment::source::{DataSource, Sealed};

    let dir = tempfile::tempdir().unwrap();
    let (data, test) = (dir.path().join("data"), dir.path().join("test"));
    let closed = thin_walled_diamond(64, 0);
    write_dataset(&data, &[("a", closed.clone()), ("b", closed.clone())]);
    write_dataset(
        &test,
        &[("c", closed), ("thin", thin_walled_diamond(64, 3))],
    );
    let source = DataSource::Folder {
        data,
        test: Some(test),
        test_fraction: 0.5,
        split_seed: 1,
        pixel_mm: Some(0.026),
    };
    let study = source.load(64).unwrap().label_test();
    assert_eq!((study.test.len(), study.dropped), (2, 0));
    assert_eq!(
        study.sealed,
        vec![Sealed {
            id: "thin".into(),
            pixels: 3
        }]
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_mask_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.png");
            std::fs::write(&path, &bytes).unwrap();
            let _ = read_mask(&path);
        }

        #[test]
        fn corrupted_png_masks(cut in 0usize..200, flip in 0usize..200) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.png");
            write_mask(&path, &annulus(16, 3.0, 6.0)).unwrap();
            let mut bytes = std::fs::read(&path).unwrap();
            let flip = flip % bytes.len();
            bytes[flip] ^= 0x5a;
            bytes.truncate(bytes.len().saturating_sub(cut));
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = read_mask(&path) {
                prop_assert!(e.to_string().contains("m.png"));
            }
        }

        #[test]
        fn arbitrary_contour_text(text in "[0-9., \\-a-z\\n]{0,200}") {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("lum_x.txt");
            std::fs::write(&path, &text).unwrap();
            if let Err(e) = read_contour(&path) {
                prop_assert!(e.to_string().contains("lum_x.txt"));
            }
        }
    }
}

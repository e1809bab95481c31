//! DICOM import against files written by pydicom (tests/data/dicom/make_fixtures.py), not by
//! sula: every transfer syntax and photometric interpretation sula claims, single- and
//! multi-frame series, spacing sources, crops, bad files, and no patient identifiers printed.

use std::path::{Path, PathBuf};
use std::process::Command;

use sula::data::dataset::{Dataset, LayoutKind, OpenOptions, SpacingSource};
use sula::data::dicom::{CropRect, CropSpec, DicomSpacing, FrameReader, FrameSelection};

const ROWS: usize = 40;
const COLS: usize = 48;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/dicom")
        .join(name)
}

/// The grey pattern the fixture script encodes (see `pattern` there).
fn pattern(frame: usize) -> Vec<u8> {
    (0..ROWS * COLS)
        .map(|p| (30 + 2 * (p % COLS) + 2 * (p / COLS) + 20 * frame) as u8)
        .collect()
}

fn max_error(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap()
}

#[test]
fn every_supported_syntax_and_photometric_decodes_to_the_pattern() {
    // (file, largest allowed grey error): lossless grey is exact; colour goes through
    // luma (±1), 12-bit through rescaling (±1), lossy JPEG a little more.
    let cases = [
        ("mono2_implicit_le.dcm", 0),
        ("mono2_explicit_le.dcm", 0),
        ("mono2_16bit_explicit_le.dcm", 1),
        ("mono2_16bit_explicit_be.dcm", 1),
        ("mono1_explicit_le.dcm", 0),
        ("rgb_explicit_le.dcm", 1),
        ("rgb_planar_explicit_le.dcm", 1),
        ("ybr_full_explicit_le.dcm", 1),
        ("ybr_full_422_explicit_le.dcm", 1),
        ("palette_explicit_le.dcm", 1),
        ("palette_segmented_explicit_le.dcm", 1),
        ("palette_16bit_explicit_le.dcm", 1),
        ("mono2_rle.dcm", 0),
        ("rgb_rle.dcm", 1),
        ("mono2_jpeg_baseline.dcm", 4),
        ("ybr_full_422_jpeg_baseline.dcm", 6),
        ("mono2_jpeg_lossless.dcm", 0),
        ("mono2_16bit_jpeg_lossless.dcm", 1),
        ("mono2_j2k.dcm", 0),
        ("rgb_j2k.dcm", 1),
    ];
    for (name, tolerance) in cases {
        let reader = FrameReader::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reader.frames(), 3, "{name}");
        assert_eq!((reader.rows(), reader.cols()), (ROWS, COLS), "{name}");
        for frame in 0..3 {
            let grey = reader
                .grey(frame)
                .unwrap_or_else(|e| panic!("{name} frame {frame}: {e}"));
            let error = max_error(&grey, &pattern(frame as usize));
            assert!(
                error <= tolerance,
                "{name} frame {frame}: grey differs by up to {error} (allowed {tolerance})"
            );
        }
    }
}

#[test]
fn a_pullback_opens_as_an_unannotated_dataset_with_its_frames_in_order() {
    let options = OpenOptions {
        crop: CropSpec::Full,
        ..OpenOptions::default()
    };
    let dataset = Dataset::open_with(&fixture("mono2_rle.dcm"), &options).unwrap();
    assert_eq!(dataset.kind, LayoutKind::Dicom);
    assert_eq!(dataset.frames.len(), 3);
    assert_eq!(dataset.annotated(), 0);
    assert_eq!(dataset.spacing_source, SpacingSource::Unknown);
    assert_eq!(dataset.frames[1].id, "mono2_rle/00001");
    // The full 48×40 frame is padded to a 48-pixel square, 4 black rows above and below.
    let frame = dataset.load(2, None).unwrap();
    assert_eq!((frame.width, frame.height), (COLS, COLS));
    assert!(frame.labels.is_none());
    assert_eq!(&frame.image[..4 * COLS], &vec![0u8; 4 * COLS][..]);
    assert_eq!(&frame.image[4 * COLS..44 * COLS], &pattern(2)[..]);
    // Batch loading opens the file once and gives the same frames, resampled.
    let many = dataset.load_many(&[2, 0], Some(16)).unwrap();
    let one = dataset.load(0, Some(16)).unwrap();
    assert_eq!(many[1].image, one.image);
    assert_eq!(many[0].id, "mono2_rle/00002");
    assert_eq!((many[0].width, many[0].height), (16, 16));
}

#[test]
fn frame_selection_takes_start_end_and_step() {
    let options = OpenOptions {
        frames: "1::1".parse::<FrameSelection>().unwrap(),
        crop: CropSpec::Full,
        ..OpenOptions::default()
    };
    let dataset = Dataset::open_with(&fixture("mono2_explicit_le.dcm"), &options).unwrap();
    let ids: Vec<&str> = dataset.frames.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["mono2_explicit_le/00001", "mono2_explicit_le/00002"]);
    let none = OpenOptions {
        frames: "5:9".parse().unwrap(),
        ..options
    };
    let err = Dataset::open_with(&fixture("mono2_explicit_le.dcm"), &none).unwrap_err();
    assert!(
        err.to_string().contains("no frames in the selected range"),
        "{err}"
    );
}

#[test]
fn single_frame_files_are_ordered_by_instance_number_not_file_name() {
    let options = OpenOptions {
        crop: CropSpec::Full,
        ..OpenOptions::default()
    };
    let dataset = Dataset::open_with(&fixture("single"), &options).unwrap();
    assert_eq!(dataset.pullbacks.len(), 1);
    assert_eq!(dataset.pullbacks[0].series.files.len(), 3);
    // IMG000 holds instance 3, IMG001 instance 1, IMG002 instance 2; instance k is pattern k-1.
    for (index, frame) in dataset
        .load_many(&[0, 1, 2], None)
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(
            &frame.image[4 * COLS..44 * COLS],
            &pattern(index)[..],
            "frame {index}"
        );
    }
}

#[test]
fn a_folder_of_pullbacks_lists_each_one() {
    let dataset = Dataset::open(&fixture("pullbacks"), None).unwrap();
    let names: Vec<(&str, usize)> = dataset
        .pullbacks
        .iter()
        .map(|p| (p.series.name.as_str(), p.selected))
        .collect();
    assert_eq!(names, [("a", 2), ("b", 3)]);
    assert_eq!(dataset.frames.len(), 5);
    assert_eq!(dataset.frames[2].id, "b/00000");
}

#[test]
fn spacing_comes_from_ultrasound_regions_then_pixel_spacing_and_the_region_is_the_crop() {
    let regions = Dataset::open(&fixture("regions_explicit_le.dcm"), None).unwrap();
    assert_eq!(
        regions.spacing_source,
        SpacingSource::Dicom(DicomSpacing::UltrasoundRegions)
    );
    assert!(
        (regions.pixel_mm - 0.02).abs() < 1e-9,
        "{}",
        regions.pixel_mm
    );
    // The tissue region (not the text region above it) is x 8..=39, y 4..=35.
    assert_eq!(
        regions.pullbacks[0].crop,
        CropRect {
            x: 8,
            y: 4,
            size: 32
        }
    );
    let frame = regions.load(0, Some(16)).unwrap();
    assert!((frame.pixel_mm - 0.04).abs() < 1e-9, "{}", frame.pixel_mm);

    let spacing = Dataset::open(&fixture("pixel_spacing_explicit_le.dcm"), None).unwrap();
    assert_eq!(
        spacing.spacing_source,
        SpacingSource::Dicom(DicomSpacing::PixelSpacing)
    );
    assert!((spacing.pixel_mm - 0.05).abs() < 1e-9);

    let overridden = Dataset::open(&fixture("pixel_spacing_explicit_le.dcm"), Some(0.1)).unwrap();
    assert_eq!(overridden.spacing_source, SpacingSource::Option);
    assert!((overridden.load(0, None).unwrap().pixel_mm - 0.1).abs() < 1e-9);
}

#[test]
fn a_given_crop_is_cut_and_one_past_the_frame_is_refused() {
    let options = OpenOptions {
        crop: "4,2,20".parse().unwrap(),
        ..OpenOptions::default()
    };
    let dataset = Dataset::open_with(&fixture("mono2_explicit_le.dcm"), &options).unwrap();
    let frame = dataset.load(0, None).unwrap();
    assert_eq!((frame.width, frame.height), (20, 20));
    assert_eq!(frame.image[0], pattern(0)[2 * COLS + 4]);
    let too_big = OpenOptions {
        crop: "40,0,20".parse().unwrap(),
        ..OpenOptions::default()
    };
    let err = Dataset::open_with(&fixture("mono2_explicit_le.dcm"), &too_big).unwrap_err();
    assert!(
        err.to_string().contains("reaches past the 48×40 frame"),
        "{err}"
    );
}

#[test]
fn bad_files_are_clear_errors_that_name_the_file() {
    let unsupported = FrameReader::open(&fixture("bad/mpeg2.dcm"))
        .err()
        .expect("MPEG-2 is refused");
    let text = unsupported.to_string();
    assert!(text.contains("mpeg2.dcm"), "{text}");
    assert!(text.contains("1.2.840.10008.1.2.4.100"), "{text}");
    assert!(text.contains("cannot decode"), "{text}");
    let err = Dataset::open(&fixture("bad/corrupted.dcm"), None).expect_err("corrupted.dcm opened");
    assert!(err.to_string().contains("corrupted.dcm"), "{err}");
}

#[test]
fn a_cut_pullback_opens_with_its_whole_frames_and_a_missing_frame_is_a_clear_error() {
    // truncated.dcm is native pixel data cut half-way, rle_cut.dcm RLE cut inside frame 1.
    for name in ["bad/truncated.dcm", "bad/rle_cut.dcm"] {
        let reader = FrameReader::open(&fixture(name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (reader.frames(), reader.declared_frames()),
            (1, 3),
            "{name}"
        );
        assert_eq!(reader.grey(0).unwrap(), pattern(0), "{name}");
        let missing = reader.grey(1).unwrap_err().to_string();
        assert!(
            missing.contains(name) && missing.contains("frame 1: missing"),
            "{missing}"
        );
        assert!(missing.contains("1 of its 3 frames are whole"), "{missing}");
        let dataset = Dataset::open(&fixture(name), None).unwrap();
        assert_eq!(dataset.frames.len(), 1, "{name}");

        let out = sula(&["info", fixture(name).to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("frames:          1 of 1\n"), "{stdout}");
        assert!(
            stdout.contains("only 1 of the 3 declared frames are whole"),
            "{stdout}"
        );
    }
}

#[test]
fn a_frame_the_decoder_fails_on_is_an_error_naming_the_file_and_the_frame() {
    // Frame 1's RLE segment decodes short, which makes dicom-rs's RLE decoder panic.
    let reader = FrameReader::open(&fixture("bad/rle_damaged.dcm")).unwrap();
    assert_eq!(reader.grey(0).unwrap(), pattern(0));
    assert_eq!(reader.grey(2).unwrap(), pattern(2));
    let err = reader.grey(1).unwrap_err().to_string();
    assert!(
        err.contains("rle_damaged.dcm: frame 1 could not be decoded"),
        "{err}"
    );

    // `sula project new` fails with that error, not a panic, and leaves no project behind.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("p");
    let out = sula(&[
        "project",
        "new",
        "--pool",
        fixture("bad/rle_damaged.dcm").to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--crop",
        "full",
        "--epochs",
        "1",
        "--device",
        "cpu",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ")
            && last.contains("rle_damaged.dcm: frame 1 could not be decoded"),
        "{stderr}"
    );
    // The decoder's panic becomes that error alone: no panic message, no backtrace.
    assert!(!stderr.contains("panicked"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

fn sula(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sula"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn info_reports_pullback_facts_and_never_the_patient() {
    for name in [
        "regions_explicit_le.dcm",
        "ybr_full_422_jpeg_baseline.dcm",
        "pullbacks",
    ] {
        let out = sula(&["info", fixture(name).to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        for secret in ["SECRET", "PATIENT", "ID-SECRET-123", "19000101"] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{name} printed {secret}"
            );
        }
        assert!(stdout.contains("layout:        DICOM"), "{stdout}");
    }
    let out = sula(&["info", fixture("regions_explicit_le.dcm").to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Explicit VR Little Endian"), "{stdout}");
    assert!(
        stdout.contains("0.0200 mm (from the Sequence of Ultrasound Regions)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("frame rate:      30.0 frames/s"),
        "{stdout}"
    );

    let out = sula(&["info", fixture("bad/mpeg2.dcm").to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("MPEG2"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

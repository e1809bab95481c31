//! Seeded mutations of every DICOM fixture (bit flips, random bytes, deletions, insertions,
//! huge lengths, truncations), each opened the ways sula opens a pullback: the series scan,
//! the dataset `sula info` and `sula project new` open, and every frame through the frame
//! reader. Each case must finish within a time limit on a worker thread, without a panic
//! and without asking for a large allocation, and every failure must be a message naming
//! the file. A sample of cases also runs `sula info`, which must never exit with a panic.
//!
//! `SULA_FUZZ_CASES` sets the number of cases (default 20,000, about 40 s in the debug
//! profile on two cores), `SULA_FUZZ_SEED` the seed;
//! `SULA_FUZZ_CASE` runs that one case alone, as a failure message suggests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sula::data::dataset::Dataset;
use sula::data::dicom::{FrameReader, scan};

const DEFAULT_CASES: u64 = 20_000;
const DEFAULT_SEED: u64 = 0x5EED_D1C0;
/// A case decodes a few small frames; far longer means a hang.
const CASE_LIMIT: Duration = Duration::from_secs(20);
/// The fixtures are under half a megabyte; an allocation this large means a length was trusted.
const LARGEST_ALLOCATION: usize = 32 << 20;
/// Requests past this are refused outright, so a bad case fails instead of exhausting memory.
const REFUSED_ALLOCATION: usize = 1 << 30;
/// One case in this many also runs `sula info` on its file.
const CLI_EVERY: u64 = 1000;

/// The largest allocation asked for since the current case began; cases run one at a time,
/// and the test binary holds only this test.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, noting the largest request.
struct Watching;

impl Watching {
    fn note(size: usize) -> bool {
        LARGEST.fetch_max(size, Ordering::Relaxed);
        size <= REFUSED_ALLOCATION
    }
}

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Watching::note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Watching::note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Watching::note(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Every `.dcm` file under `dir`, sorted, so a seed always picks the same fixture.
fn fixtures(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            fixtures(&path, found);
        } else if path.extension().is_some_and(|e| e == "dcm") {
            found.push(path);
        }
    }
    found.sort();
}

/// Where a fixture's header ends: past the Pixel Data tag, and the first fragment's start.
fn header_end(bytes: &[u8]) -> usize {
    let tag_le = [0xE0, 0x7F, 0x10, 0x00];
    let tag_be = [0x7F, 0xE0, 0x00, 0x10];
    bytes
        .windows(4)
        .position(|w| w == tag_le || w == tag_be)
        .map_or(bytes.len(), |at| (at + 96).min(bytes.len()))
}

/// Applies one to three mutations, mostly inside the header, and says which.
fn mutate(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) -> Vec<String> {
    let hot = header_end(bytes);
    let mut done = Vec::new();
    for _ in 0..rng.gen_range(1..=3) {
        if bytes.is_empty() {
            break;
        }
        let at = if rng.gen_bool(0.7) {
            rng.gen_range(0..hot.clamp(1, bytes.len()))
        } else {
            rng.gen_range(0..bytes.len())
        };
        match rng.gen_range(0..7) {
            0 => {
                let n = rng.gen_range(1..=8);
                for _ in 0..n {
                    let i = (at + rng.gen_range(0..16)).min(bytes.len() - 1);
                    bytes[i] ^= 1 << rng.gen_range(0..8);
                }
                done.push(format!("{n} bit flips near byte {at}"));
            }
            1 => {
                let n = rng.gen_range(1..=8);
                for _ in 0..n {
                    let i = (at + rng.gen_range(0..16)).min(bytes.len() - 1);
                    bytes[i] = match rng.gen_range(0..3) {
                        0 => 0x00,
                        1 => 0xFF,
                        _ => rng.r#gen(),
                    };
                }
                done.push(format!("{n} random bytes near byte {at}"));
            }
            2 => {
                let n = rng.gen_range(1..=16).min(bytes.len() - at);
                bytes.drain(at..at + n);
                done.push(format!("{n} bytes deleted at {at}"));
            }
            3 => {
                let n = rng.gen_range(1..=16);
                let insert: Vec<u8> = (0..n).map(|_| rng.r#gen()).collect();
                bytes.splice(at..at, insert);
                done.push(format!("{n} bytes inserted at {at}"));
            }
            4 => {
                let value: u32 = match rng.gen_range(0..5) {
                    0 => u32::MAX,
                    1 => u32::MAX - 1,
                    2 => 0x7FFF_FFFF,
                    3 => 0x0001_0000,
                    _ => rng.r#gen(),
                };
                let bytes_of = if rng.gen_bool(0.5) {
                    value.to_le_bytes()
                } else {
                    value.to_be_bytes()
                };
                for (k, b) in bytes_of.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + k) {
                        *slot = *b;
                    }
                }
                done.push(format!("{value:#x} written at byte {at}"));
            }
            5 => {
                // Like a damaged stretch of disk: a run of bytes, each flipped or not.
                let n = rng.gen_range(16..=256).min(bytes.len() - at);
                let mut flipped = 0;
                for b in &mut bytes[at..at + n] {
                    if rng.gen_bool(0.8) {
                        *b ^= 0xFF;
                        flipped += 1;
                    }
                }
                done.push(format!("{flipped} of {n} bytes flipped from byte {at}"));
            }
            _ => {
                let keep = rng.gen_range(0..bytes.len());
                bytes.truncate(keep);
                done.push(format!("cut to {keep} bytes"));
            }
        }
    }
    done
}

/// Opens `path` every way sula does; returns the failure messages.
fn exercise(path: &Path) -> Vec<String> {
    let mut messages = Vec::new();
    let mut note = |result: Result<(), sula::io::IoError>| {
        if let Err(e) = result {
            messages.push(e.to_string());
        }
    };
    note(scan(path).map(|_| ()));
    note(Dataset::open(path, None).and_then(|dataset| {
        let all: Vec<usize> = (0..dataset.frames.len()).collect();
        dataset.load_many(&all, Some(16)).map(|_| ())
    }));
    note(FrameReader::open(path).and_then(|reader| {
        let mut frames: Vec<u32> = (0..reader.frames()).collect();
        frames.extend([reader.frames(), reader.declared_frames()]);
        let mut result = Ok(());
        for frame in frames {
            if let Err(e) = reader.grey(frame) {
                result = Err(e);
            }
        }
        result
    }));
    messages
}

/// What went wrong with one case, if anything.
fn run_case(fixture: &Path, seed: u64, case: u64, dir: &Path) -> Option<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(case);
    let mut bytes = std::fs::read(fixture).unwrap();
    let mutations = mutate(&mut rng, &mut bytes);
    let name = format!("case-{case}.dcm");
    let path = dir.join(&name);
    std::fs::write(&path, &bytes).unwrap();
    let what = format!(
        "seed {seed:#x} case {case} ({}: {}; rerun with SULA_FUZZ_SEED={seed:#x} SULA_FUZZ_CASE={case})",
        fixture.file_name().unwrap().to_string_lossy(),
        mutations.join(", ")
    );
    let (send, receive) = mpsc::channel();
    let worker_path = path.clone();
    LARGEST.store(0, Ordering::Relaxed);
    std::thread::spawn(move || {
        let outcome = catch_unwind(AssertUnwindSafe(|| exercise(&worker_path)));
        let _ = send.send((outcome, LARGEST.load(Ordering::Relaxed)));
    });
    let problem = match receive.recv_timeout(CASE_LIMIT) {
        Err(_) => panic!("{what}: still running after {CASE_LIMIT:?}"),
        Ok((Err(panic), _)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Some(format!("{what}: panicked: {message}"))
        }
        Ok((Ok(_), largest)) if largest > LARGEST_ALLOCATION => Some(format!(
            "{what}: asked for an allocation of {largest} bytes"
        )),
        Ok((Ok(messages), _)) => messages
            .iter()
            .find(|m| m.trim().is_empty() || !m.contains(&name))
            .map(|m| format!("{what}: an error that does not name the file: {m:?}")),
    };
    if problem.is_none() && case.is_multiple_of(CLI_EVERY) {
        let out = Command::new(env!("CARGO_BIN_EXE_sula"))
            .arg("info")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        let clean = out.status.success()
            || (out.status.code() == Some(1)
                && last.starts_with("error: ")
                && last.contains(&name));
        if !clean {
            return Some(format!(
                "{what}: `sula info` exited with {:?}: {stderr}",
                out.status.code()
            ));
        }
    }
    let _ = std::fs::remove_file(&path);
    problem
}

#[test]
fn mutated_dicom_files_fail_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dicom");
    let mut all = Vec::new();
    fixtures(&root, &mut all);
    assert!(all.len() > 10, "only {} fixtures", all.len());
    let seed = env_number("SULA_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let cases: Vec<u64> = match env_number("SULA_FUZZ_CASE") {
        Some(case) => vec![case],
        None => (0..env_number("SULA_FUZZ_CASES").unwrap_or(DEFAULT_CASES)).collect(),
    };
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut failures = Vec::new();
    for &case in &cases {
        let fixture = &all[(case % all.len() as u64) as usize];
        if let Some(problem) = run_case(fixture, seed, case, dir.path()) {
            failures.push(problem);
        }
    }
    eprintln!(
        "{} mutated cases of {} fixtures in {:.1} s",
        cases.len(),
        all.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

//! What the integration tests that run the `sula` binary share.

use std::process::Command;

/// The `sula` binary with one libtorch thread. Tests compare numbers written by different
/// processes to the last digit (a merged study against a whole one, two trainings of one
/// seed, the real-frame rows of two `tstr` runs); multithreaded CPU kernels need not add
/// in the same order on every CPU (CI once saw round 0 of two identically seeded arms of
/// one process differ in the sixth digit). One thread each also keeps the tests, which
/// cargo runs side by side, from fighting over the cores.
pub fn sula_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sula"));
    command
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1");
    command
}

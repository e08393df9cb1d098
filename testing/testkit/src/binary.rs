//! Finding the `sextant` binary for tools that start servers outside of
//! `cargo test` (`sextant-bench`, `sextant-chaos`).

use std::path::PathBuf;

/// `given`, or the `sextant` binary beside the running executable (where
/// cargo puts both when they are built together).
pub fn sextant_beside_me(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let beside = std::env::current_exe()?.with_file_name("sextant");
    anyhow::ensure!(
        beside.exists(),
        "no sextant binary at {}: build it (cargo build -p sextant, with --release for \
         benchmarks) or pass --sextant-bin",
        beside.display()
    );
    Ok(beside)
}

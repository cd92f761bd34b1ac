//! Runs every cargo-fuzz target (`fuzz/`) for a bounded time on the committed corpus, so that
//! `cargo test` (and CI, which runs exactly `cargo test`) fuzzes too. `fuzz/run.sh` installs
//! cargo-fuzz when missing and builds the targets on the stable toolchain.
//!
//! `KVSEAL_FUZZ_SECONDS` sets the time per target (default 10); `KVSEAL_SKIP_FUZZ=1` leaves it out
//! for a quick inner loop (CI never sets it). Longer campaigns: `fuzz/run.sh 300`.

use std::process::Command;

#[test]
fn every_fuzz_target_runs_without_a_crash() {
    if std::env::var_os("KVSEAL_SKIP_FUZZ").is_some() {
        eprintln!("KVSEAL_SKIP_FUZZ is set: fuzz targets not run");
        return;
    }
    let secs = std::env::var("KVSEAL_FUZZ_SECONDS").unwrap_or_else(|_| "10".into());
    let script = format!("{}/fuzz/run.sh", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(&script)
        .arg(&secs)
        .output()
        .expect("running fuzz/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "a fuzz target crashed (exit {:?}); output above, inputs in fuzz/artifacts/",
        out.status.code()
    );
    // Every target must actually have run.
    let ran = stdout.matches("=== fuzz target ").count();
    assert!(ran >= 6, "only {ran} fuzz targets ran");
}

//! Build script: the release link of the `assisters` binary places the
//! functions the gateway runs together, in the order of `build/text-order.txt`
//! (written by `bench/text-order.sh`). The kernel maps a binary's code in
//! 64 KiB windows around each page touched, so the few megabytes of code a
//! gateway runs, scattered over 15 MB of text, kept ~11 MB of it resident;
//! packed at the front they span 4.5 MB, and the process's peak RSS under
//! load fell by ~7 MB (BENCHMARKS.md, session 14).
#![allow(
    clippy::print_stdout,
    reason = "cargo reads its directives from stdout"
)]

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build/text-order.txt");
    println!("cargo:rerun-if-env-changed=ASSISTERS_NO_TEXT_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("build/text-order.txt");
    // Debug builds gain nothing; the flag is LLD's.
    if var("PROFILE") != "release"
        || std::env::var_os("ASSISTERS_NO_TEXT_ORDER").is_some()
        || !order.is_file()
        || !links_with_rust_lld(&var("RUSTC"), &var("TARGET"))
    {
        return;
    }
    // Names missing from this build (changed dependencies) are skipped
    // quietly: the layout is then looser, never wrong.
    println!(
        "cargo:rustc-link-arg-bin=assisters=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bin=assisters=-Wl,--no-warn-symbol-ordering");
}

/// Whether rustc links this target with the LLD it ships (its default on
/// x86_64 Linux since 1.90, when the toolchain has it): a distribution's
/// rustc, another target or flags that choose the linker may use GNU ld,
/// which does not know the flag.
fn links_with_rust_lld(rustc: &str, target: &str) -> bool {
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" || flags.contains("link") {
        return false;
    }
    let sysroot = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    sysroot.is_some_and(|s| {
        s.join("lib/rustlib")
            .join(target)
            .join("bin/gcc-ld/ld.lld")
            .is_file()
    })
}

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
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build/text-order.txt");
    println!("cargo:rerun-if-env-changed=ASSISTERS_NO_TEXT_ORDER");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
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
    // quietly: the layout is then looser, never wrong. `-Xlinker` pairs,
    // since `-Wl,` would split a path at its commas.
    let order = order.display().to_string();
    for arg in [
        "--symbol-ordering-file",
        &order,
        "--no-warn-symbol-ordering",
    ] {
        println!("cargo:rustc-link-arg-bin=assisters=-Xlinker");
        println!("cargo:rustc-link-arg-bin=assisters={arg}");
    }
}

/// Whether rustc links this target with the LLD it ships: its default on
/// x86_64 Linux from 1.90, when the toolchain has it and nothing chooses
/// another linker (`linker = …` in cargo's config reaches build scripts as
/// `RUSTC_LINKER`, and a named `cc` or `clang` turns LLD off). GNU ld, which
/// an older or a distribution's rustc uses, does not know the flag.
fn links_with_rust_lld(rustc: &str, target: &str) -> bool {
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu"
        || flags.contains("link")
        || std::env::var_os("RUSTC_LINKER").is_some()
    {
        return false;
    }
    let rustc_says = |args: &[&str]| {
        Command::new(rustc)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    // `release: 1.95.0` (or `1.96.0-nightly`).
    let minor = rustc_says(&["-vV"]).and_then(|v| {
        let release = v.lines().find_map(|l| l.strip_prefix("release: "))?;
        let mut parts = release.split(['.', '-']);
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next()?.parse().ok()?;
        (major == 1).then_some(minor)
    });
    if minor.is_none_or(|m| m < 90) {
        return false;
    }
    rustc_says(&["--print", "sysroot"]).is_some_and(|s| {
        PathBuf::from(s.trim())
            .join("lib/rustlib")
            .join(target)
            .join("bin/gcc-ld/ld.lld")
            .is_file()
    })
}

//! Tells the tests whether the CPU they are built on (and run on: tests are
//! not cross-compiled here) has AVX2, so that the tests of the AVX2 kernels
//! are reported as ignored, with the reason, where they cannot run, instead
//! of passing without running anything. The library itself picks its kernels
//! at run time and does not use this.
//!
//! Likewise whether the machine has a boot id and a pid namespace id
//! (`pipeline::lease` tells a dead local lease holder by them): without
//! them the test of that takeover is reported as ignored, with the reason,
//! rather than passing without checking anything.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cpu_avx2)");
    println!("cargo::rustc-check-cfg=cfg(node_id)");
    println!("cargo::rerun-if-changed=build.rs");
    if std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .is_ok_and(|b| !b.trim().is_empty())
        && std::fs::read_link("/proc/self/ns/pid").is_ok()
    {
        println!("cargo::rustc-cfg=node_id");
    }
    #[cfg(target_arch = "x86_64")]
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64")
        && std::arch::is_x86_feature_detected!("avx2")
    {
        println!("cargo::rustc-cfg=cpu_avx2");
    }
}

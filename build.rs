//! Tells the tests whether the CPU they are built on (and run on: tests are
//! not cross-compiled here) has AVX2, so that the tests of the AVX2 kernels
//! are reported as ignored, with the reason, where they cannot run, instead
//! of passing without running anything. The library itself picks its kernels
//! at run time and does not use this.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cpu_avx2)");
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(target_arch = "x86_64")]
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64")
        && std::arch::is_x86_feature_detected!("avx2")
    {
        println!("cargo::rustc-cfg=cpu_avx2");
    }
}

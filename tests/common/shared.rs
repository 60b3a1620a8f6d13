//! Where the tests find the project's shared folder (`data/` with the
//! MovieLens samples, `spec/` with the schema spec): `$CINEMATCH_SHARED_DIR`
//! when set, else `../shared` next to the crate, as CI lays it out. The
//! variable exists for builds of a copy of the tree somewhere else
//! (`cargo mutants` builds and tests one in a temporary folder, where
//! `../shared` is nothing). The library's unit tests and the integration
//! tests include this one file, so they cannot disagree.

use std::path::PathBuf;

/// The shared folder: `$CINEMATCH_SHARED_DIR`, else `../shared` beside
/// `CARGO_MANIFEST_DIR`. Panics, naming both, when it is not a directory,
/// so a missing data set fails the test instead of skipping it.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("CINEMATCH_SHARED_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.is_dir(),
        "the shared folder {} is missing: the tests expect the MovieLens data and the spec in \
         ../shared next to the project, or in $CINEMATCH_SHARED_DIR",
        dir.display()
    );
    dir
}

//! ml-1m / ml-10m ratings (`ratings.dat`: `::` separated, no header).
#![no_main]

use cinematch_fuzz::Layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cinematch_fuzz::check_ratings("ratings.dat", data, None, Layout::Named);
});

//! ml-100k ratings (`u.data`: tab separated, not grouped by user).
#![no_main]

use cinematch_fuzz::Layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cinematch_fuzz::check_ratings("u.data", data, None, Layout::Named);
});

//! ml-100k movies (`u.item`: pipe separated, ISO-8859-1, 19 genre flags).
#![no_main]

use cinematch_fuzz::Layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cinematch_fuzz::check_movies("u.item", data, Layout::Named);
});

//! MovieLens CSV ratings (`ratings.csv`: header, comma separated, RFC 4180 quoting).
#![no_main]

use cinematch_fuzz::Layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cinematch_fuzz::check_ratings("ratings.csv", data, None, Layout::Named);
});

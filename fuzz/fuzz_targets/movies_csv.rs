//! MovieLens CSV movies (`movies.csv`: quoted titles, rejoined unquoted commas, UTF-8).
#![no_main]

use cinematch_fuzz::Layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cinematch_fuzz::check_movies("movies.csv", data, Layout::Named);
});

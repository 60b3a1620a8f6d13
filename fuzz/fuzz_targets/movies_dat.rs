//! ml-1m / ml-10m movies (`movies.dat`: `::` separated, UTF-8 or ISO-8859-1 per line).
#![no_main]

use cinematch_fuzz::Layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cinematch_fuzz::check_movies("movies.dat", data, Layout::Named);
});

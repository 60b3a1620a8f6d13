//! The HTTP API's request parsing, end to end: the real axum router (path
//! ids, query strings, bearer auth, JSON bodies, body limits, fallbacks)
//! over a SQLite store with a tiny catalogue and a champion model. See
//! `cinematch_fuzz::api` for the input format and the checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cinematch_fuzz::api::check_request(data);
});

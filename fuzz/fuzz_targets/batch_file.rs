//! The batch file reader behind `cinematch ingest` / `pipeline run`:
//! `formats::read_ratings` with the catalogue's movie ids, so ratings of
//! unknown movies are problems too. The first byte picks the file name, and
//! with it how the layout is found: by extension (`.csv`, `.dat`, `.tsv`) or
//! sniffed from the first line (`.txt`, no extension), as for a renamed
//! weekly export.
#![no_main]

use cinematch_fuzz::{batch_catalogue, Layout};
use libfuzzer_sys::fuzz_target;

const NAMES: [(&str, Layout); 5] = [
    ("batch_w1.csv", Layout::Named),
    ("batch_w1.dat", Layout::Named),
    ("batch_w1.tsv", Layout::Named),
    ("batch_w1.txt", Layout::Sniffed),
    ("batch_w1", Layout::Sniffed),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (name, layout) = NAMES[usize::from(pick) % NAMES.len()];
    cinematch_fuzz::check_ratings(name, rest, Some(batch_catalogue()), layout);
});

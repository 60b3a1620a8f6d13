//! Which MovieLens release a directory holds, and how each file is laid
//! out: from the release's file names, a file's own name, or its first line.

use std::path::{Path, PathBuf};

use super::layout::{Layout, ML100K_COLUMNS};
use crate::data::Format;

/// Lets `cinematch load <dir>` accept any unpacked MovieLens release without
/// the user having to say which one it is.
///
/// Returns the layout with the ratings and movies paths. When nothing
/// matches, the error lists the file pairs looked for, what was found, and a
/// subdirectory that does hold a release (a common slip after unzipping).
pub fn detect_format(dir: &Path) -> crate::Result<(Format, PathBuf, PathBuf)> {
    if !dir.exists() {
        return Err(crate::Error::NotFound(format!(
            "{} does not exist; pass the directory of an unpacked MovieLens release",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(crate::Error::InvalidArgument(format!(
            "{} is not a directory; pass the directory of an unpacked MovieLens release \
             (or name the ratings and movies files explicitly)",
            dir.display()
        )));
    }
    if let Some(found) = layout_in(dir) {
        return Ok(found);
    }

    let mut msg = format!(
        "no MovieLens release in {}: looked for {}",
        dir.display(),
        LAYOUTS
            .iter()
            .map(|(_, r, m)| format!("{r} + {m}"))
            .collect::<Vec<_>>()
            .join(", or ")
    );
    let present: Vec<&str> = LAYOUTS
        .iter()
        .flat_map(|(_, r, m)| [*r, *m])
        .filter(|name| dir.join(name).is_file())
        .collect();
    if !present.is_empty() {
        msg.push_str(&format!("; found only {}", present.join(", ")));
    }
    if let Some(sub) = subdir_with_release(dir) {
        msg.push_str(&format!(
            "; {} holds one, did you mean that?",
            sub.display()
        ));
    }
    Err(crate::Error::NotFound(msg))
}

const LAYOUTS: [(Format, &str, &str); 3] = [
    (Format::Csv, "ratings.csv", "movies.csv"),
    (Format::Dat, "ratings.dat", "movies.dat"),
    (Format::Ml100k, "u.data", "u.item"),
];

fn layout_in(dir: &Path) -> Option<(Format, PathBuf, PathBuf)> {
    LAYOUTS.iter().find_map(|&(format, r, m)| {
        let (r, m) = (dir.join(r), dir.join(m));
        (r.is_file() && m.is_file()).then_some((format, r, m))
    })
}

fn subdir_with_release(dir: &Path) -> Option<PathBuf> {
    let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && layout_in(p).is_some())
        .collect();
    subs.sort();
    subs.into_iter().next()
}

pub(super) fn layout_from_name(path: &Path) -> Option<Layout> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    match name.as_str() {
        "u.data" => return Some(Layout::Tab),
        "u.item" => return Some(Layout::Item),
        _ => {}
    }
    let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(Layout::Csv),
        "dat" => Some(Layout::Dat),
        "tsv" | "tab" | "data" => Some(Layout::Tab),
        "item" => Some(Layout::Item),
        _ => None,
    }
}

pub(super) fn layout_from_content(head: &[u8]) -> Layout {
    let line = first_line(head);
    if contains_seq(line, b"::") {
        Layout::Dat
    } else if line.iter().filter(|&&b| b == b'|').count() >= ML100K_COLUMNS - 1 {
        Layout::Item
    } else if line.contains(&b'\t') {
        Layout::Tab
    } else {
        Layout::Csv
    }
}

fn first_line(head: &[u8]) -> &[u8] {
    head.split(|&b| b == b'\n' || b == b'\r')
        .find(|l| !l.trim_ascii().is_empty())
        .unwrap_or(&[])
}

pub(super) fn contains_seq(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

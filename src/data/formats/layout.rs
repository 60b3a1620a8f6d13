//! How a file is laid out, and ml-100k's `u.item` columns: what format
//! detection (`detect`) decides and the separator readers (`lines`) read,
//! kept below both so neither imports the other.

/// How a single file is laid out. Ratings use Csv/Dat/Tab, movies Csv/Dat/Item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// RFC 4180 with a header line.
    Csv,
    /// `::`-separated, no header.
    Dat,
    /// Tab-separated, no header (ml-100k `u.data`).
    Tab,
    /// Pipe-separated with genre flags (ml-100k `u.item`).
    Item,
}

impl Layout {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Layout::Csv => "comma-separated",
            Layout::Dat => "'::'-separated",
            Layout::Tab => "tab-separated",
            Layout::Item => "pipe-separated (u.item)",
        }
    }
}

/// ml-100k's genre flag columns, in file order, already renamed to the modern
/// MovieLens spelling so PCA features line up across releases.
pub(super) const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];
/// u.item's width: id, title, two dates and a URL, then the genre flags.
pub(super) const ML100K_COLUMNS: usize = 5 + ML100K_GENRES.len();

//! Opening an input file: its encoding checked, a BOM dropped and every
//! line ending turned into LF, so the readers see one kind of text and count
//! the lines an editor shows.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use crate::data::{InputError, IssueKind};

/// How many leading bytes we look at to sniff encoding and layout.
const HEAD_BYTES: usize = 4096;
/// Buffer size of the CSV and line readers.
pub(super) const READ_BUFFER: usize = 1 << 16;

/// An opened input with its encoding checked, BOM removed and line endings
/// normalised, plus its first bytes for layout sniffing.
pub(super) struct Source {
    pub(super) path: PathBuf,
    pub(super) len: u64,
    pub(super) head: Vec<u8>,
    pub(super) reader: LfReader<io::Chain<Cursor<Vec<u8>>, File>>,
}

impl Source {
    pub(super) fn open(path: &Path) -> crate::Result<Source> {
        let io_err = |e| crate::Error::io(path, e);
        let mut file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut head = vec![0u8; HEAD_BYTES];
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        head.truncate(n);
        if looks_utf16(&head) {
            return Err(InputError {
                file: path.to_path_buf(),
                line: 0,
                kind: IssueKind::Encoding,
                detail: "file looks like UTF-16; save it as UTF-8".into(),
            }
            .into());
        }
        if head.starts_with(b"\xEF\xBB\xBF") {
            head.drain(..3);
        }
        let reader = LfReader::new(Cursor::new(head.clone()).chain(file));
        Ok(Source {
            path: path.to_path_buf(),
            len,
            head,
            reader,
        })
    }
}

fn looks_utf16(head: &[u8]) -> bool {
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return true;
    }
    // Without a BOM: ASCII text with every other byte NUL.
    head.len() >= 4
        && ((head[1] == 0 && head[3] == 0 && head[0] != 0)
            || (head[0] == 0 && head[2] == 0 && head[1] != 0))
}

/// Rewrites CRLF and lone CR to LF as bytes stream through, so line numbers
/// count the same physical lines an editor shows whatever the file's origin.
/// Also notes when the input runs out, which tells whether the CSV reader's
/// last record ended at a newline or at end of file (see
/// `record_start_line`).
pub(super) struct LfReader<R> {
    inner: R,
    after_cr: bool,
    pub(super) eof: bool,
}

impl<R: Read> LfReader<R> {
    fn new(inner: R) -> Self {
        LfReader {
            inner,
            after_cr: false,
            eof: false,
        }
    }
}

impl<R: Read> Read for LfReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.inner.read(buf)?;
            if n == 0 {
                self.eof = true;
                return Ok(0);
            }
            let m = if !self.after_cr && !buf[..n].contains(&b'\r') {
                n
            } else {
                let mut w = 0;
                for r in 0..n {
                    let b = buf[r];
                    if b == b'\n' && self.after_cr {
                        self.after_cr = false;
                        continue;
                    }
                    self.after_cr = b == b'\r';
                    buf[w] = if b == b'\r' { b'\n' } else { b };
                    w += 1;
                }
                w
            };
            // A chunk that was only the LF of a split CRLF: read on, since
            // returning 0 would signal end of file.
            if m > 0 {
                return Ok(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lf_reader_normalises_split_crlf() {
        struct Chunks(Vec<&'static [u8]>);
        impl Read for Chunks {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                let c = self.0.remove(0);
                buf[..c.len()].copy_from_slice(c);
                Ok(c.len())
            }
        }
        let mut rdr = LfReader::new(Chunks(vec![b"a\r", b"\n", b"b\rc\r\n", b"d"]));
        let mut out = Vec::new();
        rdr.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"a\nb\nc\nd");
        assert!(rdr.eof);
    }
}

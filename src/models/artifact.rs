//! The binary model artifact.
//!
//! A model is stored as one self-describing blob so the registry can keep it
//! in a database column or a file without a schema per algorithm. Layout
//! (all integers and floats little-endian):
//!
//! | offset | size            | content                                   |
//! |--------|-----------------|-------------------------------------------|
//! | 0      | 8               | magic `CMMODEL1`                          |
//! | 8      | 2               | format version (u16), currently 1         |
//! | 10     | 1               | algorithm tag (0 baseline, 1 svd, 2 als)  |
//! | 11     | 1               | flags, 0 in version 1                     |
//! | 12     | 4               | users `U` (u32)                           |
//! | 16     | 4               | movies `M` (u32)                          |
//! | 20     | 4               | factors `k` (u32)                         |
//! | 24     | 4               | global mean (f32)                         |
//! | 28     | 4·U             | user ids (i32, strictly ascending)        |
//! |        | 4·M             | movie ids (i32, strictly ascending)       |
//! |        | 4·U             | user biases (f32)                         |
//! |        | 4·M             | movie biases (f32)                        |
//! |        | 4·U·k           | user factors, row-major (f32)             |
//! |        | 4·M·k           | movie factors, row-major (f32)            |
//! | end−4  | 4               | CRC-32 (IEEE) of every preceding byte     |
//!
//! Decoding checks magic, version, declared length and checksum before
//! interpreting anything, and never trusts a count to size an allocation
//! beyond the input's own length, so arbitrary bytes yield an error, not a
//! panic or an out-of-memory abort.

use std::fmt;

use super::{Algo, FactorModel};
use crate::{Error, Result};

/// First bytes of every model artifact.
pub const ARTIFACT_MAGIC: &[u8; 8] = b"CMMODEL1";
/// The format version this build writes and the only one it reads.
pub const ARTIFACT_VERSION: u16 = 1;

const HEADER_LEN: usize = 28;
const CRC_LEN: usize = 4;

fn err(msg: impl fmt::Display) -> Error {
    Error::InvalidArgument(format!("model artifact: {msg}"))
}

impl FactorModel {
    /// Serializes the model into the versioned, checksummed artifact format
    /// described in the module docs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let floats = self.user_bias.len() + self.item_bias.len() + self.p.len() + self.q.len();
        let len = HEADER_LEN + 4 * (self.user_ids.len() + self.movie_ids.len() + floats) + CRC_LEN;
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(ARTIFACT_MAGIC);
        b.extend_from_slice(&ARTIFACT_VERSION.to_le_bytes());
        b.push(self.algo.tag());
        b.push(0);
        // `from_parts` guarantees the counts fit in u32; k ≤ p.len() / users
        // or is paired with zero users and movies.
        for n in [self.user_ids.len(), self.movie_ids.len(), self.k] {
            b.extend_from_slice(&(n as u32).to_le_bytes());
        }
        b.extend_from_slice(&self.global_mean.to_le_bytes());
        for ids in [&self.user_ids, &self.movie_ids] {
            for x in ids.iter() {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
        for v in [&self.user_bias, &self.item_bias, &self.p, &self.q] {
            for x in v.iter() {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(b.len(), len);
        b
    }

    /// Parses an artifact written by [`FactorModel::to_bytes`], rejecting
    /// truncated, corrupted or foreign data and unsupported versions with a
    /// message that says which.
    pub fn from_bytes(bytes: &[u8]) -> Result<FactorModel> {
        let n = bytes.len();
        if n < ARTIFACT_MAGIC.len() {
            return Err(if ARTIFACT_MAGIC.starts_with(bytes) {
                err(format!("truncated: only {n} bytes"))
            } else {
                err("not a CineMatch model (bad magic bytes)")
            });
        }
        if &bytes[..8] != ARTIFACT_MAGIC {
            return Err(err("not a CineMatch model (bad magic bytes)"));
        }
        if n < 10 {
            return Err(err(format!("truncated: only {n} bytes")));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != ARTIFACT_VERSION {
            return Err(err(format!(
                "unsupported format version {version}; this build of cinematch reads version \
                 {ARTIFACT_VERSION}{}",
                if version > ARTIFACT_VERSION {
                    " (the model was written by a newer release; upgrade cinematch)"
                } else {
                    ""
                }
            )));
        }
        if n < HEADER_LEN + CRC_LEN {
            return Err(err(format!(
                "truncated: {n} bytes, shorter than the {}-byte header",
                HEADER_LEN + CRC_LEN
            )));
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let (users, movies, k) = (u32_at(12) as u128, u32_at(16) as u128, u32_at(20) as u128);
        // In u128 nothing here can overflow (each product is below 2^64).
        let values = 2 * users + 2 * movies + users * k + movies * k;
        let expected = HEADER_LEN as u128 + 4 * values + CRC_LEN as u128;
        if (n as u128) < expected {
            return Err(err(format!(
                "truncated or corrupted: the header declares {expected} bytes but {n} are present"
            )));
        }
        if n as u128 > expected {
            return Err(err(format!(
                "corrupted: {} unexpected bytes after the declared {expected}",
                n as u128 - expected
            )));
        }
        let body = &bytes[..n - CRC_LEN];
        let stored = u32_at(n - CRC_LEN);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(err(format!(
                "corrupted: checksum mismatch (stored {stored:08x}, computed {computed:08x})"
            )));
        }
        let tag = bytes[10];
        let algo = Algo::from_tag(tag).ok_or_else(|| {
            err(format!(
                "unknown algorithm tag {tag} (written by a newer release?)"
            ))
        })?;
        if bytes[11] != 0 {
            return Err(err(format!("unsupported flags {:#04x}", bytes[11])));
        }
        let global_mean = f32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
        // Lengths were verified against the input size, so these fit in usize.
        let (users, movies, k) = (users as usize, movies as usize, k as usize);
        let mut rest = &body[HEADER_LEN..];
        let mut take = |count: usize| {
            let (head, tail) = rest.split_at(4 * count);
            rest = tail;
            head.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]])
        };
        let user_ids = take(users).map(i32::from_le_bytes).collect();
        let movie_ids = take(movies).map(i32::from_le_bytes).collect();
        let user_bias = take(users).map(f32::from_le_bytes).collect();
        let item_bias = take(movies).map(f32::from_le_bytes).collect();
        let p = take(users * k).map(f32::from_le_bytes).collect();
        let q = take(movies * k).map(f32::from_le_bytes).collect();
        FactorModel::from_parts(
            algo,
            global_mean,
            user_ids,
            movie_ids,
            user_bias,
            item_bias,
            k,
            p,
            q,
        )
        .map_err(|e| err(e.to_string()))
    }
}

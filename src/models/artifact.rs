//! The binary model artifact.
//!
//! A model is stored as one self-describing blob so the registry can keep it
//! in a database column or a file without a schema per algorithm. Layout of
//! format version 2 (all integers and floats little-endian):
//!
//! | size            | content                                              |
//! |-----------------|------------------------------------------------------|
//! | 8               | magic `CMMODEL1`                                     |
//! | 2               | format version (u16), 2                              |
//! | 1               | algorithm tag (0 baseline, 1 svd, 2 als, 3 ials, 4 ease) |
//! | 1               | flags, 0                                             |
//! | 4               | length `L` of the settings (u32)                     |
//! | L               | settings the model needs at serving time, JSON       |
//! |                 | (iALS: `reg`, `alpha`, `signal`, `half_life`,        |
//! |                 | `reference_time`, `niche`; EASE: its params and      |
//! |                 | `reference_time`, both absent in older artifacts)    |
//! | ...             | the body, by algorithm (below)                       |
//! | 4               | CRC-32 (IEEE) of every preceding byte                |
//!
//! Factor models (baseline, svd, als, ials): users `U`, movies `M`, factors
//! `k` (u32 each), the global mean (f32), then user ids and movie ids (i32,
//! strictly ascending), user and movie biases (f32), user factors `U·k` and
//! movie factors `M·k` (f32, row-major). EASE: covered movies `n`,
//! catalogue size, stored weights `w` (u32 each), then movie ids (`n` i32),
//! row offsets (`n + 1` u32), columns (`w` u32) and weights (`w` f32).
//!
//! Version 1 (written before ranking models existed) had no settings block
//! and only the factor body; it is still read.
//!
//! Decoding checks magic, version, declared lengths and checksum before
//! interpreting anything, and never trusts a count to size an allocation
//! beyond the input's own length, so arbitrary bytes yield an error, not a
//! panic or an out-of-memory abort.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ease::{EaseModel, EaseParams};
use super::niche::NicheParams;
use super::signal::{HalfLife, Signal, Weighting};
use super::{Algo, FactorModel, Model};
use crate::{Error, Result};

/// First bytes of every model artifact.
pub const ARTIFACT_MAGIC: &[u8; 8] = b"CMMODEL1";
/// The format version this build writes (it also reads version 1).
pub const ARTIFACT_VERSION: u16 = 2;

const CRC_LEN: usize = 4;
/// Magic, version, tag and flags.
const PREFIX_LEN: usize = 12;

fn err(msg: impl fmt::Display) -> Error {
    Error::Artifact(msg.to_string())
}

/// The settings block of an iALS model.
#[derive(Serialize, Deserialize)]
struct ImplicitSettings {
    reg: f32,
    alpha: f32,
    signal: Signal,
    #[serde(default)]
    half_life: HalfLife,
    #[serde(default)]
    reference_time: i64,
    #[serde(default = "one")]
    fresh_weight: f32,
    #[serde(default)]
    niche: NicheParams,
    #[serde(default = "crate::models::signal::no_fade")]
    history_half_life: HalfLife,
}

fn one() -> f32 {
    1.0
}

/// The key the EASE settings block adds to the model's parameters.
const REFERENCE_TIME: &str = "reference_time";

/// Appends little-endian values.
struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f32(&mut self, x: f32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn i32s(&mut self, v: &[i32]) {
        v.iter()
            .for_each(|x| self.0.extend_from_slice(&x.to_le_bytes()));
    }
    fn u32s(&mut self, v: &[u32]) {
        v.iter()
            .for_each(|x| self.0.extend_from_slice(&x.to_le_bytes()));
    }
    fn f32s(&mut self, v: &[f32]) {
        v.iter()
            .for_each(|x| self.0.extend_from_slice(&x.to_le_bytes()));
    }

    fn start(algo: Algo, settings: &str, body_len: usize) -> Writer {
        let mut w = Writer(Vec::with_capacity(
            PREFIX_LEN + 4 + settings.len() + body_len + CRC_LEN,
        ));
        w.0.extend_from_slice(ARTIFACT_MAGIC);
        w.0.extend_from_slice(&ARTIFACT_VERSION.to_le_bytes());
        w.0.push(algo.tag());
        w.0.push(0);
        w.u32(settings.len() as u32);
        w.0.extend_from_slice(settings.as_bytes());
        w
    }

    fn finish(mut self) -> Vec<u8> {
        let crc = crc32fast::hash(&self.0);
        self.0.extend_from_slice(&crc.to_le_bytes());
        self.0
    }
}

/// Reads little-endian values from a slice whose length was checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(err(format!(
                "truncated or corrupted: {n} more bytes declared but {} present",
                self.0.len()
            )));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_bits(self.u32()?))
    }
    /// `count` 4-byte values; the length is checked before allocating.
    fn words(&mut self, count: usize) -> Result<impl Iterator<Item = [u8; 4]> + 'a> {
        let n = count
            .checked_mul(4)
            .ok_or_else(|| err("corrupted: impossible element count"))?;
        let b = self.bytes(n)?;
        Ok(b.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]))
    }
    fn i32s(&mut self, count: usize) -> Result<Vec<i32>> {
        Ok(self.words(count)?.map(i32::from_le_bytes).collect())
    }
    fn u32s(&mut self, count: usize) -> Result<Vec<u32>> {
        Ok(self.words(count)?.map(u32::from_le_bytes).collect())
    }
    fn f32s(&mut self, count: usize) -> Result<Vec<f32>> {
        Ok(self.words(count)?.map(f32::from_le_bytes).collect())
    }
}

impl FactorModel {
    fn write_body(&self, w: &mut Writer) {
        // `from_parts` guarantees the counts fit in u32.
        for n in [self.user_ids.len(), self.movie_ids.len(), self.k] {
            w.u32(n as u32);
        }
        w.f32(self.global_mean);
        w.i32s(&self.user_ids);
        w.i32s(&self.movie_ids);
        for v in [&self.user_bias, &self.item_bias, &self.p, &self.q] {
            w.f32s(v);
        }
    }

    fn body_len(&self) -> usize {
        16 + 4
            * (self.user_ids.len()
                + self.movie_ids.len()
                + self.user_bias.len()
                + self.item_bias.len()
                + self.p.len()
                + self.q.len())
    }

    fn read_body(algo: Algo, r: &mut Reader) -> Result<FactorModel> {
        let (users, movies, k) = (r.u32()? as u64, r.u32()? as u64, r.u32()? as u64);
        let global_mean = r.f32()?;
        // u64 cannot overflow here (each product is below 2^64); the reads
        // below fail before allocating if the input is shorter.
        let values = 2 * users + 2 * movies + users * k + movies * k;
        if values.saturating_mul(4) > r.0.len() as u64 {
            return Err(err(format!(
                "truncated or corrupted: the header declares {} bytes of factors but {} are present",
                values.saturating_mul(4),
                r.0.len()
            )));
        }
        let (users, movies, k) = (users as usize, movies as usize, k as usize);
        let user_ids = r.i32s(users)?;
        let movie_ids = r.i32s(movies)?;
        let user_bias = r.f32s(users)?;
        let item_bias = r.f32s(movies)?;
        let p = r.f32s(users * k)?;
        let q = r.f32s(movies * k)?;
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

    /// Serializes the model into the versioned, checksummed artifact format
    /// described in the module docs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let settings = match self.implicit() {
            Some(s) => serde_json::to_string(&ImplicitSettings {
                reg: s.reg,
                alpha: s.alpha,
                signal: s.weighting.signal,
                half_life: s.weighting.half_life,
                reference_time: s.weighting.reference,
                fresh_weight: s.weighting.fresh,
                history_half_life: s.weighting.recent,
                niche: s.niche,
            })
            .unwrap_or_default(),
            None => "{}".to_string(),
        };
        let mut w = Writer::start(self.algo, &settings, self.body_len());
        self.write_body(&mut w);
        w.finish()
    }

    /// Parses a factor-model artifact (any format version), rejecting
    /// truncated, corrupted or foreign data, unsupported versions and EASE
    /// artifacts with a message that says which.
    pub fn from_bytes(bytes: &[u8]) -> Result<FactorModel> {
        match Model::from_bytes(bytes)? {
            Model::Factor(m) => Ok(m),
            Model::Ease(_) => Err(err("an ease model is not a factor model")),
        }
    }
}

impl EaseModel {
    /// Serializes the model (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut settings = serde_json::to_value(self.params()).unwrap_or_default();
        if let Some(map) = settings.as_object_mut() {
            map.insert(REFERENCE_TIME.into(), self.reference_time().into());
        }
        let settings = settings.to_string();
        let (offsets, cols, vals) = self.parts();
        let n = self.movie_ids().len();
        let body = 12 + 4 * (n + offsets.len() + cols.len() + vals.len());
        let mut w = Writer::start(Algo::Ease, &settings, body);
        w.u32(n as u32);
        w.u32(self.catalogue() as u32);
        w.u32(cols.len() as u32);
        w.i32s(self.movie_ids());
        w.u32s(offsets);
        w.u32s(cols);
        w.f32s(vals);
        w.finish()
    }

    /// The parameters and reference time of an EASE settings block (older
    /// artifacts have no reference time: 0, which no half-life then uses).
    fn read_settings(settings: &[u8]) -> Result<(EaseParams, i64)> {
        let bad = |e: serde_json::Error| err(format!("corrupted ease settings: {e}"));
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(settings).map_err(bad)?;
        let reference = match map.remove(REFERENCE_TIME) {
            Some(v) => v
                .as_i64()
                .ok_or_else(|| err("corrupted ease settings: reference_time is not an integer"))?,
            None => 0,
        };
        let params = serde_json::from_value(serde_json::Value::Object(map)).map_err(bad)?;
        Ok((params, reference))
    }

    fn read_body(params: EaseParams, reference: i64, r: &mut Reader) -> Result<EaseModel> {
        let (n, catalogue, weights) = (r.u32()? as usize, r.u32()?, r.u32()? as usize);
        let movie_ids = r.i32s(n)?;
        let offsets = r.u32s(n + 1)?;
        let cols = r.u32s(weights)?;
        let vals = r.f32s(weights)?;
        EaseModel::from_parts(params, reference, movie_ids, catalogue, offsets, cols, vals)
            .map_err(|e| err(e.to_string()))
    }
}

impl Model {
    /// Serializes the model into the versioned, checksummed artifact format
    /// described in the module docs.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Model::Factor(m) => m.to_bytes(),
            Model::Ease(m) => m.to_bytes(),
        }
    }

    /// Parses an artifact written by [`Model::to_bytes`] (or by a release
    /// that wrote format version 1), rejecting truncated, corrupted or
    /// foreign data and unsupported versions with a message that says which.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
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
        if version != 1 && version != ARTIFACT_VERSION {
            return Err(err(format!(
                "unsupported format version {version}; this build of cinematch reads versions 1 \
                 and {ARTIFACT_VERSION}{}",
                if version > ARTIFACT_VERSION {
                    " (the model was written by a newer release; upgrade cinematch)"
                } else {
                    ""
                }
            )));
        }
        if n < PREFIX_LEN + CRC_LEN {
            return Err(err(format!(
                "truncated: {n} bytes, shorter than the {}-byte header",
                PREFIX_LEN + CRC_LEN
            )));
        }
        let body = &bytes[..n - CRC_LEN];
        let stored = u32::from_le_bytes([bytes[n - 4], bytes[n - 3], bytes[n - 2], bytes[n - 1]]);
        let computed = crc32fast::hash(body);
        if stored != computed {
            // A short input with a wrong checksum is most likely cut off.
            return Err(err(format!(
                "truncated or corrupted: checksum mismatch (stored {stored:08x}, computed \
                 {computed:08x})"
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
        let mut r = Reader(&body[PREFIX_LEN..]);
        let settings: &[u8] = if version == 1 {
            b"{}"
        } else {
            let len = r.u32()? as usize;
            r.bytes(len)?
        };
        let model = match algo {
            Algo::Ease => {
                let (params, reference) = EaseModel::read_settings(settings)?;
                Model::Ease(EaseModel::read_body(params, reference, &mut r)?)
            }
            _ => {
                let mut m = FactorModel::read_body(algo, &mut r)?;
                if algo == Algo::Ials {
                    let s: ImplicitSettings = serde_json::from_slice(settings)
                        .map_err(|e| err(format!("corrupted ials settings: {e}")))?;
                    m.set_implicit(
                        s.reg,
                        s.alpha,
                        Weighting {
                            signal: s.signal,
                            half_life: s.half_life,
                            reference: s.reference_time,
                            fresh: s.fresh_weight,
                            recent: s.history_half_life,
                        },
                        s.niche,
                    );
                }
                Model::Factor(m)
            }
        };
        if !r.0.is_empty() {
            return Err(err(format!(
                "corrupted: {} unexpected bytes after the model",
                r.0.len()
            )));
        }
        Ok(model)
    }
}

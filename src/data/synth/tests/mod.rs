//! The generator end to end: `history` checks the base dataset's shape
//! against MovieLens, `weekly` the batches and the drift they carry, `drift`
//! the drift's CLI form.

mod drift;
mod history;
mod weekly;

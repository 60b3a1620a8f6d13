//! Everything the commands print to stdout: each function takes what the
//! library returned and writes it as text or a [`table`](super::table), so
//! the command files only call the library. Numbers go through
//! [`cinematch::format`], as on the dashboard.
//!
//! One file per command group, re-exported here so a command calls
//! `print::trained(..)` without knowing which file holds it.

mod backtest;
mod data;
mod db;
mod demo;
mod json;
mod models;
mod monitor;
mod recommend;

pub use backtest::*;
pub use data::*;
pub use db::*;
pub use demo::*;
pub use json::*;
pub use models::*;
pub use monitor::*;
pub use recommend::*;

/// `--json`: the value, pretty-printed, on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// How every command prints a moment.
const DATE_TIME: &str = "%Y-%m-%d %H:%M:%S";

//! medallion: CSV files landing in a raw zone become a lakehouse of Delta tables.
//!
//! The pipeline is usable without the CLI: [`config::load`] a configuration, then
//! [`run::run`] it; [`commands`] holds the read side (query, history, status).

pub mod cells;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dashboard;
pub mod dry_run;
pub mod error;
pub mod generate;
pub mod ingest;
pub mod init;
pub mod optimize;
pub mod plan;
pub mod progress;
pub mod reconcile;
pub mod report;
pub mod row;
pub mod run;
pub mod runs;
pub mod schema;
pub mod status;
pub mod storage;
pub mod zones;

pub use error::{MedallionError, Result};

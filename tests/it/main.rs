//! Integration tests: the real `medallion` binary against temporary lakehouses.

mod bad_input;
mod batches;
mod cli;
mod config_changes;
mod exactly_once;
mod exit_codes;
mod gold_models;
mod init;
mod interop;
mod ledger;
mod model_changes;
mod object_stores;
mod operator;
mod optimize;
mod other_schema;
mod pipeline;
mod rebuild;
mod reconcile;
mod remote;
mod report;
mod rules;
mod settled;
mod sources;
mod stores;
mod workdir;

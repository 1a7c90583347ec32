//! Integration tests: the real `medallion` binary against temporary lakehouses.

mod bad_input;
mod cli;
mod exactly_once;
mod interop;
mod ledger;
mod other_schema;
mod pipeline;
mod rules;
mod workdir;

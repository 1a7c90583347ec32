//! The `medallion` binary: parse arguments, run the command, map errors to exit codes.
//! Exit codes: 0 success; 1 a file failed to load or an operation failed; 2 the
//! configuration or the command line is wrong.

use clap::Parser;
use medallion::cli::{Cli, execute};

/// mimalloc: Arrow and Parquet allocate and free many short-lived buffers; glibc's
/// malloc spent ~15% of a 1M-row run in its own bookkeeping.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEDALLION_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,deltalake_core::operations::merge=error")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_user_error() { 2 } else { 1 }
        }
    };
    std::process::exit(code);
}

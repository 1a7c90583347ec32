//! The `medallion` binary: parse arguments, run the command, map errors to exit codes.
//! Exit codes: 0 success; 1 a file failed to load or an operation failed; 2 the
//! configuration or the command line is wrong.

use clap::Parser;
use medallion::cli::{Cli, execute};

/// mimalloc: Arrow and Parquet allocate and free many short-lived buffers; glibc's
/// malloc spent ~15% of a 1M-row run in its own bookkeeping.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc keeps freed pages for reuse, and by default commits its arenas eagerly: at
/// 10M rows most of a 1.1-1.2 GiB peak RSS was such retention. Medallion's defaults:
/// arenas committed on demand, freed pages returned after 100 ms (peak 0.6-0.9 GiB at
/// the same wall time; shorter delays save more memory but cost system time), and no
/// transparent huge pages: mimalloc asks for them on its arenas, and the kernel then
/// zeroes 2 MiB at a time on first touch and keeps a whole huge page resident for a
/// few live bytes (BENCHMARKS.md, "No transparent huge pages"). `MIMALLOC_ARENA_EAGER_COMMIT`,
/// `MIMALLOC_PURGE_DELAY` and `MIMALLOC_ALLOW_THP` in the environment still win.
fn tune_allocator() {
    // Values of `mi_option_e` in the mimalloc v3 that libmimalloc-sys 0.1.49 builds (it
    // exports no constants for these two; the same in its v2).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    for (var, option, value) in [
        ("MIMALLOC_ARENA_EAGER_COMMIT", ARENA_EAGER_COMMIT, 0),
        ("MIMALLOC_PURGE_DELAY", PURGE_DELAY, 100),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: called first thing in `main`, before any other thread exists
            // (mimalloc's option setters are not thread safe); the option ids are valid.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        no_huge_pages();
    }
}

/// Turn transparent huge pages off for this process: mimalloc's own `allow_thp`
/// option takes effect when it starts, before `main`; the process-wide flag it would
/// set also applies to pages already mapped. Returns whether they are off (not on an
/// old kernel, nor off Linux).
fn no_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: both calls take plain integers and touch no memory of ours.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
            libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1
        }
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// What is logged (to stderr): `MEDALLION_LOG`, else `RUST_LOG` (both in `tracing`'s
/// `EnvFilter` syntax, e.g. `info` or `medallion=debug`), else warnings.
fn log_filter() -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    EnvFilter::try_from_env("MEDALLION_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("warn,deltalake_core::operations::merge=error"))
}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .init();
    // Local file IO runs on tokio's blocking pool (512 threads by default). A 10 M-row
    // load grew it to ~30 threads, and their allocator heaps and buffers took ~40 % of
    // the peak RSS: a pool of 8 (on 2 cores) halved the peak (850-880 -> 480-540 MiB)
    // at the same wall time. Not much lower: delta-rs runs log replay on blocking
    // threads that wait for IO tasks which need blocking threads themselves: a pool of
    // one deadlocks, two loaded the benchmark's 1 M rows, 8 leaves a wide margin.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(8.max(2 * cores))
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
            e.exit_code()
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_turned_off() {
        assert!(super::no_huge_pages());
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().eq(["THP_enabled:", "0"])),
            "{status}"
        );
    }
}

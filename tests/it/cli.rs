//! The command line: help on every command, configuration errors reported together
//! with nothing written, unknown tables, bad time-travel values.

use crate::workdir::Workdir;

#[test]
fn every_command_has_help() {
    let w = Workdir::sample_config();
    for cmd in [
        &["--help"][..],
        &["run", "--help"],
        &["query", "--help"],
        &["history", "--help"],
        &["status", "--help"],
        &["validate", "--help"],
    ] {
        let r = w.medallion(cmd);
        assert_eq!(r.code, 0, "{cmd:?}: {r:?}");
        assert!(r.stdout.contains("Usage: medallion"), "{cmd:?}: {r:?}");
    }
    let r = w.medallion(&["query", "--help"]);
    assert!(r.stdout.contains("--as-of"), "{r:?}");
}

#[test]
fn invalid_config_lists_every_problem_and_writes_nothing() {
    let cfg =
        std::fs::read_to_string(std::path::Path::new(crate::workdir::REPO).join("config.yaml"))
            .unwrap()
            .replace("type: decimal(12,3)", "type: decmal(12,3)")
            .replace("    header: true\n", "    header: true\n    headr: true\n")
            .replace("timezone: UTC", "timezone: Nowhere/Land");
    let w = Workdir::with_config(&cfg);
    w.add_sample("readings_2026-01-01.csv");
    let r = w.medallion(&["run"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("3 problems"), "{r:?}");
    assert!(
        r.stderr
            .contains("source.columns[4].type: unknown type \"decmal(12,3)\""),
        "{r:?}"
    );
    assert!(r.stderr.contains("source.csv.headr: unknown key"), "{r:?}");
    assert!(
        r.stderr.contains("source.timezone: unknown timezone"),
        "{r:?}"
    );
    let entries: Vec<_> = std::fs::read_dir(w.root.join("lakehouse"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("raw")],
        "nothing written"
    );
    let v = w.medallion(&["validate"]);
    assert_eq!(v.code, 2, "{v:?}");
}

#[test]
fn missing_config_and_bad_arguments() {
    let w = Workdir::sample_config();
    std::fs::remove_file(w.root.join("config.yaml")).unwrap();
    let r = w.medallion(&["status"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("cannot read the file"), "{r:?}");

    let w = Workdir::sample_config();
    let r = w.medallion(&["query", "SELECT 1", "--as-of", "yesterday"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("expected a version number or a timestamp"),
        "{r:?}"
    );
    let r = w.medallion(&["history", "gold.nope"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown table \"gold.nope\""), "{r:?}");
    let r = w.medallion(&["query", "SELECT COUNT(*) FROM silver.readings"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("does not exist yet"), "{r:?}");
}

#[test]
fn generated_data_loads_with_exact_counts() {
    let w = Workdir::sample_config();
    let raw = w.raw();
    let g = w.medallion(&[
        "generate",
        "--rows",
        "3000",
        "--customers",
        "30",
        "--days",
        "5",
        "--bad-fraction",
        "0.01",
        "--corrections",
        "0.02",
        "--files",
        "2",
        "--seed",
        "7",
        "--out",
        raw.to_str().unwrap(),
    ]);
    assert_eq!(g.code, 0, "{g:?}");
    // "wrote 3 file(s), B bytes: 3000 readings (X bad), Y corrections"
    let words: Vec<&str> = g.stdout.split_whitespace().collect();
    let bad: u64 = words[7].trim_start_matches('(').parse().unwrap();
    let corrections: u64 = words[9].parse().unwrap();
    assert!(bad > 0 && corrections > 0, "{g:?}");
    w.run_expect(0);
    assert_eq!(w.count("FROM bronze.readings"), 3000 + corrections);
    assert_eq!(w.count("FROM rejected.readings"), bad);
    assert_eq!(w.count("FROM silver.readings"), 3000 - bad);
    let model = crate::workdir::sample_model_sql();
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &model, "silver.readings"),
        0
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let w = Workdir::sample_config();
    w.add_sample("readings_2026-01-01.csv");
    w.run_expect(0);
    // Far more output than a pipe buffers; the reader goes away after one line.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_medallion"))
        .args([
            "query",
            "SELECT * FROM bronze.readings CROSS JOIN (VALUES (1), (2), (3)) AS t(x)",
        ])
        .arg("--config")
        .arg(w.root.join("config.yaml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(!first.is_empty());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn completions_and_the_man_page_need_no_configuration() {
    // An empty directory: no config.yaml, nothing written.
    let w = Workdir::with_config("");
    std::fs::remove_file(w.root.join("config.yaml")).unwrap();
    for (shell, marker) in [
        ("bash", "complete -F _medallion"),
        ("zsh", "#compdef medallion"),
        ("fish", "complete -c medallion"),
    ] {
        let r = w.medallion(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {r:?}");
        assert!(
            r.stdout.contains(marker),
            "{shell}: {}",
            &r.stdout[..200.min(r.stdout.len())]
        );
        assert!(
            r.stdout.contains("rebuild"),
            "{shell}: subcommands are completed"
        );
    }
    let r = w.medallion(&["completions", "tcsh"]);
    assert_eq!(r.code, 2, "{r:?}");
    let man = w.medallion(&["man"]);
    assert_eq!(man.code, 0, "{man:?}");
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH medallion"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(
        man.stdout.contains("vacuum"),
        "the man page lists the subcommands"
    );
}

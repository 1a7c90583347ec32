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
        &["init", "--help"],
        &["reconcile", "--help"],
    ] {
        let r = w.medallion(cmd);
        assert_eq!(r.code, 0, "{cmd:?}: {r:?}");
        assert!(r.stdout.contains("Usage: medallion"), "{cmd:?}: {r:?}");
    }
    let r = w.medallion(&["query", "--help"]);
    assert!(r.stdout.contains("--as-of"), "{r:?}");
    // The tests run a debug build, and it says so.
    let r = w.medallion(&["--version"]);
    let version = format!("medallion {} (debug build)\n", env!("CARGO_PKG_VERSION"));
    assert_eq!((r.code, r.stdout.as_str()), (0, version.as_str()), "{r:?}");
}

#[test]
fn invalid_config_lists_every_problem_and_writes_nothing() {
    let cfg = std::fs::read_to_string(
        std::path::Path::new(crate::workdir::REPO).join("examples/readings.yaml"),
    )
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

#[test]
fn validate_with_files_is_a_dry_run_that_predicts_the_load() {
    let w = Workdir::sample_config();
    // Outside the landing zone; four bad customer ids (three examples are kept), one
    // long value (its content is cut), one warning.
    let secret = "S".repeat(200);
    let mut csv = String::from("customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n");
    for h in 0..4 {
        csv += &format!(
            "X{h},M00000001,2024-01-01T0{h}:00:00Z,2024-01-01T0{}:00:00Z,1,actual\n",
            h + 1
        );
    }
    csv +=
        &format!("C000001,M00000001,2024-01-02T00:00:00Z,2024-01-02T01:00:00Z,1{secret},actual\n");
    csv += "C000001,M00000001,2024-01-03T00:00:00Z,2024-01-03T01:00:00Z,150,actual\n";
    csv += "C000002,M00000001,2024-01-03T00:00:00Z,2024-01-03T01:00:00Z,2.5,estimated\n";
    let outside = w.root.join("elsewhere.csv");
    std::fs::write(&outside, &csv).unwrap();
    let missing = w.root.join("missing.csv");
    let before = w.lake_files();

    let r = w.medallion(&[
        "validate",
        "--json",
        outside.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "the missing file fails: {r:?}");
    assert!(
        !r.stdout.contains(&secret[..65]),
        "raw content is cut: {r:?}"
    );
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    let f = &doc["files"][0];
    assert_eq!(f["error"], serde_json::Value::Null, "{r:?}");
    assert_eq!(
        (
            f["rows_read"].as_u64(),
            f["accepted"].as_u64(),
            f["rejected"].as_u64()
        ),
        (Some(7), Some(2), Some(5))
    );
    assert_eq!(f["rejected_by_rule"]["customer_id_format"], 4);
    assert_eq!(f["rejected_by_rule"]["type"], 1);
    assert_eq!(f["warnings"]["plausible_hourly_usage"], 1);
    let examples = f["examples"]["customer_id_format"].as_array().unwrap();
    let lines: Vec<u64> = examples
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 3, 4], "the first three offending lines");
    let cut = f["examples"]["type"][0]["content"].as_str().unwrap();
    assert_eq!(
        cut.chars().count(),
        65,
        "64 characters and an ellipsis: {cut}"
    );
    assert!(
        doc["files"][1]["error"]
            .as_str()
            .unwrap()
            .contains("missing.csv"),
        "{r:?}"
    );
    assert_eq!(w.lake_files(), before, "a dry run writes nothing");

    let text = w.medallion(&["validate", outside.to_str().unwrap()]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout
            .contains("7 rows read, 2 would be accepted, 5 rejected"),
        "{text:?}"
    );
    assert!(text.stdout.contains("    line 2: "), "{text:?}");

    // The load does what the dry run said.
    w.write_raw("elsewhere.csv", &csv);
    let run = w.medallion(&["run"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.count("FROM silver.readings"), 2);
    assert_eq!(w.count("FROM rejected.readings"), 5);
}

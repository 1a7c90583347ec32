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

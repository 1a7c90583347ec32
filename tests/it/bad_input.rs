//! Bad input never stops the line: the malformed-file corpus in `tests/fixtures/bad/`
//! runs through the real binary in one run, each file with its expected outcome; memory
//! stays bounded on a 1 GB endless quoted field and on a 1 GB line; messages never carry
//! more than ~64 characters of raw content.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::workdir::{REPO, Workdir, text};

fn corpus_dir() -> std::path::PathBuf {
    Path::new(REPO).join("tests/fixtures/bad")
}

#[test]
fn malformed_file_corpus() {
    let dir = corpus_dir();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let cases = expected.as_object().unwrap();
    assert!(
        cases.len() >= 30,
        "the corpus has at least 30 files, found {}",
        cases.len()
    );
    let w = Workdir::with_config(&std::fs::read_to_string(dir.join("config.yaml")).unwrap());
    for name in cases.keys() {
        std::fs::copy(dir.join(name), w.raw().join(name)).unwrap();
    }
    let failing = cases.values().filter(|c| c["outcome"] == "failed").count();
    let r = w.medallion(&["run"]);
    assert_eq!(r.code, if failing > 0 { 1 } else { 0 }, "{r:?}");
    for (name, case) in cases {
        match case["outcome"].as_str().unwrap() {
            "failed" => {
                let message = r.failure_of(name);
                for needle in case["message_contains"].as_array().unwrap() {
                    assert!(
                        message.contains(&text(needle)),
                        "{name}: message {message:?} lacks {needle}"
                    );
                }
                assert_eq!(
                    w.count(&format!(
                        "FROM bronze.readings WHERE _source_file = '{name}'"
                    )),
                    0,
                    "{name}"
                );
                assert_eq!(
                    w.count(&format!(
                        "FROM _medallion.files WHERE file = '{name}' AND status = 'failed'"
                    )),
                    1
                );
            }
            "loaded" => {
                assert_eq!(
                    w.count(&format!(
                        "FROM _medallion.files WHERE file = '{name}' AND status = 'loaded'"
                    )),
                    1,
                    "{name} should load: {r:?}"
                );
                let rows = case["rows"].as_u64().unwrap();
                assert_eq!(
                    w.count(&format!(
                        "FROM bronze.readings WHERE _source_file = '{name}'"
                    )),
                    rows,
                    "{name} bronze"
                );
                let got = w.query(&format!(
                    "SELECT DISTINCT _source_line AS line, get_field(r, 'rule') AS rule FROM (SELECT _source_line, \
                     unnest(rejection_reasons) AS r FROM rejected.readings WHERE _source_file = '{name}') ORDER BY 1, 2"
                ));
                let got: Vec<String> = got
                    .iter()
                    .map(|g| format!("{}:{}", text(&g["line"]), text(&g["rule"])))
                    .collect();
                let mut want: Vec<(u64, String)> = case["rejected"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .flat_map(|(line, rules)| {
                        rules
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(move |r| (line.parse::<u64>().unwrap(), text(r)))
                    })
                    .collect();
                want.sort();
                let want: Vec<String> = want.into_iter().map(|(l, r)| format!("{l}:{r}")).collect();
                assert_eq!(got, want, "{name}: rejected rows and rules");
                let rejected = case["rejected"].as_object().unwrap().len() as u64;
                let ledger = w.query(&format!(
                    "SELECT silver_accepted, rejected FROM _medallion.files WHERE file = '{name}' AND status = 'loaded'"
                ));
                assert_eq!(text(&ledger[0]["rejected"]), rejected.to_string(), "{name}");
                assert_eq!(
                    text(&ledger[0]["silver_accepted"]),
                    case["accepted"].as_u64().unwrap().to_string(),
                    "{name}"
                );
                assert_eq!(
                    rows,
                    case["accepted"].as_u64().unwrap() + rejected,
                    "{name}: bronze = accepted + rejected"
                );
                for check in case
                    .get("checks")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let col = text(&check["column"]);
                    let v = w.scalar(&format!(
                        "SELECT CAST({col} AS VARCHAR) FROM silver.readings WHERE _source_file = '{name}' AND _source_line = {}",
                        check["line"]
                    ));
                    assert_eq!(v, text(&check["equals"]), "{name}:{} {col}", check["line"]);
                }
            }
            other => panic!("{name}: unknown outcome {other}"),
        }
    }
    // No message shows more than ~64 characters of a raw value.
    for line in r.stdout.lines().chain(r.stderr.lines()) {
        assert!(
            !line.contains(&"x".repeat(80)),
            "raw content leaked: {}",
            &line[..line.len().min(200)]
        );
    }
}

/// Peak RSS (KiB) of `medallion run` in `w`. The child is reaped with `wait4` (which
/// also returns its rusage), not `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_measuring_rss(w: &Workdir) -> (i32, i64, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_medallion"))
        .args(["run", "--config"])
        .arg(w.root.join("config.yaml"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut stdout = child.stdout.unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid);
    (libc::WEXITSTATUS(status), usage.ru_maxrss, out)
}

fn write_big(path: &Path, head: &str, body: impl Fn(&mut dyn Write)) {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    f.write_all(head.as_bytes()).unwrap();
    body(&mut f);
    f.flush().unwrap();
}

#[test]
fn memory_stays_bounded_on_1gb_pathological_files() {
    let mb: usize = std::env::var("MEDALLION_BIG_FILE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let w = Workdir::sample_config();
    let header = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";
    let good = "C000001,M00000001,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,1.000,actual\n";
    let chunk = vec![b'x'; 1 << 20];
    // One endless quoted field: a quote opens and never closes (a newline every 4 MiB).
    let later = "C000001,M00000001,2026-01-01T01:00:00Z,2026-01-01T02:00:00Z,2.000,actual\n";
    write_big(
        &w.raw().join("endless_quote.csv"),
        &format!("{header}{good}C000002,M00000002,\"never closed\n"),
        |f| {
            for i in 0..mb {
                f.write_all(&chunk).unwrap();
                if i % 4 == 3 {
                    f.write_all(b"\n").unwrap();
                }
            }
            f.write_all(b"\n").unwrap();
            f.write_all(later.as_bytes()).unwrap();
        },
    );
    // One 1 GB line.
    write_big(
        &w.raw().join("one_line.csv"),
        &format!("{header}{good}"),
        |f| {
            for _ in 0..mb {
                f.write_all(&chunk).unwrap();
            }
        },
    );
    let (code, rss_kib, out) = run_measuring_rss(&w);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("loaded endless_quote.csv") && out.contains("loaded one_line.csv"),
        "{out}"
    );
    eprintln!(
        "peak RSS over two {mb} MB pathological files: {} MiB",
        rss_kib / 1024
    );
    assert!(
        rss_kib < 400 * 1024,
        "peak RSS {} MiB should stay far below the file size",
        rss_kib / 1024
    );
    assert_eq!(
        w.count("FROM bronze.readings WHERE _source_file = 'one_line.csv'"),
        2
    );
    assert_eq!(
        w.count("FROM rejected.readings WHERE _source_file = 'one_line.csv'"),
        1
    );
    let reasons = w.query("SELECT DISTINCT get_field(r, 'rule') AS rule FROM (SELECT unnest(rejection_reasons) AS r FROM rejected.readings) ORDER BY 1");
    let rules: Vec<String> = reasons.iter().map(|r| text(&r["rule"])).collect();
    assert!(rules.contains(&"line_too_long".to_string()), "{rules:?}");
    assert!(
        rules.contains(&"unterminated_quote".to_string()),
        "{rules:?}"
    );
    assert_eq!(
        w.count("FROM silver.readings"),
        2,
        "the good rows around the bad ones load"
    );
}

//! `medallion report`: the page is rendered in headless Chromium (Debian's package, which
//! the test command installs); the DOM it dumps must show every chart mark at the size
//! its value asks for, and the values must be the lakehouse's: rejections per rule,
//! gold's daily totals, rows per zone, one stage bar per run, the latest run and the
//! failed file. A screenshot is taken too. The page holds no URL.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use regex::Regex;

use crate::workdir::{Workdir, expected, installed, text};

/// Chromium with the flags a headless CI machine needs, its profile in `dir`.
fn chromium(dir: &Path, args: &[&str]) -> std::process::Output {
    let bin = installed("MEDALLION_CHROMIUM", "scripts/setup-chromium.sh");
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--window-size=1000,2600",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .args(args)
        .output()
        .expect("start chromium")
}

/// A chart mark as the browser left it.
#[derive(Debug)]
struct Mark {
    chart: String,
    scale: f64,
    series: String,
    label: String,
    value: f64,
    rendered_height: f64,
}

/// Every `rect.bar` of every chart in the dumped DOM.
fn bars(dom: &str) -> Vec<Mark> {
    let chart = Regex::new(
        r#"<svg class="chart" data-chart="([^"]+)" data-scale="([^"]+)"(?s)(.*?)</svg>"#,
    )
    .unwrap();
    let attr = |tag: &str, name: &str| {
        Regex::new(&format!(r#"\b{name}="([^"]*)""#))
            .unwrap()
            .captures(tag)
            .map(|c| c[1].to_string())
            .unwrap_or_else(|| panic!("no {name} in {tag}"))
    };
    let rect = Regex::new(r#"<rect class="bar"[^>]*>"#).unwrap();
    let mut out = Vec::new();
    for c in chart.captures_iter(dom) {
        for r in rect.find_iter(&c[3]) {
            let tag = r.as_str();
            out.push(Mark {
                chart: c[1].to_string(),
                scale: c[2].parse().unwrap(),
                series: attr(tag, "data-series"),
                label: attr(tag, "data-label"),
                value: attr(tag, "data-value").parse().unwrap(),
                rendered_height: attr(tag, "data-rendered-height").parse().unwrap(),
            });
        }
    }
    out
}

#[test]
fn the_report_renders_in_chromium_with_the_lakehouse_numbers() {
    let w = Workdir::sample_config();
    w.add_sample("readings_2026-01-01.csv");
    w.run_expect(0);
    w.add_sample("readings_2026-01-04_corrections.csv");
    w.run_expect(0);
    w.write_raw(
        "readings_broken.csv",
        "customer_id,usage_kwh\nC000001,1.0\n",
    );
    w.run_expect(1);
    let r = w.medallion(&["report", "--out", "report.html"]);
    assert_eq!(r.code, 0, "{r:?}");
    let page = std::fs::read_to_string(w.root.join("report.html")).unwrap();
    for url in ["http:", "https:", " src=", " href=", "url("] {
        assert!(
            !page.contains(url),
            "the page holds {url:?}: it must make no request"
        );
    }

    let url = format!("file://{}", w.root.join("report.html").display());
    let out = chromium(&w.root, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains(r#"data-rendered="yes""#),
        "the page's script did not run: {dom:.2000}"
    );

    // Every bar is drawn as tall as its value times its chart's scale.
    let marks = bars(&dom);
    assert!(!marks.is_empty(), "{dom:.2000}");
    for m in &marks {
        let want = m.value.abs() * m.scale;
        assert!(
            (m.rendered_height - want).abs() < 0.01,
            "{m:?}: drawn {}, want {want}",
            m.rendered_height
        );
    }

    // Rejections: per run and rule, the sample files' expected counts.
    let mut per_rule: BTreeMap<(String, String), f64> = BTreeMap::new();
    for m in marks
        .iter()
        .filter(|m| m.chart == "rejections" && m.value > 0.0)
    {
        *per_rule
            .entry((m.label.clone(), m.series.clone()))
            .or_default() += m.value;
    }
    let runs: Vec<String> = marks
        .iter()
        .filter(|m| m.chart == "stages" && m.series == "read")
        .map(|m| m.label.clone())
        .collect();
    let mut want = BTreeMap::new();
    for (run, file) in runs.iter().zip([
        "readings_2026-01-01.csv",
        "readings_2026-01-04_corrections.csv",
    ]) {
        for (rule, n) in expected()["files"][file]["rejected_by_rule"]
            .as_object()
            .unwrap()
        {
            want.insert((run.clone(), rule.clone()), n.as_f64().unwrap());
        }
    }
    assert_eq!(per_rule, want);

    // Gold: one bar per day, the SQL's daily total.
    let gold: BTreeMap<String, f64> = marks
        .iter()
        .filter(|m| m.chart == "gold-daily_usage")
        .map(|m| (m.label.clone(), m.value))
        .collect();
    let sql: BTreeMap<String, f64> = w
        .query("SELECT CAST(usage_date AS VARCHAR) AS d, CAST(SUM(total_kwh) AS DOUBLE) AS v FROM gold.daily_usage GROUP BY 1")
        .iter()
        .map(|r| (text(&r["d"]), r["v"].as_f64().unwrap()))
        .collect();
    assert_eq!(gold.len(), sql.len());
    for (day, v) in &sql {
        assert!((gold[day] - v).abs() < 1e-6, "{day}: {} vs {v}", gold[day]);
    }

    // One stage bar per run and stage.
    let stages: Vec<&Mark> = marks.iter().filter(|m| m.chart == "stages").collect();
    assert_eq!(stages.len(), 3 * 5, "{stages:?}");

    // Rows per zone: each series ends at the table's row count now.
    let point = Regex::new(r#"<circle class="point"[^>]*data-series="([^"]+)" data-label="[^"]*" data-value="([^"]+)"[^>]*data-rendered-height="[^"]+""#).unwrap();
    let mut last: BTreeMap<String, f64> = BTreeMap::new();
    for c in point.captures_iter(&dom) {
        last.insert(c[1].to_string(), c[2].parse().unwrap());
    }
    for table in [
        "bronze.readings",
        "silver.readings",
        "rejected.readings",
        "gold.daily_usage",
    ] {
        assert_eq!(
            last[table],
            w.count(&format!("FROM {table}")) as f64,
            "{table}"
        );
    }

    // The latest run and the failed file.
    assert!(dom.contains("<table id=\"latest-run\">"), "{dom:.3000}");
    assert!(
        Regex::new(r#"<th>outcome</th><td class="bad">failed</td>"#)
            .unwrap()
            .is_match(&dom)
    );
    assert!(dom.contains("<td>readings_broken.csv</td>"));

    let shot = w.root.join("report.png");
    let out = chromium(
        &w.root,
        &[&format!("--screenshot={}", shot.display()), &url],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {out:?}"));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

#[test]
fn the_report_before_any_run_says_there_is_nothing_yet() {
    let w = Workdir::sample_config();
    let r = w.medallion(&["report", "--out", "-"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("<!doctype html>"), "{r:?}");
    assert!(r.stdout.contains("No run recorded yet."), "{r:?}");
}

/// Delta deletes commits past the log retention (30 days by default): the runs those
/// versions served are left out of the rows-per-zone chart, the report still renders.
#[test]
fn the_report_survives_a_log_cleaned_up_by_delta() {
    let w = Workdir::sample_config();
    let header = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";
    for day in 1..=12 {
        let row = format!(
            "C000001,M00000001,2026-02-{day:02}T00:00:00Z,2026-02-{day:02}T01:00:00Z,1.000,actual\n"
        );
        w.write_raw(
            &format!("readings_2026-02-{day:02}.csv"),
            &format!("{header}{row}"),
        );
        w.run_expect(0);
    }
    // What log cleanup leaves: the newest checkpoint and the commits after it.
    let log = w.table_path("bronze/readings/_delta_log");
    let names: Vec<String> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let checkpoint: u64 = names
        .iter()
        .filter_map(|n| n.strip_suffix(".checkpoint.parquet"))
        .map(|v| v.parse().unwrap())
        .max()
        .unwrap_or_else(|| panic!("no checkpoint in {names:?}"));
    assert!(checkpoint >= 5, "{names:?}");
    for v in 0..checkpoint {
        std::fs::remove_file(log.join(format!("{v:020}.json"))).unwrap();
    }
    let r = w.medallion(&["report", "--out", "-"]);
    assert_eq!(r.code, 0, "{r:?}");
    let points = regex::Regex::new(r#"<circle class="point"[^>]*data-series="bronze.readings" data-label="[^"]*" data-value="([^"]+)""#).unwrap();
    let values: Vec<f64> = points
        .captures_iter(&r.stdout)
        .map(|c| c[1].parse().unwrap())
        .collect();
    assert!(!values.is_empty() && values.len() < 12, "{values:?}");
    assert_eq!(values.last(), Some(&12.0), "{values:?}");
}

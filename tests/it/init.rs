//! `medallion init --from`: the configuration inferred from a sample file validates,
//! loads the sample with exact counts, never overwrites without --force, and its gold
//! skeleton, uncommented, is a valid model equal to its SQL.

use std::io::Write;
use std::path::Path;

use crate::workdir::{REPO, Workdir};

/// A project folder without a configuration.
fn no_config() -> Workdir {
    let w = Workdir::with_config("");
    std::fs::remove_file(w.root.join("config.yaml")).unwrap();
    w
}

fn config(w: &Workdir) -> String {
    std::fs::read_to_string(w.root.join("config.yaml")).unwrap()
}

/// The commented `# gold:` block made live.
fn uncomment_gold(cfg: &str) -> String {
    let at = cfg.find("# gold:").expect("a gold skeleton");
    let gold: Vec<&str> = cfg[at..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect();
    format!("{}{}\n", &cfg[..at], gold.join("\n"))
}

#[test]
fn init_from_the_sample_validates_loads_it_and_keeps_an_existing_config() {
    let w = no_config();
    let sample = Path::new(REPO).join("lakehouse/raw/readings_2026-01-01.csv");
    let sample = sample.to_str().unwrap();
    let r = w.medallion(&["init", "--from", sample]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("2178 data rows read"), "{r:?}");
    let cfg = config(&w);
    for expected in [
        "  name: readings\n",
        "    delimiter: \",\"\n",
        "    header: true\n",
        "    - name: start_time\n      type: timestamp\n",
        // The sample's values have at most 3 decimals, one bad row has 4: the observed scale.
        "    - name: usage_kwh\n      type: decimal(18,4)\n",
        "    - name: reading_type\n      type: string\n",
        // meter and start time are unique in the sample: the smallest key.
        "  key: [meter_id, start_time]\n",
        "1 of 2177 values do not read as decimal(18,4)",
    ] {
        assert!(cfg.contains(expected), "{expected:?} missing in:\n{cfg}");
    }
    // reading_type and customer_id have missing values: not required.
    assert!(
        !cfg.contains("reading_type\n      type: string\n      required"),
        "{cfg}"
    );

    // Never overwritten without --force.
    let r = w.medallion(&["init", "--from", sample]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("already exists; pass --force"), "{r:?}");
    assert_eq!(config(&w), cfg);
    assert_eq!(w.medallion(&["init", "--from", sample, "--force"]).code, 0);
    assert_eq!(config(&w), cfg, "inference is deterministic");

    assert_eq!(w.medallion(&["validate"]).code, 0);
    w.add_sample("readings_2026-01-01.csv");
    w.run_expect(0);
    assert_eq!(w.count("FROM bronze.readings"), 2178);
    // The bad rows the notes predict: 1 without a meter, 1 without a start time,
    // 1 bad start time, 1 bad usage (the row with 1.2345 now fits the scale).
    assert_eq!(w.count("FROM rejected.readings"), 4);
    assert_eq!(w.count("FROM silver.readings"), 2174);
    assert_eq!(
        w.count("FROM (SELECT DISTINCT meter_id, start_time FROM silver.readings) k"),
        2174
    );

    // The skeleton, uncommented, is a model the run builds and keeps equal to its SQL.
    let live = uncomment_gold(&cfg);
    w.set_config(&live);
    let r = w.medallion(&["validate"]);
    assert_eq!(r.code, 0, "{r:?}\n{live}");
    assert!(
        r.stdout
            .contains("gold.readings_summary [meter_id, start_time_date]"),
        "{r:?}"
    );
    w.run_expect(0);
    let sql = live[live.find("SELECT").unwrap()..]
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        w.gold_recompute_diff("gold.readings_summary", &sql, "silver.readings"),
        0
    );
    assert_eq!(
        w.count("FROM gold.readings_summary"),
        w.count("FROM (SELECT DISTINCT meter_id, CAST(start_time AS DATE) FROM silver.readings) d")
    );
}

/// Semicolons, a byte-order mark, gzip, a header with spaces, European dates and
/// timestamps, bools, ints, bigints, decimals, and an optional column.
const MESSY: &str = "\u{feff}Meter ID;Read at;Day;Amount (EUR);Paid;Count;Big;Comment\n\
    M1;13/01/2024 10:00;13.01.2024;12.50;yes;1;3000000000;first\n\
    M1;13/01/2024 11:00;13.01.2024;7.25;no;-2;3000000000;\n\
    M2;13/01/2024 10:00;13.01.2024;12.50;yes;1;3000000002;\"a; quoted\"\n\
    M2;14/01/2024 10:30;14.01.2024;100;n;-2;3000000002;last\n";

#[test]
fn init_sniffs_the_dialect_and_types_of_a_messy_gzip_file() {
    let w = no_config();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(MESSY.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let sample = w.root.join("payments.csv.gz");
    std::fs::write(&sample, &gz).unwrap();
    let r = w.medallion(&[
        "init",
        "--from",
        sample.to_str().unwrap(),
        "--name",
        "payments",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let cfg = config(&w);
    for expected in [
        "byte-order mark",
        "gzip-compressed",
        "  name: payments\n",
        "  pattern: \"*.csv\"\n",
        "    delimiter: \";\"\n",
        "    - name: meter_id\n      source: \"Meter ID\"\n      type: string\n      required: true\n",
        "    - name: read_at\n      source: \"Read at\"\n      type: timestamp\n      format: \"%d/%m/%Y %H:%M\"\n",
        "    - name: day\n      source: \"Day\"\n      type: date\n      format: \"%d.%m.%Y\"\n",
        "    - name: amount_eur\n      source: \"Amount (EUR)\"\n      type: decimal(18,2)\n",
        "    - name: paid\n      source: \"Paid\"\n      type: bool\n",
        "    - name: count\n      source: \"Count\"\n      type: int\n",
        "    - name: big\n      source: \"Big\"\n      type: bigint\n",
        "    - name: comment\n      source: \"Comment\"\n      type: string\n\n",
        "  key: [meter_id, read_at]\n",
    ] {
        assert!(cfg.contains(expected), "{expected:?} missing in:\n{cfg}");
    }
    assert_eq!(w.medallion(&["validate"]).code, 0);
    w.write_raw_bytes("payments_2024-01-13.csv.gz", &gz);
    w.run_expect(0);
    assert_eq!(w.count("FROM silver.payments"), 4);
    assert_eq!(w.count("FROM rejected.payments"), 0);
    assert_eq!(
        w.scalar("SELECT CAST(SUM(amount_eur) AS VARCHAR) FROM silver.payments"),
        "132.25"
    );
    assert_eq!(
        w.scalar("SELECT CAST(SUM(big) AS VARCHAR) FROM silver.payments"),
        "12000000004"
    );
    assert_eq!(w.count("FROM silver.payments WHERE paid"), 2);
    assert_eq!(w.count("FROM silver.payments WHERE comment IS NULL"), 1);
    assert_eq!(
        w.scalar(
            "SELECT CAST(read_at AS VARCHAR) FROM silver.payments WHERE meter_id = 'M2' AND day = DATE '2024-01-14'"
        ),
        "2024-01-14T10:30:00Z"
    );
}

#[test]
fn init_reads_a_file_without_a_header_by_position() {
    let w = no_config();
    let sample = w.root.join("export.txt");
    std::fs::write(
        &sample,
        "A1,2024-01-01,5\nA2,2024-01-02,6\nA1,2024-01-02,5\n",
    )
    .unwrap();
    let r = w.medallion(&["init", "--from", sample.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let cfg = config(&w);
    for expected in [
        "  name: export\n",
        "  pattern: \"*.txt\"\n",
        "    header: false\n",
        "    - name: column_1\n      type: string\n      required: true\n",
        "    - name: column_2\n      type: date\n      required: true\n",
        "    - name: column_3\n      type: int\n      required: true\n",
        "  key: [column_1, column_2]\n",
    ] {
        assert!(cfg.contains(expected), "{expected:?} missing in:\n{cfg}");
    }
    std::fs::copy(&sample, w.raw().join("export.txt")).unwrap();
    w.run_expect(0);
    assert_eq!(w.count("FROM silver.export"), 3);
    assert_eq!(w.scalar("SELECT SUM(column_3) FROM silver.export"), "16");
}

#[test]
fn init_refuses_what_it_cannot_infer_from() {
    let w = no_config();
    let empty = w.root.join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let r = w.medallion(&["init", "--from", empty.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("empty.csv: the file is empty"), "{r:?}");
    let r = w.medallion(&["init", "--from", "/nonexistent/x.csv"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("/nonexistent/x.csv"), "{r:?}");
    let r = w.medallion(&["init", "--from", empty.to_str().unwrap(), "--name", "9 bad"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(!w.root.join("config.yaml").exists());
}

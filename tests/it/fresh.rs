//! The slices of a batch that replace no silver row (every slice of a source's first
//! load, new readings later) are appended in one commit, until a slice replaces a row
//! or may repeat an earlier slice's key; then the rest is upserted slice by slice.
//! Either way the last line of a key wins and every equality holds.
//!
//! Keys repeated within a batch are found while it is staged, and the rows they
//! supersede dropped, so its slices never repeat a key: those cases are one append.
//! [`untracked`] turns that off (as past its bound), for the slices' own checks.

use crate::pipeline::{assert_gold_is_recompute, assert_silver_keys_unique, silver_operations};
use crate::workdir::Workdir;

/// `examples/readings.yaml` with silver slices of 50 rows: each file of a batch below
/// is a slice of its own (a slice takes the staged chunks up to that many rows).
fn config() -> String {
    std::fs::read_to_string(
        std::path::Path::new(crate::workdir::REPO).join("examples/readings.yaml"),
    )
    .unwrap()
    .replace(
        "  key: [customer_id, meter_id, start_time]\n",
        "  key: [customer_id, meter_id, start_time]\n  batch_rows: 50\n",
    )
}

/// A workdir whose runs do not track repeated keys (as when a batch notes too many).
fn untracked() -> Workdir {
    Workdir::with_config(&config()).without_repeat_tracking()
}

/// The same case tracked (`true`) and untracked.
fn tracked_and_untracked() -> [(Workdir, bool); 2] {
    [
        (Workdir::with_config(&config()), true),
        (untracked(), false),
    ]
}

const HEADER: &str = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";

/// A CSV line of meter `m` (of customer `m`) at hour `h` from 2026-03-01.
fn line(m: u32, h: u32, kwh: u32) -> String {
    let (d, hh) = (1 + h / 24, h % 24);
    let end = h + 1;
    let (ed, eh) = (1 + end / 24, end % 24);
    format!(
        "C{m:06},M{m:08},2026-03-{d:02}T{hh:02}:00:00Z,2026-03-{ed:02}T{eh:02}:00:00Z,{kwh}.000,actual\n"
    )
}

/// 7 meters × 40 hours in hour order, as four files of 75, 75, 75 and 55 lines (one
/// batch; neighbouring files share a boundary hour), with `extra[i]` added to file `i`.
fn write_readings(w: &Workdir, extra: [&[String]; 4]) {
    let lines: Vec<String> = (0..40)
        .flat_map(|h| (1..=7).map(move |m| line(m, h, m + h)))
        .collect();
    for (i, chunk) in lines.chunks(75).enumerate() {
        let mut csv = String::from(HEADER);
        csv.extend(chunk.iter().cloned());
        csv.extend(extra[i].iter().cloned());
        w.write_raw(&format!("readings_{i}.csv"), &csv);
    }
}

fn kwh(w: &Workdir, m: u32, h: u32) -> String {
    let (d, hh) = (1 + h / 24, h % 24);
    w.scalar(&format!(
        "SELECT CAST(CAST(usage_kwh AS INTEGER) AS VARCHAR) FROM silver.readings \
         WHERE meter_id = 'M{m:08}' AND start_time = TIMESTAMP '2026-03-{d:02} {hh:02}:00:00'"
    ))
}

fn assert_loaded(w: &Workdir, rows: u64) {
    assert_eq!(w.count("FROM bronze.readings"), rows);
    assert_eq!(w.count("FROM rejected.readings"), 0);
    assert_eq!(w.count("FROM silver.readings"), 280);
    assert_silver_keys_unique(w);
    assert_gold_is_recompute(w);
}

#[test]
fn a_first_load_without_repeated_keys_is_one_append() {
    let w = Workdir::with_config(&config());
    write_readings(&w, [&[], &[], &[], &[]]);
    w.run_expect(0);
    assert_loaded(&w, 280);
    // Four slices, one commit (after the table's creation).
    assert_eq!(silver_operations(&w), ["CREATE TABLE", "WRITE"]);
    assert_eq!(kwh(&w, 7, 39), "46");
}

#[test]
fn a_key_repeated_in_the_next_slice_is_upserted() {
    // The second file repeats a key of the hour it shares with the first: the key-by-key
    // check finds it.
    for (w, tracked) in tracked_and_untracked() {
        write_readings(&w, [&[], &[line(1, 10, 400)], &[], &[]]);
        w.run_expect(0);
        assert_loaded(&w, 281);
        assert_eq!(kwh(&w, 1, 10), "400");
        assert_eq!(kwh(&w, 2, 10), "12");
        let ops = silver_operations(&w);
        if tracked {
            assert_eq!(ops, ["CREATE TABLE", "WRITE"], "{ops:?}");
            continue;
        }
        assert_eq!(ops[..2], ["CREATE TABLE", "WRITE"], "{ops:?}");
        assert!(ops.contains(&"MERGE".to_string()), "{ops:?}");
    }
}

#[test]
fn a_key_repeated_slices_later_is_upserted() {
    // The last file repeats the first reading: its bounds meet the first slice's, so
    // what was appended is committed and that slice upserted.
    for (w, tracked) in tracked_and_untracked() {
        write_readings(&w, [&[], &[], &[], &[line(1, 0, 321)]]);
        w.run_expect(0);
        assert_loaded(&w, 281);
        assert_eq!(kwh(&w, 1, 0), "321");
        assert_eq!(kwh(&w, 2, 0), "2");
        let ops = silver_operations(&w);
        if tracked {
            // The first reading dropped from the first slice: nothing to rewrite.
            assert_eq!(ops, ["CREATE TABLE", "WRITE"], "{ops:?}");
            continue;
        }
        // The first three slices in one commit; then the last slice, its new keys and
        // its one repeated key, in one MERGE (the file holding that key rewritten).
        assert_eq!(ops, ["CREATE TABLE", "WRITE", "MERGE"], "{ops:?}");
    }
}

#[test]
fn a_crash_after_the_first_part_of_a_first_load_recovers() {
    // Killed after the slices before the repeated key were committed: the next run
    // completes the batch (silver is no longer empty, so every slice is upserted) and
    // every row is in bronze once, the repeated key's last line in silver.
    let w = untracked();
    write_readings(&w, [&[], &[], &[], &[line(1, 0, 321)]]);
    let out = crate::exactly_once::spawn_run(&w, Some("after_silver_part"))
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success(), "the run should abort");
    assert!(String::from_utf8_lossy(&out.stderr).contains("failpoint after_silver_part"));
    assert_eq!(
        w.count("FROM silver.readings"),
        225,
        "the first three slices"
    );
    let r = w.run_expect(0);
    assert!(
        r.stdout
            .contains("completing a batch an earlier run left part-way"),
        "{r:?}"
    );
    assert_loaded(&w, 281);
    assert_eq!(kwh(&w, 1, 0), "321");
    assert_eq!(w.count("FROM _medallion.files WHERE status = 'loaded'"), 4);
}

/// A file of every meter's readings for hours `hours`, plus `extra` lines.
fn hours_file(w: &Workdir, name: &str, hours: std::ops::Range<u32>, extra: &[String]) {
    let mut csv = String::from(HEADER);
    for h in hours {
        csv.extend((1..=7).map(|m| line(m, h, m + h)));
    }
    csv.extend(extra.iter().cloned());
    w.write_raw(name, &csv);
}

#[test]
fn later_batches_of_new_readings_are_one_append_until_a_slice_replaces_a_row() {
    let w = Workdir::with_config(&config());
    write_readings(&w, [&[], &[], &[], &[]]);
    w.run_expect(0);
    // Two files (two slices) of new hours: one commit.
    hours_file(&w, "readings_4.csv", 40..50, &[]);
    hours_file(&w, "readings_5.csv", 50..60, &[]);
    w.run_expect(0);
    assert_eq!(silver_operations(&w), ["CREATE TABLE", "WRITE", "WRITE"]);
    // New hours, then a file with more new hours and a correction of hour 5: the first
    // slice is committed on its own, the second (new keys and the correction) is one
    // MERGE.
    hours_file(&w, "readings_6.csv", 60..70, &[]);
    hours_file(&w, "readings_7.csv", 70..71, &[line(3, 5, 99)]);
    w.run_expect(0);
    let ops = silver_operations(&w);
    assert_eq!(ops[3..], ["WRITE", "MERGE"], "{ops:?}");
    assert_eq!(w.count("FROM bronze.readings"), 280 + 140 + 70 + 8);
    assert_eq!(w.count("FROM silver.readings"), 280 + 140 + 70 + 7);
    assert_eq!(kwh(&w, 3, 5), "99");
    assert_eq!(kwh(&w, 3, 65), "68");
    assert_silver_keys_unique(&w);
    assert_gold_is_recompute(&w);
    // The correction rewrote only the file holding hour 5 (the first batch's): silver
    // has not removed any other.
    let paths = |version: u32, action: &str| -> Vec<String> {
        let log = w.table_path("silver/readings").join("_delta_log");
        let text = std::fs::read_to_string(log.join(format!("{version:020}.json"))).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter_map(|v| Some(v.get(action)?.get("path")?.as_str()?.to_string()))
            .collect()
    };
    assert_eq!(paths(1, "add").len(), 1);
    assert_eq!(paths(4, "remove"), paths(1, "add"));
}

#[test]
fn batches_without_accepted_rows_load() {
    // A header-only file, then a file whose every row is rejected, each a batch of its
    // own: no slice at all reaches silver, and the batches still complete.
    let w = Workdir::with_config(&config());
    w.write_raw("a_header_only.csv", HEADER);
    w.run_expect(0);
    w.write_raw(
        "b_all_rejected.csv",
        &format!("{HEADER}{}", line(1, 0, 900)),
    );
    w.run_expect(0);
    assert_eq!(w.count("FROM silver.readings"), 0);
    write_readings(&w, [&[], &[], &[], &[]]);
    let r = w.run_expect(0);
    assert!(!r.stdout.contains("left part-way"), "{r:?}");
    assert_eq!(w.count("FROM _medallion.files WHERE status = 'loaded'"), 6);
    assert_eq!(w.count("FROM bronze.readings"), 281);
    assert_eq!(w.count("FROM rejected.readings"), 1);
    assert_eq!(w.count("FROM silver.readings"), 280);
    assert_silver_keys_unique(&w);
    assert_gold_is_recompute(&w);
}

#[test]
fn an_hour_spanning_several_slices_is_one_append() {
    // 150 meters × 2 hours, each hour in three files (a slice each) of every third
    // meter: the three slices of an hour have bounds that all meet, so their keys are
    // compared one by one, and the load is one append. Then two more hours the same
    // way, and a file repeating a reading of the first of them (untracked: with the
    // repeated keys tracked, nothing is compared and that is one append too).
    let w = untracked();
    let hours = |w: &Workdir, hours: std::ops::Range<u32>| {
        for h in hours {
            for part in 0..3 {
                let mut csv = String::from(HEADER);
                let meters = (1..=150).filter(|m| m % 3 == part);
                csv.extend(meters.map(|m| line(m, h, m + h)));
                w.write_raw(&format!("readings_{h:02}_{part}.csv"), &csv);
            }
        }
    };
    hours(&w, 0..2);
    w.run_expect(0);
    assert_eq!(silver_operations(&w), ["CREATE TABLE", "WRITE"]);
    hours(&w, 2..4);
    w.write_raw("readings_99.csv", &format!("{HEADER}{}", line(3, 2, 99)));
    w.run_expect(0);
    let ops = silver_operations(&w);
    assert_eq!(ops[2..], ["WRITE", "MERGE"], "{ops:?}");
    assert_eq!(w.count("FROM bronze.readings"), 601);
    assert_eq!(w.count("FROM silver.readings"), 600);
    assert_eq!(kwh(&w, 3, 2), "99");
    assert_eq!(kwh(&w, 4, 2), "6");
    assert_silver_keys_unique(&w);
    assert_gold_is_recompute(&w);
}

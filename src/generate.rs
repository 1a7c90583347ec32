//! `medallion generate`: realistic hourly meter readings in the sample schema, for
//! benchmarks, demos and tests. Deterministic for a seed: the same arguments always
//! write the same bytes.
//!
//! Rows are hourly readings of every meter (customers own 1–3 meters) in time order,
//! split into `files` consecutive files; a `bad_fraction` of rows each break one
//! `reject` rule of the sample config; a separate corrections file re-reads a
//! `corrections` fraction of existing keys with new values (and sorts after the others).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{MedallionError, Result};

/// What to generate (also the arguments of `medallion generate`).
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateSpec {
    /// Readings to write (hourly, every meter, in time order).
    #[arg(long)]
    pub rows: u64,
    /// Customers; each owns 1 to 3 meters.
    #[arg(long, default_value_t = 1000)]
    pub customers: u64,
    /// Days of readings available (rows must fit meters × days × 24).
    #[arg(long, default_value_t = 30)]
    pub days: u64,
    /// Fraction of rows that break one reject rule each.
    #[arg(long, default_value_t = 0.001)]
    pub bad_fraction: f64,
    /// Fraction of good rows re-read with a new value in a corrections file.
    #[arg(long, default_value_t = 0.01)]
    pub corrections: f64,
    /// Split the readings into this many files.
    #[arg(long, default_value_t = 1)]
    pub files: u64,
    /// Seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory to write into (e.g. the raw zone).
    #[arg(long)]
    pub out: PathBuf,
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generated {
    pub files: Vec<PathBuf>,
    pub rows: u64,
    pub bad_rows: u64,
    pub correction_rows: u64,
    pub bytes: u64,
}

/// SplitMix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const HEADER: &str = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";
const START: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

struct Meter {
    customer: u64,
    id: u64,
    base_wh: u64,
}

fn ts(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map_or_else(String::new, |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Usage in Wh for a meter at an hour of the day: low at night, peaks morning and evening.
fn usage_wh(m: &Meter, hour: i64, rng: &mut Rng) -> u64 {
    const CURVE: [u64; 24] = [
        5, 4, 4, 4, 4, 5, 8, 12, 11, 8, 7, 7, 8, 7, 7, 8, 10, 14, 16, 15, 12, 10, 8, 6,
    ];
    m.base_wh * CURVE[(hour % 24) as usize] / 10 + rng.next() % (m.base_wh / 2 + 1)
}

fn row(m: &Meter, start: i64, wh: u64, estimated: bool) -> String {
    format!(
        "C{:06},M{:08},{},{},{}.{:03},{}\n",
        m.customer,
        m.id,
        ts(start),
        ts(start + 3600),
        wh / 1000,
        wh % 1000,
        if estimated { "estimated" } else { "actual" }
    )
}

/// A row that breaks one reject rule of the sample config.
fn bad_row(m: &Meter, start: i64, rng: &mut Rng) -> String {
    let good = row(m, start, 1234, false);
    let fields: Vec<&str> = good.trim_end().split(',').collect();
    let mut f: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    match rng.next() % 7 {
        0 => f[0] = format!("X{}", &f[0][1..]),
        1 => f[4] = String::new(),
        2 => f[4] = "1.2345".into(),
        3 => f[4] = "-3.000".into(),
        4 => f[5] = "guess".into(),
        5 => f[3] = f[2].clone(),
        _ => f[2] = "2026-13-45 99:00".into(),
    }
    format!("{}\n", f.join(","))
}

/// Write the files; fails when the rows do not fit the meters and days asked for.
pub fn generate(spec: &GenerateSpec) -> Result<Generated> {
    if spec.customers == 0 || spec.days == 0 || spec.files == 0 {
        return Err(MedallionError::Usage(
            "--customers, --days and --files must be at least 1".into(),
        ));
    }
    if !(0.0..=1.0).contains(&spec.bad_fraction) || !(0.0..=1.0).contains(&spec.corrections) {
        return Err(MedallionError::Usage(
            "--bad-fraction and --corrections are fractions between 0 and 1".into(),
        ));
    }
    let mut rng = Rng(spec.seed);
    let mut meters = Vec::new();
    for c in 0..spec.customers {
        for _ in 0..1 + rng.next() % 3 {
            meters.push(Meter {
                customer: 100_000 + c,
                id: 10_000_000 + meters.len() as u64,
                base_wh: 150 + rng.next() % 900,
            });
        }
    }
    let slots = meters.len() as u64 * spec.days * 24;
    if spec.rows > slots {
        return Err(MedallionError::Usage(format!(
            "{} rows do not fit {} meters over {} days ({slots} hourly readings): raise --customers or --days",
            spec.rows,
            meters.len(),
            spec.days
        )));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MedallionError::ReadFile { path, source }
    };
    std::fs::create_dir_all(&spec.out).map_err(io(&spec.out))?;
    let mut out = Generated::default();
    let per_file = spec.rows.div_ceil(spec.files);
    let mut writer: Option<BufWriter<File>> = None;
    let mut written: Vec<(u64, i64)> = Vec::new();
    let correction_every = if spec.corrections > 0.0 {
        (1.0 / spec.corrections).round().max(1.0) as u64
    } else {
        0
    };
    for i in 0..spec.rows {
        if i % per_file == 0 {
            if let Some(mut w) = writer.take() {
                w.flush().map_err(io(&spec.out))?;
            }
            let path = spec
                .out
                .join(format!("readings_{:05}.csv", i / per_file + 1));
            let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io(&path))?);
            w.write_all(HEADER.as_bytes()).map_err(io(&path))?;
            out.bytes += HEADER.len() as u64;
            out.files.push(path);
            writer = Some(w);
        }
        let meter_ix = i % meters.len() as u64;
        let hour = (i / meters.len() as u64) as i64;
        let m = &meters[meter_ix as usize];
        let start = START + hour * 3600;
        let line = if rng.unit() < spec.bad_fraction {
            out.bad_rows += 1;
            bad_row(m, start, &mut rng)
        } else {
            if correction_every > 0 && rng.next().is_multiple_of(correction_every) {
                written.push((meter_ix, start));
            }
            let wh = usage_wh(m, hour, &mut rng);
            row(m, start, wh, rng.next().is_multiple_of(20))
        };
        out.bytes += line.len() as u64;
        if let Some(w) = writer.as_mut() {
            w.write_all(line.as_bytes()).map_err(io(&spec.out))?;
        }
        out.rows += 1;
    }
    if let Some(mut w) = writer.take() {
        w.flush().map_err(io(&spec.out))?;
    }
    if !written.is_empty() {
        let path = spec.out.join("readings_corrections.csv");
        let mut w = BufWriter::new(File::create(&path).map_err(io(&path))?);
        w.write_all(HEADER.as_bytes()).map_err(io(&path))?;
        out.bytes += HEADER.len() as u64;
        for (meter_ix, start) in written {
            let m = &meters[meter_ix as usize];
            let line = row(
                m,
                start,
                usage_wh(m, (start - START) / 3600, &mut rng) + 1,
                false,
            );
            out.bytes += line.len() as u64;
            w.write_all(line.as_bytes()).map_err(io(&path))?;
            out.correction_rows += 1;
        }
        w.flush().map_err(io(&path))?;
        out.files.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, seed: u64) -> GenerateSpec {
        GenerateSpec {
            rows: 5000,
            customers: 20,
            days: 10,
            bad_fraction: 0.01,
            corrections: 0.02,
            files: 3,
            seed,
            out: dir.to_path_buf(),
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ga = generate(&spec(a.path(), 7)).unwrap();
        let gb = generate(&spec(b.path(), 7)).unwrap();
        assert_eq!(
            (ga.rows, ga.bad_rows, ga.correction_rows, ga.bytes),
            (gb.rows, gb.bad_rows, gb.correction_rows, gb.bytes)
        );
        for (fa, fb) in ga.files.iter().zip(&gb.files) {
            assert_eq!(std::fs::read(fa).unwrap(), std::fs::read(fb).unwrap());
        }
        assert_eq!(ga.files.len(), 4, "3 files plus corrections");
        assert!(ga.bad_rows > 10 && ga.bad_rows < 100, "{}", ga.bad_rows);
        assert!(
            ga.correction_rows > 40 && ga.correction_rows < 160,
            "{}",
            ga.correction_rows
        );
        let c = tempfile::tempdir().unwrap();
        let gc = generate(&spec(c.path(), 8)).unwrap();
        assert_ne!(
            std::fs::read(&ga.files[0]).unwrap(),
            std::fs::read(&gc.files[0]).unwrap()
        );
    }

    #[test]
    fn refuses_rows_that_do_not_fit() {
        let d = tempfile::tempdir().unwrap();
        let mut s = spec(d.path(), 1);
        s.rows = 10_000_000;
        assert!(generate(&s).unwrap_err().to_string().contains("do not fit"));
    }
}

#!/usr/bin/env python3
"""Fallback data generator for the benchmark (bench/run.py --generator python).

Same command line, file names and CSV layout as `medallion generate`:

    python bench/gen.py --rows N [--customers C] [--days D] [--bad-fraction 0.001]
                        [--corrections 0.01] [--files K] [--seed S] --out DIR

writes DIR/readings_00001.csv .. readings_0000K.csv (hourly readings of every meter in
time order, split into K consecutive files) and DIR/readings_corrections.csv (a
`corrections` fraction of the good rows' keys re-read with new values; it sorts after
the other files, so it is ingested last). Customers own 1 to 3 meters; the rows must fit
meters x days x 24.

It is not byte-compatible with `medallion generate` (different random numbers), but it is
deterministic for a seed (independent of --files) and exercises more of the rules'
semantics, so that the peers' counts are checked against medallion's on harder input:

  * timestamps: mostly RFC 3339 `Z`; some `YYYY-MM-DD HH:MM:SS` (read as UTC), some with
    a `+01:00` offset (same instant), some with fractional seconds;
  * usage written without trailing zeros (`1.2`, `3`), a few values > 100 kWh (the warn
    rule `plausible_hourly_usage`), a few fields with surrounding spaces (trimmed);
  * reading_type mostly `actual`, 5 % `estimated`, some empty / `NA` / `Null` (default);
  * bad rows (`--bad-fraction`), each breaking one or two reject rules: customer or meter
    pattern, empty required fields, 4 decimals, negative, > 500, `abc`, `12,5`,
    `guess`, end == start, end before start, an unparsable start time;
  * the corrections file is written with every field quoted, spells some timestamps
    differently from the original row (same instant), and repeats some keys (the last
    line of the file wins).

Vectorized with numpy + polars, written in chunks of 2^20 rows: 10 M rows (~730 MB)
take well under a minute.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

HEADER = ["customer_id", "meter_id", "start_time", "end_time", "usage_kwh", "reading_type"]
START = np.datetime64("2026-01-01T00:00:00", "s")
CHUNK = 1 << 20
CURVE = np.array([5, 4, 4, 4, 4, 5, 8, 12, 11, 8, 7, 7, 8, 7, 7, 8, 10, 14, 16, 15, 12, 10, 8, 6],
                 dtype=np.int64)
BAD_KINDS = 13


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--bad-fraction", type=float, default=0.001)
    p.add_argument("--corrections", type=float, default=0.01)
    p.add_argument("--files", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    if a.customers < 1 or a.days < 1 or a.files < 1 or a.rows < 0:
        p.error("--customers, --days and --files must be at least 1")
    if not (0 <= a.bad_fraction <= 1 and 0 <= a.corrections <= 1):
        p.error("--bad-fraction and --corrections are fractions between 0 and 1")
    return a


class Meters:
    def __init__(self, customers, seed):
        rng = np.random.default_rng([seed, 0])
        per = rng.integers(1, 4, customers)
        self.customer = np.repeat(np.arange(customers, dtype=np.int64) + 100_000, per)
        self.n = len(self.customer)
        self.id = np.arange(self.n, dtype=np.int64) + 10_000_000
        self.base_wh = rng.integers(150, 1050, self.n).astype(np.int64)


def hour_strings(hours):
    """Per hour index 0..hours+2: 'YYYY-MM-DDTHH:MM:SS' and 'YYYY-MM-DD HH:MM:SS'."""
    t = START + np.arange(hours + 3, dtype=np.int64) * np.timedelta64(3600, "s")
    iso = pl.Series(np.datetime_as_string(t, unit="s"))
    return iso, iso.str.replace("T", " ", literal=True)


def fmt_wh(wh):
    """Integer Wh -> decimal kWh text with 3 decimals (non-negative)."""
    wh = pl.Series(wh)
    return (wh // 1000).cast(pl.String) + "." + (wh % 1000).cast(pl.String).str.zfill(3)


def spell(iso, space, hour, style):
    """Timestamp text of `hour` in a spelling: 0 Z, 1 no offset, 2 +01:00, 3 fraction, 4 +02:00."""
    h = pl.Series(hour)
    z = iso.gather(h) + "Z"
    out = pl.select(
        pl.when(pl.Series(style) == 1).then(space.gather(h))
        .when(pl.Series(style) == 2).then(iso.gather(h + 1) + "+01:00")
        .when(pl.Series(style) == 3).then(iso.gather(h) + ".000Z")
        .when(pl.Series(style) == 4).then(iso.gather(h + 2) + "+02:00")
        .otherwise(z)
    ).to_series()
    return out


def good_rows(m, idx, rng, iso, space, new_values=False):
    """Good rows for global row indexes `idx` (a row's key depends only on its index)."""
    n = len(idx)
    mi = idx % m.n
    hour = idx // m.n
    base = m.base_wh[mi]
    wh = base * CURVE[hour % 24] // 10 + rng.integers(0, base // 2 + 1)
    if new_values:
        wh = wh + 1 + rng.integers(0, 50, n)
    spike = rng.random(n) < 1e-4
    wh = np.where(spike, 100_001 + rng.integers(0, 300_000, n), wh)
    u = rng.random(n)
    if new_values:
        style = np.select([u < 0.05, u < 0.10], [1, 4], 0)
    else:
        style = np.select([u < 0.015, u < 0.025, u < 0.03], [1, 2, 3], 0)
    usage = fmt_wh(wh)
    short = rng.random(n) < 0.005
    usage = pl.select(
        pl.when(pl.Series(short))
        .then(usage.str.strip_chars_end("0").str.strip_chars_end("."))
        .otherwise(usage)
    ).to_series()
    pad = rng.random(n) < 0.001
    usage = pl.select(pl.when(pl.Series(pad)).then("  " + usage).otherwise(usage)).to_series()
    cust = pl.Series(m.customer[mi]).cast(pl.String)
    cust = "C" + cust.str.zfill(6)
    pad = rng.random(n) < 0.001
    cust = pl.select(pl.when(pl.Series(pad)).then(cust + " ").otherwise(cust)).to_series()
    meter = "M" + pl.Series(m.id[mi]).cast(pl.String).str.zfill(8)
    r = rng.random(n)
    rtype = np.select([r < 0.05, r < 0.052, r < 0.0525, r < 0.053],
                      ["estimated", "", "NA", "Null"], "actual")
    if new_values:
        rtype = np.where(r < 0.053, "actual", rtype)
    return pl.DataFrame({
        "customer_id": cust,
        "meter_id": meter,
        "start_time": spell(iso, space, hour, style),
        "end_time": spell(iso, space, hour + 1, style),
        "usage_kwh": usage,
        "reading_type": pl.Series(rtype),
    })


def break_rows(df, mask, kinds):
    """Replace rows where `mask` with bad variants (kind per row)."""
    if not mask.any():
        return df
    k = pl.Series(np.where(mask, kinds, -1))
    c, mt, s, e, u, t = (pl.col(x) for x in HEADER)
    return df.with_columns(
        customer_id=pl.when(k == 0).then("X" + c.str.slice(1))
        .when(k == 10).then(pl.lit(""))
        .when(k == 12).then(pl.lit("C00012")).otherwise(c),
        meter_id=pl.when(k == 7).then("m" + mt.str.slice(1)).otherwise(mt),
        start_time=pl.when(k == 6).then(pl.lit("2026-13-45 99:00")).otherwise(s),
        end_time=pl.when(k == 5).then(s)
        .when(k == 11).then(s.str.slice(0, 10) + " 00:00:00").otherwise(e),
        usage_kwh=pl.when(k == 1).then(pl.lit(""))
        .when(k == 2).then(pl.lit("1.2345"))
        .when(k == 3).then(pl.lit("-3.000"))
        .when(k == 8).then(pl.lit("612.000"))
        .when(k == 9).then(pl.lit("abc"))
        .when(k == 12).then(pl.lit("-1.200"))
        .when(k == 13).then(pl.lit("12,5")).otherwise(u),
        reading_type=pl.when(k == 4).then(pl.lit("guess")).otherwise(t),
    )


def generate(a, log=print):
    t0 = time.perf_counter()
    m = Meters(a.customers, a.seed)
    hours = a.days * 24
    slots = m.n * hours
    if a.rows > slots:
        sys.exit(f"{a.rows} rows do not fit {m.n} meters over {a.days} days ({slots} hourly "
                 "readings): raise --customers or --days")
    a.out.mkdir(parents=True, exist_ok=True)
    iso, space = hour_strings(hours)
    per_file = max(1, math.ceil(a.rows / a.files))
    files, total_bytes, bad_rows = [], 0, 0
    corr_idx = []
    fh = None
    for lo in range(0, a.rows, CHUNK):
        hi = min(a.rows, lo + CHUNK)
        rng = np.random.default_rng([a.seed, 1, lo // CHUNK])
        idx = np.arange(lo, hi, dtype=np.int64)
        df = good_rows(m, idx, rng, iso, space)
        bad = rng.random(len(idx)) < a.bad_fraction
        # The first rows (the start of the first chunk) get one bad row of every kind, so
        # that tiny runs still exercise every rule.
        if lo == 0 and a.bad_fraction > 0:
            bad[[i * 97 + 5 for i in range(BAD_KINDS + 1) if i * 97 + 5 < len(idx)]] = True
        kinds = rng.integers(0, BAD_KINDS + 1, len(idx))
        if lo == 0:
            for i in range(BAD_KINDS + 1):
                if i * 97 + 5 < len(idx):
                    kinds[i * 97 + 5] = i
        df = break_rows(df, bad, kinds)
        bad_rows += int(bad.sum())
        if a.corrections > 0:
            pick = (rng.random(len(idx)) < a.corrections) & ~bad
            corr_idx.append(idx[pick])
        # write the chunk into the files its rows belong to
        start = lo
        while start < hi:
            fno = start // per_file
            end = min(hi, (fno + 1) * per_file)
            if start % per_file == 0:
                if fh:
                    fh.close()
                path = a.out / f"readings_{fno + 1:05d}.csv"
                fh = open(path, "wb")
                fh.write((",".join(HEADER) + "\n").encode())
                files.append(path)
            df.slice(start - lo, end - start).write_csv(fh, include_header=False)
            start = end
    if fh:
        fh.close()
    n_corr = 0
    if corr_idx and sum(len(x) for x in corr_idx):
        idx = np.concatenate(corr_idx)
        rng = np.random.default_rng([a.seed, 2])
        df = good_rows(m, idx, rng, iso, space, new_values=True)
        # ~1 % of the corrected keys are corrected twice: the later line wins
        again = np.flatnonzero(rng.random(len(idx)) < 0.01)
        if len(again):
            df2 = good_rows(m, idx[again], rng, iso, space, new_values=True)
            df = pl.concat([df, df2])
        bad = rng.random(df.height) < a.bad_fraction
        df = break_rows(df, bad, rng.integers(0, BAD_KINDS + 1, df.height))
        bad_rows += int(bad.sum())
        path = a.out / "readings_corrections.csv"
        df.write_csv(path, quote_style="always")
        files.append(path)
        n_corr = df.height
    total_bytes = sum(f.stat().st_size for f in files)
    log(f"wrote {len(files)} file(s), {total_bytes} bytes: {a.rows} readings "
        f"({bad_rows} bad, incl. corrections), {n_corr} corrections "
        f"[{m.n} meters of {a.customers} customers, {time.perf_counter() - t0:.1f} s]")
    return files


def main(argv=None):
    generate(parse_args(argv))


if __name__ == "__main__":
    main()

//! Charts as inline SVG, drawn here so the page needs no script library and makes no
//! request. Every mark carries its value (`data-value`) and every chart its scale
//! (`data-scale`: pixels per unit), so a test can check what a browser drew against the
//! data.

use std::fmt::Write;

use super::page::escape;

const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 10.0;
/// The plot's height in pixels.
const PLOT: f64 = HEIGHT - TOP - BOTTOM;

/// Colours for series, in order.
pub const COLOURS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

/// One bar of a (stacked) bar chart: its label and one value per series.
pub struct Bar {
    pub label: String,
    pub values: Vec<f64>,
}

/// A line per series over shared x positions (labels).
pub struct Lines {
    pub labels: Vec<String>,
    /// (series name, one value per label: `None` where it is not known).
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

/// The smallest "round" number (1, 2 or 5 times a power of ten) at or above `x`.
fn nice(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&v| v >= x)
        .unwrap_or(10.0 * p)
}

/// A chart's vertical scale: from `lo` (0, or a round negative) to `hi`.
struct Axis {
    lo: f64,
    hi: f64,
    /// Pixels per unit.
    scale: f64,
}

impl Axis {
    /// Round bounds that hold every value in `lo..=hi` and zero.
    fn new(lo: f64, hi: f64) -> Self {
        let lo = if lo < 0.0 { -nice(-lo) } else { 0.0 };
        let hi = if hi > 0.0 || lo == 0.0 { nice(hi) } else { 0.0 };
        Axis {
            lo,
            hi,
            scale: PLOT / (hi - lo),
        }
    }

    /// The y pixel of value `v`.
    fn y(&self, v: f64) -> f64 {
        TOP + (self.hi - v) * self.scale
    }
}

/// A value to draw: not a number counts as nothing.
fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

fn open(svg: &mut String, id: &str, axis: &Axis, unit: &str) {
    let _ = write!(
        svg,
        r#"<svg class="chart" data-chart="{id}" data-scale="{}" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">"#,
        axis.scale
    );
    let mut ticks = vec![axis.lo, axis.hi, (axis.lo + axis.hi) / 2.0];
    if axis.lo < 0.0 {
        ticks.push(0.0);
    }
    for v in ticks {
        let y = axis.y(v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{WIDTH}" y1="{y}" y2="{y}" stroke="{}"/><text x="{}" y="{}" text-anchor="end" class="tick">{}{}</text>"##,
            if v == 0.0 { "#999" } else { "#ddd" },
            LEFT - 6.0,
            y + 4.0,
            short(v),
            escape(unit)
        );
    }
}

/// A number in few characters: 1234567 → 1.23M.
pub fn short(x: f64) -> String {
    let a = x.abs();
    let (v, s) = if a >= 1e9 {
        (x / 1e9, "G")
    } else if a >= 1e6 {
        (x / 1e6, "M")
    } else if a >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{s}")
}

/// Bars, stacked when they hold several series (positive values upwards from zero,
/// negative ones downwards); `series` names them (legend).
pub fn bars(id: &str, series: &[String], bars: &[Bar], unit: &str) -> String {
    let sum = |b: &Bar, positive: bool| -> f64 {
        b.values
            .iter()
            .map(|v| finite(*v))
            .filter(|v| (*v >= 0.0) == positive)
            .sum()
    };
    let axis = Axis::new(
        bars.iter().map(|b| sum(b, false)).fold(0.0, f64::min),
        bars.iter().map(|b| sum(b, true)).fold(0.0, f64::max),
    );
    let mut svg = String::new();
    open(&mut svg, id, &axis, unit);
    let slot = (WIDTH - LEFT) / bars.len().max(1) as f64;
    let width = (slot * 0.8).clamp(1.0, 48.0);
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - width) / 2.0;
        let (mut up, mut down) = (axis.y(0.0), axis.y(0.0));
        for (j, v) in b.values.iter().enumerate() {
            let h = finite(*v).abs() * axis.scale;
            let y = if *v >= 0.0 {
                up -= h;
                up
            } else {
                down += h;
                down - h
            };
            let name = series.get(j).map(String::as_str).unwrap_or("");
            let _ = write!(
                svg,
                r#"<rect class="bar" x="{x:.2}" y="{y:.3}" width="{width:.2}" height="{h:.3}" fill="{}" data-label="{}" data-series="{}" data-value="{v}"><title>{}: {} {}</title></rect>"#,
                COLOURS[j % COLOURS.len()],
                escape(&b.label),
                escape(name),
                escape(&b.label),
                escape(name),
                short(*v)
            );
        }
    }
    x_labels(
        &mut svg,
        bars.iter().map(|b| b.label.as_str()).collect(),
        slot,
    );
    svg.push_str("</svg>");
    svg + &legend(series)
}

/// Lines over shared labels, a dot per value; a missing value (`None`) leaves a gap.
pub fn lines(id: &str, data: &Lines, unit: &str) -> String {
    let values = || {
        data.series
            .iter()
            .flat_map(|(_, v)| v.iter().flatten().map(|v| finite(*v)))
    };
    let axis = Axis::new(values().fold(0.0, f64::min), values().fold(0.0, f64::max));
    let mut svg = String::new();
    open(&mut svg, id, &axis, unit);
    let slot = (WIDTH - LEFT) / data.labels.len().max(1) as f64;
    for (j, (name, values)) in data.series.iter().enumerate() {
        let colour = COLOURS[j % COLOURS.len()];
        let points: Vec<(usize, f64, f64, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, finite(v))))
            .map(|(i, v)| (i, LEFT + (i as f64 + 0.5) * slot, axis.y(v), v))
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(_, x, y, _)| format!("{x:.2},{y:.3}"))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="series" data-series="{}" fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            escape(name),
            path.join(" ")
        );
        for (i, x, y, v) in points {
            let _ = write!(
                svg,
                r#"<circle class="point" cx="{x:.2}" cy="{y:.3}" r="3" fill="{colour}" data-series="{}" data-label="{}" data-value="{v}"><title>{} {}: {}</title></circle>"#,
                escape(name),
                escape(&data.labels[i]),
                escape(name),
                escape(&data.labels[i]),
                short(v)
            );
        }
    }
    x_labels(
        &mut svg,
        data.labels.iter().map(String::as_str).collect(),
        slot,
    );
    svg.push_str("</svg>");
    let names: Vec<String> = data.series.iter().map(|(n, _)| n.clone()).collect();
    svg + &legend(&names)
}

/// The first, middle and last label under the x axis.
fn x_labels(svg: &mut String, labels: Vec<&str>, slot: f64) {
    let n = labels.len();
    let mut shown: Vec<usize> = vec![0, n / 2, n.saturating_sub(1)];
    shown.dedup();
    for i in shown.into_iter().filter(|&i| i < n) {
        let x = LEFT + (i as f64 + 0.5) * slot;
        // The last label ends at its mark, so it is not cut at the right edge.
        let anchor = if i + 1 == n && n > 1 { "end" } else { "middle" };
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{}" text-anchor="{anchor}" class="tick">{}</text>"#,
            HEIGHT - 8.0,
            escape(labels[i])
        );
    }
}

fn legend(series: &[String]) -> String {
    if series.len() < 2 && series.iter().all(String::is_empty) {
        return String::new();
    }
    let mut out = String::from(r#"<div class="legend">"#);
    for (j, s) in series.iter().enumerate() {
        let _ = write!(
            out,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            COLOURS[j % COLOURS.len()],
            escape(s)
        );
    }
    out + "</div>"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_round_and_numbers_short() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(1234.0), 2000.0);
        assert_eq!(nice(0.3), 0.5);
        assert_eq!(short(1_234_567.0), "1.23M");
        assert_eq!(short(12.5), "12.5");
        assert_eq!(short(2000.0), "2k");
    }

    #[test]
    fn stacked_bars_are_as_tall_as_their_values() {
        let svg = bars(
            "t",
            &["a".into(), "b".into()],
            &[Bar {
                label: "x".into(),
                values: vec![3.0, 7.0],
            }],
            "",
        );
        // max 10 → scale PLOT/10: the two rects are 0.3 and 0.7 of the plot.
        assert!(
            svg.contains(&format!(r#"height="{:.3}""#, PLOT * 0.3)),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(r#"height="{:.3}""#, PLOT * 0.7)),
            "{svg}"
        );
        assert!(svg.contains(r#"data-series="b" data-value="7""#), "{svg}");
    }

    #[test]
    fn negative_bars_hang_below_zero() {
        let svg = bars(
            "t",
            &["a".into()],
            &[
                Bar {
                    label: "x".into(),
                    values: vec![-5.0],
                },
                Bar {
                    label: "y".into(),
                    values: vec![5.0],
                },
            ],
            "",
        );
        // -5..5 → axis -5..5, zero in the middle; each bar is half the plot tall, one
        // starting at zero and one ending there.
        let zero = TOP + PLOT / 2.0;
        assert!(svg.contains(&format!(r#"y="{zero:.3}" width"#)), "{svg}");
        assert!(svg.contains(&format!(r#"y="{:.3}" width"#, TOP)), "{svg}");
        assert_eq!(
            svg.matches(&format!(r#"height="{:.3}""#, PLOT / 2.0))
                .count(),
            2,
            "{svg}"
        );
    }
}

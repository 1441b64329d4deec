//! The latency-over-time chart: an SVG written by hand (no dependency), one line each for
//! p50, p99, p99.9 and max per interval on a logarithmic latency axis, throughput in a
//! strip below, the warm-up shaded.

use std::fmt::Write as _;

use crate::report::TimelinePoint;

const WIDTH: f64 = 900.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const LATENCY_HEIGHT: f64 = 300.0;
const GAP: f64 = 40.0;
const RATE_HEIGHT: f64 = 100.0;
const BOTTOM: f64 = 40.0;

/// A line of the chart: name, colour, value of a point.
type Series = (&'static str, &'static str, fn(&TimelinePoint) -> f64);

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart of `points` titled `title`, as an SVG document.
pub fn latency_svg(title: &str, points: &[TimelinePoint]) -> String {
    let height = TOP + LATENCY_HEIGHT + GAP + RATE_HEIGHT + BOTTOM;
    let plot_w = WIDTH - LEFT - RIGHT;
    let t_max = points.iter().map(|p| p.t_s).fold(1e-9, f64::max);
    let positive = |v: f64| v > 0.0;
    let lat: Vec<f64> = points
        .iter()
        .flat_map(|p| [p.p50_us, p.p99_us, p.p999_us, p.max_us])
        .filter(|v| positive(*v))
        .collect();
    let lo_exp = lat
        .iter()
        .fold(f64::INFINITY, |a, &b| a.min(b))
        .log10()
        .floor();
    let hi_exp = lat.iter().fold(0.0f64, |a, &b| a.max(b)).log10().ceil();
    let (lo_exp, hi_exp) = if lat.is_empty() {
        (0.0, 3.0)
    } else {
        (lo_exp, hi_exp.max(lo_exp + 1.0))
    };
    let x = |t: f64| LEFT + t / t_max * plot_w;
    let y_lat = |us: f64| {
        let e = us.max(10f64.powf(lo_exp)).log10();
        TOP + LATENCY_HEIGHT * (1.0 - (e - lo_exp) / (hi_exp - lo_exp))
    };
    let rate_max = points.iter().map(|p| p.ops_per_s).fold(1.0, f64::max);
    let rate_top = TOP + LATENCY_HEIGHT + GAP;
    let y_rate = |r: f64| rate_top + RATE_HEIGHT * (1.0 - r / rate_max);

    let mut s = String::new();
    let _ = writeln!(
        s,
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}""#,
            r#" font-family="sans-serif" font-size="12">"#
        ),
        WIDTH = WIDTH,
        height = height
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14">{}</text>"#,
        escape(title)
    );
    // Warm-up band.
    if let Some(last_warm) = points
        .iter()
        .filter(|p| p.warmup)
        .map(|p| p.t_s)
        .reduce(f64::max)
    {
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{LATENCY_HEIGHT}" fill="#eee"/>"##,
            x(last_warm) - LEFT
        );
    }
    // Latency grid: one line per decade.
    let mut e = lo_exp;
    while e <= hi_exp {
        let yy = y_lat(10f64.powf(e));
        let label = match e as i32 {
            k if k < 3 => format!("{} µs", 10f64.powi(k)),
            k if k < 6 => format!("{} ms", 10f64.powi(k - 3)),
            k => format!("{} s", 10f64.powi(k - 6)),
        };
        let _ = writeln!(
            s,
            concat!(
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ccc"/>"##,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#
            ),
            WIDTH - RIGHT,
            LEFT - 5.0,
            yy + 4.0,
            LEFT = LEFT,
            yy = yy,
            label = label,
        );
        e += 1.0;
    }
    let series: [Series; 4] = [
        ("p50", "#1f77b4", |p| p.p50_us),
        ("p99", "#ff7f0e", |p| p.p99_us),
        ("p99.9", "#d62728", |p| p.p999_us),
        ("max", "#7f7f7f", |p| p.max_us),
    ];
    for (i, (name, color, value)) in series.iter().enumerate() {
        let coords: Vec<String> = points
            .iter()
            .filter(|p| positive(value(p)))
            .map(|p| format!("{:.1},{:.1}", x(p.t_s), y_lat(value(p))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            coords.join(" ")
        );
        let lx = LEFT + 10.0 + i as f64 * 80.0;
        let _ = writeln!(
            s,
            concat!(
                r#"<rect x="{lx}" y="{:.1}" width="10" height="10" fill="{color}"/>"#,
                r#"<text x="{:.1}" y="{:.1}">{name}</text>"#
            ),
            TOP + 5.0,
            lx + 14.0,
            TOP + 14.0,
            lx = lx,
            color = color,
            name = name,
        );
    }
    // Throughput strip.
    let coords: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.t_s), y_rate(p.ops_per_s)))
        .collect();
    let _ = writeln!(
        s,
        concat!(
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ccc"/>"##,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{rate_max:.0}/s</text>"#,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">0</text>"#
        ),
        WIDTH - RIGHT,
        rate_top + RATE_HEIGHT,
        rate_top + RATE_HEIGHT,
        LEFT - 5.0,
        rate_top + 4.0,
        LEFT - 5.0,
        rate_top + RATE_HEIGHT + 4.0,
        LEFT = LEFT,
        rate_max = rate_max,
    );
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#2ca02c" stroke-width="1.5" points="{}"/>"##,
        coords.join(" ")
    );
    let _ = writeln!(
        s,
        concat!(
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">"#,
            "seconds (throughput below, latency above; warm-up shaded)</text>"
        ),
        LEFT + plot_w / 2.0,
        height - 10.0
    );
    s.push_str("</svg>\n");
    s
}

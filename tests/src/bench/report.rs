//! The benchmark's outputs: JSON, a Markdown table and an SVG chart.
use std::fmt::Write;

/// One row of the results table.
pub struct Row {
    pub what: String,
    pub value: String,
    pub target: String,
    pub met: Option<bool>,
}

pub fn markdown(rows: &[Row], machine: &str, command: &str) -> String {
    let mut out = format!("Machine: {machine}. Reproduce: `{command}`.\n\n| measure | value | target | met |\n|---|---|---|---|\n");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(out, "| {} | {} | {} | {} |", r.what, r.value, r.target, met);
    }
    out
}

/// Create latency (ms) against sandbox number, as an SVG line chart.
pub fn svg(points: &[(usize, f64)], title: &str) -> String {
    let (w, h, m) = (720.0, 360.0, 50.0);
    let max_x = points.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let max_y = points.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.1;
    let x = |v: f64| m + (w - 2.0 * m) * v / max_x;
    let y = |v: f64| h - m - (h - 2.0 * m) * v / max_y;
    let path: Vec<String> =
        points.iter().map(|(i, v)| format!("{:.1},{:.1}", x(*i as f64), y(*v))).collect();
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{m}\" y=\"24\" font-size=\"14\">{title}</text>\n\
         <line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - m,
        w - m,
        h - m,
        h - m
    );
    for k in 0..=4 {
        let v = max_y * k as f64 / 4.0;
        let _ = writeln!(s, "<text x=\"4\" y=\"{:.1}\">{v:.1} ms</text>", y(v) + 4.0);
        let n = max_x * k as f64 / 4.0;
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{}\">{n:.0}</text>", x(n) - 10.0, h - m + 18.0);
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\">sandboxes on the bridge</text>",
        w / 2.0 - 60.0,
        h - 10.0
    );
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{}\"/>",
        path.join(" ")
    );
    s + "</svg>\n"
}

//! Small inline SVG charts for the report: horizontal bars, histograms, line charts (linear or
//! log-log). Every chart is a self-contained `<svg>` element with its labels.

use std::fmt::Write;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A compact number: 1234 -> `1,234`; 2.5e6 -> `2.5M`.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

const PALETTE: [&str; 6] = [
    "#3b6fb6", "#d9822b", "#2f9e66", "#c2413b", "#7d5ba6", "#8c8c8c",
];

/// Horizontal bars: one row per (label, value), longest first as given.
pub fn hbars(title: &str, rows: &[(String, f64)], color: &str) -> String {
    let w = 760.0;
    let label_w = 260.0;
    let row_h = 22.0;
    let h = 36.0 + row_h * rows.len().max(1) as f64 + 10.0;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{t}</title><text x="4" y="20" class="ct">{t}</text>"#,
        t = esc(title)
    );
    if rows.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="4" y="50" class="muted">(nothing to show)</text>"#
        );
    }
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 36.0 + i as f64 * row_h;
        let bw = (w - label_w - 90.0) * v / max;
        let short: String = label.chars().take(40).collect();
        let _ = writeln!(
            s,
            r#"<text x="{lx}" y="{ty}" text-anchor="end">{l}</text><rect x="{label_w}" y="{y}" width="{bw:.1}" height="{bh}" fill="{color}"><title>{lf}: {v}</title></rect><text x="{vx:.1}" y="{ty}">{vn}</text>"#,
            lx = label_w - 6.0,
            ty = y + 14.0,
            l = esc(&short),
            lf = esc(label),
            bh = row_h - 6.0,
            vx = label_w + bw + 4.0,
            vn = num(*v)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A histogram of pre-binned counts: `bins` are (lower edge label, count).
pub fn histogram(title: &str, xlabel: &str, bins: &[(String, u64)], color: &str) -> String {
    let (w, h, ml, mr, mt, mb) = (760.0, 300.0, 60.0, 14.0, 34.0, 56.0);
    let n = bins.len().max(1) as f64;
    let max = bins.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let pw = w - ml - mr;
    let ph = h - mt - mb;
    let bw = pw / n;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{t}</title><text x="4" y="20" class="ct">{t}</text>"#,
        t = esc(title)
    );
    let _ = writeln!(
        s,
        r##"<path d="M{ml} {mt} V{y0} H{x1}" stroke="#333" fill="none"/><text x="{ml}" y="{ty}" text-anchor="end" dx="-4">{mx}</text><text x="{ml}" y="{y0}" text-anchor="end" dx="-4">0</text><text x="{cx}" y="{ly}" text-anchor="middle">{xl}</text>"##,
        y0 = h - mb,
        x1 = w - mr,
        cx = ml + pw / 2.0,
        ly = h - 8.0,
        xl = esc(xlabel),
        ty = mt + 10.0,
        mx = num(max)
    );
    let every = (bins.len() / 10).max(1);
    for (i, (label, c)) in bins.iter().enumerate() {
        let bh = ph * *c as f64 / max;
        let x = ml + i as f64 * bw;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bwi:.1}" height="{bh:.1}" fill="{color}"><title>{l}: {c}</title></rect>"#,
            y = h - mb - bh,
            bwi = (bw - 1.0).max(0.5),
            l = esc(label)
        );
        if i % every == 0 {
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{y:.1}" font-size="10">{l}</text>"#,
                y = h - mb + 14.0,
                l = esc(label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// A line chart of named series of (x, y) points; `log` draws both axes in log10 (points with
/// x or y <= 0 are left out).
pub fn lines(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log: bool,
) -> String {
    let (w, h, ml, mr, mt, mb) = (760.0, 360.0, 70.0, 150.0, 34.0, 50.0);
    let tf = |v: f64| if log { v.log10() } else { v };
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log || (*x > 0.0 && *y > 0.0)))
        .map(|(x, y)| (tf(x), tf(y)))
        .collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{t}</title><text x="4" y="20" class="ct">{t}</text>"#,
        t = esc(title)
    );
    if pts.is_empty() {
        s.push_str(r#"<text x="4" y="50" class="muted">(no data)</text></svg>"#);
        return s;
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in &pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if log {
        x0 = x0.floor().min(0.0);
        x1 = x1.ceil().max(x0 + 1.0);
        y0 = y0.floor().min(0.0);
        y1 = y1.ceil().max(y0 + 1.0);
    } else {
        if (x1 - x0).abs() < 1e-12 {
            x1 = x0 + 1.0;
        }
        if (y1 - y0).abs() < 1e-12 {
            y1 = y0 + 1.0;
        }
    }
    let px = |x: f64| ml + (x - x0) / (x1 - x0) * (w - ml - mr);
    let py = |y: f64| h - mb - (y - y0) / (y1 - y0) * (h - mt - mb);
    let _ = writeln!(
        s,
        r##"<path d="M{ml} {mt} V{yb} H{xr}" stroke="#333" fill="none"/><text x="{cx}" y="{ly}" text-anchor="middle">{xl}</text><text transform="translate(14 {cy}) rotate(-90)" text-anchor="middle">{yl}</text>"##,
        yb = h - mb,
        xr = w - mr,
        cx = ml + (w - ml - mr) / 2.0,
        ly = h - 10.0,
        cy = mt + (h - mt - mb) / 2.0,
        xl = esc(xlabel),
        yl = esc(ylabel)
    );
    // Ticks: decades on log axes, 5 even steps on linear ones.
    let ticks = |a: f64, b: f64| -> Vec<f64> {
        if log {
            let mut v = Vec::new();
            let mut d = a;
            while d <= b + 1e-9 {
                v.push(d);
                d += 1.0;
            }
            v
        } else {
            (0..=4).map(|i| a + (b - a) * i as f64 / 4.0).collect()
        }
    };
    let lab = |v: f64| if log { num(10f64.powf(v)) } else { num(v) };
    for t in ticks(x0, x1) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
            px(t),
            h - mb + 14.0,
            lab(t)
        );
    }
    for t in ticks(y0, y1) {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10">{}</text><path d="M{ml} {:.1} H{}" stroke="#eee"/>"##,
            ml - 4.0,
            py(t) + 3.0,
            lab(t),
            py(t),
            w - mr
        );
    }
    for (i, (name, data)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut d = String::new();
        for (x, y) in data
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log || (*x > 0.0 && *y > 0.0)))
        {
            let _ = write!(
                d,
                "{}{:.1} {:.1}",
                if d.is_empty() { "M" } else { " L" },
                px(tf(*x)),
                py(tf(*y))
            );
        }
        let _ = writeln!(
            s,
            r#"<path d="{d}" stroke="{color}" stroke-width="1.6" fill="none"/><rect x="{lx}" y="{ly}" width="12" height="4" fill="{color}"/><text x="{tx}" y="{ty}">{n}</text>"#,
            lx = w - mr + 10.0,
            ly = mt + 8.0 + i as f64 * 18.0,
            tx = w - mr + 26.0,
            ty = mt + 13.0 + i as f64 * 18.0,
            n = esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

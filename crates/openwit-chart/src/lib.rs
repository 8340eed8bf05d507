//! The one SVG chart module of OpenWIT: horizontal bars, histograms and line charts (linear or
//! log-log, several series, a legend, labelled reference lines), and panels of charts in one
//! standalone document. The report, the trainer's `curves.svg` and the balance plot draw with it.
//!
//! Every chart is a self-contained `<svg>` element carrying its title and labels (with `xmlns`
//! where it is a file of its own: `LineChart::standalone`, `panels`); text is escaped with the
//! one escape function, `openwit_core::escape::html`. In line charts only the series are
//! `<path>` elements (axes are `<polyline>`s, ticks and grid lines `<line>`s), one per drawn
//! series.

use std::fmt::Write;

/// Escapes text for HTML and SVG (`openwit_core::escape::html`).
pub use openwit_core::escape::html as esc;

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

/// `n` with a comma between thousands: 1234567 -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The step of "nice" axis ticks (1, 2 or 5 times a power of ten) that cuts `lo..hi` into at
/// most `max_ticks - 1` intervals.
pub fn nice_step(lo: f64, hi: f64, max_ticks: usize) -> f64 {
    let span = (hi - lo).abs();
    let intervals = max_ticks.max(2) as f64 - 1.0;
    if !span.is_finite() || span <= 0.0 {
        return 1.0;
    }
    let rough = span / intervals;
    let mag = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&step| (span / step).ceil() <= intervals + 1e-9)
        .unwrap_or(10.0 * mag)
}

/// Axis ticks for the data range `lo..=hi`: the axis is widened to whole steps around it, and
/// the ticks are every step on it, at most `max_ticks` of them. Returns (ticks, step).
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize) -> (Vec<f64>, f64) {
    let (lo, hi) = if hi < lo { (hi, lo) } else { (lo, hi) };
    let (lo, hi) = if (hi - lo).abs() < 1e-12 {
        // One value: an axis around it.
        if lo == 0.0 {
            (0.0, 1.0)
        } else {
            (lo - lo.abs() * 0.5, hi + hi.abs() * 0.5)
        }
    } else {
        (lo, hi)
    };
    let mut max_ticks = max_ticks.max(2);
    loop {
        let step = nice_step(lo, hi, max_ticks);
        // (A bound a rounding error away from a whole step is on it.)
        let first = (lo / step + 1e-9).floor();
        let last = (hi / step - 1e-9).ceil();
        let n = (last - first) as usize + 1;
        if n <= max_ticks.max(2) || max_ticks <= 2 {
            let ticks = (0..n).map(|i| (first + i as f64) * step).collect();
            return (ticks, step);
        }
        // Widening to whole steps added a tick: ask for fewer intervals.
        max_ticks -= 1;
    }
}

/// The label of axis tick `v` on an axis ticked every `step`: just enough decimals to tell the
/// ticks apart, thousands separated by commas, and `k`/`M`/`G` from ten thousand up (`25k`,
/// `1.5M`).
pub fn tick_label(v: f64, step: f64) -> String {
    let step = step.abs().max(f64::MIN_POSITIVE);
    let decimals = |unit: f64| -> usize {
        let d = -(step / unit).log10().floor();
        // Steps of 2.5 units and the like would need one more; nice steps are 1, 2 or 5.
        if d > 0.0 { d as usize } else { 0 }
    };
    let a = v.abs();
    for (unit, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if a >= 10.0 * unit || (unit > 1e3 && a >= unit) {
            let d = decimals(unit);
            return format!("{:.*}{suffix}", d, v / unit).replace("-0", "0");
        }
    }
    let d = decimals(1.0);
    if d == 0 {
        let r = v.round();
        let sign = if r < 0.0 { "-" } else { "" };
        return format!("{sign}{}", thousands(r.abs() as u64));
    }
    let out = format!("{v:.d$}");
    if out.starts_with('-') && out[1..].bytes().all(|b| b == b'0' || b == b'.') {
        out[1..].to_string()
    } else {
        out
    }
}

/// The label of a power of ten on a log axis: `1`, `10`, `1,000`, `10k`, `1M`; `0.01` below 1.
pub fn decade_label(exp: i32) -> String {
    let v = 10f64.powi(exp);
    if exp < 0 {
        format!("{v:.*}", (-exp) as usize)
    } else {
        tick_label(v, v)
    }
}

/// The width in pixels that `text` takes in the charts' font at `size` px (a generous estimate:
/// labels spaced by it never overlap).
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

/// The colours of series that do not name one, in turn.
pub const PALETTE: [&str; 6] = [
    "#3b6fb6", "#d9822b", "#2f9e66", "#c2413b", "#7d5ba6", "#8c8c8c",
];

/// The opening of a chart: `<svg>` with its size, the title as `<title>` and as a heading.
fn open(w: f64, h: f64, title: &str, background: Option<&str>, standalone: bool) -> String {
    let xmlns = if standalone {
        r#" xmlns="http://www.w3.org/2000/svg""#
    } else {
        ""
    };
    let mut s = format!(
        r#"<svg{xmlns} class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" font-family="sans-serif" font-size="12">"#
    );
    if let Some(fill) = background {
        let _ = write!(
            s,
            r#"<rect width="100%" height="100%" fill="{}"/>"#,
            esc(fill)
        );
    }
    let _ = writeln!(
        s,
        r#"<title>{t}</title><text x="4" y="20" class="ct" font-size="14" font-weight="600">{t}</text>"#,
        t = esc(title)
    );
    s
}

/// The note of a chart with nothing to draw.
fn nothing(s: &mut String, text: &str) {
    let _ = writeln!(
        s,
        r##"<text x="4" y="50" class="muted" fill="#888">{}</text>"##,
        esc(text)
    );
}

/// Horizontal bars: one row per (label, value), longest first as given.
pub fn hbars(title: &str, rows: &[(String, f64)], color: &str) -> String {
    let w = 760.0;
    let label_w = 260.0;
    let row_h = 22.0;
    let h = 36.0 + row_h * rows.len().max(1) as f64 + 10.0;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1.0);
    let mut s = open(w, h, title, None, false);
    if rows.is_empty() {
        nothing(&mut s, "(nothing to show)");
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
            vn = num(*v),
            color = esc(color)
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
    let color = esc(color);
    let mut s = open(w, h, title, None, false);
    if bins.is_empty() {
        nothing(&mut s, "(nothing to show)");
    }
    let (yticks, ystep) = nice_ticks(0.0, max, 6);
    let top = yticks.last().copied().unwrap_or(max).max(1.0);
    let py = |c: f64| h - mb - ph * c / top;
    for t in &yticks {
        let _ = writeln!(
            s,
            r##"<line x1="{ml}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#eee"/><text x="{ml}" y="{ty:.1}" text-anchor="end" dx="-4" font-size="10">{l}</text>"##,
            y = py(*t),
            x1 = w - mr,
            ty = py(*t) + 3.0,
            l = tick_label(*t, ystep)
        );
    }
    let _ = writeln!(
        s,
        r##"<polyline points="{ml},{mt} {ml},{y0} {x1},{y0}" stroke="#333" fill="none"/><text x="{cx}" y="{ly}" text-anchor="middle">{xl}</text>"##,
        y0 = h - mb,
        x1 = w - mr,
        cx = ml + pw / 2.0,
        ly = h - 8.0,
        xl = esc(xlabel),
    );
    // Bin labels at their bar's left edge, left out where one would run into the last shown.
    let mut free_from = f64::MIN;
    for (i, (label, c)) in bins.iter().enumerate() {
        let bh = h - mb - py(*c as f64);
        let x = ml + i as f64 * bw;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bwi:.1}" height="{bh:.1}" fill="{color}"><title>{l}: {c}</title></rect>"#,
            y = h - mb - bh,
            bwi = (bw - 1.0).max(0.5),
            l = esc(label)
        );
        let tw = text_width(label, 10.0);
        if x >= free_from && x + tw <= w {
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{y:.1}" font-size="10" class="tick">{l}</text>"#,
                y = h - mb + 14.0,
                l = esc(label)
            );
            free_from = x + tw + 6.0;
        }
    }
    s.push_str("</svg>\n");
    s
}

/// One named series of a line chart: (x, y) points, drawn joined in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Its colour; `None`: the next of [`PALETTE`].
    pub color: Option<String>,
}

/// A line chart: named series on linear or log-log axes with ticks, axis labels, a legend and
/// labelled horizontal reference lines. Built with its methods, drawn by [`LineChart::svg`].
#[derive(Debug, Clone)]
pub struct LineChart {
    title: String,
    xlabel: String,
    ylabel: String,
    series: Vec<Series>,
    rules: Vec<(f64, String)>,
    log: bool,
    legend: bool,
    width: f64,
    height: f64,
    background: Option<String>,
    standalone: bool,
}

impl LineChart {
    /// A 760x360 chart with a legend, linear axes and no series yet.
    pub fn new(title: &str, xlabel: &str, ylabel: &str) -> Self {
        LineChart {
            title: title.to_string(),
            xlabel: xlabel.to_string(),
            ylabel: ylabel.to_string(),
            series: Vec::new(),
            rules: Vec::new(),
            log: false,
            legend: true,
            width: 760.0,
            height: 360.0,
            background: None,
            standalone: false,
        }
    }

    /// Both axes in log10, ticked at powers of ten (points with x or y <= 0 are left out).
    pub fn log(mut self, log: bool) -> Self {
        self.log = log;
        self
    }

    /// The size of the chart in pixels.
    pub fn size(mut self, width: f64, height: f64) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Whether the series' names are listed right of the plot (on by default).
    pub fn legend(mut self, legend: bool) -> Self {
        self.legend = legend;
        self
    }

    /// A background colour (charts are transparent otherwise).
    pub fn background(mut self, color: &str) -> Self {
        self.background = Some(color.to_string());
        self
    }

    /// Marks the chart as a file of its own (`xmlns` on its `<svg>`; inline in HTML or inside
    /// [`panels`] it needs none).
    pub fn standalone(mut self) -> Self {
        self.standalone = true;
        self
    }

    /// Adds a series in the palette's next colour.
    pub fn series(mut self, name: &str, points: Vec<(f64, f64)>) -> Self {
        self.series.push(Series {
            name: name.to_string(),
            points,
            color: None,
        });
        self
    }

    /// Adds a series in `color`.
    pub fn series_in(mut self, name: &str, points: Vec<(f64, f64)>, color: &str) -> Self {
        self.series.push(Series {
            name: name.to_string(),
            points,
            color: Some(color.to_string()),
        });
        self
    }

    /// Adds a dashed horizontal line at `y` with `label` above it (a threshold, a target); the
    /// y axis reaches it.
    pub fn rule(mut self, y: f64, label: &str) -> Self {
        self.rules.push((y, label.to_string()));
        self
    }

    /// Whether a point is drawn on these axes.
    fn shown(&self, (x, y): (f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.log || (x > 0.0 && y > 0.0))
    }

    /// The axis coordinate of a value.
    fn tf(&self, v: f64) -> f64 {
        if self.log { v.log10() } else { v }
    }

    /// Ticks and their labels for the (transformed) range `lo..=hi`: every decade on log axes
    /// (every other one, and so on, when there are many), nice 1-2-5 steps on linear ones; the
    /// axis ends on a tick.
    fn axis(&self, lo: f64, hi: f64, max_ticks: usize) -> (Vec<f64>, Vec<String>) {
        if self.log {
            let (a, b) = (lo.floor().min(0.0), hi.ceil());
            let b = b.max(a + 1.0);
            let n = (b - a) as usize;
            let every = n.div_ceil(max_ticks.max(2) - 1).max(1);
            let ticks: Vec<f64> = (0..=n)
                .filter(|i| i % every == 0 || *i == n)
                .map(|i| a + i as f64)
                .collect();
            let labels = ticks.iter().map(|&d| decade_label(d as i32)).collect();
            (ticks, labels)
        } else {
            let (ticks, step) = nice_ticks(lo, hi, max_ticks);
            let labels = ticks.iter().map(|&t| tick_label(t, step)).collect();
            (ticks, labels)
        }
    }

    /// The chart as a self-contained `<svg>` element.
    pub fn svg(&self) -> String {
        let (w, h) = (self.width, self.height);
        let legend_w = self
            .series
            .iter()
            .map(|s| text_width(&s.name, 12.0))
            .fold(0.0, f64::max);
        let mr = if self.legend && !self.series.is_empty() {
            (legend_w + 34.0).clamp(60.0, w * 0.4)
        } else {
            20.0
        };
        let (ml, mt, mb) = (70.0, 34.0, 50.0);
        let mut pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&p| self.shown(p))
            .map(|(x, y)| (self.tf(x), self.tf(y)))
            .collect();
        let mut s = open(
            w,
            h,
            &self.title,
            self.background.as_deref(),
            self.standalone,
        );
        if pts.is_empty() {
            nothing(&mut s, "(no data)");
            s.push_str("</svg>\n");
            return s;
        }
        let rules: Vec<(f64, &str)> = self
            .rules
            .iter()
            .filter(|r| r.0.is_finite() && (!self.log || r.0 > 0.0))
            .map(|r| (self.tf(r.0), r.1.as_str()))
            .collect();
        // The reference lines are on the y axis (at the first point's x: they do not widen x).
        let x_any = pts[0].0;
        pts.extend(rules.iter().map(|r| (x_any, r.0)));
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in &pts {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y0 = y0.min(*y);
            y1 = y1.max(*y);
        }
        let (w_plot, h_plot) = (w - ml - mr, h - mt - mb);
        let (xt, xl_labels) = self.axis(x0, x1, ((w_plot / 80.0) as usize).clamp(3, 8));
        let (yt, yl_labels) = self.axis(y0, y1, ((h_plot / 40.0) as usize).clamp(3, 7));
        let (x0, x1) = (xt[0], *xt.last().unwrap_or(&(xt[0] + 1.0)));
        let (y0, y1) = (yt[0], *yt.last().unwrap_or(&(yt[0] + 1.0)));
        let (x1, y1) = (
            if x1 > x0 { x1 } else { x0 + 1.0 },
            if y1 > y0 { y1 } else { y0 + 1.0 },
        );
        let px = |x: f64| ml + (x - x0) / (x1 - x0) * w_plot;
        let py = |y: f64| h - mb - (y - y0) / (y1 - y0) * h_plot;
        let (yb, xr) = (h - mb, w - mr);
        let _ = write!(
            s,
            r##"<polyline points="{ml},{mt} {ml},{yb} {xr},{yb}" stroke="#333" fill="none"/><text x="{cx}" y="{ly}" text-anchor="middle">{xl}</text>"##,
            cx = ml + w_plot / 2.0,
            ly = h - 10.0,
            xl = esc(&self.xlabel),
        );
        if !self.ylabel.is_empty() {
            let _ = write!(
                s,
                r#"<text transform="translate(14 {cy}) rotate(-90)" text-anchor="middle">{yl}</text>"#,
                cy = mt + h_plot / 2.0,
                yl = esc(&self.ylabel)
            );
        }
        s.push('\n');
        let mut free_from = f64::MIN;
        for (t, label) in xt.iter().zip(&xl_labels) {
            let (x, tw) = (px(*t), text_width(label, 10.0));
            if x - tw / 2.0 < free_from {
                continue;
            }
            free_from = x + tw / 2.0 + 6.0;
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{yb}" x2="{x:.1}" y2="{y2}" stroke="#333"/><text x="{x:.1}" y="{ty:.1}" text-anchor="middle" font-size="10" class="tick">{label}</text>"##,
                y2 = yb + 4.0,
                ty = yb + 14.0,
            );
        }
        for (t, label) in yt.iter().zip(&yl_labels) {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10" class="tick">{label}</text><line x1="{ml}" y1="{y:.1}" x2="{xr}" y2="{y:.1}" stroke="#eee"/>"##,
                ml - 4.0,
                py(*t) + 3.0,
                y = py(*t),
            );
        }
        s.push('\n');
        for (y, label) in &rules {
            let _ = writeln!(
                s,
                r##"<line x1="{ml}" y1="{y:.1}" x2="{xr}" y2="{y:.1}" stroke="#555" stroke-dasharray="6 4"/><text x="{tx}" y="{ty:.1}" fill="#555">{l}</text>"##,
                y = py(*y),
                tx = ml + 6.0,
                ty = py(*y) - 4.0,
                l = esc(label)
            );
        }
        for (i, series) in self.series.iter().enumerate() {
            let color = esc(series
                .color
                .as_deref()
                .unwrap_or(PALETTE[i % PALETTE.len()]));
            let mut d = String::new();
            for (x, y) in series.points.iter().copied().filter(|&p| self.shown(p)) {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1}",
                    if d.is_empty() { "M" } else { " L" },
                    px(self.tf(x)),
                    py(self.tf(y))
                );
            }
            if !d.is_empty() {
                let _ = write!(
                    s,
                    r#"<path d="{d}" stroke="{color}" stroke-width="1.6" fill="none"/>"#
                );
            }
            if self.legend {
                let _ = write!(
                    s,
                    r#"<rect x="{lx}" y="{ly}" width="12" height="4" fill="{color}"/><text x="{tx}" y="{ty}">{n}</text>"#,
                    lx = w - mr + 10.0,
                    ly = mt + 8.0 + i as f64 * 18.0,
                    tx = w - mr + 26.0,
                    ty = mt + 13.0 + i as f64 * 18.0,
                    n = esc(&series.name)
                );
            }
            s.push('\n');
        }
        s.push_str("</svg>\n");
        s
    }
}

/// A line chart of named series of (x, y) points with a legend; `log` draws both axes in log10
/// (points with x or y <= 0 are left out).
pub fn lines(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log: bool,
) -> String {
    series
        .iter()
        .fold(
            LineChart::new(title, xlabel, ylabel).log(log),
            |c, (n, p)| c.series(n, p.clone()),
        )
        .svg()
}

/// Charts as panels of one standalone SVG document: `title` on top, then the charts left to
/// right in rows of `columns`, each in a framed cell of `cell` (width, height) pixels (draw
/// them at that size).
pub fn panels(title: &str, charts: &[String], columns: usize, cell: (f64, f64)) -> String {
    let (cw, ch, gap, top) = (cell.0, cell.1, 10.0, 34.0);
    let columns = columns.max(1);
    let rows = charts.len().div_ceil(columns).max(1);
    let w = gap + columns as f64 * (cw + gap);
    let h = top + rows as f64 * (ch + gap);
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif"><rect width="100%" height="100%" fill="#f6f6f6"/><title>{t}</title><text x="10" y="22" font-size="16">{t}</text>"##,
        t = esc(title)
    );
    s.push('\n');
    for (i, chart) in charts.iter().enumerate() {
        let x = gap + (i % columns) as f64 * (cw + gap);
        let y = top + (i / columns) as f64 * (ch + gap);
        let _ = write!(
            s,
            r##"<g transform="translate({x} {y})"><rect width="{cw}" height="{ch}" fill="#fff" stroke="#999"/>{}</g>"##,
            chart.trim_end()
        );
        s.push('\n');
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts of the `<text class="tick">` elements of `svg`, in order.
    fn tick_texts(svg: &str) -> Vec<String> {
        svg.split("class=\"tick\">")
            .skip(1)
            .map(|t| t.split('<').next().unwrap().to_string())
            .collect()
    }

    /// The x and the y tick labels of a line chart, in order.
    fn axis_labels(svg: &str) -> (Vec<String>, Vec<String>) {
        let texts = |anchor: &str| -> Vec<String> {
            let marker = format!("text-anchor=\"{anchor}\" font-size=\"10\" class=\"tick\">");
            svg.split(marker.as_str())
                .skip(1)
                .map(|t| t.split('<').next().unwrap().to_string())
                .collect()
        };
        (texts("middle"), texts("end"))
    }

    fn distinct(v: &[String]) -> bool {
        let mut s = v.to_vec();
        s.sort();
        s.dedup();
        s.len() == v.len()
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn nice_ticks_are_round_distinct_and_cover_the_range() {
        for (lo, hi) in [
            (0.0, 1.0),
            (0.0, 4.0),
            (0.0, 49.0),
            (0.1, 5.0),
            (0.001, 0.0012),
            (0.0, 1.2),
            (3.0, 3.0),
            (0.0, 0.0),
            (-2.5, 7.0),
            (0.0, 20_000.0),
            (12_345.0, 12_399.0),
            (0.0, 2.5e6),
            (0.0, 7.3e9),
        ] {
            let (ticks, step) = nice_ticks(lo, hi, 7);
            assert!((2..=7).contains(&ticks.len()), "{lo}..{hi}: {ticks:?}");
            assert!(ticks[0] <= lo.min(hi) + 1e-12, "{lo}..{hi}: {ticks:?}");
            assert!(*ticks.last().unwrap() >= hi.max(lo) - 1e-12, "{lo}..{hi}");
            // A step of 1, 2 or 5 times a power of ten.
            let mant = step / 10f64.powf(step.log10().floor());
            assert!(
                [1.0, 2.0, 5.0, 10.0]
                    .iter()
                    .any(|m| (m - mant).abs() < 1e-9),
                "{lo}..{hi}: step {step}"
            );
            let labels: Vec<String> = ticks.iter().map(|&t| tick_label(t, step)).collect();
            assert!(distinct(&labels), "{lo}..{hi}: {labels:?}");
            assert!(labels.iter().all(|l| l.len() <= 8), "{labels:?}");
        }
    }

    #[test]
    fn tick_labels_are_short_and_readable() {
        assert_eq!(tick_label(0.0, 1.0), "0");
        assert_eq!(tick_label(1500.0, 500.0), "1,500");
        assert_eq!(tick_label(20_000.0, 5000.0), "20k");
        assert_eq!(tick_label(12_350.0, 10.0), "12.35k");
        assert_eq!(tick_label(2.5e6, 5e5), "2.5M");
        assert_eq!(tick_label(0.2, 0.2), "0.2");
        assert_eq!(tick_label(0.0011, 0.0001), "0.0011");
        assert_eq!(tick_label(-0.0, 0.1), "0.0");
        assert_eq!(tick_label(-2.0, 1.0), "-2");
        assert_eq!(decade_label(0), "1");
        assert_eq!(decade_label(3), "1,000");
        assert_eq!(decade_label(4), "10k");
        assert_eq!(decade_label(6), "1M");
        assert_eq!(decade_label(-2), "0.01");
    }

    #[test]
    fn line_charts_have_distinct_tick_labels_that_do_not_overlap() {
        // A few steps with small values (what gave `0 0 1 1 1` before), a long run, a log-log
        // rank plot over many decades, and a flat series.
        let cases: Vec<(Vec<(f64, f64)>, bool)> = vec![
            (
                (0..5).map(|i| (i as f64, 1.0 + i as f64 * 0.1)).collect(),
                false,
            ),
            (
                (0..50)
                    .map(|i| (i as f64, 5.0 / (1.0 + i as f64)))
                    .collect(),
                false,
            ),
            (
                (0..30_000)
                    .map(|i| (i as f64 + 1.0, 2e7 / (i as f64 + 1.0)))
                    .collect(),
                true,
            ),
            ((0..3).map(|i| (i as f64, 0.001)).collect(), false),
        ];
        for (pts, log) in cases {
            let svg = lines("t", "x", "y", &[("s".into(), pts.clone())], log);
            let texts = tick_texts(&svg);
            assert!(texts.len() >= 4, "{svg}");
            // x ticks first, then y ticks: each axis's labels are distinct.
            let (xs, ys) = axis_labels(&svg);
            let (xs, ys): (Vec<&str>, Vec<&str>) = (
                xs.iter().map(String::as_str).collect(),
                ys.iter().map(String::as_str).collect(),
            );
            assert!(xs.len() >= 2 && ys.len() >= 2, "{svg}");
            for labels in [&xs, &ys] {
                let owned: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
                assert!(distinct(&owned), "{log}: {owned:?}");
            }
            // x labels do not overlap: centres further apart than half their widths.
            let centres: Vec<f64> = svg
                .split("<text x=\"")
                .skip(1)
                .filter(|t| {
                    let head = t.split('>').next().unwrap();
                    head.contains("text-anchor=\"middle\" font-size=\"10\" class=\"tick\"")
                })
                .map(|t| t.split('"').next().unwrap().parse().unwrap())
                .collect();
            for (i, pair) in centres.windows(2).enumerate() {
                let room = (text_width(xs[i], 10.0) + text_width(xs[i + 1], 10.0)) / 2.0;
                assert!(pair[1] - pair[0] >= room, "{xs:?} at {centres:?}");
            }
        }
    }

    #[test]
    fn histogram_axes_are_labelled_without_overlap() {
        let bins: Vec<(String, u64)> = (0..40)
            .map(|i| (format!("{}", i * 1000), (i * 37 % 11) as u64))
            .collect();
        let svg = histogram("widths", "px", &bins, "#000");
        let texts = tick_texts(&svg);
        let mut x_prev_end = f64::MIN;
        let mut shown = 0;
        for t in svg.split("<text x=\"").skip(1) {
            let head = t.split('>').next().unwrap();
            if !head.contains("class=\"tick\"") || head.contains("text-anchor") {
                continue;
            }
            let x: f64 = t.split('"').next().unwrap().parse().unwrap();
            let label = t
                .split("class=\"tick\">")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            assert!(x >= x_prev_end, "{label} overlaps the label before it");
            x_prev_end = x + text_width(label, 10.0);
            shown += 1;
        }
        assert!(shown >= 5, "{svg}");
        // The y axis: 0 and round counts up to at least the tallest bar, all distinct.
        let ys: Vec<String> = svg
            .split("text-anchor=\"end\" dx=\"-4\" font-size=\"10\">")
            .skip(1)
            .map(|t| t.split('<').next().unwrap().to_string())
            .collect();
        assert_eq!(ys.first().map(String::as_str), Some("0"), "{svg}");
        assert!(ys.len() >= 3 && distinct(&ys), "{ys:?}");
        assert!(ys.last().unwrap().parse::<u64>().unwrap() >= 10);
        assert!(!texts.is_empty());
    }

    /// Checks that `svg` is one well-nested element tree: every opened tag is closed in order,
    /// attribute values are quoted, and no raw `<`, `>` or `&` is left in text or attributes.
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(lt) = rest.find('<') {
            let text = &rest[..lt];
            assert!(!text.contains('>'), "raw > in text: {text}");
            for amp in text.match_indices('&') {
                let after = &text[amp.0..];
                assert!(after.contains(';'), "raw & in text: {text}");
            }
            let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
            let tag = &rest[lt + 1..gt];
            assert!(!tag.contains('<'), "< inside a tag: {tag}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap().to_string();
                stack.push(name);
            }
            rest = &rest[gt + 1..];
        }
        assert!(rest.trim().is_empty(), "text after the root: {rest}");
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert!(svg.starts_with("<svg "));
    }

    #[test]
    fn every_chart_is_well_formed_svg() {
        let rows = vec![("a".to_string(), 3.0), ("b".to_string(), 1.5)];
        let bins = vec![("0".to_string(), 4), ("10".to_string(), 9)];
        let pts: Vec<(f64, f64)> = (1..50).map(|i| (i as f64, 1.0 / i as f64)).collect();
        let chart = LineChart::new("t", "x", "y")
            .series("one", pts.clone())
            .series_in(
                "two",
                pts.iter().map(|p| (p.0, p.1 * 2.0)).collect(),
                "#000",
            )
            .rule(0.5, "half")
            .background("white");
        for svg in [
            hbars("bars", &rows, "#123456"),
            hbars("none", &[], "#123456"),
            histogram("hist", "px", &bins, "#123456"),
            histogram("none", "px", &[], "#123456"),
            lines("lines", "x", "y", &[("s".into(), pts.clone())], false),
            lines("log", "x", "y", &[("s".into(), pts.clone())], true),
            chart.svg(),
            chart.clone().log(true).svg(),
        ] {
            assert_well_formed(&svg);
        }
        let doc = panels(
            "run",
            &[chart.clone().size(400.0, 280.0).svg()],
            2,
            (400.0, 280.0),
        );
        assert_well_formed(&doc);
        assert_eq!(doc.matches("<svg").count(), 2);
    }

    #[test]
    fn titles_labels_and_names_are_escaped() {
        let evil = r#"<b>&"x"'"#;
        let escaped = "&lt;b&gt;&amp;&quot;x&quot;&#39;";
        let chart = LineChart::new(evil, evil, evil)
            .series(evil, vec![(1.0, 1.0), (2.0, 3.0)])
            .rule(2.0, evil);
        let rows = vec![(evil.to_string(), 1.0)];
        let bins = vec![(evil.to_string(), 1)];
        for svg in [
            chart.svg(),
            hbars(evil, &rows, "#000"),
            histogram(evil, evil, &bins, "#000"),
            panels(evil, &[], 2, (100.0, 100.0)),
        ] {
            assert!(!svg.contains(evil), "{svg}");
            assert!(svg.contains(escaped), "{svg}");
            assert_well_formed(&svg);
        }
        // Title (twice), x label, y label, legend, rule label.
        assert_eq!(chart.svg().matches(escaped).count(), 6);
    }

    #[test]
    fn log_axes_are_ticked_at_powers_of_ten() {
        let pts: Vec<(f64, f64)> = (1..=5000).map(|i| (i as f64, 1e6 / i as f64)).collect();
        let svg = LineChart::new("ranks", "rank", "count")
            .log(true)
            .series("s", pts)
            .svg();
        let (xs, ys) = axis_labels(&svg);
        assert_eq!(xs.first().map(String::as_str), Some("1"), "{xs:?}");
        assert_eq!(xs.last().map(String::as_str), Some("10k"), "{xs:?}");
        assert!(
            xs.iter()
                .all(|l| ["1", "10", "100", "1,000", "10k"].contains(&l.as_str()))
        );
        assert_eq!(ys.first().map(String::as_str), Some("1"), "{ys:?}");
        assert_eq!(ys.last().map(String::as_str), Some("1M"), "{ys:?}");
        // Points at or below zero are not on a log axis: only the positive ones are drawn.
        let svg = LineChart::new("t", "x", "y")
            .log(true)
            .series("s", vec![(0.0, 1.0), (1.0, -1.0), (2.0, 5.0), (3.0, 50.0)])
            .svg();
        let d = svg
            .split("<path d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches(['M', 'L']).count(), 2, "{d}");
    }

    #[test]
    fn empty_series_say_no_data() {
        let empty = LineChart::new("nothing", "x", "y").svg();
        assert!(empty.contains("(no data)") && !empty.contains("<path"));
        assert_well_formed(&empty);
        let unplottable = LineChart::new("t", "x", "y")
            .log(true)
            .series("s", vec![(0.0, 0.0), (f64::NAN, 1.0)])
            .svg();
        assert!(unplottable.contains("(no data)") && !unplottable.contains("<path"));
        // An empty series beside a drawn one keeps its legend entry but draws no line.
        let one = LineChart::new("t", "x", "y")
            .series("full", vec![(0.0, 1.0), (1.0, 2.0)])
            .series("empty", vec![])
            .svg();
        assert_eq!(one.matches("<path").count(), 1);
        assert!(one.contains(">empty</text>"));
        assert!(lines("t", "x", "y", &[], false).contains("(no data)"));
    }

    #[test]
    fn series_are_the_only_paths_and_rules_widen_the_y_axis() {
        let chart = LineChart::new("t", "x", "y")
            .legend(false)
            .series("a", vec![(0.0, 1.0), (1.0, 2.0)])
            .series("b", vec![(0.0, 2.0), (1.0, 1.0)])
            .rule(10.0, "t = 10");
        let svg = chart.svg();
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains(">t = 10</text>") && svg.contains("stroke-dasharray"));
        // No legend: the names are not written.
        assert!(!svg.contains(">a</text>"));
        let (_, ys) = axis_labels(&svg);
        assert_eq!(ys.last().map(String::as_str), Some("10"), "{ys:?}");
    }

    #[test]
    fn panels_lay_charts_out_in_rows() {
        let cells: Vec<String> = (0..5)
            .map(|i| {
                LineChart::new(&format!("c{i}"), "step", "")
                    .size(300.0, 200.0)
                    .series("s", vec![(0.0, 0.0), (1.0, i as f64)])
                    .svg()
            })
            .collect();
        let doc = panels("run", &cells, 2, (300.0, 200.0));
        assert_eq!(doc.matches("<g transform=").count(), 5);
        // Three rows of two columns.
        assert!(
            doc.contains(r#"width="630" height="664""#),
            "{}",
            &doc[..200]
        );
        assert!(doc.contains("translate(320 34)") && doc.contains("translate(10 454)"));
    }
}

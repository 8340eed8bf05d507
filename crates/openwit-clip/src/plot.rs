//! An SVG of the training curves (loss, learning rate, logit scale, data-wait fraction per step),
//! and the held-out evaluation over the steps when the run had one (`eval_every`).

use openwit_core::escape::html as escape;
use std::fmt::Write;

/// One point per logged step.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub step: f64,
    pub loss: f64,
    pub lr: f64,
    pub logit_scale: f64,
    pub data_wait: f64,
    /// Held-out zero-shot top-1 after this step (NaN: not evaluated then).
    pub eval_top1: f64,
    /// Held-out retrieval R@5, the mean of both directions (NaN: not evaluated then).
    pub eval_r5: f64,
}

fn panel(
    out: &mut String,
    title: &str,
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    pts: &[(f64, f64)],
    color: &str,
) {
    let _ = write!(
        out,
        r##"<g><rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="#fff" stroke="#999"/><text x="{}" y="{}" font-size="13" font-family="sans-serif">{title}</text>"##,
        x0 + 6.0,
        y0 + 16.0
    );
    let finite: Vec<(f64, f64)> = pts
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if finite.len() >= 2 {
        let (xmin, xmax) = finite
            .iter()
            .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.0), a.1.max(p.0)));
        let (ymin, ymax) = finite
            .iter()
            .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.1), a.1.max(p.1)));
        let xs = if xmax > xmin { xmax - xmin } else { 1.0 };
        let ys = if ymax > ymin { ymax - ymin } else { 1.0 };
        let (px, py, pw, ph) = (x0 + 50.0, y0 + 24.0, w - 60.0, h - 44.0);
        let mut d = String::new();
        for (i, (x, y)) in finite.iter().enumerate() {
            let sx = px + (x - xmin) / xs * pw;
            let sy = py + ph - (y - ymin) / ys * ph;
            let _ = write!(d, "{}{sx:.1},{sy:.1}", if i == 0 { "M" } else { " L" });
        }
        let _ = write!(
            out,
            r##"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/><text x="{}" y="{}" font-size="10" font-family="sans-serif">{ymax:.4}</text><text x="{}" y="{}" font-size="10" font-family="sans-serif">{ymin:.4}</text><text x="{}" y="{}" font-size="10" font-family="sans-serif">step {xmin:.0}</text><text x="{}" y="{}" font-size="10" font-family="sans-serif" text-anchor="end">step {xmax:.0}</text>"##,
            x0 + 4.0,
            py + 8.0,
            x0 + 4.0,
            py + ph,
            px,
            y0 + h - 6.0,
            px + pw,
            y0 + h - 6.0
        );
    }
    out.push_str("</g>");
}

/// Renders the curves as a standalone SVG document.
pub fn curves_svg(title: &str, points: &[Point]) -> String {
    let evaluated = points
        .iter()
        .any(|p| p.eval_top1.is_finite() || p.eval_r5.is_finite());
    let (w, h) = (900.0, if evaluated { 912.0 } else { 620.0 });
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><rect width="100%" height="100%" fill="#f6f6f6"/><text x="10" y="22" font-size="16" font-family="sans-serif">{}</text>"##,
        escape(title)
    );
    let mut series: Vec<(&str, fn(&Point) -> f64, &str)> = vec![
        ("loss", |p| p.loss, "#c0392b"),
        ("learning rate", |p| p.lr, "#2471a3"),
        ("logit scale exp(t)", |p| p.logit_scale, "#1e8449"),
        ("data-wait fraction", |p| p.data_wait, "#7d3c98"),
    ];
    if evaluated {
        series.push(("held-out zero-shot top-1", |p| p.eval_top1, "#b9770e"));
        series.push((
            "held-out retrieval R@5 (both ways)",
            |p| p.eval_r5,
            "#117a65",
        ));
    }
    for (i, (name, f, color)) in series.iter().enumerate() {
        let (col, row) = ((i % 2) as f64, (i / 2) as f64);
        let pts: Vec<(f64, f64)> = points.iter().map(|p| (p.step, f(p))).collect();
        panel(
            &mut out,
            name,
            10.0 + col * 445.0,
            34.0 + row * 292.0,
            435.0,
            282.0,
            &pts,
            color,
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series() {
        let pts: Vec<Point> = (0..10)
            .map(|i| Point {
                step: i as f64,
                loss: 5.0 - i as f64 * 0.3,
                lr: 1e-3,
                logit_scale: 14.3,
                data_wait: 0.1,
                eval_top1: f64::NAN,
                eval_r5: f64::NAN,
            })
            .collect();
        let svg = curves_svg("run <1>", &pts);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<path").count(), 4);
        assert!(svg.contains("run &lt;1&gt;"));
        assert!(!svg.contains("held-out"));
    }

    #[test]
    fn draws_the_held_out_evaluation_when_there_is_one() {
        let pts: Vec<Point> = (0..10)
            .map(|i| Point {
                step: i as f64,
                loss: 5.0 - i as f64 * 0.3,
                lr: 1e-3,
                logit_scale: 14.3,
                data_wait: 0.1,
                // evaluated every third step
                eval_top1: if i % 3 == 2 { 0.1 * i as f64 } else { f64::NAN },
                eval_r5: if i % 3 == 2 {
                    0.05 * i as f64
                } else {
                    f64::NAN
                },
            })
            .collect();
        let svg = curves_svg("run", &pts);
        assert_eq!(svg.matches("<path").count(), 6);
        assert!(svg.contains("held-out zero-shot top-1"));
        assert!(svg.contains("held-out retrieval R@5"));
    }
}

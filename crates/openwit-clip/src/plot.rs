//! An SVG of the training curves (loss, learning rate, logit scale, data-wait fraction per step),
//! and the held-out evaluation over the steps when the run had one (`eval_every`).

use openwit_chart::{LineChart, panels};

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

/// The size of one panel.
const PANEL: (f64, f64) = (435.0, 282.0);

/// Renders the curves as a standalone SVG document: one panel per quantity, two per row.
pub fn curves_svg(title: &str, points: &[Point]) -> String {
    let evaluated = points
        .iter()
        .any(|p| p.eval_top1.is_finite() || p.eval_r5.is_finite());
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
    let charts: Vec<String> = series
        .iter()
        .map(|(name, f, color)| {
            let pts = points.iter().map(|p| (p.step, f(p))).collect();
            LineChart::new(name, "step", "")
                .size(PANEL.0, PANEL.1)
                .legend(false)
                .series_in(name, pts, color)
                .svg()
        })
        .collect();
    panels(title, &charts, 2, PANEL)
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

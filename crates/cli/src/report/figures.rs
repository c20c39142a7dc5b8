//! The report's figures as SVG (plotters): a layers x heads heat map with its colour bar, and a
//! bar chart per layer.

use plotters::prelude::*;

/// A `[layers][heads]` grid as a heat map (layer 0 at the bottom), viridis from the grid's
/// minimum to its maximum, with a labelled colour bar.
pub fn heat_map(grid: &[Vec<f32>], title: &str, units: &str) -> anyhow::Result<String> {
    let (layers, heads) = (grid.len(), grid.first().map_or(0, Vec::len));
    let values = grid.iter().flatten().copied();
    let (lo, hi) = values.clone().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let colour = |v: f32| {
        let c = colorous::VIRIDIS.eval_continuous(((v - lo) / span).clamp(0.0, 1.0) as f64);
        RGBColor(c.r, c.g, c.b)
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 120 + 14 * layers.max(8) as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, bar) = root.split_horizontally(660);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0..heads, 0..layers)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("head")
            .y_desc("layer")
            .x_labels(heads.min(16) + 1)
            .y_labels(layers.min(16) + 1)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .draw()?;
        chart.draw_series(
            grid.iter()
                .enumerate()
                .flat_map(|(l, row)| row.iter().enumerate().map(move |(h, &v)| (l, h, v)))
                .map(|(l, h, v)| Rectangle::new([(h, l), (h + 1, l + 1)], colour(v).filled())),
        )?;
        let steps = 50;
        let mut scale = ChartBuilder::on(&bar)
            .margin_top(40)
            .margin_bottom(46)
            .y_label_area_size(56)
            .caption(units, ("sans-serif", 14))
            .build_cartesian_2d(0f32..1f32, lo..lo + span)?;
        scale.configure_mesh().disable_mesh().disable_x_axis().y_labels(6).label_style(("sans-serif", 13)).draw()?;
        scale.draw_series((0..steps).map(|i| {
            let (a, b) = (lo + span * i as f32 / steps as f32, lo + span * (i + 1) as f32 / steps as f32);
            Rectangle::new([(0.0, a), (1.0, b)], colour((a + b) / 2.0).filled())
        }))?;
        root.present()?;
    }
    Ok(svg)
}

/// One bar per layer.
pub fn layer_bars(counts: &[usize], title: &str, y_desc: &str) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 320)).into_drawing_area();
        root.fill(&WHITE)?;
        let top = counts.iter().copied().max().unwrap_or(0).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0..counts.len(), 0..top + 1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("layer")
            .y_desc(y_desc)
            .x_labels(counts.len().min(16) + 1)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(l, &n)| Rectangle::new([(l, 0), (l + 1, n)], BLUE.mix(0.7).filled())))?;
        root.present()?;
    }
    Ok(svg)
}

/// Groups of two bars (e.g. the correct and a random word), each group labelled under it.
pub fn paired_bars(groups: &[(String, f64, f64)], names: (&str, &str), title: &str) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 340)).into_drawing_area();
        root.fill(&WHITE)?;
        let top = groups.iter().map(|g| g.1.max(g.2)).fold(0.0, f64::max).max(1e-6) * 1.15;
        let n = groups.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..n, 0.0..top)?;
        let label = |x: &f64| groups.get(x.floor() as usize).map(|g| g.0.clone()).unwrap_or_default();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len() * 2 + 1)
            .x_label_formatter(&|x| if (x.fract() - 0.5).abs() < 1e-9 { label(x) } else { String::new() })
            .label_style(("sans-serif", 13))
            .draw()?;
        for (k, (name, colour)) in [(names.0, BLUE.mix(0.75)), (names.1, RGBColor(230, 120, 40).mix(0.75))].into_iter().enumerate() {
            chart
                .draw_series(groups.iter().enumerate().map(|(i, g)| {
                    let v = if k == 0 { g.1 } else { g.2 };
                    let x0 = i as f64 + 0.12 + 0.38 * k as f64;
                    Rectangle::new([(x0, 0.0), (x0 + 0.36, v)], colour.filled())
                }))?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK.mix(0.3))
            .background_style(WHITE.mix(0.9))
            .label_font(("sans-serif", 13))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

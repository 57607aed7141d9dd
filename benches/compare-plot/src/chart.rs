//! The SVG: for each flow count a group of bars, one per device under test, at the median over
//! repetitions, with a whisker from the smallest to the largest run. Sink Mpps on top, the
//! device's cycles per packet below.

use crate::runs::{Cell, Spread, Summary};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `runs.csv` had no runs.
    #[error("no runs to draw: runs.csv has only its header")]
    NoRuns,
    /// plotters refused to draw (it writes to a string, so this is a bug, not I/O).
    #[error("drawing the chart: {0}")]
    Draw(String),
}

/// Width and height of the SVG in pixels.
pub const SIZE: (u32, u32) = (960, 760);

/// The two figures a panel can show.
#[derive(Debug, Clone, Copy)]
enum Metric {
    SinkMpps,
    CyclesPerPkt,
}

impl Metric {
    fn of(self, c: &Cell) -> Option<Spread> {
        match self {
            Metric::SinkMpps => c.sink_mpps,
            Metric::CyclesPerPkt => c.cycles_per_pkt,
        }
    }

    fn caption(self) -> &'static str {
        match self {
            Metric::SinkMpps => "Sink Mpps: what came back to the generator (higher is better)",
            Metric::CyclesPerPkt => "DUT busy cycles per packet (lower is better)",
        }
    }

    fn axis(self) -> &'static str {
        match self {
            Metric::SinkMpps => "Mpps",
            Metric::CyclesPerPkt => "TSC cycles / packet",
        }
    }

    fn label(self, v: f64) -> String {
        match self {
            Metric::SinkMpps => format!("{v:.2}"),
            Metric::CyclesPerPkt => format!("{v:.0}"),
        }
    }
}

/// One colour per device under test, the same in every chart for the names the script knows.
fn colour(dut: &str, index: usize) -> RGBColor {
    const OTHERS: [RGBColor; 4] = [
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(188, 189, 34),
    ];
    match dut {
        "appliance" => RGBColor(31, 119, 180),
        "io" => RGBColor(127, 127, 127),
        "5tswap" => RGBColor(255, 127, 14),
        "ovs" => RGBColor(44, 160, 44),
        _ => OTHERS[index % OTHERS.len()],
    }
}

/// A point in a group: `x` from 0 to 1 across the group's slot.
fn at(group: &String, x: f64, y: f64) -> (NestedValue<&String, f64>, f64) {
    (NestedValue::Value(group, x), y)
}

/// "1,000,000 flows".
fn flows_label(flows: u64) -> String {
    let digits = flows.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out + " flows"
}

/// The whole chart as an SVG document; `title` heads it.
pub fn render(summary: &Summary, title: &str) -> Result<String, Error> {
    if summary.flows.is_empty() {
        return Err(Error::NoRuns);
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let draw = |e: DrawingAreaErrorKind<_>| Error::Draw(e.to_string());
        root.fill(&WHITE).map_err(draw)?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(draw)?;
        let (key, charts) = root.split_vertically(28);
        legend(&key, &summary.duts).map_err(draw)?;
        let (top, bottom) = charts.split_vertically((SIZE.1 - 28) / 2 - 20);
        panel(&top, summary, Metric::SinkMpps).map_err(draw)?;
        panel(&bottom, summary, Metric::CyclesPerPkt).map_err(draw)?;
        root.present().map_err(draw)?;
    }
    Ok(svg)
}

/// The colour key, one row under the title, centred (outside the panels, so it never hides
/// a bar).
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    duts: &[String],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const ITEM: i32 = 130;
    let width = area.dim_in_pixel().0 as i32;
    let mut x = (width - ITEM * duts.len() as i32) / 2;
    for (d, dut) in duts.iter().enumerate() {
        area.draw(&Rectangle::new(
            [(x, 8), (x + 14, 20)],
            colour(dut, d).filled(),
        ))?;
        area.draw(&Text::new(dut.as_str(), (x + 20, 7), ("sans-serif", 14)))?;
        x += ITEM;
    }
    Ok(())
}

/// One panel: grouped bars with whiskers and the median written above each.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: &Summary,
    metric: Metric,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let groups: Vec<String> = s.flows.iter().map(|&f| flows_label(f)).collect();
    let spread = |g: usize, d: usize| s.cell(s.flows[g], d).and_then(|c| metric.of(c));
    let highest = (0..groups.len())
        .flat_map(|g| (0..s.duts.len()).filter_map(move |d| spread(g, d)))
        .map(|sp| sp.max)
        .fold(0.0, f64::max);
    // Headroom for the value labels.
    let y_top = if highest > 0.0 { highest * 1.12 } else { 1.0 };

    let mut chart = ChartBuilder::on(area)
        .caption(metric.caption(), ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d(groups[..].nested_coord(|_| 0.0..1.0), 0.0..y_top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len())
        .x_label_formatter(&|v| match v {
            NestedValue::Category(c) => c.to_string(),
            NestedValue::Value(..) => String::new(),
        })
        .y_label_formatter(&|v| metric.label(*v))
        .light_line_style(RGBColor(244, 244, 244))
        .y_desc(metric.axis())
        .draw()?;

    // Each group's bars fill the middle 80 % of its slot, side by side.
    let slot = 0.8 / s.duts.len() as f64;
    let value_style = ("sans-serif", 11)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for (d, dut) in s.duts.iter().enumerate() {
        let fill = colour(dut, d);
        let (left, right) = (0.1 + slot * (d as f64 + 0.1), 0.1 + slot * (d as f64 + 0.9));
        let mid = (left + right) / 2.0;
        let cap = slot * 0.2;
        let bars: Vec<(&String, Spread)> = (0..groups.len())
            .filter_map(|g| Some((&groups[g], spread(g, d)?)))
            .collect();

        chart.draw_series(bars.iter().map(|&(g, sp)| {
            Rectangle::new([at(g, left, 0.0), at(g, right, sp.median)], fill.filled())
        }))?;
        chart.draw_series(bars.iter().flat_map(|&(g, sp)| {
            [
                vec![at(g, mid, sp.min), at(g, mid, sp.max)],
                vec![at(g, mid - cap, sp.min), at(g, mid + cap, sp.min)],
                vec![at(g, mid - cap, sp.max), at(g, mid + cap, sp.max)],
            ]
            .map(|line| PathElement::new(line, BLACK.stroke_width(1)))
        }))?;
        chart.draw_series(bars.iter().map(|&(g, sp)| {
            EmptyElement::at(at(g, mid, sp.max))
                + Text::new(metric.label(sp.median), (0, -3), value_style.clone())
        }))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{parse, Summary};

    #[test]
    fn thousands_separators() {
        assert_eq!(flows_label(1000), "1,000 flows");
        assert_eq!(flows_label(10000), "10,000 flows");
        assert_eq!(flows_label(1000000), "1,000,000 flows");
        assert_eq!(flows_label(64), "64 flows");
    }

    #[test]
    fn draws_every_bar_label_and_legend() {
        let csv = "flows,rep,dut,sink_mpps,dut_cycles_per_pkt\n\
                   1000,1,appliance,5.5,450\n1000,2,appliance,5.25,470\n\
                   1000,1,ovs,2.5,900\n1000000,1,ovs,1.75,1200\n";
        let svg = render(&Summary::of(&parse(csv).unwrap()), "test").unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "1,000 flows",
            "1,000,000 flows",
            "appliance",
            "ovs",
            "5.38",
            "1.75",
            "460",
            "1200",
        ] {
            assert!(
                svg.contains(&format!(">{text}<")) || svg.contains(&format!(">\n{text}\n<")),
                "{text}"
            );
        }
    }

    #[test]
    fn nothing_to_draw() {
        let s = Summary::of(&[]);
        assert!(matches!(render(&s, "t"), Err(Error::NoRuns)));
    }
}

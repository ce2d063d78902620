//! Charts as SVG, drawn with plotters: stacked bars and the timeline of
//! bytes over radio states. They draw the figures they are given and
//! compute none; text in them is escaped by plotters' SVG backend, and
//! callers pass labels through [`clean`] so no control character reaches it.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::table::human_bytes;
use super::timeline::Timeline;
use crate::ledger::Class;
use crate::radio::timeline::StateTimeline;

/// Colour of each ledger class, in `Class::ALL` order.
pub const CLASS_COLORS: [RGBColor; 10] = [
    RGBColor(0x9e, 0x9e, 0x9e), // link
    RGBColor(0x75, 0x75, 0x75), // network
    RGBColor(0x54, 0x6e, 0x7a), // transport
    RGBColor(0xff, 0xa7, 0x26), // tcp_control
    RGBColor(0xe5, 0x39, 0x35), // retransmission
    RGBColor(0x8e, 0x24, 0xaa), // tls_handshake
    RGBColor(0xce, 0x93, 0xd8), // tls_record_overhead
    RGBColor(0x1e, 0x88, 0xe5), // app_header
    RGBColor(0x4f, 0xc3, 0xf7), // app_control
    RGBColor(0x43, 0xa0, 0x47), // payload
];

/// Radio energy categories: promotion, transfer, tail, idle.
pub const STATE_COLORS: [RGBColor; 4] =
    [RGBColor(0xfb, 0x8c, 0x00), RGBColor(0x1e, 0x88, 0xe5), RGBColor(0xe5, 0x39, 0x35), RGBColor(0xe0, 0xe0, 0xe0)];
pub const STATE_NAMES: [&str; 4] = ["promotion", "transfer", "tail", "idle"];

/// Parts of one exchange's cost (`CostParts::named` order).
pub const COST_COLORS: [RGBColor; 6] = [
    RGBColor(0x43, 0xa0, 0x47),
    RGBColor(0x1e, 0x88, 0xe5),
    RGBColor(0x8e, 0x24, 0xaa),
    RGBColor(0xff, 0xa7, 0x26),
    RGBColor(0xe5, 0x39, 0x35),
    RGBColor(0x9e, 0x9e, 0x9e),
];

/// A string from a capture, made safe to show anywhere: control
/// characters (ANSI escapes included) become `?`, and it is cut to `max`
/// characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// How values on a chart's axis read.
#[derive(Clone, Copy)]
pub enum Unit {
    Bytes,
    Joules,
    Seconds,
}

impl Unit {
    pub fn show(self, v: f64) -> String {
        match self {
            Unit::Bytes => human_bytes(v),
            Unit::Joules if v.abs() >= 100.0 => format!("{v:.0} J"),
            Unit::Joules if v.abs() >= 1.0 => format!("{v:.1} J"),
            Unit::Joules => format!("{v:.3} J"),
            Unit::Seconds => format!("{v:.1} s"),
        }
    }
}

/// Horizontal bars, one per row, each stacked from its parts.
pub struct Stacked<'a> {
    pub title: &'a str,
    /// One label per row.
    pub rows: Vec<String>,
    /// Name and colour of each part.
    pub parts: Vec<(&'a str, RGBColor)>,
    /// Per row, per part.
    pub values: Vec<Vec<f64>>,
    pub unit: Unit,
    /// The axis' end; None: the longest bar (two charts on one scale pass the same).
    pub max: Option<f64>,
}

const WIDTH: u32 = 860;
/// Room right of the plot for the legend.
const LEGEND_WIDTH: u32 = 150;

/// A legend in the right margin: a box and a name per part.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    top: i32,
    parts: &[(&str, RGBColor)],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let style = TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let x = (WIDTH - LEGEND_WIDTH + 8) as i32;
    for (k, (name, color)) in parts.iter().enumerate() {
        let y = top + 15 * k as i32;
        area.draw(&Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()))?;
        area.draw(&Text::new(name.to_string(), (x + 14, y), style.clone()))?;
    }
    Ok(())
}

fn chart_error(title: &str, e: impl std::fmt::Display) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"40\"><text x=\"4\" y=\"24\">{}: {}</text></svg>",
        escape_xml(title),
        escape_xml(&e.to_string())
    )
}

fn escape_xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

impl Stacked<'_> {
    /// The longest bar.
    pub fn longest(&self) -> f64 {
        self.values.iter().map(|r| r.iter().map(|v| v.max(0.0)).sum::<f64>()).fold(0.0, f64::max)
    }

    pub fn svg(&self) -> String {
        match self.draw() {
            Ok(s) => s,
            Err(e) => chart_error(self.title, e),
        }
    }

    fn draw(&self) -> Result<String, Box<dyn std::error::Error>> {
        let n = self.rows.len().max(1);
        let legend_height = 40 + 15 * self.parts.len() as u32 + 10;
        let height = (n as u32 * 26 + 110).max(legend_height).min(4000);
        let label_chars = self.rows.iter().map(|r| r.chars().count()).max().unwrap_or(4).clamp(4, 48);
        let max = self.max.unwrap_or_else(|| self.longest()).max(1e-9) * 1.02;
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, (WIDTH, height)).into_drawing_area();
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(self.title, ("sans-serif", 16))
                .margin(8)
                .margin_right(LEGEND_WIDTH)
                .x_label_area_size(28)
                .y_label_area_size((label_chars as u32 * 7 + 12).min(360))
                .build_cartesian_2d(0f64..max, 0f64..n as f64)?;
            let unit = self.unit;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(0)
                .x_labels(6)
                .x_label_formatter(&|x| unit.show(*x))
                .draw()?;
            for (k, (_, color)) in self.parts.iter().enumerate() {
                let mut bars = Vec::new();
                for (i, row) in self.values.iter().enumerate() {
                    let before: f64 = row.iter().take(k).map(|v| v.max(0.0)).sum();
                    let v = row.get(k).copied().unwrap_or(0.0).max(0.0);
                    if v > 0.0 {
                        let top = n as f64 - i as f64 - 0.15;
                        let bottom = n as f64 - i as f64 - 0.85;
                        bars.push(Rectangle::new([(before, bottom), (before + v, top)], color.filled()));
                    }
                }
                chart.draw_series(bars)?;
            }
            // Each row's label left of its bar (row i is centred at n - i - 0.5).
            let style = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
            for (i, label) in self.rows.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(0.0, n as f64 - i as f64 - 0.5));
                root.draw(&Text::new(label.clone(), (x - 6, y), style.clone()))?;
            }
            legend(&root, 40, &self.parts)?;
            root.present()?;
        }
        Ok(buf)
    }
}

/// Bytes per time bin stacked by class, and under them the radio's states.
pub struct TimelineChart<'a> {
    pub title: &'a str,
    pub bytes: &'a Timeline,
    pub states: Option<&'a StateTimeline>,
    /// The time axis as (start, end) seconds since the epoch; None: the timeline's own.
    pub span: Option<(f64, f64)>,
    /// The bytes axis' end; None: the fullest bin.
    pub max: Option<f64>,
}

impl TimelineChart<'_> {
    /// The time the chart shows, seconds since the epoch.
    pub fn own_span(bytes: &Timeline, states: Option<&StateTimeline>) -> (f64, f64) {
        let mut lo = bytes.start_ts;
        let mut hi = bytes.start_ts + bytes.span_s;
        if let Some(s) = states {
            lo = lo.min(s.start_ts);
            hi = hi.max(s.start_ts + s.span_s);
        }
        (lo, hi.max(lo + 1e-3))
    }

    pub fn fullest(bytes: &Timeline) -> f64 {
        bytes.bins.iter().map(|b| b.wire_bytes as f64).fold(0.0, f64::max)
    }

    pub fn svg(&self) -> String {
        match self.draw() {
            Ok(s) => s,
            Err(e) => chart_error(self.title, e),
        }
    }

    fn draw(&self) -> Result<String, Box<dyn std::error::Error>> {
        let (lo, hi) = self.span.unwrap_or_else(|| Self::own_span(self.bytes, self.states));
        let origin = lo;
        let x_end = hi - origin;
        let ymax = self.max.unwrap_or_else(|| Self::fullest(self.bytes)).max(1.0) * 1.05;
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, (WIDTH, 400)).into_drawing_area();
            root.fill(&WHITE)?;
            let (top, bottom) = root.split_vertically(300);
            let mut chart = ChartBuilder::on(&top)
                .caption(self.title, ("sans-serif", 16))
                .margin(8)
                .margin_right(LEGEND_WIDTH)
                .x_label_area_size(22)
                .y_label_area_size(80)
                .build_cartesian_2d(0f64..x_end, 0f64..ymax)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .y_labels(5)
                .y_label_formatter(&|y| human_bytes(*y))
                .x_labels(8)
                .x_label_formatter(&|x| format!("{x:.0} s"))
                .y_desc(format!("bytes per {:.3} s", self.bytes.bin_s))
                .draw()?;
            let start = self.bytes.start_ts - origin;
            for (k, class) in Class::ALL.iter().enumerate() {
                let mut bars = Vec::new();
                for bin in &self.bytes.bins {
                    let v = bin.classes.get(*class) as f64;
                    if v <= 0.0 {
                        continue;
                    }
                    let below: f64 = Class::ALL.iter().take(k).map(|c| bin.classes.get(*c) as f64).sum();
                    let x0 = start + bin.t_s;
                    // At least a pixel wide, so one frame in a long capture shows.
                    let x1 = x0 + self.bytes.bin_s.max(x_end / 800.0);
                    bars.push(Rectangle::new([(x0, below), (x1, below + v)], CLASS_COLORS[k].filled()));
                }
                if !bars.is_empty() {
                    chart.draw_series(bars)?;
                }
            }
            let classes: Vec<(&str, RGBColor)> = Class::ALL.iter().map(|c| c.name()).zip(CLASS_COLORS).collect();
            legend(&top, 40, &classes)?;

            let mut band = ChartBuilder::on(&bottom)
                .margin_left(8)
                .margin_right(LEGEND_WIDTH + 8)
                .x_label_area_size(30)
                .y_label_area_size(80)
                .build_cartesian_2d(0f64..x_end, 0f64..1f64)?;
            band.configure_mesh()
                .disable_mesh()
                .y_labels(0)
                .x_labels(8)
                .x_label_formatter(&|x| format!("{x:.0} s"))
                .x_desc("seconds from the start; radio states below")
                .draw()?;
            if let Some(states) = self.states {
                let start = states.start_ts - origin;
                // Idle where no bin says otherwise.
                band.draw_series(std::iter::once(Rectangle::new(
                    [(start, 0.1), (start + states.span_s, 0.9)],
                    STATE_COLORS[3].filled(),
                )))?;
                let mut rects: [Vec<Rectangle<(f64, f64)>>; 4] = Default::default();
                for bin in &states.bins {
                    // The bin's time in each state, side by side in the
                    // order they come in a cycle.
                    let mut x = start + bin.t_s;
                    for (k, secs) in [bin.promotion_s, bin.transfer_s, bin.tail_s, bin.idle_s].into_iter().enumerate() {
                        if secs > 0.0 {
                            // Promotions and transfers last milliseconds: at
                            // least a pixel, so they show.
                            let w = if k < 3 { secs.max(x_end / 800.0) } else { secs };
                            if let Some(v) = rects.get_mut(k) {
                                v.push(Rectangle::new([(x, 0.1), (x + w, 0.9)], STATE_COLORS[k].filled()));
                            }
                            x += secs;
                        }
                    }
                }
                // Idle first, so the short states are drawn over it.
                for k in [3usize, 2, 0, 1] {
                    if let Some(v) = rects.get_mut(k) {
                        band.draw_series(std::mem::take(v))?;
                    }
                }
            }
            let states: Vec<(&str, RGBColor)> = STATE_NAMES.iter().copied().zip(STATE_COLORS).collect();
            legend(&bottom, 12, &states)?;
            root.present()?;
        }
        Ok(buf)
    }
}

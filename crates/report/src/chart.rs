//! The boot chart: a guest's timeline drawn as an SVG, one row per step
//! (kernel, the init's phases, each onboot container, each service, the
//! shutdown), on a time axis in milliseconds, in the manner of
//! `systemd-analyze plot`.
//!
//! Plain SVG 1.1 with no script and no external reference, so a browser,
//! `rsvg-convert` or an image viewer shows the same picture. The same
//! timeline always gives the same bytes: every coordinate is an integer or
//! has one fixed decimal, and rows keep the timeline's order.
//!
//! Every row is a `<g class="row KIND">` with a `data-name` attribute and a
//! `<text class="label">`; bars are `<rect class="bar ...">` with a
//! `<title>`; instants (restarts, exits, failures, the shutdown) are
//! `<line class="mark ...">`. Tests and scripts can read it as XML.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use slipway_contract::timeline::{Entry, Event};

use crate::xml::escape;

/// What a row shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    Kernel,
    Init,
    Modules,
    Onboot,
    Service,
    Shutdown,
    Onshutdown,
}

impl RowKind {
    /// The row's CSS class.
    pub fn class(self) -> &'static str {
        match self {
            RowKind::Kernel => "kernel",
            RowKind::Init => "init",
            RowKind::Modules => "modules",
            RowKind::Onboot => "onboot",
            RowKind::Service => "service",
            RowKind::Shutdown => "shutdown",
            RowKind::Onshutdown => "onshutdown",
        }
    }
}

/// A span of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bar {
    pub start: u64,
    pub end: u64,
    /// Extra class: `failed`, `running` (a service after it was ready).
    pub class: &'static str,
    pub title: String,
}

/// An instant on a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub at: u64,
    /// `restart`, `exit`, `failed`, `ready`.
    pub class: &'static str,
    pub title: String,
}

/// One line of the chart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub kind: RowKind,
    pub name: String,
    pub bars: Vec<Bar>,
    pub marks: Vec<Mark>,
}

impl Row {
    fn new(kind: RowKind, name: impl Into<String>) -> Row {
        Row {
            kind,
            name: name.into(),
            bars: Vec::new(),
            marks: Vec::new(),
        }
    }
}

fn first(entries: &[Entry], event: Event) -> Option<&Entry> {
    entries.iter().find(|e| e.event == event)
}

fn with_detail(text: &str, detail: Option<&str>) -> String {
    match detail {
        Some(d) => format!("{text}: {d}"),
        None => text.to_owned(),
    }
}

/// The rows of a timeline, in the order things started.
pub fn rows(entries: &[Entry]) -> Vec<Row> {
    let mut rows = Vec::new();
    let init = first(entries, Event::InitStart);
    if let Some(init) = init {
        let mut kernel = Row::new(RowKind::Kernel, "kernel");
        kernel.bars.push(Bar {
            start: 0,
            end: init.ms,
            class: "",
            title: format!("kernel start -> init: {} ms", init.ms),
        });
        rows.push(kernel);
    }
    // The init's boot phases: each from the previous stamp to its own.
    let phases = [
        (Event::RootDone, "root"),
        (Event::MountsDone, "mounts"),
        (Event::ModulesDone, "modules"),
        (Event::SystemDone, "system"),
        (Event::VolumesDone, "volumes"),
    ];
    let mut previous = init.map(|e| e.ms);
    for (event, name) in phases {
        let Some(e) = entries
            .iter()
            .find(|e| e.event == event && (event != Event::ModulesDone || e.name.is_none()))
        else {
            continue;
        };
        let start = previous.unwrap_or(e.ms);
        let kind = if event == Event::ModulesDone {
            RowKind::Modules
        } else {
            RowKind::Init
        };
        let mut row = Row::new(kind, name);
        row.bars.push(Bar {
            start,
            end: e.ms,
            class: "",
            title: with_detail(
                &format!("{name}: {} ms", e.ms.saturating_sub(start)),
                e.detail.as_deref(),
            ),
        });
        rows.push(row);
        previous = Some(e.ms);
    }
    let end_of_boot = entries.iter().map(|e| e.ms).max().unwrap_or(0);
    // /etc/init.d scripts, onboot containers, services and the later
    // module stage, each in the order it first appears.
    let mut index: BTreeMap<(u8, String), usize> = BTreeMap::new();
    let mut open: BTreeMap<(u8, String), u64> = BTreeMap::new();
    let mut row_for = |rows: &mut Vec<Row>, kind: RowKind, name: &str| -> usize {
        let key = (kind as u8, name.to_owned());
        *index.entry(key).or_insert_with(|| {
            rows.push(Row::new(kind, name));
            rows.len() - 1
        })
    };
    let shutdown = first(entries, Event::Shutdown).map(|e| e.ms);
    for (i, e) in entries.iter().enumerate() {
        let name = e.name.as_deref().unwrap_or("-");
        match e.event {
            Event::InitdScript | Event::ShutdowndScript => {
                let r = row_for(&mut rows, RowKind::Init, &format!("{} {name}", e.event));
                rows[r].marks.push(Mark {
                    at: e.ms,
                    class: "exit",
                    title: with_detail(&format!("{} {name}", e.event), e.detail.as_deref()),
                });
            }
            Event::OnbootStart | Event::OnshutdownStart => {
                let kind = if e.event == Event::OnbootStart {
                    RowKind::Onboot
                } else {
                    RowKind::Onshutdown
                };
                row_for(&mut rows, kind, name);
                open.insert((kind as u8, name.to_owned()), e.ms);
                if kind == RowKind::Onshutdown {
                    // Onshutdown bundles have no end stamp of their own: each
                    // ends where the next starts, or at onshutdown-done.
                    let end = entries[i + 1..]
                        .iter()
                        .find(|n| matches!(n.event, Event::OnshutdownStart | Event::OnshutdownDone))
                        .map_or(end_of_boot, |n| n.ms);
                    let r = row_for(&mut rows, kind, name);
                    rows[r].bars.push(Bar {
                        start: e.ms,
                        end,
                        class: "",
                        title: format!("{name}: {} ms", end.saturating_sub(e.ms)),
                    });
                }
            }
            Event::OnbootExit | Event::OnbootFailed => {
                let key = (RowKind::Onboot as u8, name.to_owned());
                let start = open.remove(&key).unwrap_or(e.ms);
                let failed = e.event == Event::OnbootFailed;
                let r = row_for(&mut rows, RowKind::Onboot, name);
                rows[r].bars.push(Bar {
                    start,
                    end: e.ms,
                    class: if failed { "failed" } else { "" },
                    title: with_detail(
                        &format!(
                            "{name}: {} ms{}",
                            e.ms.saturating_sub(start),
                            if failed { ", failed" } else { "" }
                        ),
                        e.detail.as_deref(),
                    ),
                });
            }
            Event::ServiceStart => {
                let r = row_for(&mut rows, RowKind::Service, name);
                // From start to ready (or to its exit, or a moment when it
                // declares no readiness), then running until it exits or the
                // machine stops.
                let later = &entries[i + 1..];
                let mine = |n: &&Entry| n.name.as_deref() == Some(name);
                let ready = later
                    .iter()
                    .filter(mine)
                    .find(|n| n.event == Event::ServiceReady)
                    .map(|n| n.ms);
                let stop = later
                    .iter()
                    .filter(mine)
                    .find(|n| matches!(n.event, Event::ServiceExit | Event::ServiceStart))
                    .map(|n| n.ms)
                    .or(shutdown)
                    .unwrap_or(end_of_boot);
                let ready_at = ready.filter(|r| *r <= stop);
                let up_to = ready_at.unwrap_or(e.ms);
                rows[r].bars.push(Bar {
                    start: e.ms,
                    end: up_to,
                    class: "",
                    title: match ready_at {
                        Some(r) => format!("{name}: start -> ready {} ms", r - e.ms),
                        None => with_detail(&format!("{name}: started"), e.detail.as_deref()),
                    },
                });
                if stop > up_to {
                    rows[r].bars.push(Bar {
                        start: up_to,
                        end: stop,
                        class: "running",
                        title: format!("{name}: running {} ms", stop - up_to),
                    });
                }
                if let Some(r_ms) = ready_at {
                    rows[r].marks.push(Mark {
                        at: r_ms,
                        class: "ready",
                        title: format!("{name}: ready"),
                    });
                }
            }
            Event::ServiceExit | Event::ServiceRestart | Event::ServiceFailed => {
                let r = row_for(&mut rows, RowKind::Service, name);
                let class = match e.event {
                    Event::ServiceExit => "exit",
                    Event::ServiceRestart => "restart",
                    _ => "failed",
                };
                rows[r].marks.push(Mark {
                    at: e.ms,
                    class,
                    title: with_detail(&format!("{name}: {}", e.event), e.detail.as_deref()),
                });
            }
            Event::ModulesDone if e.name.is_some() => {
                let r = row_for(&mut rows, RowKind::Modules, &format!("modules ({name})"));
                // The later modules load from the end of the boot's.
                let start = entries[..i]
                    .iter()
                    .rev()
                    .find(|p| p.event == Event::ModulesDone && p.name.is_none())
                    .map_or(e.ms, |p| p.ms);
                rows[r].bars.push(Bar {
                    start,
                    end: e.ms,
                    class: "",
                    title: with_detail(&format!("modules ({name})"), e.detail.as_deref()),
                });
            }
            Event::Fatal => {
                let r = row_for(&mut rows, RowKind::Init, "fatal");
                rows[r].marks.push(Mark {
                    at: e.ms,
                    class: "failed",
                    title: with_detail("fatal", e.detail.as_deref()),
                });
            }
            _ => {}
        }
    }
    // An onboot container still running when the timeline ends.
    for ((kind, name), start) in open {
        if kind == RowKind::Onboot as u8
            && let Some(r) = index.get(&(kind, name.clone()))
        {
            rows[*r].bars.push(Bar {
                start,
                end: end_of_boot,
                class: "failed",
                title: format!("{name}: no end on the timeline"),
            });
        }
    }
    if let Some(s) = first(entries, Event::Shutdown) {
        let end = entries
            .iter()
            .filter(|e| matches!(e.event, Event::Poweroff | Event::Reboot | Event::Halt))
            .map(|e| e.ms)
            .next()
            .unwrap_or(end_of_boot);
        let mut row = Row::new(RowKind::Shutdown, "shutdown");
        row.bars.push(Bar {
            start: s.ms,
            end,
            class: "",
            title: with_detail(
                &format!("shutdown: {} ms", end.saturating_sub(s.ms)),
                s.detail.as_deref(),
            ),
        });
        rows.push(row);
    }
    rows
}

/// Milestones drawn as vertical lines across the chart.
fn milestones(entries: &[Entry]) -> Vec<(u64, &'static str)> {
    let mut out = Vec::new();
    for (event, label) in [
        (Event::OnbootDone, "onboot done"),
        (Event::ServicesStarted, "services started"),
        (Event::Shutdown, "shutdown"),
    ] {
        if let Some(e) = first(entries, event) {
            out.push((e.ms, label));
        }
    }
    out
}

/// A step for about `target` ticks: 1, 2 or 5 times a power of ten.
fn tick_step(span: u64, target: u64) -> u64 {
    let raw = (span / target.max(1)).max(1);
    let mut power = 1u64;
    while power.saturating_mul(10) <= raw {
        power *= 10;
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(power * 10)
}

const LABEL_WIDTH: u64 = 200;
const PLOT_WIDTH: u64 = 1000;
const ROW_HEIGHT: u64 = 20;
const TOP: u64 = 40;
const MARGIN: u64 = 20;

/// One decimal, fixed: the same number always prints the same.
fn coord(thousandths: u64) -> String {
    let tenths = (thousandths + 50) / 100;
    format!("{}.{}", tenths / 10, tenths % 10)
}

const STYLE: &str = "\
text{font-family:'DejaVu Sans',Verdana,sans-serif;font-size:12px;fill:#222}\
.title{font-size:15px;font-weight:bold}\
.axis{stroke:#ccc;stroke-width:1}\
.tick{font-size:10px;fill:#666}\
.bar{stroke:none}\
.kernel .bar{fill:#7f8c8d}.init .bar{fill:#3498db}.modules .bar{fill:#9b59b6}\
.onboot .bar{fill:#27ae60}.service .bar{fill:#e67e22}.service .bar.running{fill:#f8d5b0}\
.onshutdown .bar{fill:#16a085}.shutdown .bar{fill:#95a5a6}\
.bar.failed{fill:#c0392b}\
.mark{stroke-width:2}.mark.restart{stroke:#d35400}.mark.exit{stroke:#555}\
.mark.failed{stroke:#c0392b}.mark.ready{stroke:#1e8449}\
.milestone{stroke:#888;stroke-dasharray:4,3}.milestone-label{font-size:10px;fill:#555}\
.duration{font-size:10px;fill:#444}";

/// The chart of `entries` as an SVG document, titled `title`.
pub fn svg(entries: &[Entry], title: &str) -> String {
    let rows = rows(entries);
    let end = entries.iter().map(|e| e.ms).max().unwrap_or(0).max(1);
    let step = tick_step(end, 10);
    let axis_end = end.div_ceil(step) * step;
    // x in thousandths of a pixel, so integer arithmetic is exact.
    let x = |ms: u64| (LABEL_WIDTH + MARGIN) * 1000 + ms * PLOT_WIDTH * 1000 / axis_end;
    let width = LABEL_WIDTH + PLOT_WIDTH + 2 * MARGIN + 60;
    let plot_height = rows.len() as u64 * ROW_HEIGHT;
    let height = TOP + plot_height + 62;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}">
<title>{}</title>
<style>{STYLE}</style>
<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>
<text class="title" x="{MARGIN}" y="22">{}</text>"##,
        escape(title),
        escape(title)
    );
    // Axis: grid lines and labels every `step` ms.
    let _ = writeln!(s, r#"<g class="axis-group">"#);
    let mut t = 0;
    while t <= axis_end {
        let xt = coord(x(t));
        let _ = writeln!(
            s,
            r#"<line class="axis" x1="{xt}" y1="{TOP}" x2="{xt}" y2="{}"/><text class="tick" x="{xt}" y="{}" text-anchor="middle">{t} ms</text>"#,
            TOP + plot_height,
            TOP + plot_height + 14
        );
        t += step;
    }
    let _ = writeln!(s, "</g>");
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + i as u64 * ROW_HEIGHT;
        let _ = writeln!(
            s,
            r#"<g class="row {}" data-name="{}">"#,
            row.kind.class(),
            escape(&row.name)
        );
        let _ = writeln!(
            s,
            r#"<text class="label" x="{MARGIN}" y="{}">{}</text>"#,
            y + 14,
            escape(&row.name)
        );
        for bar in &row.bars {
            let x0 = x(bar.start);
            // At least a pixel, so an instant step is still visible.
            let w = (x(bar.end.max(bar.start)) - x0).max(1000);
            let class = if bar.class.is_empty() {
                "bar".to_owned()
            } else {
                format!("bar {}", bar.class)
            };
            let _ = writeln!(
                s,
                r#"<rect class="{class}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>"#,
                coord(x0),
                y + 3,
                coord(w),
                ROW_HEIGHT - 6,
                escape(&bar.title)
            );
        }
        // The row's own time, after its last bar that is not "running"; a
        // service that declares no readiness has none.
        if let Some(last) = row
            .bars
            .iter()
            .rfind(|b| b.class != "running")
            .filter(|b| row.kind != RowKind::Service || b.end > b.start)
        {
            let _ = writeln!(
                s,
                r#"<text class="duration" x="{}" y="{}">{} ms</text>"#,
                coord(x(last.end.max(last.start)) + 4000),
                y + 14,
                last.end.saturating_sub(last.start)
            );
        }
        for mark in &row.marks {
            let xm = coord(x(mark.at));
            let _ = writeln!(
                s,
                r#"<line class="mark {}" x1="{xm}" y1="{}" x2="{xm}" y2="{}"><title>{}</title></line>"#,
                mark.class,
                y + 1,
                y + ROW_HEIGHT - 1,
                escape(&mark.title)
            );
        }
        let _ = writeln!(s, "</g>");
    }
    // A line of labels each: milestones are often close together.
    for (n, (at, label)) in milestones(entries).into_iter().enumerate() {
        let xm = coord(x(at));
        let _ = writeln!(
            s,
            r#"<g class="milestone-group"><line class="milestone" x1="{xm}" y1="{}" x2="{xm}" y2="{}"/><text class="milestone-label" x="{xm}" y="{}" text-anchor="middle">{} {at} ms</text></g>"#,
            TOP - 4,
            TOP + plot_height,
            TOP + plot_height + 28 + n as u64 * 12,
            escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The timeline as text: each step with its time and, for rows, their length.
pub fn text(entries: &[Entry]) -> String {
    let mut s = String::new();
    for row in rows(entries) {
        let total: u64 = row
            .bars
            .iter()
            .filter(|b| b.class != "running")
            .map(|b| b.end.saturating_sub(b.start))
            .sum();
        let start = row
            .bars
            .first()
            .map(|b| b.start)
            .or(row.marks.first().map(|m| m.at))
            .unwrap_or(0);
        let _ = write!(
            s,
            "{:>7} ms  {:<11} {:<28} {:>6} ms",
            start,
            row.kind.class(),
            row.name,
            total
        );
        let notes: Vec<String> = row
            .bars
            .iter()
            .filter(|b| b.class == "failed")
            .map(|_| "failed".to_owned())
            .chain(
                row.marks
                    .iter()
                    .filter(|m| m.class != "ready")
                    .map(|m| format!("{} at {} ms", m.class, m.at)),
            )
            .collect();
        if !notes.is_empty() {
            let _ = write!(s, "  ({})", notes.join(", "));
        }
        s.push('\n');
    }
    if let Some(summary) = slipway_contract::timeline::Summary::of(entries) {
        s.push('\n');
        s.push_str(&summary.to_string());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use slipway_contract::timeline::parse_transcript;

    const BOOT: &str = "\
slipway: 2900 ms init-start - 0.1.0
slipway: 2925 ms root-done - bind
slipway: 2940 ms mounts-done
slipway: 3240 ms modules-done - 6 loaded, 0 failed, 1 threads; index and devices 30 ms, loading 250 ms
slipway: 3260 ms system-done - linuxkit-5254
slipway: 3262 ms volumes-done - 0
slipway: 3263 ms onboot-start 000-dhcpcd
slipway: 3700 ms onboot-exit 000-dhcpcd exit status 0
slipway: 3705 ms onboot-start 001-hello
slipway: 3800 ms onboot-failed 001-hello exit status 1
slipway: 3802 ms onboot-done - 2
slipway: 3900 ms service-start getty pid 90
slipway: 3950 ms service-start www pid 95
slipway: 4000 ms service-ready www port 80
slipway: 3951 ms services-started - 2
slipway: 5000 ms service-exit www exit status 1
slipway: 5001 ms service-restart www in 1000 ms
slipway: 6001 ms service-start www pid 140
slipway: 9000 ms shutdown - poweroff (SIGUSR2)
slipway: 9100 ms onshutdown-start 000-bye
slipway: 9300 ms onshutdown-done
slipway: 9310 ms poweroff
";

    #[test]
    fn rows_of_a_boot() {
        let rows = rows(&parse_transcript(BOOT));
        let names: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.kind.class(), r.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("kernel", "kernel"),
                ("init", "root"),
                ("init", "mounts"),
                ("modules", "modules"),
                ("init", "system"),
                ("init", "volumes"),
                ("onboot", "000-dhcpcd"),
                ("onboot", "001-hello"),
                ("service", "getty"),
                ("service", "www"),
                ("onshutdown", "000-bye"),
                ("shutdown", "shutdown"),
            ]
        );
        let hello = &rows[7];
        assert_eq!(hello.bars[0].class, "failed");
        assert_eq!((hello.bars[0].start, hello.bars[0].end), (3705, 3800));
        let www = &rows[9];
        // start -> ready, running, then the restart's start -> shutdown.
        assert_eq!((www.bars[0].start, www.bars[0].end), (3950, 4000));
        assert_eq!(
            (www.bars[1].start, www.bars[1].end, www.bars[1].class),
            (4000, 5000, "running")
        );
        assert!(
            www.marks
                .iter()
                .any(|m| m.class == "restart" && m.at == 5001)
        );
        assert_eq!((rows[10].bars[0].start, rows[10].bars[0].end), (9100, 9300));
    }

    #[test]
    fn svg_is_xml_with_a_row_per_step_and_the_same_bytes_twice() {
        let entries = parse_transcript(BOOT);
        let a = svg(&entries, "minimal <boot>");
        assert_eq!(a, svg(&entries, "minimal <boot>"));
        let doc = roxmltree::Document::parse(&a).unwrap();
        let onboot: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("row onboot"))
            .map(|n| n.attribute("data-name").unwrap())
            .collect();
        assert_eq!(onboot, ["000-dhcpcd", "001-hello"]);
        assert!(a.contains("minimal &lt;boot&gt;"));
        assert!(!a.contains("<script"));
        let failed = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("bar failed"))
            .count();
        assert_eq!(failed, 1);
    }

    #[test]
    fn ticks() {
        assert_eq!(tick_step(9310, 10), 1000);
        assert_eq!(tick_step(1200, 10), 200);
        assert_eq!(tick_step(1, 10), 1);
        assert_eq!(tick_step(460, 10), 50);
    }

    #[test]
    fn an_empty_or_partial_timeline_still_draws() {
        let doc = svg(&[], "empty");
        roxmltree::Document::parse(&doc).unwrap();
        let head: Vec<Entry> = parse_transcript(BOOT).into_iter().take(7).collect();
        let partial = svg(&head, "partial");
        assert!(partial.contains("no end on the timeline"));
        assert!(text(&head).contains("000-dhcpcd"));
    }
}

//! The size report as one self-contained HTML page: inline CSS, an inline
//! SVG treemap of the directories, tables; no script, no font, no image
//! and no link outside the page, so it opens offline and makes no request.
//! The report's data is embedded as JSON (`<script
//! type="application/json">`, which browsers never run) for `slipway report
//! diff`.

use std::fmt::Write as _;

use crate::size::{DirNode, SizeReport, UnitKind, human, saved_percent};
use crate::xml::escape;

/// The id of the element holding the report's JSON.
pub const JSON_ID: &str = "slipway-size-report";

const STYLE: &str = "\
body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:24px;color:#222;background:#fff}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}\
.sub{color:#555;margin:0 0 16px}\
.cards{display:flex;gap:12px;flex-wrap:wrap}\
.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}\
.card .v{font-size:20px;font-weight:bold}.card .k{color:#666;font-size:12px}\
table{border-collapse:collapse;font-size:13px}\
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:middle}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.bar{height:10px;background:#3498db;display:inline-block;vertical-align:middle}\
.bar.stored{background:#27ae60}\
.k-kernel{background:#7f8c8d}.k-modules{background:#9b59b6}.k-init{background:#3498db}\
.k-onboot{background:#27ae60}.k-service{background:#e67e22}.k-onshutdown{background:#16a085}\
.k-files{background:#f1c40f}.k-sbom{background:#95a5a6}.k-volume{background:#34495e}\
.k-ucode{background:#bdc3c7}.k-other{background:#bdc3c7}\
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;vertical-align:middle}\
svg text{font-family:'DejaVu Sans',Verdana,sans-serif;font-size:11px;fill:#111;pointer-events:none}\
svg rect.d0{fill:#d6eaf8;stroke:#fff}svg rect.d1{fill:#aed6f1;stroke:#fff}\
svg rect.d2{fill:#85c1e9;stroke:#fff}svg rect.d3{fill:#5dade2;stroke:#fff}\
.note{color:#666;font-size:12px}";

/// The JSON embedded in an HTML report, if the page holds one.
pub fn embedded_json(html: &str) -> Option<String> {
    let marker = format!("id=\"{JSON_ID}\"");
    let at = html.find(&marker)?;
    let start = at + html[at..].find('>')? + 1;
    let end = start + html[start..].find("</script>")?;
    // `<` was written as \u003c, so the JSON cannot end the element early.
    Some(html[start..end].to_owned())
}

/// A rectangle of the treemap, in thousandths of a pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rect {
    x: u64,
    y: u64,
    w: u64,
    h: u64,
}

/// Squarified treemap layout (Bruls, Huizing and van Wijk): rows of
/// rectangles along the shorter side, each row kept while it improves the
/// worst aspect ratio. Hand-written: the algorithm is a few lines and the
/// crates offering it work in floats, where exact, repeatable coordinates
/// are wanted. Returns one rectangle per weight, in order.
fn squarify(weights: &[u64], area: Rect) -> Vec<Rect> {
    let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    let mut out = vec![
        Rect {
            x: area.x,
            y: area.y,
            w: 0,
            h: 0
        };
        weights.len()
    ];
    if total == 0 || area.w == 0 || area.h == 0 {
        return out;
    }
    let mut rest = area;
    let mut remaining = total;
    let mut i = 0;
    while i < weights.len() {
        let short = rest.w.min(rest.h).max(1);
        let rest_area = u128::from(rest.w) * u128::from(rest.h);
        // Areas in square thousandths, proportional to the remaining space.
        let area_of = |w: u64| u128::from(w) * rest_area / remaining.max(1);
        let worst = |row: &[u64]| -> f64 {
            let sum: u128 = row.iter().map(|w| area_of(*w)).sum();
            let side = sum as f64 / short as f64;
            row.iter()
                .map(|w| {
                    let a = area_of(*w) as f64;
                    if a == 0.0 || side == 0.0 {
                        return f64::MAX;
                    }
                    let other = a / side;
                    (side / other).max(other / side)
                })
                .fold(0.0, f64::max)
        };
        let mut end = i + 1;
        while end < weights.len() && worst(&weights[i..=end]) <= worst(&weights[i..end]) {
            end += 1;
        }
        let row = &weights[i..end];
        let row_weight: u128 = row.iter().map(|w| u128::from(*w)).sum();
        let last_row = end == weights.len();
        if rest.w >= rest.h {
            // A column at the left.
            let width = if last_row {
                rest.w
            } else {
                (row_weight * u128::from(rest.w) / remaining.max(1)) as u64
            };
            let mut y = rest.y;
            for (k, w) in row.iter().enumerate() {
                let h = if k + 1 == row.len() {
                    rest.y + rest.h - y
                } else {
                    (u128::from(*w) * u128::from(rest.h) / row_weight.max(1)) as u64
                };
                out[i + k] = Rect {
                    x: rest.x,
                    y,
                    w: width,
                    h,
                };
                y += h;
            }
            rest.x += width;
            rest.w -= width;
        } else {
            let height = if last_row {
                rest.h
            } else {
                (row_weight * u128::from(rest.h) / remaining.max(1)) as u64
            };
            let mut x = rest.x;
            for (k, w) in row.iter().enumerate() {
                let w_px = if k + 1 == row.len() {
                    rest.x + rest.w - x
                } else {
                    (u128::from(*w) * u128::from(rest.w) / row_weight.max(1)) as u64
                };
                out[i + k] = Rect {
                    x,
                    y: rest.y,
                    w: w_px,
                    h: height,
                };
                x += w_px;
            }
            rest.y += height;
            rest.h -= height;
        }
        remaining -= row_weight;
        i = end;
    }
    out
}

fn px(thousandths: u64) -> String {
    let tenths = (thousandths + 50) / 100;
    format!("{}.{}", tenths / 10, tenths % 10)
}

const TREEMAP_DEPTH: usize = 4;

fn treemap_node(s: &mut String, node: &DirNode, path: &str, area: Rect, depth: usize) {
    let mut children: Vec<&DirNode> = node.children.iter().filter(|c| c.bytes > 0).collect();
    children.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    // The directory's own files (not in a subdirectory) take the rest.
    let own = node.bytes - children.iter().map(|c| c.bytes).sum::<u64>();
    let mut weights: Vec<u64> = children.iter().map(|c| c.bytes).collect();
    weights.push(own);
    let rects = squarify(&weights, area);
    for (child, r) in children.iter().zip(&rects) {
        if r.w < 1000 || r.h < 1000 {
            continue;
        }
        let child_path = if path.is_empty() {
            child.name.clone()
        } else {
            format!("{path}/{}", child.name)
        };
        let _ = writeln!(
            s,
            r#"<rect class="d{}" x="{}" y="{}" width="{}" height="{}"><title>{} — {} ({} bytes, {} files)</title></rect>"#,
            depth.min(3),
            px(r.x),
            px(r.y),
            px(r.w),
            px(r.h),
            escape(&child_path),
            human(child.bytes),
            child.bytes,
            child.files
        );
        let inner = Rect {
            x: r.x + 2000,
            y: r.y + 16000,
            w: r.w.saturating_sub(4000),
            h: r.h.saturating_sub(18000),
        };
        if r.w > 60_000 && r.h > 18_000 {
            let label = format!("{} {}", child.name, human(child.bytes));
            let fits = (r.w / 1000) as usize / 7;
            let label: String = label.chars().take(fits).collect();
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}">{}</text>"#,
                px(r.x + 3000),
                px(r.y + 12000),
                escape(&label)
            );
        }
        if depth + 1 < TREEMAP_DEPTH && inner.w > 20_000 && inner.h > 20_000 {
            treemap_node(s, child, &child_path, inner, depth + 1);
        }
    }
}

/// The directory treemap as an inline SVG.
fn treemap(report: &SizeReport) -> String {
    let (w, h) = (1100u64, 560u64);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="treemap" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>bytes per directory</title>"#
    );
    s.push('\n');
    treemap_node(
        &mut s,
        &report.tree,
        "",
        Rect {
            x: 0,
            y: 0,
            w: w * 1000,
            h: h * 1000,
        },
        0,
    );
    s.push_str("</svg>");
    s
}

fn bar(value: u64, max: u64, class: &str) -> String {
    let width = value.saturating_mul(200).checked_div(max).unwrap_or(0);
    format!(r#"<span class="bar {class}" style="width:{width}px"></span>"#)
}

/// The report as a self-contained HTML page.
pub fn render(report: &SizeReport) -> Result<String, serde_json::Error> {
    let mut s = String::new();
    let title = format!("slipway size report: {}", report.name);
    let _ = writeln!(
        s,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{}</title>
<style>{STYLE}</style></head><body>
<h1>{}</h1>
<p class="sub">{}{}</p>"#,
        escape(&title),
        escape(&title),
        escape(&report.outputs_format),
        report
            .compression
            .as_deref()
            .map(|c| format!(", initrd compressed with {}", escape(c)))
            .unwrap_or_default()
    );
    let _ = writeln!(s, r#"<div class="cards" id="totals">"#);
    let mut card = |id: &str, key: &str, value: String, exact: Option<u64>| {
        let _ = writeln!(
            s,
            r#"<div class="card" id="{id}"><div class="v">{}</div><div class="k">{}{}</div></div>"#,
            escape(&value),
            escape(key),
            exact.map(|b| format!(" · {b} bytes")).unwrap_or_default()
        );
    };
    card(
        "total-files",
        "files",
        report.total_files().to_string(),
        None,
    );
    card(
        "total-bytes",
        "file contents",
        human(report.total_bytes()),
        Some(report.total_bytes()),
    );
    card(
        "total-uncompressed",
        "uncompressed archives",
        human(report.total_uncompressed()),
        Some(report.total_uncompressed()),
    );
    card(
        "total-stored",
        "in the outputs",
        human(report.total_stored()),
        Some(report.total_stored()),
    );
    if let Some(initrd) = report.initrd_bytes {
        card("initrd", "initrd", human(initrd), Some(initrd));
    }
    card(
        "saved",
        "saved by compression",
        saved_percent(report.total_uncompressed(), report.total_stored()),
        Some(
            report
                .total_uncompressed()
                .saturating_sub(report.total_stored()),
        ),
    );
    s.push_str("</div>\n");

    // Units.
    let max = report
        .units
        .iter()
        .map(|u| u.uncompressed.max(u.stored))
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        r#"<h2>Units</h2><table id="units"><tr><th>kind</th><th>unit</th><th class="n">files</th><th class="n">bytes</th><th class="n">uncompressed</th><th class="n">stored</th><th class="n">saved</th><th>uncompressed / stored</th></tr>"#
    );
    for u in &report.units {
        let _ = writeln!(
            s,
            r#"<tr class="unit" data-location="{}"><td><span class="swatch k-{}"></span>{}</td><td>{}{}</td><td class="n">{}</td><td class="n" title="{} bytes">{}</td><td class="n" title="{} bytes">{}</td><td class="n stored" data-bytes="{}">{}</td><td class="n">{}</td><td>{}<br>{}</td></tr>"#,
            escape(&u.location),
            u.kind.name(),
            u.kind.name(),
            escape(&u.title),
            if u.in_initrd || u.kind == UnitKind::Kernel {
                if u.in_initrd {
                    ""
                } else {
                    " <span class=\"note\">(beside the initrd)</span>"
                }
            } else {
                ""
            },
            u.files,
            u.bytes,
            human(u.bytes),
            u.uncompressed,
            human(u.uncompressed),
            u.stored,
            human(u.stored),
            saved_percent(u.uncompressed, u.stored),
            bar(u.uncompressed, max, ""),
            bar(u.stored, max, "stored"),
        );
    }
    let _ = writeln!(
        s,
        r#"<tr id="units-total"><th></th><th>total</th><th class="n">{}</th><th class="n">{}</th><th class="n">{}</th><th class="n">{}</th><th class="n">{}</th><th></th></tr></table>"#,
        report.total_files(),
        human(report.total_bytes()),
        human(report.total_uncompressed()),
        human(report.total_stored()),
        saved_percent(report.total_uncompressed(), report.total_stored())
    );

    // Images.
    let max = report.images.iter().map(|i| i.bytes).max().unwrap_or(0);
    let _ = writeln!(
        s,
        r#"<h2>Images and packages</h2><table id="images"><tr><th>image</th><th>units</th><th class="n">files</th><th class="n">bytes</th><th></th></tr>"#
    );
    for i in &report.images {
        let _ = writeln!(
            s,
            r#"<tr class="image"><td>{}</td><td>{}</td><td class="n">{}</td><td class="n" title="{} bytes">{}</td><td>{}</td></tr>"#,
            escape(&i.image),
            escape(&i.units.join(", ")),
            i.files,
            i.bytes,
            human(i.bytes),
            bar(i.bytes, max, "")
        );
    }
    s.push_str("</table>\n");

    // Directories.
    let _ = writeln!(
        s,
        r#"<h2>Directories</h2><p class="note">Each rectangle is a directory, its area its files' bytes (four levels; hover for the path and size).</p>"#
    );
    s.push_str(&treemap(report));
    s.push('\n');
    let _ = writeln!(
        s,
        r#"<table id="dirs"><tr><th>directory (three levels)</th><th class="n">files</th><th class="n">bytes</th></tr>"#
    );
    for (path, bytes, files) in report.dirs_at(3).into_iter().take(25) {
        let _ = writeln!(
            s,
            r#"<tr><td>{}</td><td class="n">{files}</td><td class="n" title="{bytes} bytes">{}</td></tr>"#,
            escape(&path),
            human(bytes)
        );
    }
    s.push_str("</table>\n");

    // Files.
    let _ = writeln!(
        s,
        r#"<h2>Largest files</h2><table id="files"><tr><th>file</th><th>unit</th><th class="n">bytes</th></tr>"#
    );
    for f in &report.top_files {
        let _ = writeln!(
            s,
            r#"<tr><td>{}</td><td>{}</td><td class="n" title="{} bytes">{}</td></tr>"#,
            escape(&f.path),
            escape(&f.unit),
            f.bytes,
            human(f.bytes)
        );
    }
    s.push_str("</table>\n");
    if !report.outputs.is_empty() {
        let _ = writeln!(
            s,
            r#"<h2>Outputs</h2><table id="outputs"><tr><th>file</th><th class="n">bytes</th></tr>"#
        );
        for o in &report.outputs {
            let _ = writeln!(
                s,
                r#"<tr><td>{}</td><td class="n" title="{} bytes">{}</td></tr>"#,
                escape(&o.name),
                o.bytes,
                human(o.bytes)
            );
        }
        s.push_str("</table>\n");
    }
    let json = report.to_json()?.replace('<', "\\u003c");
    let _ = writeln!(
        s,
        r#"<script type="application/json" id="{JSON_ID}">{json}</script>
</body></html>"#
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn squarified_rectangles_tile_the_area() {
        let area = Rect {
            x: 0,
            y: 0,
            w: 600_000,
            h: 400_000,
        };
        let weights = [6, 6, 4, 3, 2, 2, 1];
        let rects = squarify(&weights, area);
        let total: u128 = rects
            .iter()
            .map(|r| u128::from(r.w) * u128::from(r.h))
            .sum();
        let full = 600_000u128 * 400_000;
        // Rounding loses at most a sliver per rectangle.
        assert!(full - total < full / 100, "{total} of {full}");
        for r in &rects {
            assert!(r.x + r.w <= 600_000 && r.y + r.h <= 400_000, "{r:?}");
        }
        // Larger weights get larger rectangles.
        let a = |r: &Rect| u128::from(r.w) * u128::from(r.h);
        assert!(a(&rects[0]) > a(&rects[6]));
        assert_eq!(squarify(&[0, 0], area)[0].w, 0);
    }

    #[test]
    fn page_embeds_its_json_and_nothing_external() {
        let mut r = crate::size::tests::sample(0);
        r.name = "</script><b>x".into();
        let html = render(&r).unwrap();
        assert_eq!(html, render(&r).unwrap());
        let back = crate::size::SizeReport::parse(&html).unwrap();
        assert_eq!(back, r);
        for external in ["http:", "https:", "src=", "@import", "url("] {
            let outside_svg_ns = html.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside_svg_ns.contains(external), "{external}");
        }
        assert!(html.contains("id=\"initrd\""));
    }
}

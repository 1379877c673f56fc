//! The governance report: one self-contained HTML file for a CMO and a CISO to read
//! together. Built from plain data; the binary gathers it (`sightline report`).
//!
//! [`render`] is pure: the same input gives the same bytes (no clock; overdue is judged
//! against `today`). Every piece of data comes from scanned websites and users, so all text
//! and attribute values are escaped (`escape_html`), the document carries a Content Security
//! Policy that forbids scripts and remote loads, and it has no script, no link and no
//! remote URL in any `src` or `href` (only `#section` links). Charts and the lineage
//! diagram are inline SVG.
//!
//! What an end-to-end test can rely on: seven `<section>`s with ids `summary`, `findings`,
//! `inventory`, `vendors`, `lineage`, `flows` and `trends`; summary tiles `.tile[data-metric]`; the
//! findings matrix `#findings-matrix` (rows `tr[data-owner]`, cells `td[data-severity]`)
//! and `#findings-open`; `#inventory-table` with badges `.status-<name>`; `#vendors-table`;
//! `svg#lineage-diagram` with one `g.node[data-kind]` per node and one `g.edge` per edge,
//! then `#lineage-edges`; `#flows-table` (rows `tr[data-destination]`, badges
//! `.flow-approved`, `.flow-changing`, `.flow-pending`, `.flow-rejected`); `svg.chart[data-metric]` per metric and `#scans-table`. A table
//! with no rows is a `p.empty` note carrying the same id.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use crate::backlog::{BacklogItem, BacklogStatus, Severity};
use crate::flow::Flow;
use crate::lineage::{Edge, Graph, Node, NodeKind};
use crate::metrics::{DayMetrics, ScanMetrics};
use crate::tag::{Tag, TagStatus};
use crate::vendor::VendorRisk;

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// When it was made (RFC 3339, UTC), shown in the header.
    pub generated_at: String,
    /// Today, for overdue deadlines and reviews.
    pub today: chrono::NaiveDate,
    /// The inventory with each tag's id.
    pub tags: Vec<(i64, Tag)>,
    /// The findings backlog with each item's id.
    pub backlog: Vec<(i64, BacklogItem)>,
    pub vendors: Vec<VendorRisk>,
    /// Per-scan metrics, oldest first.
    pub scans: Vec<ScanMetrics>,
    /// Per-day metrics, oldest first.
    pub days: Vec<DayMetrics>,
    pub lineage: Graph,
    /// Destinations' governance records: the server-side flows and their approval.
    pub flows: Vec<Flow>,
}

/// The report as one HTML document.
pub fn render(input: &ReportInput) -> String {
    let sections = [
        ("summary", "Summary", summary(input)),
        ("findings", "Findings", findings(input)),
        ("inventory", "Tag inventory", inventory(input)),
        ("vendors", "Vendor risk", vendors(input)),
        ("lineage", "Data lineage", lineage(&input.lineage)),
        ("flows", "Server-side data flows", flows(&input.flows)),
        ("trends", "Trends", trends(input)),
    ];
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(HEAD);
    out.push_str(&format!(
        "<header>\n<h1>Sightline governance report</h1>\n\
         <p class=\"meta\">Generated {} · overdue judged as of {}</p>\n<nav>",
        escape_html(&input.generated_at),
        input.today.format("%Y-%m-%d")
    ));
    for (id, title, _) in &sections {
        out.push_str(&format!("<a href=\"#{id}\">{title}</a>"));
    }
    out.push_str("</nav>\n</header>\n<main>\n");
    for (id, title, body) in &sections {
        out.push_str(&format!(
            "<section id=\"{id}\">\n<h2>{title}</h2>\n{body}</section>\n"
        ));
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sightline governance report</title>
<style>
:root { --fg: #1d2330; --muted: #5d6575; --line: #c9ced8; --bg-alt: #f4f6f9;
  --crit: #9b1c1c; --high: #d9480f; --med: #b08800; --low: #2f6f9f; --ok: #2b7a3d; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg); margin: 0 auto; padding: 16px 24px 48px; max-width: 1200px; line-height: 1.4; font-size: 14px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 0 0 12px; padding-bottom: 4px; border-bottom: 2px solid var(--fg); }
h3 { font-size: 15px; margin: 16px 0 8px; }
.meta, .hint, .empty, .legend { color: var(--muted); }
nav a { margin-right: 14px; color: var(--low); }
section { margin-top: 32px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
thead th { background: var(--bg-alt); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.zero { color: #a3a9b5; }
tr.overdue td { background: #fff4e5; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 10px; }
.tile { border: 1px solid var(--line); border-left: 4px solid var(--low); border-radius: 6px; padding: 8px 10px; break-inside: avoid; }
.tile.alert { border-left-color: var(--crit); }
.tile .label { font-size: 12px; color: var(--muted); }
.tile .value { font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tile .hint { font-size: 12px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px; color: #fff; background: var(--muted); white-space: nowrap; }
.sev-critical, .rating-critical, .status-rejected, .dpa-missing, .flow-rejected { background: var(--crit); }
.sev-high, .rating-high { background: var(--high); }
.sev-medium, .rating-medium, .status-proposed, .dpa-requested, .flow-pending, .flow-changing { background: var(--med); }
.sev-low, .rating-low { background: var(--low); }
.status-approved, .dpa-signed, .flow-approved { background: var(--ok); }
.status-retired, .dpa-not_needed { background: #7b8190; }
.bstatus-open { background: #52607a; }
.bstatus-accepted_risk { background: var(--med); }
.flag { display: inline-block; margin-left: 4px; padding: 0 5px; border-radius: 3px; font-size: 11px;
  font-weight: 600; color: var(--crit); border: 1px solid var(--crit); }
.na { color: var(--muted); }
svg text { font-family: inherit; fill: var(--fg); }
#lineage-diagram { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
.node rect { fill: #eef2f8; stroke: #52607a; stroke-width: 1.2; }
.node[data-kind="source"] rect, .node[data-kind="site"] rect { fill: #e6f0fa; }
.node[data-kind="consent_gate"] rect { fill: #fff6d6; stroke: var(--med); }
.node[data-kind="transform"] rect { fill: #efe9fb; }
.node[data-kind="destination"] rect { fill: #e5f4ea; stroke: var(--ok); }
.node[data-kind="vendor"] rect { fill: #fdecea; stroke: var(--crit); }
.node text { font-size: 12px; }
.edge path { fill: none; stroke: #7b8190; stroke-width: 1.4; }
.edge[data-pii="true"] path { stroke: var(--crit); }
.stage { font-size: 12px; font-weight: 600; fill: var(--muted); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px; break-inside: avoid; }
figcaption { font-size: 13px; font-weight: 600; }
figcaption span { font-weight: 400; color: var(--muted); }
.chart { width: 100%; height: auto; }
.chart .axis { stroke: #8a91a0; stroke-width: 1; }
.chart polyline { fill: none; stroke: var(--low); stroke-width: 2; }
.chart circle { fill: var(--low); }
.chart text { font-size: 11px; fill: var(--muted); }
@media print { body { max-width: none; padding: 0; font-size: 11px; } nav { display: none; }
  section { break-before: page; } section#summary { break-before: auto; } tr { break-inside: avoid; } }
</style>
</head>
<body>
"#;

/// Text safe in HTML text and in quoted attribute values. Control characters, which HTML
/// does not allow, are dropped.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Escaped text cut to `max` characters; when cut, the whole text is its tooltip.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return escape_html(text);
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!(
        "<span title=\"{}\">{}…</span>",
        escape_html(text),
        escape_html(&cut)
    )
}

/// A missing value in a table cell.
const NA: &str = "<span class=\"na\" title=\"not measured\">—</span>";

/// Escaped text, or the missing mark when there is none.
fn opt(text: Option<&str>) -> String {
    text.filter(|t| !t.trim().is_empty())
        .map_or_else(|| NA.to_owned(), escape_html)
}

/// Escaped items joined by commas, or the missing mark.
fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| escape_html(s.as_ref())).collect();
    if items.is_empty() {
        NA.to_owned()
    } else {
        items.join(", ")
    }
}

fn badge(class: &str, text: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        escape_html(class),
        escape_html(&text.replace('_', " "))
    )
}

const OVERDUE: &str = "<span class=\"flag\">overdue</span>";

fn td(html: &str) -> String {
    format!("<td>{html}</td>")
}

fn td_num(n: impl std::fmt::Display) -> String {
    format!("<td class=\"num\">{n}</td>")
}

/// A table with a header row; `rows` are whole `<tr>` elements. No rows: the `empty` note.
fn table(id: &str, head: &[&str], rows: &[String], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\" id=\"{id}\">{empty}</p>\n");
    }
    let mut out = format!("<table id=\"{id}\">\n<thead><tr>");
    for h in head {
        out.push_str(&format!("<th scope=\"col\">{h}</th>"));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str(row);
        out.push('\n');
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// A `<tr>`, marked overdue when asked.
fn tr(overdue: bool, cells: &[String]) -> String {
    let class = if overdue { " class=\"overdue\"" } else { "" };
    format!("<tr{class}>{}</tr>", cells.concat())
}

fn is_past(day: Option<&str>, today: chrono::NaiveDate) -> bool {
    day.and_then(|d| crate::parse_day("", d).ok())
        .is_some_and(|d| d < today)
}

// ---- numbers ----

/// How a metric's value reads.
#[derive(Clone, Copy)]
enum Unit {
    Count,
    /// A share in 0..=1, shown as a percent with one decimal.
    Percent,
    Ms,
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

fn number(unit: Unit, v: f64) -> String {
    let shown = match unit {
        Unit::Percent => v * 100.0,
        Unit::Count | Unit::Ms => v,
    };
    if !shown.is_finite() {
        return "—".to_owned();
    }
    match unit {
        Unit::Count => format!("{shown:.0}"),
        Unit::Percent => format!("{shown:.1}%"),
        // Floored at 0 (the definition), which also avoids printing "-0".
        Unit::Ms => format!("{:.0} ms", if shown > 0.0 { shown } else { 0.0 }),
    }
}

/// A day metric: its name (the field of [`DayMetrics`]), title, unit, definition, whether a
/// value above zero needs attention, and how to read it.
struct Metric {
    name: &'static str,
    title: &'static str,
    unit: Unit,
    help: &'static str,
    alert: bool,
    value: fn(&DayMetrics) -> Option<f64>,
}

const METRICS: [Metric; 9] = [
    Metric {
        name: "tag_count",
        title: "Third-party scripts",
        unit: Unit::Count,
        help: "distinct third-party scripts loaded",
        alert: false,
        value: |d| d.tag_count.map(|v| v as f64),
    },
    Metric {
        name: "vendor_count",
        title: "Vendors seen",
        unit: Unit::Count,
        help: "third-party vendors sent a request",
        alert: false,
        value: |d| d.vendor_count.map(|v| v as f64),
    },
    Metric {
        name: "undocumented_vendors",
        title: "Undocumented vendors",
        unit: Unit::Count,
        help: "vendors seen with no tag in the inventory",
        alert: true,
        value: |d| d.undocumented_vendors.map(|v| v as f64),
    },
    Metric {
        name: "tags_before_consent",
        title: "Tags firing before consent",
        unit: Unit::Count,
        help: "vendors with a pre-consent finding",
        alert: true,
        value: |d| d.tags_before_consent.map(|v| v as f64),
    },
    Metric {
        name: "consent_quality",
        title: "Consent quality",
        unit: Unit::Percent,
        help: "behavioural events carrying a consent signal that decodes",
        alert: false,
        value: |d| d.consent_quality,
    },
    Metric {
        name: "blocked_script_rate",
        title: "Blocked-script rate",
        unit: Unit::Percent,
        help: "scripts not loaded when every purpose is refused",
        alert: false,
        value: |d| d.blocked_script_rate,
    },
    Metric {
        name: "third_party_latency_ms",
        title: "Third-party latency cost",
        unit: Unit::Ms,
        help: "mean page load time added by third parties",
        alert: false,
        value: |d| d.third_party_latency_ms,
    },
    Metric {
        name: "vendor_reduction",
        title: "Vendor reduction",
        unit: Unit::Count,
        help: "vendors fewer than on the first day",
        alert: false,
        value: |d| d.vendor_reduction.map(|v| v as f64),
    },
    Metric {
        name: "attribution_variance",
        title: "Attribution variance",
        unit: Unit::Percent,
        help: "spread of credit between attribution models",
        alert: false,
        value: |d| d.attribution_variance,
    },
];

// ---- summary ----

fn tile(name: &str, label: &str, value: Option<String>, hint: &str, alert: bool) -> String {
    let (value, hint) = match value {
        Some(v) => (escape_html(&v), escape_html(hint)),
        None => ("—".to_owned(), "not measured".to_owned()),
    };
    let class = if alert { "tile alert" } else { "tile" };
    format!(
        "<div class=\"{class}\" data-metric=\"{name}\"><div class=\"label\">{label}</div>\
         <div class=\"value\">{value}</div><div class=\"hint\">{hint}</div></div>\n"
    )
}

fn is_unresolved(item: &BacklogItem) -> bool {
    !matches!(item.status, BacklogStatus::Fixed | BacklogStatus::Verified)
}

fn summary(input: &ReportInput) -> String {
    let mut out = String::from("<div class=\"tiles\">\n");
    let by_status: Vec<String> = [
        TagStatus::Approved,
        TagStatus::Proposed,
        TagStatus::Rejected,
        TagStatus::Retired,
    ]
    .into_iter()
    .map(|s| {
        let n = input.tags.iter().filter(|(_, t)| t.status == s).count();
        format!("{n} {}", s.name())
    })
    .collect();
    out.push_str(&tile(
        "tags",
        "Tags in inventory",
        Some(input.tags.len().to_string()),
        &by_status.join(" · "),
        false,
    ));

    let open: Vec<&BacklogItem> = input
        .backlog
        .iter()
        .map(|(_, i)| i)
        .filter(|i| is_unresolved(i))
        .collect();
    let severe = open.iter().filter(|i| i.severity >= Severity::High).count();
    let accepted = open
        .iter()
        .filter(|i| i.status == BacklogStatus::AcceptedRisk)
        .count();
    out.push_str(&tile(
        "open_findings",
        "Open findings",
        Some(open.len().to_string()),
        &format!("{severe} critical or high · {accepted} accepted risk"),
        severe > 0,
    ));
    let overdue = input
        .backlog
        .iter()
        .filter(|(_, i)| i.is_overdue(input.today))
        .count();
    out.push_str(&tile(
        "overdue_findings",
        "Overdue findings",
        Some(overdue.to_string()),
        "past deadline, or acceptance expired",
        overdue > 0,
    ));

    for m in METRICS.iter().filter(|m| m.name != "tag_count") {
        let latest = latest_measured(m, &input.days);
        // Attribution variance is only computed when asked for: no tile otherwise.
        if m.name == "attribution_variance" && latest.is_none() {
            continue;
        }
        let hint = match latest {
            Some((d, _)) => format!("{} ({})", m.help, d.day),
            None => m.help.to_owned(),
        };
        let value = latest.map(|(_, v)| v);
        out.push_str(&tile(
            m.name,
            m.title,
            value.map(|v| number(m.unit, v)),
            &hint,
            m.alert && value.is_some_and(|v| v > 0.0),
        ));
    }
    out.push_str("</div>\n");
    out
}

// ---- findings ----

/// Severities, most severe first.
const SEVERITIES: [Severity; 4] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
];

fn owner_of(item: &BacklogItem) -> Option<&str> {
    item.owner
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
}

fn findings(input: &ReportInput) -> String {
    let open: Vec<&(i64, BacklogItem)> = input
        .backlog
        .iter()
        .filter(|(_, i)| is_unresolved(i))
        .collect();

    // Named owners sorted by name, then the unassigned row.
    let mut matrix: BTreeMap<(bool, &str), [usize; 4]> = BTreeMap::new();
    for (_, item) in &open {
        let owner = owner_of(item);
        let row = matrix
            .entry((owner.is_none(), owner.unwrap_or("unassigned")))
            .or_default();
        if let Some(col) = SEVERITIES.iter().position(|s| *s == item.severity) {
            row[col] += 1;
        }
    }
    let mut totals = [0usize; 4];
    let mut rows: Vec<String> = Vec::new();
    for ((_, owner), counts) in &matrix {
        let mut cells = vec![format!("<th scope=\"row\">{}</th>", escape_html(owner))];
        for (col, (n, sev)) in counts.iter().zip(SEVERITIES).enumerate() {
            totals[col] += n;
            let zero = if *n == 0 { " zero" } else { "" };
            cells.push(format!(
                "<td class=\"num{zero}\" data-severity=\"{}\">{n}</td>",
                sev.name()
            ));
        }
        cells.push(td_num(counts.iter().sum::<usize>()));
        rows.push(format!(
            "<tr data-owner=\"{}\">{}</tr>",
            escape_html(owner),
            cells.concat()
        ));
    }
    if !rows.is_empty() {
        let mut cells = vec!["<th scope=\"row\">total</th>".to_owned()];
        cells.extend(totals.iter().map(td_num));
        cells.push(td_num(totals.iter().sum::<usize>()));
        rows.push(format!("<tr class=\"total\">{}</tr>", cells.concat()));
    }
    let mut out = String::from(
        "<h3>Open findings by owner and severity</h3>\n\
         <p class=\"hint\">Items not fixed or verified (accepted risks included).</p>\n",
    );
    out.push_str(&table(
        "findings-matrix",
        &["owner", "critical", "high", "medium", "low", "total"],
        &rows,
        "No open findings.",
    ));

    let mut items = open;
    items.sort_by_key(|(id, i)| (Reverse(i.severity), !i.is_overdue(input.today), *id));
    let rows: Vec<String> = items
        .iter()
        .map(|(id, item)| {
            let overdue = item.is_overdue(input.today);
            let mut place = escape_html(&item.journey);
            if let Some(step) = &item.finding.step {
                place.push_str(&format!(" › {}", escape_html(step)));
            }
            // One finding may be seen under several consent scenarios, each its own item.
            if let Some(scenario) = &item.finding.scenario {
                place.push_str(&format!("<br><small>{}</small>", escape_html(scenario)));
            }
            let mut deadline = opt(item.deadline.as_deref());
            if overdue {
                deadline.push_str(OVERDUE);
            }
            let mut status = badge(
                &format!("bstatus-{}", item.status.name()),
                item.status.name(),
            );
            if let Some(a) = &item.acceptance {
                status.push_str(&format!(" until {}", escape_html(&a.expires)));
            }
            tr(
                overdue,
                &[
                    td_num(id),
                    td(&badge(
                        &format!("sev-{}", item.severity.name()),
                        item.severity.name(),
                    )),
                    td(&place),
                    td(&format!(
                        "<code>{}</code> · {}<br>{}",
                        escape_html(&item.finding.kind),
                        escape_html(&item.finding.vendor),
                        short(&item.message, 200)
                    )),
                    td(&opt(owner_of(item))),
                    td(&deadline),
                    td(&status),
                    td(&item.evidence.as_deref().map_or_else(
                        || NA.to_owned(),
                        |e| format!("<code>{}</code>", short(e, 60)),
                    )),
                ],
            )
        })
        .collect();
    out.push_str("<h3>Open items</h3>\n");
    out.push_str(&table(
        "findings-open",
        &[
            "id", "severity", "journey", "finding", "owner", "deadline", "status", "evidence",
        ],
        &rows,
        "No open items.",
    ));
    out
}

// ---- inventory ----

fn inventory(input: &ReportInput) -> String {
    let mut tags: Vec<&(i64, Tag)> = input.tags.iter().collect();
    tags.sort_by_key(|(id, t)| (t.spec.vendor.to_lowercase(), t.spec.environment.name(), *id));
    let rows: Vec<String> = tags
        .iter()
        .map(|(id, tag)| {
            let s = &tag.spec;
            let overdue = is_past(s.review_date.as_deref(), input.today);
            let mut review = opt(s.review_date.as_deref());
            if overdue {
                review.push_str(OVERDUE);
            }
            let steps: Vec<String> = s
                .steps
                .iter()
                .map(|r| format!("{} › {}", r.journey, r.step))
                .collect();
            tr(
                overdue,
                &[
                    td_num(id),
                    td(&escape_html(&s.vendor)),
                    td(&format!(
                        "{} <span class=\"hint\">r{}</span>",
                        badge(&format!("status-{}", tag.status.name()), tag.status.name()),
                        tag.revision
                    )),
                    td(&short(&s.purpose, 160)),
                    td(&escape_html(&s.owner)),
                    td(&escape_html(s.classification.name())),
                    td(&escape_html(s.environment.name())),
                    td(&opt(s.consent_purpose.as_deref())),
                    td(&list(&s.data_collected)),
                    td(&list(&steps)),
                    td(&review),
                ],
            )
        })
        .collect();
    table(
        "inventory-table",
        &[
            "id",
            "vendor",
            "status",
            "purpose",
            "owner",
            "classification",
            "environment",
            "consent purpose",
            "data collected",
            "journey steps",
            "review date",
        ],
        &rows,
        "No tags in the inventory yet.",
    )
}

// ---- vendors ----

fn vendors(input: &ReportInput) -> String {
    let mut vendors: Vec<&VendorRisk> = input.vendors.iter().collect();
    // Overdue reviews first, then the riskiest.
    vendors.sort_by_key(|v| {
        (
            !v.is_overdue(input.today),
            Reverse(v.rating),
            v.vendor.to_lowercase(),
        )
    });
    let rows: Vec<String> = vendors
        .iter()
        .map(|v| {
            let overdue = v.is_overdue(input.today);
            let next = v.next_review().map_or_else(
                || "now (never reviewed)".to_owned(),
                |d| d.format("%Y-%m-%d").to_string(),
            );
            tr(
                overdue,
                &[
                    td(&escape_html(&v.vendor)),
                    td(&badge(
                        &format!("rating-{}", v.rating.name()),
                        v.rating.name(),
                    )),
                    td(&badge(&format!("dpa-{}", v.dpa.name()), v.dpa.name())),
                    td(&list(&v.data_shared)),
                    td(&list(&v.purposes)),
                    td(&list(&v.sub_processors)),
                    td(&v
                        .last_review
                        .as_deref()
                        .map_or_else(|| "never".to_owned(), escape_html)),
                    td(&escape_html(&next)),
                    td(if overdue { OVERDUE } else { "" }),
                ],
            )
        })
        .collect();
    table(
        "vendors-table",
        &[
            "vendor",
            "rating",
            "DPA",
            "data shared",
            "purposes",
            "sub-processors",
            "last review",
            "next review",
            "overdue",
        ],
        &rows,
        "No vendor risk records yet.",
    )
}

// ---- lineage ----

/// The diagram's columns, in the order data flows.
const STAGES: [&str; 6] = [
    "sources & sites",
    "collection",
    "identity",
    "consent gates",
    "transforms",
    "destinations & vendors",
];

fn stage(kind: NodeKind) -> usize {
    match kind {
        NodeKind::Source | NodeKind::Site => 0,
        NodeKind::Collection => 1,
        NodeKind::Identity => 2,
        NodeKind::ConsentGate => 3,
        NodeKind::Transform => 4,
        NodeKind::Destination | NodeKind::Vendor => 5,
    }
}

const NODE_W: f64 = 176.0;
const NODE_H: f64 = 32.0;
const COL_PITCH: f64 = 226.0;
const ROW_PITCH: f64 = 44.0;
const MARGIN: f64 = 16.0;
/// Room above the first row for the column headings.
const TOP: f64 = 40.0;

/// Where each node goes: its top-left corner, and the heading of each column drawn.
struct Layout<'a> {
    nodes: Vec<(&'a Node, f64, f64)>,
    headings: Vec<(&'static str, f64)>,
    width: f64,
    height: f64,
}

/// Columns by stage (empty stages left out), each centred on the tallest. Within a column
/// nodes are ordered by the mean row of their upstream neighbours, which keeps most edges
/// from crossing; ties keep the graph's order.
fn layout(graph: &Graph) -> Layout<'_> {
    let mut columns: BTreeMap<usize, Vec<&Node>> = BTreeMap::new();
    for node in &graph.nodes {
        columns.entry(stage(node.kind)).or_default().push(node);
    }
    let tallest = columns.values().map(Vec::len).max().unwrap_or(0);
    let mut rows: BTreeMap<&str, f64> = BTreeMap::new();
    let mut nodes = Vec::new();
    let mut headings = Vec::new();
    for (col, (stage, column)) in columns.iter().enumerate() {
        let upstream = |node: &Node| -> f64 {
            let ys: Vec<f64> = graph
                .edges
                .iter()
                .filter(|e| e.to == node.id)
                .filter_map(|e| rows.get(e.from.as_str()).copied())
                .collect();
            if ys.is_empty() {
                f64::MAX
            } else {
                ys.iter().sum::<f64>() / ys.len() as f64
            }
        };
        let mut keyed: Vec<(f64, &Node)> = column.iter().map(|n| (upstream(n), *n)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        let x = MARGIN + col as f64 * COL_PITCH;
        let offset = (tallest - keyed.len()) as f64 * ROW_PITCH / 2.0;
        for (row, (_, node)) in keyed.into_iter().enumerate() {
            let y = TOP + offset + row as f64 * ROW_PITCH;
            rows.insert(node.id.as_str(), y);
            nodes.push((node, x, y));
        }
        headings.push((STAGES[*stage], x));
    }
    Layout {
        nodes,
        width: 2.0 * MARGIN + (headings.len().max(1) - 1) as f64 * COL_PITCH + NODE_W,
        height: TOP + tallest as f64 * ROW_PITCH + MARGIN,
        headings,
    }
}

/// An edge in one line, for its tooltip: the first fields, PII, purposes, owner, evidence.
fn edge_summary(e: &Edge) -> String {
    let names: Vec<&str> = e.fields.iter().take(8).map(|f| f.name.as_str()).collect();
    let more = e.fields.len().saturating_sub(names.len()) + e.fields_truncated;
    let mut parts = vec![if more > 0 {
        format!("fields: {} and {more} more", names.join(", "))
    } else {
        format!("fields: {}", names.join(", "))
    }];
    let pii: Vec<&str> = e.pii().iter().map(|c| c.name()).collect();
    if !pii.is_empty() {
        parts.push(format!("PII: {}", pii.join(", ")));
    }
    if !e.purposes.is_empty() {
        parts.push(format!("purposes: {}", e.purposes.join(", ")));
    }
    if let Some(owner) = &e.owner {
        parts.push(format!("owner: {owner}"));
    }
    let evidence = e.evidence.summary();
    if !evidence.is_empty() {
        parts.push(evidence);
    }
    parts.join("; ")
}

/// A flow's badge class: `flow-approved`, `flow-changing` (approved, a change waits),
/// `flow-pending` or `flow-rejected`.
fn flow_class(flow: &Flow) -> &'static str {
    match (flow.approved.is_some(), flow.is_pending()) {
        (true, false) => "flow-approved",
        (true, true) => "flow-changing",
        (false, true) => "flow-pending",
        (false, false) => "flow-rejected",
    }
}

/// The destinations' approvals: those waiting first, then by name.
fn flows(flows: &[Flow]) -> String {
    let mut flows: Vec<&Flow> = flows.iter().collect();
    flows.sort_by_key(|f| (!f.is_pending(), f.destination.to_lowercase()));
    let rows: Vec<String> = flows
        .iter()
        .map(|f| {
            let status = f.standing();
            let in_force = f.approved.as_ref();
            format!(
                "<tr data-destination=\"{}\">{}</tr>",
                escape_html(&f.destination),
                [
                    td(&escape_html(&f.destination)),
                    td(&escape_html(&f.config.kind)),
                    td(&badge(flow_class(f), status)),
                    td(&opt(in_force.map(|c| c.url.as_str()))),
                    td(&list(in_force.map_or(&[][..], |c| &c.purposes[..]))),
                    td(&if f.is_pending() {
                        list(&f.changes)
                    } else {
                        NA.to_owned()
                    }),
                    td(&escape_html(&f.proposed_by)),
                    td(&opt(f.decided_by.as_deref())),
                ]
                .concat()
            )
        })
        .collect();
    table(
        "flows-table",
        &[
            "destination",
            "type",
            "approval",
            "URL in force",
            "purposes in force",
            "awaiting review",
            "proposed by",
            "decided by",
        ],
        &rows,
        "No destination: no data leaves through Sightline's server side.",
    )
}

/// The lineage diagram (inline SVG, styled by classes: no inline style) and its edge table,
/// as the report draws them; the console shows the same.
pub fn lineage_html(graph: &Graph) -> String {
    lineage(graph)
}

fn lineage(graph: &Graph) -> String {
    if graph.nodes.is_empty() && graph.edges.is_empty() {
        return "<p class=\"empty\">No lineage evidence yet: store events, destinations or \
                scans and the graph follows.</p>\n"
            .to_owned();
    }
    let lay = layout(graph);
    let mut svg = format!(
        "<svg id=\"lineage-diagram\" viewBox=\"0 0 {w:.0} {h:.0}\" width=\"{w:.0}\" \
         height=\"{h:.0}\" role=\"img\" aria-label=\"Data lineage: {} nodes, {} edges\">\n\
         <defs>{}{}</defs>\n",
        graph.nodes.len(),
        graph.edges.len(),
        marker("arrow", "#7b8190"),
        marker("arrow-pii", "#9b1c1c"),
        w = lay.width,
        h = lay.height,
    );
    for (title, x) in &lay.headings {
        svg.push_str(&format!(
            "<text class=\"stage\" x=\"{x:.1}\" y=\"22\">{}</text>\n",
            escape_html(title)
        ));
    }
    let at: BTreeMap<&str, (f64, f64)> = lay
        .nodes
        .iter()
        .map(|(n, x, y)| (n.id.as_str(), (*x, *y)))
        .collect();
    let label = |id: &str| graph.node(id).map_or(id, |n| n.label.as_str()).to_owned();
    // Edges first so that nodes are drawn over their ends.
    for edge in &graph.edges {
        let (Some(&(fx, fy)), Some(&(tx, ty))) =
            (at.get(edge.from.as_str()), at.get(edge.to.as_str()))
        else {
            continue;
        };
        let (x1, y1) = (fx + NODE_W, fy + NODE_H / 2.0);
        let (x2, y2) = (tx - 2.0, ty + NODE_H / 2.0);
        let bend = ((x2 - x1).abs() / 2.0).max(30.0);
        let pii = !edge.pii().is_empty();
        svg.push_str(&format!(
            "<g class=\"edge\" data-from=\"{}\" data-to=\"{}\" data-pii=\"{pii}\">\
             <title>{} → {}: {}</title>\
             <path d=\"M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}\" \
             marker-end=\"url(#{})\"/></g>\n",
            escape_html(&edge.from),
            escape_html(&edge.to),
            escape_html(&label(&edge.from)),
            escape_html(&label(&edge.to)),
            escape_html(&edge_summary(edge)),
            x1 + bend,
            x2 - bend,
            if pii { "arrow-pii" } else { "arrow" },
        ));
    }
    for (node, x, y) in &lay.nodes {
        let text: String = if node.label.chars().count() > 25 {
            node.label.chars().take(24).chain(['…']).collect()
        } else {
            node.label.clone()
        };
        svg.push_str(&format!(
            "<g class=\"node\" data-kind=\"{}\" data-id=\"{}\"><title>{} ({})</title>\
             <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"7\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>\n",
            node.kind.name(),
            escape_html(&node.id),
            escape_html(&node.label),
            node.kind.name().replace('_', " "),
            x + 8.0,
            y + NODE_H / 2.0 + 4.0,
            escape_html(&text),
        ));
    }
    svg.push_str("</svg>\n");

    let rows: Vec<String> = graph
        .edges
        .iter()
        .map(|e| {
            let shown = 20;
            let mut fields = list(e.fields.iter().take(shown).map(|f| &f.name));
            let more = e.fields.len().saturating_sub(shown) + e.fields_truncated;
            if more > 0 {
                fields.push_str(&format!(" <span class=\"hint\">and {more} more</span>"));
            }
            tr(
                false,
                &[
                    td(&escape_html(&label(&e.from))),
                    td(&escape_html(&label(&e.to))),
                    td(&fields),
                    td(&list(e.pii().iter().map(|c| c.name()))),
                    td(&list(&e.purposes)),
                    td(&opt(e.owner.as_deref())),
                    td(&escape_html(&e.evidence.summary())),
                ],
            )
        })
        .collect();
    format!(
        "<p class=\"legend\">Columns follow the data: where it comes from, how it is processed, \
         where it goes. Red edges carry personal data; hover an edge or node for details.</p>\n\
         {svg}<h3>Edges</h3>\n{}",
        table(
            "lineage-edges",
            &["from", "to", "fields", "PII", "purposes", "owner", "evidence"],
            &rows,
            "No edges.",
        )
    )
}

fn marker(id: &str, colour: &str) -> String {
    format!(
        "<marker id=\"{id}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{colour}\"/></marker>"
    )
}

// ---- trends ----

const CHART_W: f64 = 360.0;
const CHART_H: f64 = 170.0;
const PAD_LEFT: f64 = 64.0;
const PAD_RIGHT: f64 = 14.0;
const PAD_TOP: f64 = 14.0;
const PAD_BOTTOM: f64 = 28.0;

/// One metric over the days: axes, min and max, the first and last day, a line through each
/// run of consecutive measured days (a gap where a day has none) and a marker per measured
/// day.
fn chart(metric: &Metric, days: &[DayMetrics]) -> String {
    let values: Vec<Option<f64>> = days.iter().map(|d| finite((metric.value)(d))).collect();
    let measured: Vec<f64> = values.iter().flatten().copied().collect();
    let (left, right) = (PAD_LEFT, CHART_W - PAD_RIGHT);
    let (top, bottom) = (PAD_TOP, CHART_H - PAD_BOTTOM);
    let mut svg = format!(
        "<svg class=\"chart\" data-metric=\"{}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" \
         aria-label=\"{} over {} days\">\n\
         <line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\"/>\
         <line class=\"axis\" x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\"/>\n",
        metric.name,
        metric.title,
        days.len()
    );
    let (Some(min), Some(max)) = (
        measured.iter().copied().reduce(f64::min),
        measured.iter().copied().reduce(f64::max),
    ) else {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">not measured yet</text>\n</svg>",
            (left + right) / 2.0,
            (top + bottom) / 2.0
        ));
        return svg;
    };
    let span = max - min;
    // Points sit a little inside the axes so that the first marker does not hide the axis.
    let (first_x, last_x) = (left + 8.0, right - 4.0);
    let x = |i: usize| {
        if values.len() < 2 {
            (left + right) / 2.0
        } else {
            first_x + (last_x - first_x) * i as f64 / (values.len() - 1) as f64
        }
    };
    let y = |v: f64| {
        let t = (v - min) / span;
        // A flat series (or one too wide for f64) sits mid-height.
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.5
        };
        bottom - (bottom - top) * t
    };
    // The max label, and the min label when it differs (a flat series has one).
    let extremes = if span > 0.0 {
        vec![max, min]
    } else {
        vec![max]
    };
    for v in extremes {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            left - 4.0,
            y(v) + 4.0,
            number(metric.unit, v),
        ));
    }
    // Day labels under the ends of the axis (under the middle for a single day).
    let day_labels: Vec<(f64, &str, &str)> = match days {
        [] => Vec::new(),
        [only] => vec![(x(0), "middle", only.day.as_str())],
        [first, .., last] => vec![
            (left, "start", first.day.as_str()),
            (right, "end", last.day.as_str()),
        ],
    };
    for (at, anchor, day) in day_labels {
        svg.push_str(&format!(
            "<text x=\"{at:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>\n",
            CHART_H - 8.0,
            escape_html(day)
        ));
    }
    let indexed: Vec<(usize, Option<f64>)> = values.iter().copied().enumerate().collect();
    for run in indexed.split(|(_, v)| v.is_none()).filter(|r| r.len() > 1) {
        let points: Vec<String> = run
            .iter()
            .filter_map(|&(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        svg.push_str(&format!("<polyline points=\"{}\"/>\n", points.join(" ")));
    }
    for (i, (day, v)) in days.iter().zip(&values).enumerate() {
        if let Some(v) = v {
            svg.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{}: {}</title></circle>\n",
                x(i),
                y(*v),
                escape_html(&day.day),
                number(metric.unit, *v)
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A metric as of the latest day that measured it (a day without events has no consent
/// quality, a day without conversions no attribution variance).
fn latest_measured<'a>(m: &Metric, days: &'a [DayMetrics]) -> Option<(&'a DayMetrics, f64)> {
    days.iter()
        .rev()
        .find_map(|d| Some((d, finite((m.value)(d))?)))
}

fn trends(input: &ReportInput) -> String {
    let mut out = String::from("<div class=\"charts\">\n");
    for m in &METRICS {
        let now = latest_measured(m, &input.days)
            .map_or_else(|| "—".to_owned(), |(_, v)| number(m.unit, v));
        out.push_str(&format!(
            "<figure><figcaption>{} <span>latest {now} · {}</span></figcaption>\n{}\n</figure>\n",
            m.title,
            m.help,
            chart(m, &input.days)
        ));
    }
    out.push_str("</div>\n<h3>Per scan</h3>\n");
    let rate = |v: Option<f64>, unit| finite(v).map_or_else(|| NA.to_owned(), |v| number(unit, v));
    let rows: Vec<String> = input
        .scans
        .iter()
        .map(|s| {
            tr(
                false,
                &[
                    td_num(s.scan_id),
                    td(&escape_html(&s.journey)),
                    td(&escape_html(&s.day)),
                    td_num(s.tag_count),
                    td_num(s.vendor_count),
                    td_num(s.undocumented_vendors),
                    td_num(s.tags_before_consent),
                    td_num(rate(s.blocked_script_rate, Unit::Percent)),
                    td_num(rate(s.third_party_latency_ms, Unit::Ms)),
                ],
            )
        })
        .collect();
    out.push_str(&table(
        "scans-table",
        &[
            "scan",
            "journey",
            "day",
            "scripts",
            "vendors",
            "undocumented",
            "before consent",
            "blocked rate",
            "latency cost",
        ],
        &rows,
        "No scans stored yet.",
    ));
    out
}

#[cfg(test)]
mod tests;

use super::*;
use crate::backlog::{Acceptance, FindingKey};
use crate::flow::{Flow, FlowConfig, FlowStatus};
use crate::lineage::{Edge, EdgeEvidence, Field, PiiClass};
use crate::tag::{Classification, Environment, StepRef, TagSpec};
use crate::vendor::{DpaStatus, RiskRating};
use proptest::prelude::*;

fn day(text: &str) -> chrono::NaiveDate {
    crate::parse_day("", text).unwrap()
}

fn tag(vendor: &str, status: TagStatus) -> Tag {
    Tag {
        spec: TagSpec {
            vendor: vendor.into(),
            purpose: "retargeting".into(),
            owner: "growth".into(),
            steps: vec![StepRef {
                journey: "checkout".into(),
                step: "cart".into(),
            }],
            data_collected: vec!["email".into()],
            consent_purpose: Some("advertising".into()),
            classification: Classification::Optional,
            environment: Environment::Production,
            review_date: Some("2026-06-01".into()),
        },
        status,
        revision: 1,
        proposed_by: "mia".into(),
        decided_by: None,
    }
}

fn item(
    severity: Severity,
    owner: Option<&str>,
    status: BacklogStatus,
    deadline: Option<&str>,
) -> BacklogItem {
    BacklogItem {
        journey: "checkout".into(),
        finding: FindingKey {
            kind: "pre_consent".into(),
            scenario: Some("reject_all".into()),
            step: Some("cart".into()),
            vendor: "Meta".into(),
        },
        severity,
        message: "Meta fires before consent".into(),
        evidence: Some("https://connect.facebook.net/en_US/fbevents.js".into()),
        owner: owner.map(Into::into),
        deadline: deadline.map(Into::into),
        impact: None,
        status,
        acceptance: None,
        first_seen_scan: 1,
        last_seen_scan: 1,
        last_checked_scan: 1,
        history: Vec::new(),
    }
}

fn vendor(name: &str, rating: RiskRating, last_review: Option<&str>) -> VendorRisk {
    VendorRisk {
        vendor: name.into(),
        data_shared: vec!["email".into()],
        purposes: vec!["advertising".into()],
        dpa: DpaStatus::Signed,
        sub_processors: ["TikTok".to_string()].into(),
        last_review: last_review.map(Into::into),
        review_every_days: 365,
        rating,
        notes: None,
    }
}

fn day_metrics(d: &str, vendors: Option<usize>, quality: Option<f64>) -> DayMetrics {
    DayMetrics {
        day: d.into(),
        scans: 1,
        journeys: 1,
        tag_count: vendors.map(|v| v + 2),
        vendor_count: vendors,
        undocumented_vendors: vendors.map(|_| 1),
        tags_before_consent: vendors.map(|_| 2),
        blocked_script_rate: vendors.map(|_| 0.5),
        third_party_latency_ms: vendors.map(|v| 100.0 * v as f64),
        vendor_reduction: vendors.map(|v| 10 - v as i64),
        events: 10,
        with_consent_signal: 9,
        consent_quality: quality,
        attribution_variance: quality.map(|q| q / 10.0),
    }
}

fn scan(id: i64) -> ScanMetrics {
    ScanMetrics {
        scan_id: id,
        journey: "checkout".into(),
        at: 0,
        day: "2026-12-01".into(),
        tag_count: 7,
        vendor_count: 5,
        undocumented_vendors: 1,
        tags_before_consent: 2,
        blocked_script_rate: Some(0.25),
        third_party_latency_ms: None,
        vendor_reduction: 0,
        tags: Vec::new(),
        vendors: Vec::new(),
        undocumented: Vec::new(),
        before_consent: Vec::new(),
    }
}

fn node(id: &str, kind: NodeKind) -> Node {
    Node {
        id: id.into(),
        kind,
        label: id.split(':').nth(1).unwrap_or(id).into(),
    }
}

fn edge(from: &str, to: &str, pii: bool) -> Edge {
    Edge {
        from: from.into(),
        to: to.into(),
        fields: vec![Field {
            name: if pii {
                "traits.email"
            } else {
                "properties.total"
            }
            .into(),
            pii: if pii {
                [PiiClass::Email].into()
            } else {
                Default::default()
            },
        }],
        fields_truncated: 0,
        purposes: vec!["analytics".into()],
        owner: Some("data team".into()),
        evidence: EdgeEvidence {
            events: 3,
            ..Default::default()
        },
    }
}

fn graph() -> Graph {
    Graph {
        nodes: vec![
            node("consent:analytics", NodeKind::ConsentGate),
            node("destination:warehouse", NodeKind::Destination),
            node("site:shop.example", NodeKind::Site),
            node("source:web", NodeKind::Source),
            node("step:collection", NodeKind::Collection),
            node("step:identity", NodeKind::Identity),
            node("vendor:Meta", NodeKind::Vendor),
        ],
        edges: vec![
            edge("source:web", "step:collection", true),
            edge("step:collection", "step:identity", true),
            edge("step:identity", "consent:analytics", false),
            edge("consent:analytics", "destination:warehouse", false),
            edge("site:shop.example", "vendor:Meta", true),
        ],
    }
}

fn empty() -> ReportInput {
    ReportInput {
        generated_at: "2026-12-03T10:00:00Z".into(),
        today: day("2026-12-03"),
        tags: Vec::new(),
        backlog: Vec::new(),
        vendors: Vec::new(),
        scans: Vec::new(),
        days: Vec::new(),
        lineage: Graph::default(),
        flows: Vec::new(),
    }
}

fn flow(destination: &str, status: FlowStatus, approved: bool) -> Flow {
    let config = FlowConfig {
        kind: "webhook".into(),
        url: format!("https://{destination}.example/hook"),
        purposes: vec!["analytics".into()],
        event_types: Vec::new(),
        event_names: Vec::new(),
        transform: serde_json::Value::Null,
        settings: serde_json::Value::Null,
        batch_size: 100,
    };
    Flow {
        destination: destination.into(),
        status,
        revision: 1,
        approved: approved.then(|| config.clone()),
        changes: if status == FlowStatus::Pending && approved {
            vec!["url".into()]
        } else {
            Vec::new()
        },
        config,
        proposed_by: "mia".into(),
        decided_by: (status != FlowStatus::Pending).then(|| "sam".into()),
    }
}

fn full() -> ReportInput {
    ReportInput {
        tags: vec![
            (1, tag("Meta", TagStatus::Approved)),
            (2, tag("TikTok", TagStatus::Proposed)),
            (3, tag("Hotjar", TagStatus::Retired)),
        ],
        backlog: vec![
            (
                10,
                item(Severity::Low, Some("alice"), BacklogStatus::Open, None),
            ),
            (
                11,
                item(
                    Severity::Critical,
                    Some("alice"),
                    BacklogStatus::Open,
                    Some("2026-11-01"),
                ),
            ),
        ],
        vendors: vec![
            vendor("Hotjar", RiskRating::Low, Some("2026-10-01")),
            vendor("Meta", RiskRating::High, None),
        ],
        scans: vec![scan(1), scan(2)],
        days: vec![
            day_metrics("2026-12-01", Some(6), Some(0.8)),
            day_metrics("2026-12-02", Some(5), Some(0.85)),
            day_metrics("2026-12-03", Some(4), Some(0.9)),
        ],
        lineage: graph(),
        flows: vec![
            flow("crm", FlowStatus::Approved, true),
            flow("ads", FlowStatus::Pending, false),
            flow("bi", FlowStatus::Pending, true),
            flow("old", FlowStatus::Rejected, false),
        ],
        ..empty()
    }
}

#[test]
fn the_flows_table_shows_each_destinations_approval_waiting_first() {
    let html = render(&full());
    let start = html
        .find("<table id=\"flows-table\">")
        .expect("the flows table");
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    let order: Vec<&str> = table
        .match_indices("data-destination=\"")
        .map(|(at, m)| {
            let rest = &table[at + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(order, ["ads", "bi", "crm", "old"]);
    for (class, text) in [
        ("flow-pending", "pending approval"),
        ("flow-changing", "approved; a change awaits approval"),
        ("flow-approved", "approved"),
        ("flow-rejected", "rejected"),
    ] {
        assert!(
            table.contains(&format!("<span class=\"badge {class}\">{text}</span>")),
            "{class}: {table}"
        );
    }
    // A change waiting shows what it changes; nothing is in force for a new proposal.
    let bi = &table[table.find("data-destination=\"bi\"").unwrap()..];
    assert!(
        bi[..bi.find("</tr>").unwrap()].contains("<td>url</td>"),
        "{bi}"
    );
    let ads = &table[table.find("data-destination=\"ads\"").unwrap()..];
    assert!(
        !ads[..ads.find("</tr>").unwrap()].contains("https://ads.example"),
        "{ads}"
    );
    let empty = render(&empty());
    assert!(empty.contains("<p class=\"empty\" id=\"flows-table\">"));
}

/// The chart element for a metric.
fn chart_of<'a>(html: &'a str, metric: &str) -> &'a str {
    let start = html
        .find(&format!("<svg class=\"chart\" data-metric=\"{metric}\""))
        .unwrap_or_else(|| panic!("no chart for {metric}"));
    let len = html[start..].find("</svg>").unwrap();
    &html[start..start + len]
}

/// The `<tr>` of an owner in the findings matrix.
fn matrix_row<'a>(html: &'a str, owner: &str) -> &'a str {
    let start = html
        .find(&format!("<tr data-owner=\"{owner}\">"))
        .unwrap_or_else(|| panic!("no row for {owner}"));
    let len = html[start..].find("</tr>").unwrap();
    &html[start..start + len]
}

fn assert_document(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(html.ends_with("</html>\n"));
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">"
    ));
    for id in [
        "summary",
        "findings",
        "inventory",
        "vendors",
        "lineage",
        "flows",
        "trends",
    ] {
        assert_eq!(
            html.matches(&format!("<section id=\"{id}\">")).count(),
            1,
            "{id}"
        );
    }
    assert_eq!(html.matches("<section").count(), 7);
    assert!(!html.contains("NaN") && !html.contains("null"));
}

#[test]
fn every_section_and_chart_is_there() {
    let html = render(&full());
    assert_document(&html);
    for m in &METRICS {
        let chart = chart_of(&html, m.name);
        assert_eq!(chart.matches("<polyline").count(), 1, "{}", m.name);
        assert_eq!(chart.matches("<circle").count(), 3, "{}", m.name);
        assert!(chart.contains(">2026-12-01<") && chart.contains(">2026-12-03<"));
    }
    for tile in [
        "tags",
        "open_findings",
        "overdue_findings",
        "vendor_count",
        "undocumented_vendors",
        "tags_before_consent",
        "consent_quality",
        "blocked_script_rate",
        "third_party_latency_ms",
        "vendor_reduction",
        "attribution_variance",
    ] {
        assert!(
            html.contains(&format!("class=\"tile\" data-metric=\"{tile}\""))
                || html.contains(&format!("class=\"tile alert\" data-metric=\"{tile}\"")),
            "{tile}"
        );
    }
    assert!(
        html.contains("<div class=\"value\">90.0%</div>"),
        "consent quality"
    );
    assert!(
        html.contains("<div class=\"value\">400 ms</div>"),
        "latency"
    );
    assert!(html.contains("1 approved · 1 proposed · 0 rejected · 1 retired"));
    for status in ["approved", "proposed", "retired"] {
        assert!(html.contains(&format!("badge status-{status}")));
    }
    // Header rows (matrix, open items, inventory, vendors, edges, flows, scans), the
    // matrix's total, then the open items, tags, vendors, edges, flows and scans.
    let rows = html.matches("<tr").count() - html.matches("<tr data-owner").count();
    assert_eq!(rows, 7 + 1 + 2 + 3 + 2 + 5 + 4 + 2);
}

#[test]
fn empty_input_renders_every_section() {
    let html = render(&empty());
    assert_document(&html);
    assert!(html.contains("No lineage evidence yet"));
    assert!(!html.contains("<svg id=\"lineage-diagram\""));
    for m in &METRICS {
        let chart = chart_of(&html, m.name);
        assert!(!chart.contains("<polyline") && !chart.contains("<circle"));
    }
    assert!(html.contains(
        "data-metric=\"consent_quality\"><div class=\"label\">Consent quality</div>\
         <div class=\"value\">—</div><div class=\"hint\">not measured</div>"
    ));
    assert!(
        !html.contains("data-metric=\"attribution_variance\"><div"),
        "no variance tile unless measured"
    );
}

#[test]
fn charts_break_at_gaps_and_show_a_single_day() {
    let mut input = empty();
    input.days = vec![day_metrics("2026-12-01", Some(3), None)];
    let html = render(&input);
    let one = chart_of(&html, "vendor_count");
    assert_eq!(one.matches("<circle").count(), 1);
    assert!(!one.contains("<polyline"));
    assert!(one.contains("text-anchor=\"middle\">2026-12-01<"));

    input.days = vec![
        day_metrics("2026-12-01", Some(3), None),
        day_metrics("2026-12-02", Some(4), None),
        day_metrics("2026-12-03", None, None),
        day_metrics("2026-12-04", Some(4), None),
    ];
    let html = render(&input);
    let gap = chart_of(&html, "vendor_count");
    assert_eq!(gap.matches("<polyline").count(), 1, "the run of two only");
    assert_eq!(gap.matches("<circle").count(), 3);
    assert!(
        gap.contains(">4<") && gap.contains(">3<"),
        "max and min labels"
    );
    let none = chart_of(&html, "consent_quality");
    assert!(none.contains("not measured yet"));
}

#[test]
fn summary_figures_are_those_of_the_latest_day_that_measured_them() {
    let mut input = empty();
    input.days = vec![
        day_metrics("2026-12-01", Some(3), Some(0.5)),
        day_metrics("2026-12-02", Some(4), None),
    ];
    let html = render(&input);
    let tile = |metric: &str| {
        let start = html
            .find(&format!("data-metric=\"{metric}\""))
            .unwrap_or_else(|| panic!("no tile {metric}"));
        &html[start..start + html[start..].find("</div></div>").unwrap()]
    };
    assert!(
        tile("vendor_count").contains(">4<"),
        "{}",
        tile("vendor_count")
    );
    let quality = tile("consent_quality");
    assert!(
        quality.contains(">50.0%<") && quality.contains("2026-12-01"),
        "{quality}"
    );
    assert!(html.contains("latest 50.0%"), "the chart's caption too");
}

#[test]
fn non_finite_numbers_are_not_printed() {
    let mut input = empty();
    let mut d = day_metrics("2026-12-01", Some(3), Some(f64::NAN));
    d.third_party_latency_ms = Some(f64::INFINITY);
    d.blocked_script_rate = Some(f64::NEG_INFINITY);
    let mut far = day_metrics("2026-12-02", Some(3), Some(f64::MAX));
    far.third_party_latency_ms = Some(-f64::MAX);
    input.days = vec![d, far];
    input.scans = vec![ScanMetrics {
        third_party_latency_ms: Some(f64::NAN),
        ..scan(1)
    }];
    let html = render(&input);
    assert_document(&html);
    assert!(!html.contains("inf"), "no infinity printed");
    assert!(html.contains("data-metric=\"third_party_latency_ms\""));
}

#[test]
fn findings_matrix_counts_unresolved_items_by_owner_and_severity() {
    let mut input = empty();
    input.backlog = vec![
        (
            1,
            item(Severity::Critical, Some("alice"), BacklogStatus::Open, None),
        ),
        (
            2,
            item(Severity::High, Some("alice"), BacklogStatus::Open, None),
        ),
        (
            3,
            item(Severity::Low, Some("alice"), BacklogStatus::Fixed, None),
        ),
        (
            4,
            BacklogItem {
                acceptance: Some(Acceptance {
                    reason: "vendor contract".into(),
                    expires: "2027-01-01".into(),
                    by: "ciso".into(),
                }),
                ..item(
                    Severity::Medium,
                    Some("bob"),
                    BacklogStatus::AcceptedRisk,
                    None,
                )
            },
        ),
        (
            5,
            item(
                Severity::Critical,
                None,
                BacklogStatus::Open,
                Some("2026-12-01"),
            ),
        ),
        (6, item(Severity::High, None, BacklogStatus::Verified, None)),
        (
            7,
            item(Severity::Low, Some("  "), BacklogStatus::Open, None),
        ),
    ];
    let html = render(&input);
    let counts = |owner: &str| -> Vec<String> {
        let row = matrix_row(&html, owner);
        SEVERITIES
            .iter()
            .map(|s| {
                let at = row
                    .find(&format!("data-severity=\"{}\">", s.name()))
                    .unwrap();
                let rest = &row[at..];
                rest[rest.find('>').unwrap() + 1..rest.find("</td>").unwrap()].to_owned()
            })
            .collect()
    };
    assert_eq!(counts("alice"), ["1", "1", "0", "0"]);
    assert_eq!(counts("bob"), ["0", "0", "1", "0"]);
    assert_eq!(counts("unassigned"), ["1", "0", "0", "1"]);
    let (a, b, u) = (
        html.find("data-owner=\"alice\"").unwrap(),
        html.find("data-owner=\"bob\"").unwrap(),
        html.find("data-owner=\"unassigned\"").unwrap(),
    );
    assert!(a < b && b < u, "owners by name, unassigned last");
    assert!(html.contains(
        "<div class=\"value\">5</div><div class=\"hint\">3 critical or high · 1 accepted risk"
    ));

    // Open items: critical first (the overdue one ahead), then high, medium, low.
    let open = &html[html.find("id=\"findings-open\"").unwrap()..];
    let order: Vec<usize> = ["5", "1", "2", "4", "7"]
        .iter()
        .map(|id| open.find(&format!("<td class=\"num\">{id}</td>")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert_eq!(
        open.matches("<span class=\"flag\">overdue</span>").count(),
        1
    );
    assert!(open.contains("until 2027-01-01"));
    assert!(
        !open.contains("<td class=\"num\">3</td>"),
        "fixed items are not open"
    );
}

#[test]
fn lineage_draws_every_node_and_edge() {
    let input = full();
    let html = render(&input);
    assert!(html.contains("<svg id=\"lineage-diagram\""));
    assert_eq!(
        html.matches("<g class=\"node\"").count(),
        input.lineage.nodes.len()
    );
    assert_eq!(
        html.matches("<g class=\"edge\"").count(),
        input.lineage.edges.len()
    );
    assert_eq!(html.matches("data-pii=\"true\"><title>").count(), 3);
    assert!(html.contains("data-kind=\"consent_gate\""));
    let table = &html[html.find("id=\"lineage-edges\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr>").count(), input.lineage.edges.len() + 1);
    assert!(table.contains("3 sampled events"));
    assert!(html.contains(
        "<title>web → collection: fields: traits.email; PII: email; purposes: analytics; \
         owner: data team; 3 sampled events</title>"
    ));

    // Columns in flow order: the source left of collection, left of the vendor.
    let x = |id: &str| -> f64 {
        let at = html.find(&format!("data-id=\"{id}\"")).unwrap();
        let rest = &html[at..];
        let rest = &rest[rest.find("x=\"").unwrap() + 3..];
        rest[..rest.find('"').unwrap()].parse().unwrap()
    };
    assert!(x("source:web") < x("step:collection"));
    assert!(x("step:identity") < x("consent:analytics"));
    assert!(x("consent:analytics") < x("vendor:Meta"));
    assert_eq!(x("source:web"), x("site:shop.example"));
}

#[test]
fn lineage_height_follows_the_tallest_column() {
    let mut input = empty();
    input.lineage.nodes = (0..30)
        .map(|i| node(&format!("vendor:v{i:02}"), NodeKind::Vendor))
        .chain([node("site:s", NodeKind::Site)])
        .collect();
    input.lineage.edges = (0..30)
        .map(|i| edge("site:s", &format!("vendor:v{i:02}"), false))
        .chain([edge("site:s", "vendor:missing", false)])
        .collect();
    let html = render(&input);
    let expected = TOP + 30.0 * ROW_PITCH + MARGIN;
    assert!(html.contains(&format!("height=\"{expected:.0}\"")));
    assert_eq!(html.matches("<g class=\"node\"").count(), 31);
    assert_eq!(
        html.matches("<g class=\"edge\"").count(),
        30,
        "a dangling edge is not drawn"
    );
}

#[test]
fn overdue_vendors_come_first() {
    let html = render(&full());
    let table = &html[html.find("id=\"vendors-table\"").unwrap()..];
    let meta = table.find("<td>Meta</td>").unwrap();
    let hotjar = table.find("<td>Hotjar</td>").unwrap();
    assert!(meta < hotjar, "never reviewed is overdue");
    assert!(table.contains("now (never reviewed)"));
    assert!(table.contains("2027-10-01"), "next review of Hotjar");
}

#[test]
fn output_is_deterministic() {
    let input = full();
    assert_eq!(render(&input), render(&input.clone()));
}

#[test]
fn names_match_the_serde_forms() {
    let serde_name = |v: serde_json::Value| v.as_str().unwrap().to_owned();
    for s in SEVERITIES {
        assert_eq!(s.name(), serde_name(serde_json::to_value(s).unwrap()));
    }
    for r in [
        RiskRating::Low,
        RiskRating::Medium,
        RiskRating::High,
        RiskRating::Critical,
    ] {
        assert_eq!(r.name(), serde_name(serde_json::to_value(r).unwrap()));
    }
    for d in [
        DpaStatus::Missing,
        DpaStatus::Requested,
        DpaStatus::Signed,
        DpaStatus::NotNeeded,
    ] {
        assert_eq!(d.name(), serde_name(serde_json::to_value(d).unwrap()));
    }
    for c in [
        Classification::Essential,
        Classification::Optional,
        Classification::Questionable,
    ] {
        assert_eq!(c.name(), serde_name(serde_json::to_value(c).unwrap()));
    }
    for k in [
        NodeKind::Source,
        NodeKind::Site,
        NodeKind::Collection,
        NodeKind::Identity,
        NodeKind::ConsentGate,
        NodeKind::Transform,
        NodeKind::Destination,
        NodeKind::Vendor,
    ] {
        assert_eq!(k.name(), serde_name(serde_json::to_value(k).unwrap()));
    }
}

#[test]
fn esc_escapes_markup_and_drops_controls() {
    assert_eq!(
        escape_html("<a href=\"x\">'&'</a>\u{0}\u{7}\n"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\n"
    );
    assert_eq!(short("abcdef", 4), "<span title=\"abcdef\">abc…</span>");
    assert_eq!(short("a<b", 4), "a&lt;b");
}

/// The markup's tags with attribute values blanked: since data cannot hold `<`, `>` or
/// `"` unescaped, every `<…>` is the renderer's own and every quoted value ends at its `"`.
fn tag_skeletons(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let tag = &rest[start..=start + len];
        let mut skeleton = String::new();
        for (i, part) in tag.split('"').enumerate() {
            // Even parts are outside quotes.
            if i % 2 == 0 {
                skeleton.push_str(part);
            }
        }
        out.push(skeleton);
        rest = &rest[start + len + 1..];
    }
    out
}

fn hostile() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "<script>alert(1)</script>",
        "\"onload=\"alert(1)",
        "' onerror='alert(1)",
        "<img src=https://evil.example/x.png>",
        "\"><a href=\"https://evil.example/\">",
        "</section><section id=\"summary\">",
        "javascript:alert(1)",
        "&lt;",
    ]);
    (prefix, any::<String>()).prop_map(|(p, s)| format!("{p}{s}"))
}

proptest! {
    /// Whatever the data holds, it never becomes markup: no script, no event handler, no
    /// element or attribute the renderer did not write, no reference outside the document.
    #[test]
    fn untrusted_text_never_becomes_markup(
        texts in prop::collection::vec(hostile(), 12),
        number in any::<f64>(),
    ) {
        let t = |i: usize| texts[i].clone();
        let mut input = full();
        input.generated_at = t(0);
        input.tags[0].1.spec.vendor = t(1);
        input.tags[0].1.spec.owner = t(2);
        input.tags[1].1.spec.purpose = t(3);
        input.tags[1].1.spec.steps[0].step = t(4);
        input.backlog[0].1.message = t(5);
        input.backlog[0].1.owner = Some(t(6));
        input.backlog[1].1.evidence = Some(t(7));
        input.backlog[1].1.finding.vendor = t(8);
        input.vendors[0].vendor = t(9);
        input.vendors[1].sub_processors.insert(t(10));
        input.lineage.nodes[0].label = t(11);
        input.lineage.nodes[1].id = t(0);
        input.lineage.edges[3].to = t(0);
        input.lineage.edges[0].owner = Some(t(1));
        input.lineage.edges[0].fields[0].name = t(2);
        input.scans[0].journey = t(3);
        input.days[1].day = t(4);
        input.days[1].consent_quality = Some(number);
        input.days[2].third_party_latency_ms = Some(number);
        input.flows[0].destination = t(5);
        input.flows[1].proposed_by = t(6);
        input.flows[1].changes = vec![t(7)];

        let html = render(&input);
        for bad in ["<script", "<img", "\"onload=", "' onerror=", "href=\"https", "</section><section"] {
            prop_assert!(!html.contains(bad), "{bad}");
        }
        prop_assert_eq!(html.matches("<section").count(), 7);
        for tag in tag_skeletons(&html) {
            let lower = tag.to_lowercase();
            prop_assert!(!lower.starts_with("<script"), "{}", tag);
            prop_assert!(!lower.contains("src="), "{}", tag);
            prop_assert!(
                !lower.split_whitespace().any(|a| a.starts_with("on")),
                "event handler in {}",
                tag
            );
        }
        for (at, _) in html.match_indices("href=\"") {
            prop_assert!(html[at + 6..].starts_with('#'), "href outside the document");
        }
    }
}

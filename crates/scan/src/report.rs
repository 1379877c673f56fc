//! The scan report: `report.json` (schema in docs/report.md), the terminal summary and the
//! `--fail-on` decision.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::evidence::{
    CookieRecord, PendingRequest, RequestRecord, Scenario, ScenarioEvidence, StepTiming,
    StorageRecord,
};
use crate::findings::{Finding, Severity};
use crate::vendor::Category;
use crate::ScanError;

/// Bumped when a field changes meaning or disappears; additions keep the version.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub journey: String,
    /// True when any scenario did not run to its end.
    pub incomplete: bool,
    pub duration_ms: u64,
    pub scenarios: Vec<ScenarioReport>,
    pub findings: Vec<Finding>,
    /// A crawl's findings grouped by page template (`/products/*`): one item per kind,
    /// scenario, vendor and template, with how many pages have it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateFindings>,
    /// The screenshots' PNGs by their path relative to the report, written by
    /// [`Report::write_json`]; not part of the JSON.
    #[serde(skip)]
    pub screenshot_files: Vec<(String, Vec<u8>)>,
}

/// One finding as it recurs over the pages of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateFindings {
    pub template: String,
    pub kind: crate::findings::FindingKind,
    pub severity: crate::findings::Severity,
    pub scenario: Option<Scenario>,
    pub vendor: String,
    /// Pages of the template with the finding.
    pub pages: usize,
    /// The first few of them, by step name.
    pub examples: Vec<String>,
}

/// How many pages of a template a report names.
const EXAMPLES: usize = 3;

/// Groups `findings` by the template of their step's page (`templates`: step name →
/// template); journey-wide findings and steps without a template are left out. Most pages
/// first.
pub fn by_template(
    findings: &[Finding],
    templates: &std::collections::HashMap<String, String>,
) -> Vec<TemplateFindings> {
    let mut groups: Vec<TemplateFindings> = Vec::new();
    for f in findings {
        let Some(template) = f.step.as_ref().and_then(|step| templates.get(step)) else {
            continue;
        };
        let step = f.step.clone().unwrap_or_default();
        match groups.iter_mut().find(|g| {
            g.template == *template
                && g.kind == f.kind
                && g.scenario == f.scenario
                && g.vendor == f.vendor
        }) {
            Some(group) => {
                group.pages += 1;
                group.severity = group.severity.max(f.severity);
                if group.examples.len() < EXAMPLES {
                    group.examples.push(step);
                }
            }
            None => groups.push(TemplateFindings {
                template: template.clone(),
                kind: f.kind,
                severity: f.severity,
                scenario: f.scenario.clone(),
                vendor: f.vendor.clone(),
                pages: 1,
                examples: vec![step],
            }),
        }
    }
    groups.sort_by(|a, b| b.pages.cmp(&a.pages).then(b.severity.cmp(&a.severity)));
    groups
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: Scenario,
    /// Why the scenario stopped early; `null` when it completed.
    pub incomplete: Option<String>,
    /// The consent banner operated through its CMP: which CMP, how, and whether the
    /// choice was made (accept-all and reject-all of a journey without selectors for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<crate::cmp::Banner>,
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    pub url: String,
    pub request_count: usize,
    pub third_party_count: usize,
    pub bytes: u64,
    pub vendors: Vec<VendorSummary>,
    pub timing: StepTiming,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Requests still in flight when the step ended (a subresource that never answered, a
    /// page whose load event never fired): the step was scanned without them. Absent when
    /// none, and in reports written before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingRequest>,
    /// `screenshots/SCENARIO/NN-STEP.png`, relative to report.json; absent when none was
    /// captured (screenshots off, or the browser was gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<String>,
    pub requests: Vec<RequestRecord>,
    pub cookies: Vec<CookieRecord>,
    /// Reports written before localStorage was recorded have none.
    #[serde(default)]
    pub local_storage: Vec<StorageRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VendorSummary {
    pub name: String,
    pub category: Category,
    pub requests: usize,
}

/// The largest screenshot file a report brings in: a viewport's PNG is well under it.
pub const MAX_SCREENSHOT_BYTES: u64 = 16 << 20;

/// Whether `path` has the shape [`screenshot_path`] gives: `screenshots/DIR/FILE.png` of
/// plain characters, so that it can name nothing outside the report's directory.
pub fn is_screenshot_path(path: &str) -> bool {
    let plain = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    match path.split('/').collect::<Vec<_>>()[..] {
        ["screenshots", scenario, file] => {
            plain(scenario) && file.strip_suffix(".png").is_some_and(plain)
        }
        _ => false,
    }
}

/// Where a step's screenshot goes: one directory per scenario, files numbered by step so two
/// step names that read alike on disk cannot collide.
#[cfg_attr(not(feature = "browser"), allow(dead_code))] // only scans make reports
fn screenshot_path(scenario: &Scenario, index: usize, step: &str) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!(
        "screenshots/{}/{:02}-{}.png",
        safe(&scenario.name()),
        index + 1,
        safe(step)
    )
}

impl Report {
    #[cfg_attr(not(feature = "browser"), allow(dead_code))] // only scans make reports
    pub(crate) fn new(
        journey: &str,
        scenarios: Vec<ScenarioEvidence>,
        findings: Vec<Finding>,
        duration_ms: u64,
    ) -> Report {
        let mut screenshot_files = Vec::new();
        let scenarios: Vec<ScenarioReport> = scenarios
            .into_iter()
            .map(|sc| ScenarioReport {
                incomplete: sc.incomplete,
                banner: sc.banner,
                steps: sc
                    .steps
                    .into_iter()
                    .enumerate()
                    .map(|(i, st)| {
                        let screenshot = st.screenshot.map(|png| {
                            let path = screenshot_path(&sc.scenario, i, &st.name);
                            screenshot_files.push((path.clone(), png));
                            path
                        });
                        let mut vendors: BTreeMap<String, VendorSummary> = BTreeMap::new();
                        for r in st.requests.iter().filter(|r| r.third_party) {
                            let name = r.vendor.clone().unwrap_or_else(|| r.host());
                            vendors
                                .entry(name.clone())
                                .or_insert(VendorSummary {
                                    name,
                                    category: r.category.unwrap_or(Category::Unknown),
                                    requests: 0,
                                })
                                .requests += 1;
                        }
                        StepReport {
                            request_count: st.requests.len(),
                            third_party_count: st.requests.iter().filter(|r| r.third_party).count(),
                            bytes: st.requests.iter().map(|r| r.bytes).sum(),
                            vendors: vendors.into_values().collect(),
                            name: st.name,
                            url: st.url,
                            timing: st.timing,
                            error: st.error,
                            pending: st.pending,
                            screenshot,
                            requests: st.requests,
                            cookies: st.cookies,
                            local_storage: st.local_storage,
                        }
                    })
                    .collect(),
                name: sc.scenario,
            })
            .collect();
        Report {
            schema_version: SCHEMA_VERSION,
            journey: journey.to_owned(),
            incomplete: scenarios.iter().any(|s| s.incomplete.is_some()),
            duration_ms,
            scenarios,
            findings,
            screenshot_files,
            templates: Vec::new(),
        }
    }

    /// Writes `DIR/report.json` and the screenshots beside it (`DIR/screenshots/…`),
    /// creating DIR; returns the report's path.
    pub fn write_json(&self, dir: &Path) -> Result<PathBuf, ScanError> {
        let io = |e: std::io::Error| ScanError::Output {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        for (relative, png) in &self.screenshot_files {
            let file = dir.join(relative);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&file, png).map_err(io)?;
        }
        let path = dir.join("report.json");
        let json = serde_json::to_vec_pretty(self).map_err(|e| ScanError::Output {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, json).map_err(io)?;
        Ok(path)
    }

    /// Reads `DIR/report.json` as [`Report::read_json`] does, with the screenshots its steps
    /// name that are beside it (those missing are left out: a report copied without them).
    /// A step may only name a PNG under `screenshots/`, as [`Report::write_json`] writes.
    pub fn read_with_screenshots(path: &Path) -> Result<Report, ScanError> {
        let mut report = Report::read_json(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let named: std::collections::BTreeSet<&str> = report
            .scenarios
            .iter()
            .flat_map(|sc| &sc.steps)
            .filter_map(|st| st.screenshot.as_deref())
            .collect();
        let mut files = Vec::with_capacity(named.len());
        for relative in named {
            if !is_screenshot_path(relative) {
                return Err(ScanError::Input {
                    path: path.display().to_string(),
                    message: format!(
                        "a step's screenshot {relative:?} is not a PNG under screenshots/ beside the report"
                    ),
                });
            }
            let file = dir.join(relative);
            let too_large = |len: u64| ScanError::Input {
                path: file.display().to_string(),
                message: format!(
                    "a screenshot of {len} bytes is over the limit of {MAX_SCREENSHOT_BYTES}"
                ),
            };
            match std::fs::metadata(&file) {
                Ok(meta) if meta.len() > MAX_SCREENSHOT_BYTES => return Err(too_large(meta.len())),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(ScanError::Input {
                        path: file.display().to_string(),
                        message: e.to_string(),
                    })
                }
            }
            let png = std::fs::read(&file).map_err(|e| ScanError::Input {
                path: file.display().to_string(),
                message: e.to_string(),
            })?;
            files.push((relative.to_string(), png));
        }
        report.screenshot_files = files;
        Ok(report)
    }

    /// Whether any finding is at or above `threshold` (the CLI then exits 3).
    pub fn reaches(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= threshold)
    }

    /// A readable summary for the terminal.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "journey {:?}", self.journey);
        for sc in &self.scenarios {
            let mut state = match &sc.incomplete {
                Some(reason) => format!("  INCOMPLETE: {reason}"),
                None => String::new(),
            };
            if let Some(banner) = &sc.banner {
                let cmp = banner.cmp.as_deref().unwrap_or("no known CMP");
                match (&banner.method, banner.made) {
                    (Some(method), true) => {
                        let _ = write!(state, "  (consent through {cmp}, by its {method})");
                    }
                    _ => {
                        let _ = write!(state, "  (consent NOT MADE: {cmp})");
                    }
                }
            }
            let _ = writeln!(out, "  scenario {}{state}", sc.name);
            for st in &sc.steps {
                let vendors: Vec<&str> = st.vendors.iter().map(|v| v.name.as_str()).collect();
                let blocked = match st.timing.load_ms_third_parties_blocked {
                    Some(ms) => format!(" ({ms} ms without third parties)"),
                    None => String::new(),
                };
                let _ = writeln!(
                    out,
                    "    {:<16} {:>3} requests, {:>3} third-party, {:>8} bytes, load {} ms{blocked}; vendors: {}",
                    st.name,
                    st.request_count,
                    st.third_party_count,
                    st.bytes,
                    st.timing.load_ms,
                    if vendors.is_empty() { "none".to_owned() } else { vendors.join(", ") }
                );
                for p in &st.pending {
                    let vendor = match &p.vendor {
                        Some(v) => format!(" ({v})"),
                        None => String::new(),
                    };
                    let _ = writeln!(out, "      still pending: {}{vendor}", p.url);
                }
            }
        }
        let mut counts: BTreeMap<Severity, usize> = BTreeMap::new();
        for f in &self.findings {
            *counts.entry(f.severity).or_default() += 1;
        }
        let tally: Vec<String> = counts
            .iter()
            .rev()
            .map(|(s, n)| format!("{n} {}", s.name()))
            .collect();
        let _ = writeln!(
            out,
            "{} finding(s){}",
            self.findings.len(),
            if tally.is_empty() {
                String::new()
            } else {
                format!(": {}", tally.join(", "))
            }
        );
        for g in &self.templates {
            let scenario = g
                .scenario
                .as_ref()
                .map_or("journey".to_owned(), |s| s.to_string());
            let _ = writeln!(
                out,
                "  [{:<8}] {:<22} {:<28} {} on {} page(s) of {} (e.g. {})",
                g.severity.name(),
                g.kind.name(),
                scenario,
                g.vendor,
                g.pages,
                g.template,
                g.examples.join(", ")
            );
        }
        let mut sorted: Vec<&Finding> = self
            .findings
            .iter()
            // A crawl's page findings are in their templates' lines above.
            .filter(|f| self.templates.is_empty() || f.step.is_none())
            .collect();
        sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for f in sorted {
            let place = match (&f.scenario, &f.step) {
                (Some(sc), Some(st)) => format!("{sc} / {st}"),
                _ => "journey".to_owned(),
            };
            let _ = writeln!(
                out,
                "  [{:<8}] {:<22} {:<28} {}",
                f.severity.name(),
                f.kind.name(),
                place,
                f.message
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::StepEvidence;
    use crate::findings::{FindingEvidence, FindingKind};

    fn report() -> Report {
        let ga = RequestRecord {
            url: "https://www.google-analytics.com/g/collect".into(),
            third_party: true,
            vendor: Some("Google Analytics".into()),
            category: Some(Category::Analytics),
            bytes: 100,
            ..Default::default()
        };
        let page = RequestRecord {
            url: "http://www.shop.test/".into(),
            bytes: 1000,
            ..Default::default()
        };
        Report::new(
            "shop",
            vec![ScenarioEvidence {
                scenario: Scenario::NoInteraction,
                steps: vec![StepEvidence {
                    name: "landing".into(),
                    url: "http://www.shop.test/".into(),
                    requests: vec![page, ga.clone(), ga],
                    ..Default::default()
                }],
                incomplete: Some("step \"signup\": selector \"#email\" did not appear".into()),
                banner: None,
            }],
            vec![Finding {
                kind: FindingKind::PreConsent,
                severity: Severity::High,
                scenario: Some(Scenario::NoInteraction),
                step: Some("landing".into()),
                vendor: "Google Analytics".into(),
                message: "Google Analytics loads before the visitor gave consent".into(),
                evidence: FindingEvidence::default(),
            }],
            1234,
        )
    }

    #[test]
    fn findings_are_grouped_by_their_pages_template() {
        let finding = |step: &str, vendor: &str, severity| Finding {
            kind: FindingKind::PreConsent,
            severity,
            scenario: Some(Scenario::NoInteraction),
            step: Some(step.into()),
            vendor: vendor.into(),
            message: String::new(),
            evidence: FindingEvidence::default(),
        };
        let findings = [
            finding("/p/1", "Meta", Severity::High),
            finding("/p/2", "Meta", Severity::Critical),
            finding("/p/3", "Meta", Severity::High),
            finding("/p/4", "Meta", Severity::High),
            finding("/", "Meta", Severity::High),
            finding("/p/1", "TikTok", Severity::High),
        ];
        let templates: std::collections::HashMap<String, String> = [
            ("/p/1", "/p/*"),
            ("/p/2", "/p/*"),
            ("/p/3", "/p/*"),
            ("/p/4", "/p/*"),
            ("/", "/"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .into();
        let groups = by_template(&findings, &templates);
        assert_eq!(groups.len(), 3);
        assert_eq!(
            (
                groups[0].template.as_str(),
                groups[0].vendor.as_str(),
                groups[0].pages
            ),
            ("/p/*", "Meta", 4)
        );
        assert_eq!(
            groups[0].severity,
            Severity::Critical,
            "the worst of its pages"
        );
        assert_eq!(groups[0].examples, ["/p/1", "/p/2", "/p/3"]);
        assert_eq!(groups[1].pages, 1);
    }

    #[test]
    fn step_counts_and_vendors() {
        let r = report();
        let st = &r.scenarios[0].steps[0];
        assert_eq!(
            (st.request_count, st.third_party_count, st.bytes),
            (3, 2, 1200)
        );
        assert_eq!(st.vendors[0].name, "Google Analytics");
        assert_eq!(st.vendors[0].requests, 2);
        assert!(r.incomplete);
    }

    #[test]
    fn fail_on_thresholds() {
        let r = report();
        assert!(r.reaches(Severity::Low));
        assert!(r.reaches(Severity::High));
        assert!(!r.reaches(Severity::Critical));
    }

    #[test]
    fn json_has_the_documented_shape_and_round_trips() {
        let r = report();
        let dir = tempfile::tempdir().unwrap();
        let path = r.write_json(&dir.path().join("out")).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["scenarios"][0]["name"], "no-interaction");
        assert_eq!(v["findings"][0]["kind"], "pre_consent");
        assert_eq!(v["findings"][0]["severity"], "high");
        assert_eq!(v["findings"][0]["scenario"], "no-interaction");
        assert_eq!(v["findings"][0]["step"], "landing");
        assert!(v["findings"][0]["evidence"]["initiator_chain"].is_array());
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn screenshot_paths_name_nothing_outside_the_report() {
        assert!(is_screenshot_path(
            "screenshots/custom-ads_off/01-lead-capture.png"
        ));
        for bad in [
            "screenshots/../01.png",
            "screenshots/a/../../etc.png",
            "/etc/passwd",
            "screenshots/a/b/c.png",
            "screenshots/a/.png",
            "screenshots/a/x.txt",
            "screenshots//x.png",
            "other/a/x.png",
        ] {
            assert!(!is_screenshot_path(bad), "{bad}");
        }
    }

    #[test]
    fn screenshots_are_written_beside_the_report() {
        let step = |name: &str| StepEvidence {
            name: name.into(),
            url: "http://www.shop.test/".into(),
            screenshot: Some(b"\x89PNG fake".to_vec()),
            ..Default::default()
        };
        let r = Report::new(
            "shop",
            vec![ScenarioEvidence {
                scenario: Scenario::Custom("ads_off".into()),
                steps: vec![step("lead capture"), step("lead/capture")],
                incomplete: None,
                banner: None,
            }],
            Vec::new(),
            1,
        );
        let paths: Vec<_> = r.scenarios[0]
            .steps
            .iter()
            .map(|s| s.screenshot.clone().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "screenshots/custom-ads_off/01-lead-capture.png",
                "screenshots/custom-ads_off/02-lead-capture.png"
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let written = r.write_json(dir.path()).unwrap();
        for p in &paths {
            assert_eq!(std::fs::read(dir.path().join(p)).unwrap(), b"\x89PNG fake");
        }
        let back = Report::read_json(&written).unwrap();
        assert_eq!(
            back.scenarios[0].steps[1].screenshot.as_deref(),
            Some(paths[1].as_str())
        );
        assert!(back.screenshot_files.is_empty());

        // Imported with them: those beside it come in, a missing one is left out, and a
        // path that leads out of the directory is refused.
        std::fs::remove_file(dir.path().join(&paths[1])).unwrap();
        let imported = Report::read_with_screenshots(&written).unwrap();
        assert_eq!(
            imported.screenshot_files,
            [(paths[0].clone(), b"\x89PNG fake".to_vec())]
        );
        let mut hostile = back;
        hostile.scenarios[0].steps[0].screenshot = Some("screenshots/../../secret.png".into());
        let hostile_path = hostile.write_json(&dir.path().join("hostile")).unwrap();
        let refused = Report::read_with_screenshots(&hostile_path).unwrap_err();
        assert!(
            refused.to_string().contains("not a PNG under screenshots/"),
            "{refused}"
        );
    }

    #[test]
    fn pending_requests_are_reported_and_old_reports_still_read() {
        let mut r = report();
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("pending"), "absent when none: {text}");
        r.scenarios[0].steps[0].pending = vec![PendingRequest {
            url: "https://connect.facebook.net/hang.js".into(),
            resource_type: "Script".into(),
            third_party: true,
            vendor: Some("Meta".into()),
            ..Default::default()
        }];
        let text = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert!(
            r.summary()
                .contains("still pending: https://connect.facebook.net/hang.js (Meta)"),
            "{}",
            r.summary()
        );
        // A stored report written before `pending` existed reads with none.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["scenarios"][0]["steps"][0]
            .as_object_mut()
            .unwrap()
            .remove("pending");
        let old: Report = serde_json::from_value(v).unwrap();
        assert!(old.scenarios[0].steps[0].pending.is_empty());
    }

    #[test]
    fn summary_mentions_what_matters() {
        let s = report().summary();
        assert!(s.contains("INCOMPLETE"), "{s}");
        assert!(s.contains("1 finding(s): 1 high"), "{s}");
        assert!(s.contains("pre_consent"), "{s}");
        assert!(s.contains("Google Analytics"), "{s}");
    }
}

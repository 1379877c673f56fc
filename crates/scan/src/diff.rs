//! What changed between two scans of a journey (for `sightline scan diff A B`): vendors and
//! findings that appeared or disappeared.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::evidence::Scenario;
use crate::findings::{Finding, FindingKind};
use crate::report::Report;
use crate::ScanError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportDiff {
    pub vendors_added: Vec<String>,
    pub vendors_removed: Vec<String>,
    pub findings_added: Vec<Finding>,
    pub findings_removed: Vec<Finding>,
}

/// A finding's identity across scans: evidence URLs may differ run to run (cache busters),
/// the fact does not.
fn key(f: &Finding) -> (FindingKind, Option<Scenario>, Option<String>, String) {
    (f.kind, f.scenario.clone(), f.step.clone(), f.vendor.clone())
}

fn vendors(r: &Report) -> BTreeSet<String> {
    r.scenarios
        .iter()
        .flat_map(|s| &s.steps)
        .flat_map(|s| &s.vendors)
        .map(|v| v.name.clone())
        .collect()
}

/// Differences from `old` to `new`.
pub fn diff(old: &Report, new: &Report) -> ReportDiff {
    let (old_v, new_v) = (vendors(old), vendors(new));
    let old_keys: BTreeSet<_> = old.findings.iter().map(key).collect();
    let new_keys: BTreeSet<_> = new.findings.iter().map(key).collect();
    ReportDiff {
        vendors_added: new_v.difference(&old_v).cloned().collect(),
        vendors_removed: old_v.difference(&new_v).cloned().collect(),
        findings_added: new
            .findings
            .iter()
            .filter(|f| !old_keys.contains(&key(f)))
            .cloned()
            .collect(),
        findings_removed: old
            .findings
            .iter()
            .filter(|f| !new_keys.contains(&key(f)))
            .cloned()
            .collect(),
    }
}

impl Report {
    /// Reads a `report.json` written by [`Report::write_json`].
    pub fn read_json(path: &Path) -> Result<Report, ScanError> {
        let err = |message: String| ScanError::Input {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(format!("not a scan report: {e}")))
    }
}

impl ReportDiff {
    pub fn is_empty(&self) -> bool {
        self.vendors_added.is_empty()
            && self.vendors_removed.is_empty()
            && self.findings_added.is_empty()
            && self.findings_removed.is_empty()
    }

    /// A readable summary for the terminal.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no new or removed vendors or findings\n".into();
        }
        let mut out = String::new();
        for v in &self.vendors_added {
            out.push_str(&format!("+ vendor  {v}\n"));
        }
        for v in &self.vendors_removed {
            out.push_str(&format!("- vendor  {v}\n"));
        }
        for (sign, list) in [("+", &self.findings_added), ("-", &self.findings_removed)] {
            for f in list {
                let place = match (&f.scenario, &f.step) {
                    (Some(sc), Some(st)) => format!("{sc} / {st}"),
                    _ => "journey".into(),
                };
                out.push_str(&format!(
                    "{sign} finding [{}] {} {place}: {}\n",
                    f.severity.name(),
                    f.kind.name(),
                    f.message
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::StepTiming;
    use crate::findings::{FindingEvidence, Severity};
    use crate::report::{ScenarioReport, StepReport, VendorSummary, SCHEMA_VERSION};
    use crate::vendor::Category;

    fn report(vendors: &[&str], findings: &[(FindingKind, &str)]) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            journey: "shop".into(),
            incomplete: false,
            duration_ms: 1,
            screenshot_files: Vec::new(),
            templates: Vec::new(),
            scenarios: vec![ScenarioReport {
                name: Scenario::AcceptAll,
                incomplete: None,
                banner: None,
                steps: vec![StepReport {
                    name: "landing".into(),
                    url: "http://www.shop.test/".into(),
                    screenshot: None,
                    request_count: 0,
                    third_party_count: 0,
                    bytes: 0,
                    vendors: vendors
                        .iter()
                        .map(|v| VendorSummary {
                            name: (*v).into(),
                            category: Category::Analytics,
                            requests: 1,
                        })
                        .collect(),
                    timing: StepTiming::default(),
                    error: None,
                    pending: Vec::new(),
                    requests: vec![],
                    cookies: vec![],
                    local_storage: vec![],
                }],
            }],
            findings: findings
                .iter()
                .map(|(kind, vendor)| Finding {
                    kind: *kind,
                    severity: Severity::High,
                    scenario: Some(Scenario::AcceptAll),
                    step: Some("landing".into()),
                    vendor: (*vendor).into(),
                    message: format!("{vendor} did something"),
                    evidence: FindingEvidence::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn new_and_removed_vendors_and_findings() {
        let old = report(
            &["Google Analytics", "Hotjar"],
            &[(FindingKind::PreConsent, "Hotjar")],
        );
        let new = report(
            &["Google Analytics", "TikTok"],
            &[(FindingKind::ShadowVendor, "TikTok")],
        );
        let d = diff(&old, &new);
        assert_eq!(d.vendors_added, vec!["TikTok"]);
        assert_eq!(d.vendors_removed, vec!["Hotjar"]);
        assert_eq!(d.findings_added[0].kind, FindingKind::ShadowVendor);
        assert_eq!(d.findings_removed[0].vendor, "Hotjar");
        let s = d.summary();
        assert!(
            s.contains("+ vendor  TikTok") && s.contains("- finding [high] pre_consent"),
            "{s}"
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn reads_back_what_it_wrote() {
        let r = report(&["Meta"], &[(FindingKind::PiiLeak, "Meta")]);
        let dir = tempfile::tempdir().unwrap();
        let path = r.write_json(dir.path()).unwrap();
        assert_eq!(Report::read_json(&path).unwrap(), r);
        std::fs::write(&path, "{}").unwrap();
        let err = Report::read_json(&path).unwrap_err().to_string();
        assert!(err.contains("not a scan report"), "{err}");
    }
}

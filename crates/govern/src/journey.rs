//! Journeys and their steps, and the scanner's journey TOML in and out.
//!
//! A journey is named steps (acquisition, landing, lead capture, checkout, … or any
//! names), each a URL and the scanner's actions. A journey imported from a scanner file
//! keeps that file's other tables (browser, consent, dns, inventory) as `settings`, so
//! exporting it gives a file the scanner runs the same way.

use crate::{required, GovernError, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    pub url: String,
    /// The scanner's actions (`{ click = "SEL" }`, `{ fill = "SEL", value = "…" }`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<toml::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journey {
    pub name: String,
    pub steps: Vec<Step>,
    /// The scanner file's other top-level tables, kept as they were.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub settings: toml::Table,
}

impl Journey {
    /// The journey trimmed and checked: a name, at least one step, unique step names,
    /// http(s) URLs. The error names the field to fix.
    pub fn validated(mut self) -> Result<Journey> {
        self.name = required("name", &self.name, 100)?;
        if self.name.contains('/') {
            return Err(GovernError::Invalid("name: must not contain '/'".into()));
        }
        if self.steps.is_empty() {
            return Err(GovernError::Invalid(
                "steps: a journey needs at least one step".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, step) in self.steps.iter_mut().enumerate() {
            step.name = required(&format!("steps[{i}].name"), &step.name, 100)?;
            if !names.insert(step.name.clone()) {
                return Err(GovernError::Invalid(format!(
                    "steps[{i}].name: duplicate step name {:?}",
                    step.name
                )));
            }
            match url::Url::parse(step.url.trim()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {
                    step.url = step.url.trim().into()
                }
                _ => {
                    return Err(GovernError::Invalid(format!(
                        "steps[{i}].url: {:?} is not an http or https URL",
                        step.url
                    )))
                }
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            for (j, action) in step.actions.iter().enumerate() {
                if let Some(wait) = action.get("wait_ms") {
                    let checked = match wait.as_integer() {
                        Some(ms) if ms >= 0 => sightline_scan::journey::check_wait_ms(ms as u64),
                        _ => Err("wait_ms must be a whole number of milliseconds".into()),
                    };
                    checked.map_err(|e| {
                        GovernError::Invalid(format!("steps[{i}].actions[{j}]: {e}"))
                    })?;
                }
            }
        }
        for key in self.settings.keys() {
            if !SETTINGS.contains(&key.as_str()) {
                return Err(GovernError::Invalid(format!(
                    "settings: unknown table {key:?} (a journey file has {})",
                    SETTINGS.join(", ")
                )));
            }
        }
        if let Some(args) = self
            .settings
            .get("browser")
            .and_then(|browser| browser.get("args"))
        {
            let args = args.as_array().ok_or_else(|| {
                GovernError::Invalid("settings.browser.args: must be a list of flags".into())
            })?;
            for (i, arg) in args.iter().enumerate() {
                let arg = arg.as_str().ok_or_else(|| {
                    GovernError::Invalid(format!("settings.browser.args[{i}]: must be a string"))
                })?;
                sightline_scan::journey::check_browser_arg(arg).map_err(|e| {
                    GovernError::Invalid(format!("settings.browser.args[{i}]: {e}"))
                })?;
            }
        }
        Ok(self)
    }

    /// Reads a scanner journey file's text.
    pub fn from_scanner_toml(text: &str) -> Result<Journey> {
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| GovernError::Invalid(format!("not a journey file: {e}")))?;
        let name = match table.remove("name") {
            Some(toml::Value::String(name)) => name,
            _ => {
                return Err(GovernError::Invalid(
                    "name: a journey file needs name = \"…\"".into(),
                ))
            }
        };
        let steps = match table.remove("steps") {
            Some(steps) => steps
                .try_into::<Vec<Step>>()
                .map_err(|e| GovernError::Invalid(format!("steps: {e}")))?,
            None => Vec::new(),
        };
        Journey {
            name,
            steps,
            settings: table,
        }
        .validated()
    }

    /// The scanner journey file for this journey.
    pub fn to_scanner_toml(&self) -> Result<String> {
        let mut table = self.settings.clone();
        table.insert("name".into(), toml::Value::String(self.name.clone()));
        let steps = toml::Value::try_from(&self.steps)
            .map_err(|e| GovernError::Invalid(format!("steps: {e}")))?;
        table.insert("steps".into(), steps);
        toml::to_string(&table).map_err(|e| GovernError::Invalid(e.to_string()))
    }
}

/// The scanner file's top-level tables besides `name` and `steps`.
const SETTINGS: [&str; 4] = ["browser", "consent", "dns", "inventory"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromium_flags_and_long_waits_are_refused() {
        let err = Journey::from_scanner_toml(
            "name = \"j\"\n[browser]\nargs = [\"--renderer-cmd-prefix=sh -c id\"]\n\
             [[steps]]\nname = \"s\"\nurl = \"http://example.com/\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("settings.browser.args[0]"), "{err}");
        assert!(err.contains("--renderer-cmd-prefix"), "{err}");
        assert!(err.contains("--window-size"), "{err}");

        let err = Journey::from_scanner_toml(
            "name = \"j\"\n[[steps]]\nname = \"s\"\nurl = \"http://example.com/\"\n\
             actions = [{ wait_ms = 3600000 }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("steps[0].actions[0]"), "{err}");
        assert!(err.contains("60000"), "{err}");

        // A loopback URL may be stored: scanning it needs the scanner's opt-in.
        Journey::from_scanner_toml(
            "name = \"j\"\n[browser]\nargs = [\"--ignore-certificate-errors\"]\n\
             [[steps]]\nname = \"s\"\nurl = \"http://127.0.0.1:9/\"\n\
             actions = [{ wait_ms = 500 }]\n",
        )
        .unwrap();
    }

    const FILE: &str = r##"
name = "shop"
[browser]
host_resolver_rules = "MAP * 127.0.0.1:9"
[consent.accept-all]
click = ["#accept"]
[inventory]
vendors = ["Meta"]
[[steps]]
name = "landing"
url = "http://www.shop.test/"
[[steps]]
name = "lead capture"
url = "http://www.shop.test/signup"
actions = [{ fill = "#email", value = "ann@example.com" }, { click = "#go" }]
"##;

    #[test]
    fn scanner_files_round_trip() {
        let journey = Journey::from_scanner_toml(FILE).unwrap();
        assert_eq!(journey.steps.len(), 2);
        assert_eq!(journey.steps[1].actions.len(), 2);
        let text = journey.to_scanner_toml().unwrap();
        let again = Journey::from_scanner_toml(&text).unwrap();
        assert_eq!(again, journey);
        let original: toml::Table = toml::from_str(FILE).unwrap();
        let exported: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(original, exported, "the file means the same");
    }

    #[test]
    fn malformed_files_say_what_to_fix() {
        for (text, expect) in [
            ("name = ", "not a journey file"),
            ("steps = []", "name"),
            ("name = \"x\"", "at least one step"),
            ("name = \"x\"\n[[steps]]\nname = \"a\"\nurl = \"ftp://x\"", "steps[0].url"),
            ("name = \"x\"\n[[steps]]\nname = \"a\"\nurl = \"http://x/\"\n[[steps]]\nname = \"a\"\nurl = \"http://x/\"", "duplicate"),
            ("name = \"x\"\n[[steps]]\nname = \"a\"\nurl = \"http://x/\"\nwhat = 1", "steps"),
            ("name = \"x\"\n[extra]\n[[steps]]\nname = \"a\"\nurl = \"http://x/\"", "unknown table"),
        ] {
            let err = Journey::from_scanner_toml(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }
}

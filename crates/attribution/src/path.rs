//! Paths: ordered touches (interned labels) with their outcome.
//!
//! A label is whatever the models credit: a channel for channel reports, a
//! `channel / campaign` pair for campaign reports.

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// The unit of the touch ages kept for time decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeUnit {
    /// Position steps before the end of the path (imported CSV paths carry no times).
    Steps,
    /// Days between the touch and the conversion (or the end of the journey).
    Days,
}

/// One path: touches in time order and what the path led to.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// Label ids (indexes into [`PathSet::labels`]), first touch first.
    pub touches: Vec<u32>,
    /// Age of each touch at the end of the path, in [`PathSet::age_unit`]; empty when the
    /// path has no times, in which case position steps are used.
    pub ages: Vec<f64>,
    pub conversions: f64,
    pub value: f64,
    pub nulls: f64,
}

impl Path {
    /// Age of touch `index` for time decay: the recorded age, or the number of steps
    /// before the last touch when the path has no times.
    pub fn age(&self, index: usize) -> f64 {
        self.ages
            .get(index)
            .copied()
            .unwrap_or((self.touches.len() - 1 - index) as f64)
    }
}

/// A set of paths over a shared label dictionary.
#[derive(Debug, Clone)]
pub struct PathSet {
    labels: Vec<String>,
    ids: FxHashMap<String, u32>,
    paths: Vec<Path>,
    age_unit: AgeUnit,
}

impl PathSet {
    pub fn new(age_unit: AgeUnit) -> Self {
        Self {
            labels: Vec::new(),
            ids: FxHashMap::default(),
            paths: Vec::new(),
            age_unit,
        }
    }

    /// The id of `label`, adding it to the dictionary when new.
    pub fn intern(&mut self, label: &str) -> u32 {
        if let Some(&id) = self.ids.get(label) {
            return id;
        }
        let id = self.labels.len() as u32;
        self.labels.push(label.to_owned());
        self.ids.insert(label.to_owned(), id);
        id
    }

    /// Adds a path whose touches were interned with [`PathSet::intern`].
    /// Paths without touches cannot be credited to anything and are ignored.
    pub fn push(&mut self, path: Path) -> Result<()> {
        if let Some(&unknown) = path
            .touches
            .iter()
            .find(|&&t| t as usize >= self.labels.len())
        {
            return Err(Error::InvalidPath(format!(
                "touch {unknown} is not an interned label; get ids from `PathSet::intern`"
            )));
        }
        if !(path.ages.is_empty() || path.ages.len() == path.touches.len()) {
            return Err(Error::InvalidPath(format!(
                "{} ages for {} touches; give one age per touch or none",
                path.ages.len(),
                path.touches.len()
            )));
        }
        let counts = [path.conversions, path.value, path.nulls];
        let valid = |x: f64| x.is_finite() && x >= 0.0;
        if !(counts.into_iter().all(valid) && path.ages.iter().copied().all(valid)) {
            return Err(Error::InvalidPath(
                "conversions, value, nulls and ages must be finite and non-negative".to_owned(),
            ));
        }
        if !path.touches.is_empty() {
            self.paths.push(path);
        }
        Ok(())
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn paths(&self) -> &[Path] {
        &self.paths
    }

    pub fn age_unit(&self) -> AgeUnit {
        self.age_unit
    }

    pub fn total_conversions(&self) -> f64 {
        self.paths.iter().map(|p| p.conversions).sum()
    }

    pub fn total_value(&self) -> f64 {
        self.paths.iter().map(|p| p.value).sum()
    }

    pub fn total_nulls(&self) -> f64 {
        self.paths.iter().map(|p| p.nulls).sum()
    }

    /// Whether a label stands for direct traffic (`Direct`, `(direct)`, or a
    /// `Direct / campaign` pair), for the last non-direct model.
    pub fn is_direct(&self, id: u32) -> bool {
        let channel = self.labels[id as usize]
            .split(" / ")
            .next()
            .unwrap_or_default()
            .trim();
        channel.eq_ignore_ascii_case("direct") || channel.eq_ignore_ascii_case("(direct)")
    }
}

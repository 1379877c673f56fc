//! Counts of events without analytics consent, by day, source and event name.
//!
//! Every event of a site that does not ask for consent is counted here, so adding one must
//! not allocate: the maps are nested so that a count is found by borrowed keys, and the
//! day's text is formatted once per day rather than once per event.

use sightline_core::time::{self, DAY_MS};
use sightline_core::DeniedCount;
use std::collections::BTreeMap;

type BySource = BTreeMap<i64, BTreeMap<String, i64>>;

/// Day (`YYYY-MM-DD`) → source → event name → count; iterated in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DeniedCounts(BTreeMap<String, BySource>);

impl DeniedCounts {
    pub(crate) fn from_rows(rows: &[DeniedCount]) -> DeniedCounts {
        let mut counts = DeniedCounts::default();
        for row in rows {
            counts.add(&row.day, row.source_id, &row.event, row.count);
        }
        counts
    }

    pub(crate) fn add(&mut self, day: &str, source_id: i64, event: &str, by: i64) {
        let sources = match self.0.get_mut(day) {
            Some(sources) => sources,
            None => self.0.entry(day.to_owned()).or_default(),
        };
        let events = sources.entry(source_id).or_default();
        match events.get_mut(event) {
            Some(count) => *count += by,
            None => {
                events.insert(event.to_owned(), by);
            }
        }
    }

    /// The counts of the days within `from..=to` as rows.
    pub(crate) fn rows_within(&self, from: &str, to: &str) -> Vec<DeniedCount> {
        if from > to {
            return Vec::new();
        }
        use std::ops::Bound::Included;
        rows_of(self.0.range::<str, _>((Included(from), Included(to))))
    }

    pub(crate) fn rows(&self) -> Vec<DeniedCount> {
        rows_of(self.0.iter())
    }
}

fn rows_of<'a>(days: impl Iterator<Item = (&'a String, &'a BySource)>) -> Vec<DeniedCount> {
    days.flat_map(|(day, sources)| {
        sources.iter().flat_map(move |(&source_id, events)| {
            events.iter().map(move |(event, &count)| DeniedCount {
                day: day.clone(),
                source_id,
                event: event.clone(),
                count,
            })
        })
    })
    .collect()
}

/// The day of a time as `YYYY-MM-DD`, formatted again only when the day changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct DayText {
    day: Option<i64>,
    text: String,
}

impl DayText {
    pub(crate) fn of(&mut self, at: i64) -> &str {
        let day = at.div_euclid(DAY_MS);
        if self.day != Some(day) {
            self.text = time::day_of(at);
            self.day = Some(day);
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_add_up_by_day_source_and_event_in_order() {
        let mut counts = DeniedCounts::default();
        counts.add("2026-12-02", 1, "Viewed", 1);
        counts.add("2026-12-01", 2, "Viewed", 1);
        counts.add("2026-12-01", 1, "b", 1);
        counts.add("2026-12-01", 1, "a", 2);
        counts.add("2026-12-01", 1, "a", 3);
        let row = |day: &str, source_id, event: &str, count| DeniedCount {
            day: day.into(),
            source_id,
            event: event.into(),
            count,
        };
        assert_eq!(
            counts.rows(),
            vec![
                row("2026-12-01", 1, "a", 5),
                row("2026-12-01", 1, "b", 1),
                row("2026-12-01", 2, "Viewed", 1),
                row("2026-12-02", 1, "Viewed", 1),
            ]
        );
        assert_eq!(
            counts.rows_within("2026-12-02", "2026-12-31"),
            vec![row("2026-12-02", 1, "Viewed", 1)]
        );
        assert_eq!(counts.rows_within("2026-12-03", "2026-12-01"), vec![]);
        assert_eq!(DeniedCounts::from_rows(&counts.rows()), counts);
    }

    proptest! {
        #[test]
        fn the_day_text_is_that_of_the_time(times in prop::collection::vec(-10_000_000_000_000i64..10_000_000_000_000, 1..20)) {
            let mut day = DayText::default();
            for at in times {
                prop_assert_eq!(day.of(at), time::day_of(at));
            }
        }
    }
}

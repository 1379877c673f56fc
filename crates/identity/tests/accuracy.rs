//! Accuracy against a synthetic population with known ground truth.

#[path = "common/population.rs"]
mod population;

use population::generate;
use rustc_hash::FxHashMap;
use sightline_identity::{Graph, ProfileId, Rules};

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Pairwise precision and recall over events: a pair of events is predicted together when
/// they end on the same profile, and truly together when one person sent both.
fn pairwise(assignments: &[(ProfileId, usize)]) -> (f64, f64) {
    let mut cells: FxHashMap<(ProfileId, usize), u64> = FxHashMap::default();
    let mut predicted: FxHashMap<ProfileId, u64> = FxHashMap::default();
    let mut truth: FxHashMap<usize, u64> = FxHashMap::default();
    for &(profile, person) in assignments {
        *cells.entry((profile, person)).or_default() += 1;
        *predicted.entry(profile).or_default() += 1;
        *truth.entry(person).or_default() += 1;
    }
    let together: u64 = cells.values().map(|&n| pairs(n)).sum();
    let predicted: u64 = predicted.values().map(|&n| pairs(n)).sum();
    let truth: u64 = truth.values().map(|&n| pairs(n)).sum();
    (
        together as f64 / predicted as f64,
        together as f64 / truth as f64,
    )
}

#[test]
fn pairwise_precision_and_recall_against_ground_truth() {
    let rules = Rules::default();
    let events = generate(4_000, 80_000, 7);
    let mut graph = Graph::new();
    let landed: Vec<(Option<ProfileId>, usize)> = events
        .iter()
        .map(|e| (graph.process(e.seq, &e.body, &rules), e.person))
        .collect();
    // Score where each event ends after all merges.
    let assignments: Vec<(ProfileId, usize)> = landed
        .into_iter()
        .filter_map(|(profile, person)| Some((graph.canonical(profile?)?, person)))
        .collect();
    let (precision, recall) = pairwise(&assignments);
    println!(
        "accuracy: {} events, {} scored, {} profiles for 4000 people, pairwise precision {precision:.4}, recall {recall:.4}",
        events.len(),
        assignments.len(),
        graph.profile_count()
    );
    assert!(precision >= 0.99, "precision {precision}");
    assert!(recall >= 0.95, "recall {recall}");
}

use super::*;
use proptest::prelude::*;
use serde_json::json;
use sightline_core::EventType;
use std::collections::BTreeSet;

fn event(seq: i64, body: Value) -> StoredEvent {
    StoredEvent {
        seq,
        source_id: 1,
        message_id: format!("m{seq}"),
        event_type: EventType::Track,
        received_at: 1_000 + seq,
        body: body.to_string(),
    }
}

fn profiles() -> Profiles {
    Profiles::new(Rules::default())
}

#[test]
fn anonymous_history_joins_the_profile_at_identify() {
    let mut p = profiles();
    p.apply(&event(
        1,
        json!({"type":"page","anonymousId":"a1","timestamp":"2026-01-01T00:00:00.000Z"}),
    ));
    p.apply(&event(2, json!({"type":"track","anonymousId":"a1","event":"Viewed","timestamp":"2026-01-01T00:01:00.000Z"})));
    p.apply(&event(
        3,
        json!({"type":"identify","anonymousId":"a1","userId":"42",
        "traits":{"email":"Ann@Example.com","plan":"free"},"timestamp":"2026-01-01T00:02:00.000Z"}),
    ));
    p.apply(&event(4, json!({"type":"identify","userId":"42","traits":{"plan":"pro"},"timestamp":"2026-01-02T00:00:00.000Z"})));

    let view = p
        .find("email", " ANN@example.com ")
        .expect("found by a normalised email");
    let facts = view.facts.unwrap();
    assert_eq!(facts.events, [1, 2, 3, 4]);
    assert_eq!(facts.event_count, 4);
    assert_eq!(facts.traits["plan"].value, "pro");
    assert_eq!(facts.traits["plan"].seq, 4);
    assert_eq!(facts.first_seen, time::parse_ms("2026-01-01T00:00:00.000Z"));
    assert_eq!(
        p.find("anonymous_id", "a1").unwrap().identity.id,
        view.identity.id
    );
    let json = view.to_json();
    assert_eq!(json["traits"]["email"], "Ann@Example.com");
    assert_eq!(json["event_count"], 4);
}

#[test]
fn later_event_time_wins_even_when_it_arrives_first() {
    let mut p = profiles();
    p.apply(&event(1, json!({"type":"identify","userId":"u","traits":{"plan":"new"},"timestamp":"2026-02-01T00:00:00.000Z"})));
    p.apply(&event(2, json!({"type":"identify","userId":"u","traits":{"plan":"old"},"timestamp":"2026-01-01T00:00:00.000Z"})));
    assert_eq!(
        p.find("user_id", "u").unwrap().facts.unwrap().traits["plan"].value,
        "new"
    );
}

#[test]
fn merges_carry_facts_and_replays_are_ignored() {
    let mut p = profiles();
    p.apply(&event(1, json!({"type":"track","anonymousId":"phone","event":"Ad Click","context":{"traits":{"city":"Oslo"}}})));
    p.apply(&event(
        2,
        json!({"type":"track","userId":"42","event":"Order Completed"}),
    ));
    p.apply(&event(
        3,
        json!({"type":"alias","previousId":"phone","userId":"42"}),
    ));
    p.apply(&event(
        3,
        json!({"type":"alias","previousId":"phone","userId":"42"}),
    ));
    let view = p.find("user_id", "42").unwrap();
    let facts = view.facts.unwrap();
    assert_eq!(facts.events, [1, 2, 3]);
    assert_eq!(facts.traits["city"].value, "Oslo");
    assert_eq!(p.profile_count(), 1);
    assert_eq!(p.last_seq(), 3);
}

#[test]
fn record_linkage_events_merge_with_their_evidence_and_plain_identifies_do_not_carry_any() {
    let mut p = profiles();
    p.apply(&event(
        1,
        json!({"type":"identify","userId":"u1","traits":{"email":"ann@x.io","surname":"smith"}}),
    ));
    p.apply(&event(
        2,
        json!({"type":"identify","traits":{"surname":"smyth"},
        "context":{"externalIds":[{"type":"crm_id","id":"C1"}]}}),
    ));
    let evidence = json!({"decision":"auto_link","match_probability":0.98,"fields":[]});
    // A track call carrying `context.linkage` is not a link: only identify calls are.
    p.apply(&event(
        3,
        json!({"type":"track","event":"x","context":{"linkage":evidence,
        "externalIds":[{"type":"crm_id","id":"C9"},{"type":"email","id":"other@x.io"}]}}),
    ));
    p.apply(&event(
        4,
        json!({"type":"identify","context":{"linkage":evidence,
        "externalIds":[{"type":"crm_id","id":"C1"},{"type":"email","id":"ann@x.io"}]}}),
    ));
    let view = p.find("crm_id", "C1").unwrap();
    assert_eq!(view.identity.id, ProfileId(1));
    let merge = view.identity.history.last().unwrap();
    assert!(matches!(
        merge.change,
        Change::Merge {
            rule: sightline_identity::Rule::RecordLinkage,
            ..
        }
    ));
    assert_eq!(merge.linkage.as_ref(), Some(&evidence));
    assert!(view.identity.history[..view.identity.history.len() - 1]
        .iter()
        .all(|r| r.linkage.is_none()));
    let other = p.find("crm_id", "C9").unwrap();
    assert!(other.identity.history.iter().all(|r| r.linkage.is_none()));
    assert_eq!(p.profiles().count(), p.profile_count());
}

proptest! {
    /// Every event with a usable identifier is on exactly one live profile's timeline.
    #[test]
    fn each_event_is_on_one_timeline(ops in proptest::collection::vec((0u8..4, 0u8..6, 0u8..6), 1..60)) {
        let mut p = profiles();
        for (i, (kind, a, b)) in ops.iter().enumerate() {
            let body = match kind {
                0 => json!({"type":"track","anonymousId":format!("a{a}"),"event":"e"}),
                1 => json!({"type":"identify","anonymousId":format!("a{a}"),"userId":format!("u{b}")}),
                2 => json!({"type":"alias","previousId":format!("a{a}"),"userId":format!("u{b}")}),
                _ => json!({"type":"identify","userId":format!("u{b}"),"traits":{"email":format!("p{a}@x.test")}}),
            };
            p.apply(&event(i as i64 + 1, body));
        }
        let mut seen: Vec<i64> = p.facts.values().flat_map(|f| f.events.iter().copied()).collect();
        seen.sort_unstable();
        let expected: Vec<i64> = (1..=ops.len() as i64).collect();
        prop_assert_eq!(seen, expected);
        for (id, facts) in &p.facts {
            prop_assert!(p.graph.profile(*id).is_some_and(|live| live.id == *id), "facts only on live profiles");
            prop_assert_eq!(facts.event_count as usize, facts.events.len());
        }
    }
}

/// The stored tables, as the store applies rows (the model the store suite checks each
/// backend against).
#[derive(Debug, Default, PartialEq)]
struct Tables {
    profiles: BTreeMap<i64, String>,
    /// `(profile, seq)` → entry.
    consent: BTreeMap<(i64, i64), String>,
    identifiers: BTreeMap<(String, String), (i64, bool, String)>,
    events: std::collections::BTreeSet<(i64, i64)>,
    denied: BTreeMap<(String, i64, String), i64>,
}

impl Tables {
    fn apply(&mut self, rows: ProfileRows) {
        for (retired, survivor) in rows.retired {
            self.profiles.remove(&retired);
            for owner in self.identifiers.values_mut() {
                if owner.0 == retired {
                    owner.0 = survivor;
                }
            }
            let moved: Vec<(i64, i64)> = self
                .events
                .iter()
                .filter(|e| e.0 == retired)
                .copied()
                .collect();
            for (_, seq) in moved {
                self.events.remove(&(retired, seq));
                self.events.insert((survivor, seq));
            }
            let moved: Vec<(i64, i64)> = self
                .consent
                .keys()
                .filter(|(p, _)| *p == retired)
                .copied()
                .collect();
            for (_, seq) in moved {
                let change = self.consent.remove(&(retired, seq)).unwrap();
                self.consent.insert((survivor, seq), change);
            }
        }
        for (profile, seq, change) in rows.consent {
            self.consent.entry((profile, seq)).or_insert(change);
        }
        self.profiles.extend(rows.profiles);
        for row in rows.identifiers {
            self.identifiers.insert(
                (row.id_type, row.value),
                (row.profile, row.shared, row.seen_with),
            );
        }
        self.events.extend(rows.events);
        for c in rows.denied_counts {
            *self
                .denied
                .entry((c.day, c.source_id, c.event))
                .or_default() += c.count;
        }
    }
}

fn population_event(seq: i64, (kind, a, b): (u8, u8, u8)) -> StoredEvent {
    let at = format!("2026-01-01T00:00:{:02}.000Z", (seq * 7) % 60);
    let body = match kind {
        0 if b % 2 == 0 => {
            json!({"type":"track","anonymousId":format!("a{a}"),"event":"e","timestamp":at,
            "context":{"consent":{"purposes":{"analytics": b % 4 == 0}}}})
        }
        0 => json!({"type":"track","anonymousId":format!("a{a}"),"event":"e","timestamp":at}),
        1 => {
            json!({"type":"identify","anonymousId":format!("a{a}"),"userId":format!("u{b}"),"traits":{"plan":format!("p{seq}")},"timestamp":at})
        }
        2 => json!({"type":"alias","previousId":format!("a{a}"),"userId":format!("u{b}")}),
        _ => {
            json!({"type":"identify","userId":format!("u{b}"),"traits":{"email":format!("p{a}@x.test")},"timestamp":at})
        }
    };
    event(seq, body)
}

proptest! {
    /// Saving the changes page by page (pages of any size) leaves the same tables as
    /// storing one snapshot of a rebuild: rebuild = incremental, down to the stored rows.
    #[test]
    fn incremental_saves_equal_a_rebuilt_snapshot(
        ops in proptest::collection::vec((0u8..4, 0u8..6, 0u8..6), 1..80),
        cuts in proptest::collection::vec(1usize..12, 1..20),
    ) {
        let events: Vec<StoredEvent> = ops.iter().enumerate().map(|(i, op)| population_event(i as i64 + 1, *op)).collect();
        let mut incremental = profiles();
        let mut tables = Tables::default();
        let mut at = 0;
        for cut in cuts.iter().cycle() {
            if at >= events.len() {
                break;
            }
            let end = (at + cut).min(events.len());
            for e in &events[at..end] {
                incremental.apply(e);
            }
            tables.apply(incremental.take_changes());
            at = end;
        }

        let mut rebuilt = profiles();
        rebuilt.track_changes_after(i64::MAX);
        for e in &events {
            rebuilt.apply(e);
        }
        let mut snapshot = Tables::default();
        snapshot.apply(rebuilt.snapshot());
        prop_assert_eq!(rebuilt.take_changes(), ProfileRows::default(), "untracked");
        prop_assert_eq!(&tables, &snapshot);

        // Each stored document reads back as the profile the API shows.
        for (id, doc) in &snapshot.profiles {
            let doc = ProfileDoc::parse(doc).unwrap();
            let live = rebuilt.identity(ProfileId(*id)).unwrap();
            let view = ProfileView { identity: live, facts: rebuilt.facts(ProfileId(*id)) };
            prop_assert_eq!(doc.view().to_json(), view.to_json());
            prop_assert_eq!(doc.identity.explain(), live.explain());
        }
    }
}

#[test]
fn changes_before_the_tracking_start_are_not_kept() {
    let mut p = profiles();
    p.track_changes_after(2);
    for seq in 1..=3 {
        p.apply(&population_event(seq, (1, 0, 0)));
    }
    let rows = p.take_changes();
    assert_eq!(rows.events, [(1, 3)]);
    assert_eq!(rows.profiles.len(), 1);
    assert!(
        rows.identifiers.is_empty(),
        "no identifier changed after seq 2"
    );
}

#[test]
fn consent_ledger_records_changes_with_evidence_and_follows_merges() {
    let mut p = profiles();
    let at = |s: u32| format!("2026-01-01T00:00:{s:02}.000Z");
    let prefs = |ads: bool| json!({"categoryPreferences": {"Advertising": ads, "Analytics": true}});
    // Anonymous: the CMP answers, then a page repeats the answer.
    p.apply(&event(1, json!({"type":"track","event":"Segment Consent Preference Updated","anonymousId":"a1",
        "timestamp": at(1), "context":{"consent": prefs(false), "page":{"url":"https://shop.test/"}}})));
    p.apply(&event(2, json!({"type":"page","anonymousId":"a1","timestamp": at(2), "context":{"consent": prefs(false)}})));
    // Known on another device, where they grant advertising later.
    p.apply(&event(3, json!({"type":"identify","userId":"u1","timestamp": at(3), "context":{"consent": prefs(true)}})));
    // The identify that joins the devices merges the two ledgers.
    p.apply(&event(
        4,
        json!({"type":"identify","userId":"u1","anonymousId":"a1","timestamp": at(4)}),
    ));

    let view = p.find("user_id", "u1").unwrap();
    let ledger = &view.facts.unwrap().consent;
    let seqs: Vec<i64> = ledger.changes().iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [1, 2, 3], "every statement, repeats included");
    let first = &ledger.changes()[0];
    assert_eq!(first.source, "source:1");
    assert_eq!(first.evidence["page_url"], "https://shop.test/");
    assert_eq!(
        first.signals["context.consent.categoryPreferences"]["Advertising"],
        false
    );
    let at_2 = ledger.state_at(time::parse_ms(&at(2)).unwrap(), i64::MAX);
    assert_eq!(at_2["advertising"].decision, Decision::Denied);
    let at_3 = ledger.state_at(time::parse_ms(&at(3)).unwrap(), i64::MAX);
    assert_eq!(
        (at_3["advertising"].decision, at_3["advertising"].seq),
        (Decision::Granted, 3)
    );
    assert!(
        !at_3.contains_key("necessary"),
        "always-granted purposes are not ledger news"
    );

    let page = json!({"type":"page","anonymousId":"a1"});
    assert_eq!(p.locate_event(&page), EventProfile::Held(view.identity.id));
}

#[test]
fn consent_conditions_read_the_consent_ledger() {
    let audience = sightline_audience::Audience::parse("ads-ok", "consent advertising").unwrap();
    let mut memberships = Memberships::new(vec![audience], vec![]);
    let mut p = profiles();
    let mut apply = |p: &mut Profiles, seq: i64, body: Value| {
        let e = event(seq, body);
        let applied = p.apply(&e);
        memberships.on_event(p, &applied, &e, 10_000);
        memberships.members("ads-ok").unwrap().len()
    };
    let consent = |ads: bool| json!({"consent": {"purposes": {"advertising": ads}}});
    assert_eq!(
        apply(&mut p, 1, json!({"type":"track","event":"e","userId":"u"})),
        0
    );
    assert_eq!(
        apply(
            &mut p,
            2,
            json!({"type":"track","event":"e","userId":"u","context": consent(true)})
        ),
        1,
        "granted"
    );
    assert_eq!(
        apply(
            &mut p,
            3,
            json!({"type":"track","event":"e","userId":"u","context": consent(false)})
        ),
        0,
        "withdrawn"
    );
}

#[test]
fn events_without_analytics_consent_are_counted_without_identifiers() {
    let mut p = profiles();
    let at = "2026-05-04T10:00:00.000Z";
    let analytics = |granted: bool| json!({"consent": {"purposes": {"analytics": granted}}});
    p.apply(&event(
        1,
        json!({"type":"track","event":"Viewed","userId":"a","timestamp":at}),
    ));
    p.apply(&event(2, json!({"type":"track","event":"Viewed","userId":"b","timestamp":at,"context":analytics(true)})));
    p.apply(&event(
        3,
        json!({"type":"track","event":"Viewed","userId":"b","timestamp":at}),
    ));
    p.apply(&event(4, json!({"type":"track","event":"Viewed","userId":"c","timestamp":at,"context":analytics(false)})));
    p.apply(&event(
        5,
        json!({"type":"track","event":"Bought","timestamp":at}),
    ));
    let counts = p.denied_counts("2026-05-04", "2026-05-04");
    let shown: Vec<(&str, i64)> = counts.iter().map(|c| (c.event.as_str(), c.count)).collect();
    assert_eq!(
        shown,
        [("Bought", 1), ("Viewed", 2)],
        "b granted analytics; a and c did not"
    );
    assert!(p.denied_counts("2026-05-05", "2026-12-31").is_empty());

    // A mapping that exempts analytics measures everything.
    let exempt = Policy::from_toml(
        "purposes = [\"necessary\", \"analytics\"]\nalways_granted = [\"necessary\", \"analytics\"]\n",
    )
    .unwrap();
    let mut p = Profiles::with_policy(Rules::default(), exempt);
    let applied = p.apply(&event(
        1,
        json!({"type":"track","event":"Viewed","userId":"a","timestamp":at}),
    ));
    assert!(applied.analytics);
    assert!(p.denied_counts("0000-01-01", "9999-12-31").is_empty());
}

fn buyers() -> sightline_audience::Audience {
    sightline_audience::Audience::parse("repeat", "event \"e\" count >= 2 within 30d").unwrap()
}

fn counted() -> sightline_audience::ComputedTrait {
    serde_json::from_value(json!({"name":"es","aggregate":{"kind":"count"},"event":{"name":"e"}}))
        .unwrap()
}

fn feed(p: &mut Profiles, m: &mut Memberships, events: &[StoredEvent], now: i64) {
    for e in events {
        let applied = p.apply(e);
        m.on_event(p, &applied, e, now);
    }
}

/// Each event of a member moves its membership's timer; none is left behind (a 30-day
/// window once kept one per event until it fell due), and evicting the profile drops it.
#[test]
fn a_membership_holds_one_timer_however_many_events_move_it() {
    let (mut p, mut m) = (
        profiles(),
        Memberships::new(vec![buyers()], vec![counted()]),
    );
    let events: Vec<StoredEvent> = (1..=200)
        .map(|seq| {
            event(
                seq,
                json!({"type":"track","anonymousId":"a1","event":"e",
                    "timestamp": sightline_core::time::format_ms(1_000 * seq)}),
            )
        })
        .collect();
    feed(&mut p, &mut m, &events, 1_000_000);
    assert_eq!(m.timers_held(), 1);
    let profile = p.find("anonymous_id", "a1").expect("a profile").identity.id;
    m.evict(&[profile]);
    assert_eq!(m.timers_held(), 0);
}

proptest! {
    /// A book restored from what a snapshot stored, then fed the rest of the log, is the
    /// book that never stopped: the same stored rows, membership and trait states, members,
    /// and the same enter and exit news from there on, timers included.
    #[test]
    fn a_restored_book_equals_one_that_never_stopped(
        ops in proptest::collection::vec((0u8..4, 0u8..6, 0u8..6), 1..80),
        cut in 0usize..80,
    ) {
        let events: Vec<StoredEvent> = ops.iter().enumerate().map(|(i, op)| population_event(i as i64 + 1, *op)).collect();
        let cut = cut.min(events.len());
        let now = time::parse_ms("2026-01-02T00:00:00.000Z").unwrap();
        let memberships = || Memberships::new(vec![buyers()], vec![counted()]);

        let (mut whole, mut whole_m) = (profiles(), memberships());
        feed(&mut whole, &mut whole_m, &events[..cut], now);
        whole_m.take_changes();

        let (mut first, mut first_m) = (profiles(), memberships());
        feed(&mut first, &mut first_m, &events[..cut], now);
        let mut stored = first.snapshot();
        first_m.all_rows(&mut stored);
        let mut restored =
            Profiles::restore(Rules::default(), Policy::default(), &stored, first.last_seq()).unwrap();
        let mut restored_m = memberships();
        restored_m.load(&restored, &stored.states, now).unwrap();
        prop_assert_eq!(restored.take_changes(), ProfileRows::default(), "nothing owed after a restore");

        feed(&mut whole, &mut whole_m, &events[cut..], now);
        feed(&mut restored, &mut restored_m, &events[cut..], now);
        let later = now + 40 * 86_400_000;
        whole_m.fire_timers(&whole, later, usize::MAX);
        restored_m.fire_timers(&restored, later, usize::MAX);

        prop_assert_eq!(restored.last_seq(), whole.last_seq());
        prop_assert_eq!(restored.snapshot(), whole.snapshot());
        let rows = |m: &Memberships| {
            let mut rows = ProfileRows::default();
            m.all_rows(&mut rows);
            (rows.states, rows.members)
        };
        prop_assert_eq!(rows(&restored_m), rows(&whole_m));
        prop_assert_eq!(restored_m.members("repeat"), whole_m.members("repeat"));
        // A book that never stopped may still hold timers set before later events moved
        // them, so one pass of timers may take profiles in another order; each profile's
        // own news keep theirs.
        let by_profile = |mut news: Vec<sightline_audience::MembershipChange>| {
            news.sort_by(|a, b| a.profile.cmp(&b.profile));
            news
        };
        prop_assert_eq!(by_profile(restored_m.take_changes()), by_profile(whole_m.take_changes()));
        for view in whole.profiles() {
            let id = view.identity.id;
            prop_assert_eq!(restored_m.computed(id, later), whole_m.computed(id, later));
        }
    }

    /// What a store keeps of the memberships, saved after any events, follows them: the
    /// members of each audience, timers only of live profiles, and the computed values
    /// read back from the stored states.
    #[test]
    fn saved_membership_rows_follow_the_memberships(
        ops in proptest::collection::vec((0u8..4, 0u8..6, 0u8..6), 1..80),
        saves in proptest::collection::vec(any::<bool>(), 80),
    ) {
        let events: Vec<StoredEvent> = ops.iter().enumerate().map(|(i, op)| population_event(i as i64 + 1, *op)).collect();
        let now = time::parse_ms("2026-01-02T00:00:00.000Z").unwrap();
        let (mut p, mut m) = (profiles(), Memberships::new(vec![buyers()], vec![counted()]));
        let mut store = SavedRows::default();
        for (event, save) in events.iter().zip(saves) {
            feed(&mut p, &mut m, std::slice::from_ref(event), now);
            if save {
                store.save(&mut p, &mut m);
            }
        }
        let later = now + 40 * 86_400_000;
        while m.fire_timers(&p, later, 3) {
            store.save(&mut p, &mut m);
        }
        store.save(&mut p, &mut m);

        let members: BTreeSet<(String, i64)> = m.members("repeat").unwrap().iter().map(|id| ("repeat".to_string(), id.0)).collect();
        prop_assert_eq!(&store.members, &members);
        for (_, profile) in store.timers.keys() {
            prop_assert_eq!(p.canonical(ProfileId(*profile)), Some(ProfileId(*profile)), "a timer of a retired profile");
        }
        for view in p.profiles() {
            let id = view.identity.id;
            let stored = store.states.get(&id.0).map(|s| stored_computed(&[counted()], s, later).unwrap()).unwrap_or_default();
            prop_assert_eq!(stored, m.computed(id, later));
        }
    }
}

/// The membership rows a store holds after applying saves as both backends do.
#[derive(Default)]
struct SavedRows {
    members: BTreeSet<(String, i64)>,
    timers: BTreeMap<(String, i64), i64>,
    states: BTreeMap<i64, String>,
}

impl SavedRows {
    fn save(&mut self, p: &mut Profiles, m: &mut Memberships) {
        let mut rows = p.take_changes();
        m.take_rows(&mut rows);
        self.apply(rows);
    }

    fn apply(&mut self, rows: ProfileRows) {
        for (retired, _) in &rows.retired {
            self.timers.retain(|(_, profile), _| profile != retired);
            self.states.remove(retired);
        }
        self.states.extend(rows.states);
        for (audience, profile, member) in rows.members {
            if member {
                self.members.insert((audience, profile));
            } else {
                self.members.remove(&(audience, profile));
            }
        }
        for (audience, profile, due) in rows.timers {
            match due {
                Some(due) => self.timers.insert((audience, profile), due),
                None => self.timers.remove(&(audience, profile)),
            };
        }
    }
}

/// The changes a save stores.
fn take(p: &mut Profiles, m: &mut Memberships) -> ProfileRows {
    let mut rows = p.take_changes();
    m.take_rows(&mut rows);
    rows
}

/// A store as both backends keep the profiles' rows, to load working sets from.
#[derive(Default)]
struct Stored {
    tables: Tables,
    memberships: SavedRows,
}

impl Stored {
    fn save(&mut self, p: &mut Profiles, m: &mut Memberships) {
        self.apply(take(p, m));
    }

    fn apply(&mut self, rows: ProfileRows) {
        self.memberships.apply(rows.clone());
        self.tables.apply(rows);
    }

    /// Loads into a working set the stored profiles holding any of `identifiers`, or with
    /// an id in `ids`, as the server's follower does before applying a page.
    fn load(
        &self,
        p: &mut Profiles,
        m: &mut Memberships,
        identifiers: &[Identifier],
        ids: &[i64],
        now: i64,
    ) {
        let mut wanted: BTreeSet<i64> = ids.iter().copied().collect();
        for i in identifiers {
            let key = (i.id_type.as_str().to_owned(), i.value.clone());
            if let Some((owner, _, _)) = self.tables.identifiers.get(&key) {
                wanted.insert(*owner);
            }
        }
        let mut rows = ProfileRows::default();
        for id in wanted {
            let Some(doc) = self.tables.profiles.get(&id) else {
                continue;
            };
            rows.profiles.push((id, doc.clone()));
            for ((id_type, value), (owner, shared, seen_with)) in &self.tables.identifiers {
                if *owner == id {
                    rows.identifiers.push(IdentifierRow {
                        id_type: id_type.clone(),
                        value: value.clone(),
                        profile: id,
                        shared: *shared,
                        seen_with: seen_with.clone(),
                    });
                }
            }
            rows.states
                .extend(self.memberships.states.get(&id).map(|s| (id, s.clone())));
        }
        let added = p.load(&rows).unwrap();
        rows.states
            .retain(|(id, _)| added.contains(&ProfileId(*id)));
        m.load(p, &rows.states, now).unwrap();
    }
}

proptest! {
    /// A working set that holds a few profiles at a time, loading what each page needs from
    /// what it stored and evicting the rest, stores what the whole book would: the same
    /// documents, identifiers, timelines, states and members, timers firing included. So
    /// does the server's follower, whose save of a page is stored only while it applies the
    /// next (`pipelined`): it keeps the profiles that save holds.
    #[test]
    fn a_working_set_stores_what_the_whole_book_holds(
        ops in proptest::collection::vec((0u8..4, 0u8..6, 0u8..6), 1..80),
        pages in proptest::collection::vec(1usize..6, 1..30),
        capacity in 1usize..4,
        pipelined: bool,
    ) {
        let events: Vec<StoredEvent> = ops.iter().enumerate().map(|(i, op)| population_event(i as i64 + 1, *op)).collect();
        let now = time::parse_ms("2026-01-02T00:00:00.000Z").unwrap();
        let later = now + 40 * 86_400_000;
        let memberships = || Memberships::new(vec![buyers()], vec![counted()]);
        let (mut whole, mut whole_m) = (profiles(), memberships());
        feed(&mut whole, &mut whole_m, &events, now);
        whole_m.fire_timers(&whole, later + 1, usize::MAX);

        let mut stored = Stored::default();
        let mut p = Profiles::working_set(Rules::default(), Policy::default(), &[], 0);
        let mut m = memberships();
        let mut at = 0;
        let mut saving: Option<ProfileRows> = None;
        for size in pages.iter().cycle() {
            if at >= events.len() {
                break;
            }
            let page = &events[at..(at + size).min(events.len())];
            at += page.len();
            let parsed: Vec<Parsed> = page
                .iter()
                .map(|e| Parsed::of(serde_json::from_str(&e.body).unwrap(), &Rules::default()))
                .collect();
            let unknown = p.unknown_identifiers(&parsed);
            stored.load(&mut p, &mut m, &unknown, &[], now);
            feed(&mut p, &mut m, page, now);
            if let Some(rows) = saving.take() {
                stored.apply(rows);
            }
            let rows = take(&mut p, &mut m);
            let mut keep = FxHashSet::default();
            if pipelined {
                keep.extend(rows.profile_ids().map(ProfileId));
                saving = Some(rows);
            } else {
                stored.apply(rows);
            }
            let evicted = p.evict_to(capacity, &keep);
            m.evict(&evicted);
            prop_assert!(p.profile_count() <= capacity.max(page.len()) + keep.len() + 1);
        }
        if let Some(rows) = saving {
            stored.apply(rows);
        }
        // The timers due by then, read from the store, load their profiles.
        let due: Vec<i64> = stored.memberships.timers.iter().filter(|(_, &d)| d <= later).map(|((_, id), _)| *id).collect();
        stored.load(&mut p, &mut m, &[], &due, later);
        m.fire_timers(&p, later + 1, usize::MAX);
        stored.save(&mut p, &mut m);

        let snapshot = whole.snapshot();
        prop_assert_eq!(&stored.tables.profiles, &snapshot.profiles.iter().cloned().collect::<BTreeMap<_, _>>());
        let identifiers: BTreeMap<_, _> = snapshot.identifiers.iter().map(|r| ((r.id_type.clone(), r.value.clone()), (r.profile, r.shared, r.seen_with.clone()))).collect();
        prop_assert_eq!(&stored.tables.identifiers, &identifiers);
        prop_assert_eq!(&stored.tables.events, &snapshot.events.iter().copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(&stored.tables.consent, &snapshot.consent.iter().map(|(p, seq, c)| ((*p, *seq), c.clone())).collect::<BTreeMap<_, _>>());
        let mut all = ProfileRows::default();
        whole_m.all_rows(&mut all);
        prop_assert_eq!(&stored.memberships.states, &all.states.into_iter().collect::<BTreeMap<_, _>>());
        prop_assert_eq!(&stored.memberships.members, &all.members.into_iter().map(|(a, p, _)| (a, p)).collect::<BTreeSet<_>>());
    }
}

/// An event with any of the fields the book reads, beside some it never reads.
fn rich_event(seq: i64, (kind, person, device, flags): (u8, u8, u8, u16)) -> StoredEvent {
    let on = |bit: u16| flags & (1 << bit) != 0;
    let call = ["identify", "track", "page", "alias", "group"][kind as usize % 5];
    let mut body = json!({
        "type": call,
        "anonymousId": format!("a{device}"),
        "messageId": format!("m{seq}"),
        "sentAt": "2026-01-01T00:00:00.000Z",
        "integrations": {"All": true},
        "context": {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0", "library": {"name": "t"}},
    });
    if on(0) {
        body["userId"] = json!(format!("u{person}"));
    }
    if on(1) {
        body["traits"] =
            json!({"email": format!("P{person}@Example.test"), "plan": format!("p{seq}")});
    }
    if on(2) {
        body["context"]["traits"] = json!({"email": format!("p{device}@x.test"), "tier": seq});
    }
    if on(3) {
        body["context"]["locale"] = json!("en-GB");
        body["traits"]["phone"] = json!(format!("020 7946 0{person:03}"));
    }
    if on(4) {
        body["context"]["device"] = json!({"id": format!("d{device}"), "model": "x"});
    }
    if on(5) {
        body["context"]["externalIds"] = json!([{"type": "crm_id", "id": format!("c{person}")}]);
    }
    if on(6) {
        body["context"]["page"] =
            json!({"url": "https://shop.test/p?x=1", "path": "/p", "referrer": "https://r.test/"});
    }
    if on(7) {
        body["context"]["consent"] = json!({
            "categoryPreferences": {"Analytics": on(8), "Advertising": !on(8)},
            "jurisdiction": "EU", "evidence": {"banner": "v2"}});
    }
    if on(9) {
        body["context"]["tcf"] = json!(if on(8) { "1YNN" } else { "1YYY" });
    }
    if on(10) {
        body["gpc"] = json!(true);
    }
    if on(11) {
        body["context"]["linkage"] = json!({"score": 0.93, "matched": ["email"]});
    }
    if on(12) {
        body["timestamp"] = json!(format!("2026-01-01T00:{:02}:00.000Z", seq % 60));
    }
    if on(13) {
        body["previousId"] = json!(format!("a{person}"));
    }
    body["event"] = json!("e");
    body["name"] = json!("Home");
    body["properties"] = json!({"revenue": seq, "previousId": format!("a{}", person + 1),
        "cart": {"size": seq % 4}, "order": {"total": seq * 3}, "order.total": flags % 7,
        "sku": "SKU-1", "url": "https://shop.test/p"});
    event(seq, body)
}

proptest! {
    /// The book and its memberships fed bodies parsed to their [`ReadKeys`] end where the
    /// whole bodies take them: the same profiles, identifiers, traits, consent ledgers,
    /// counts without consent, members, computed values and news.
    #[test]
    fn the_read_parts_apply_as_the_whole_body(
        ops in proptest::collection::vec((0u8..5, 0u8..4, 0u8..4, any::<u16>()), 1..60),
    ) {
        let events: Vec<StoredEvent> =
            ops.iter().enumerate().map(|(i, op)| rich_event(i as i64 + 1, *op)).collect();
        let now = time::parse_ms("2026-01-02T00:00:00.000Z").unwrap();
        // Definitions that read properties: a key, a dotted path, an aggregated one.
        let memberships = || {
            let spenders = sightline_audience::Audience::parse(
                "spenders",
                r#"event "e" where revenue > 20 and cart.size >= 2 count >= 1 within 30d"#,
            )
            .unwrap();
            let spent = serde_json::from_value(json!({"name": "spent",
                "aggregate": {"kind": "max", "property": "order.total"}, "event": {"name": "e"}}))
            .unwrap();
            Memberships::new(vec![buyers(), spenders], vec![counted(), spent])
        };
        let (mut whole, mut whole_m) = (profiles(), memberships());
        let (mut read, mut read_m) = (profiles(), memberships());
        for e in &events {
            let applied = whole.apply(e);
            whole_m.on_event(&whole, &applied, e, now);
            let parsed = ReadKeys::of(&read_m).parse([e.body.as_str()], &Rules::default());
            let pruned = read.apply_parsed(e, parsed.into_iter().next().unwrap());
            prop_assert_eq!(
                (pruned.profile, &pruned.merged, pruned.analytics),
                (applied.profile, &applied.merged, applied.analytics)
            );
            read_m.on_event(&read, &pruned, e, now);
        }
        prop_assert_eq!(read.snapshot(), whole.snapshot());
        prop_assert_eq!(read.take_changes(), whole.take_changes());
        prop_assert_eq!(
            read.denied_counts("2000-01-01", "2100-01-01"),
            whole.denied_counts("2000-01-01", "2100-01-01")
        );
        prop_assert_eq!(read_m.members("repeat"), whole_m.members("repeat"));
        prop_assert_eq!(read_m.members("spenders"), whole_m.members("spenders"));
        prop_assert_eq!(read_m.take_changes(), whole_m.take_changes());
        for view in whole.profiles() {
            let id = view.identity.id;
            prop_assert_eq!(read.facts(id), whole.facts(id));
            prop_assert_eq!(read_m.computed(id, now), whole_m.computed(id, now));
        }
    }
}

/// Of the properties, the follower builds only those identity, the audiences and the
/// computed traits read.
#[test]
fn only_the_properties_read_are_built() {
    let spenders =
        sightline_audience::Audience::parse("spenders", r#"event "e" where cart.size >= 2"#)
            .unwrap();
    let spent = serde_json::from_value(json!({"name": "spent",
        "aggregate": {"kind": "sum", "property": "revenue"}}))
    .unwrap();
    let keys = ReadKeys::of(&Memberships::new(vec![spenders], vec![spent]));
    let body = json!({"type": "track", "event": "e", "properties": {"sku": "S", "revenue": 3,
        "cart": {"size": 2, "items": [1, 2]}, "previousId": "a1", "url": "https://x.test"}});
    let read = keys
        .parse([body.to_string().as_str()], &Rules::default())
        .pop()
        .unwrap()
        .unwrap()
        .body;
    assert_eq!(
        read["properties"],
        json!({"revenue": 3, "cart": {"size": 2, "items": [1, 2]}, "previousId": "a1"})
    );
    assert_eq!(read["event"], "e");
}

//! Stored profiles: the rows the profiles processor hands the store and the store keeps.
//! Plain data; `sightline-profiles` decides what goes in them.

/// One save of derived profile state, applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileSave {
    /// Delete every stored profile first (a rebuild) instead of applying on top.
    pub replace: bool,
    /// For a save on top: where the stored state must stand (the previous save's `seq`).
    /// Anything else means another process rewrote it, and the save is a `Conflict`.
    pub base_seq: i64,
    /// How many erasures had removed stored profiles when the saved profiles were read
    /// from the store (`Erasure::profile_erasures`). A save after a later one could write
    /// an erased person back from memory, and is a `Conflict` too, a rebuild's included.
    pub profile_erasures: i64,
    /// The state the save leaves behind.
    pub state: ProfilesState,
    pub rows: ProfileRows,
}

/// How far in the log the stored profiles are, and under which identity rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilesState {
    pub seq: i64,
    /// A fingerprint of the identity rules the profiles were resolved with.
    pub rules: String,
    /// A fingerprint of the audience and computed trait definitions the stored membership
    /// and trait states were kept under (empty in stores from before they were stored).
    pub definitions: String,
}

/// Changed rows, applied in this order: retirements, then upserts, then new timeline rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileRows {
    /// `(retired, survivor)` in the order the merges happened: the retired profile's row is
    /// deleted, its identifiers and events move to the survivor, and where it went is kept
    /// (a snapshot lists every merge so far).
    pub retired: Vec<(i64, i64)>,
    /// Live profiles created or changed: id and JSON document.
    pub profiles: Vec<(i64, String)>,
    pub identifiers: Vec<IdentifierRow>,
    /// `(profile, seq)`: events that landed on a profile.
    pub events: Vec<(i64, i64)>,
    /// Counts of events without analytics consent, added to the stored ones.
    pub denied_counts: Vec<DeniedCount>,
    /// Live audience enter and exit records `(audience, JSON)`, appended to the history
    /// (which a rebuild leaves alone: it is what happened, not what is derived).
    pub audience_changes: Vec<(String, String)>,
    /// Profiles' audience membership and computed trait states `(profile, JSON)`, replacing
    /// what was stored for them (a retired profile's go with it).
    pub states: Vec<(i64, String)>,
    /// Audience memberships `(audience, profile, member)`: a member is stored, a non-member
    /// removed. Read by the member lists without the processor's memory.
    pub members: Vec<(String, i64, bool)>,
    /// When a membership may next change with no new event `(audience, profile, due_at)`;
    /// `None` removes the timer (a retired profile's go with it).
    pub timers: Vec<(String, i64, Option<i64>)>,
    /// Consent ledger entries `(profile, seq, JSON)`, one per event that stated consent:
    /// appended (a retired profile's move to the survivor), never rewritten.
    pub consent: Vec<(i64, i64, String)>,
}

impl ProfileRows {
    /// Every profile the rows write about.
    pub fn profile_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.profiles
            .iter()
            .map(|(id, _)| *id)
            .chain(self.identifiers.iter().map(|row| row.profile))
            .chain(self.events.iter().map(|(id, _)| *id))
            .chain(self.states.iter().map(|(id, _)| *id))
            .chain(self.members.iter().map(|(_, id, _)| *id))
            .chain(self.timers.iter().map(|(_, id, _)| *id))
            .chain(self.consent.iter().map(|(id, _, _)| *id))
            .chain(
                self.retired
                    .iter()
                    .flat_map(|&(retired, survivor)| [retired, survivor]),
            )
    }
}

/// How many events of one name, from one source, on one day (UTC) were not covered by
/// analytics consent: the identifier-free measurement kept for them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct DeniedCount {
    /// `YYYY-MM-DD`, of the event's time.
    pub day: String,
    pub source_id: i64,
    /// A track call's event name, a page or screen call's name, else the call type.
    pub event: String,
    pub count: i64,
}

/// Who holds an identifier, and what shared-identifier detection knows of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentifierRow {
    pub id_type: String,
    pub value: String,
    pub profile: i64,
    pub shared: bool,
    /// Other profiles it was seen with, as a JSON array of ids.
    pub seen_with: String,
}

/// A stored profile: its id, the JSON document the processor wrote, its audience
/// membership and computed trait states (`None` when it has none), and its consent ledger
/// entries (JSON, in seq order; the document does not hold them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProfile {
    pub id: i64,
    pub doc: String,
    pub states: Option<String>,
    pub consent: Vec<String>,
}

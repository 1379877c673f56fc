//! Keeps unified profiles and audience memberships current from the log: the server follows
//! the log with a [`Book`] that holds a working set of the profiles (those the events
//! need, loaded from the store, the least recently used evicted once stored) and saves the
//! profiles it changes to the store after every page; the command line rebuilds the whole
//! state from the log in memory. Both are derived state: a rebuild from the log gives the
//! same answer.

use crate::processors::{DrainFuture, PositionFuture, Processor, Step, StepFuture};
use anyhow::Result;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;
use sightline_audience::{Audience, ComputedTrait};
use sightline_consent::Policy;
use sightline_core::{
    time, AudienceDefinition, ProfileRows, ProfileSave, ProfilesState, StoredEvent, TraitDefinition,
};
use sightline_identity::{Identifier, ProfileId, Rules};
use sightline_profiles::{EventProfile, Memberships, Parsed, ProfileDoc, Profiles, ReadKeys};
use sightline_store::{Store, StoreError};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// Events the follower reads and applies at a time. Each page is one save (one commit and
/// fsync) and one round of store reads: at 1,000 those took a third of a catch-up's time.
/// A larger page also writes each stored page of rows once for more events (a profile
/// met twice in it is saved once): from 4,000 to 16,000, a catch-up applied 95,000
/// events/s instead of 85,000. Only a follower that is behind fills one; with the page
/// read ahead, two pages of parsed bodies are held at most.
const PAGE: usize = 16_000;
/// Membership timers the follower fires per page at most: the news of a window closing on
/// many members are saved (and synced) a page at a time.
const TIMERS_PER_PAGE: usize = 10_000;
/// Profiles the server's book holds in memory by default (`profile_cache`).
pub const DEFAULT_CACHE: usize = 100_000;

/// Profiles and the memberships of the stored audiences.
pub struct Book {
    pub profiles: Profiles,
    pub memberships: Memberships,
    /// The definitions `memberships` was built from.
    definitions: Definitions,
    pub rules: ProfileRules,
    /// Where the stored profiles stand: the base of the next save.
    saved_seq: i64,
    /// Events up to this seq are a replay of the log (a rebuild): their audience enter and
    /// exit records are history, not news to sync.
    replaying_until: i64,
    /// The store's count of profile erasures when this book started reading profiles from
    /// it or the log: its saves are refused once another erasure ran (see [`Live::forget`]).
    profile_erasures: i64,
}

/// The server's book, kept current by the follower and read by every request. A panic
/// while the lock is held (a bug) must not take every later request down with it: the
/// lock is taken as it was left, and the log stays the truth a rebuild restores. What
/// requests ask for often (the rules, how far the book has applied the log) is kept beside
/// the lock, so that they never wait for the follower applying a page.
#[derive(Clone)]
pub struct Live {
    book: Arc<RwLock<Book>>,
    rules: Arc<ProfileRules>,
    /// The seq through which the stored profiles have taken in the log (what lookups
    /// read), set whenever the follower lets go of the book.
    saved: Arc<AtomicI64>,
    /// Held by the follower through each step (a page applied) and by an erasure through
    /// its deletes, with `saving`: a save never brings back rows an erasure removed.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Held by a page's save, which runs on while the follower applies the next page.
    saving: Arc<tokio::sync::Mutex<()>>,
    /// Erasures this book has seen: a page read ahead before one may hold erased events.
    erasures: Arc<AtomicU64>,
}

/// The follower held between steps, with no save of its running (see [`Live::turn`]).
pub struct Turn {
    _turn: tokio::sync::OwnedMutexGuard<()>,
    _saving: tokio::sync::OwnedMutexGuard<()>,
}

/// The book, written; its saved seq is published when the writer lets go.
struct Writing<'a> {
    book: RwLockWriteGuard<'a, Book>,
    saved: &'a AtomicI64,
}

impl std::ops::Deref for Writing<'_> {
    type Target = Book;
    fn deref(&self) -> &Book {
        &self.book
    }
}

impl std::ops::DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut Book {
        &mut self.book
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.saved.store(self.book.saved_seq, Ordering::Release);
    }
}

impl Live {
    pub fn new(book: Book) -> Live {
        Live {
            rules: Arc::new(book.rules.clone()),
            saved: Arc::new(AtomicI64::new(book.saved_seq)),
            book: Arc::new(RwLock::new(book)),
            turn: Arc::new(tokio::sync::Mutex::new(())),
            saving: Arc::new(tokio::sync::Mutex::new(())),
            erasures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Waits until the follower is between steps and its last save is stored, and keeps
    /// it there while held.
    pub async fn turn(&self) -> Turn {
        let turn = Arc::clone(&self.turn).lock_owned().await;
        let saving = Arc::clone(&self.saving).lock_owned().await;
        Turn {
            _turn: turn,
            _saving: saving,
        }
    }

    /// Opens the book again from the store once the follower is between steps: another
    /// process erased someone this book may hold.
    pub async fn reopen(&self, store: &dyn Store) -> Result<()> {
        let _turn = self.turn().await;
        let fresh = open(store, self.rules().clone()).await?;
        *self.write() = fresh;
        self.erasures.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// How many erasures this book has seen (see [`Live::forget`]).
    pub(crate) fn erasures(&self) -> u64 {
        self.erasures.load(Ordering::Acquire)
    }

    /// Drops the profiles given (an erased person's ids), their memberships and changes
    /// not yet saved from the book; returns how many live profiles it held. `erased` is the
    /// store's count of profile erasures after this one ([`Erased::profile_erasures`]):
    /// when the book had seen every one before it, its saves go on; else one it has not
    /// seen (another node's, or another process's) may have removed a person it holds, and
    /// its next save is refused, so that it reads the profiles again.
    ///
    /// [`Erased::profile_erasures`]: sightline_store::Erased
    pub fn forget(&self, ids: &[i64], erased: i64) -> usize {
        let ids: Vec<ProfileId> = ids.iter().map(|&id| ProfileId(id)).collect();
        let mut book = self.write();
        let dropped = book.profiles.forget(&ids);
        book.memberships.evict(&ids);
        if book.profile_erasures + 1 == erased {
            book.profile_erasures = erased;
        }
        // Counted even when the book held none of them: the page read ahead may hold
        // their events all the same.
        self.erasures.fetch_add(1, Ordering::AcqRel);
        dropped.len()
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Book> {
        self.book.read().unwrap_or_else(|poisoned| {
            tracing::error!("profiles: a reader or the follower panicked; reading on");
            poisoned.into_inner()
        })
    }

    fn write(&self) -> Writing<'_> {
        let book = self.book.write().unwrap_or_else(|poisoned| {
            tracing::error!("profiles: a reader or the follower panicked; writing on");
            poisoned.into_inner()
        });
        Writing {
            book,
            saved: &self.saved,
        }
    }

    /// The rules the profiles are derived under (fixed while the server runs).
    pub fn rules(&self) -> &ProfileRules {
        &self.rules
    }

    /// While a rebuild replays the log: how far it has come and where it ends.
    pub fn rebuilding(&self) -> Option<(i64, i64)> {
        self.read().rebuilding()
    }

    /// Whether the profiles keep the memberships of an audience (a new one is picked up
    /// within a second or so).
    pub fn has_audience(&self, name: &str) -> bool {
        self.read().memberships.members(name).is_some()
    }

    /// The seq through which the stored profiles, which lookups read, have taken in the
    /// log.
    pub fn saved_seq(&self) -> i64 {
        self.saved.load(Ordering::Acquire)
    }
}

/// What profiles are derived under: the identity rules, the consent mapping (which decodes
/// the ledgers' signals), and their fingerprint, stored beside the profiles.
#[derive(Clone)]
pub struct ProfileRules {
    pub rules: Rules,
    pub policy: Policy,
    pub fingerprint: String,
}

/// The stored audience and computed trait definitions.
#[derive(Clone, PartialEq)]
struct Definitions {
    audiences: Vec<AudienceDefinition>,
    traits: Vec<TraitDefinition>,
}

impl Definitions {
    async fn load(store: &dyn Store) -> Result<Definitions> {
        Ok(Definitions {
            audiences: store.list_audiences().await?,
            traits: store.list_traits().await?,
        })
    }

    /// What the stored membership and trait states were kept under: the rules and the
    /// names they are stored by (which destinations an audience syncs to is not part of it).
    fn fingerprint(&self) -> String {
        let mut text = String::new();
        for a in &self.audiences {
            text.push_str(&format!("audience\0{}\0{}\n", a.name, a.rule));
        }
        for t in &self.traits {
            text.push_str(&format!("trait\0{}\0{}\n", t.name, t.definition));
        }
        sightline_core::secret::hash(&text)[..16].to_owned()
    }

    fn audiences(&self) -> Vec<Audience> {
        self.audiences
            .iter()
            .filter_map(|d| match Audience::parse(d.name.clone(), &d.rule) {
                Ok(audience) => Some(audience),
                Err(e) => {
                    tracing::warn!(audience = %d.name, error = %e, "skipping an audience whose rule no longer parses");
                    None
                }
            })
            .collect()
    }

    fn traits(&self) -> Vec<ComputedTrait> {
        self.traits
            .iter()
            .filter_map(|d| match serde_json::from_value::<ComputedTrait>(d.definition.clone()) {
                Ok(computed) => Some(computed),
                Err(e) => {
                    tracing::warn!(computed_trait = %d.name, error = %e, "skipping a computed trait whose definition no longer reads");
                    None
                }
            })
            .collect()
    }
}

impl Book {
    /// An empty book holding every profile, to replay the log into: its enter and exit
    /// records are history, until the replay is over ([`Book::replayed`]).
    fn new(definitions: Definitions, rules: ProfileRules, profile_erasures: i64) -> Book {
        let mut profiles = Profiles::with_policy(rules.rules.clone(), rules.policy.clone());
        profiles.track_changes_after(i64::MAX);
        Book {
            profiles,
            memberships: Memberships::new(definitions.audiences(), definitions.traits()),
            definitions,
            rules,
            saved_seq: 0,
            replaying_until: i64::MAX,
            profile_erasures,
        }
    }

    /// Ends a replay: the records of events after those applied are news.
    fn replayed(&mut self) {
        self.memberships.take_changes();
        self.memberships.forget_changes();
        self.replaying_until = self.profiles.last_seq();
    }

    /// While a rebuild replays the log: how far it has come and where it ends.
    pub fn rebuilding(&self) -> Option<(i64, i64)> {
        let applied = self.profiles.last_seq();
        (self.replaying_until != i64::MAX && applied < self.replaying_until)
            .then_some((applied, self.replaying_until))
    }

    /// The book a save left in the store at `state`, kept under these rules and
    /// definitions, as an empty working set: the profiles are loaded as events need them.
    async fn resume(
        store: &dyn Store,
        definitions: Definitions,
        rules: ProfileRules,
        state: &ProfilesState,
    ) -> Result<Book> {
        // Read before any profile is: an erasure after it is one this book may not see.
        let profile_erasures = store.profile_erasures().await?;
        let denied = store
            .consent_denied_counts("0000-01-01", "9999-12-31")
            .await?;
        let profiles = Profiles::working_set(
            rules.rules.clone(),
            rules.policy.clone(),
            &denied,
            state.seq,
        );
        Ok(Book {
            profiles,
            memberships: Memberships::new(definitions.audiences(), definitions.traits()),
            definitions,
            rules,
            saved_seq: state.seq,
            // A rebuild stopped part way goes on as one.
            replaying_until: store.checkpoint(REBUILD_UNTIL).await?,
            profile_erasures,
        })
    }

    fn state(&self) -> ProfilesState {
        ProfilesState {
            seq: self.profiles.last_seq(),
            rules: self.rules.fingerprint.clone(),
            definitions: self.definitions.fingerprint(),
        }
    }

    /// The changes since the last save, on top of it. The profiles' documents and the
    /// memberships' states are written out side by side, on two threads: with a page's
    /// thousands of profiles changed, one after the other they took a quarter of the
    /// follower's step (which the next page waits for) on the ingest bench.
    fn changes(&mut self) -> ProfileSave {
        let (profiles, memberships) = (&mut self.profiles, &mut self.memberships);
        let rows = std::thread::scope(|scope| {
            let states = scope.spawn(|| {
                let mut rows = ProfileRows::default();
                memberships.take_rows(&mut rows);
                rows
            });
            let mut rows = profiles.take_changes();
            let ProfileRows {
                states,
                members,
                timers,
                ..
            } = states
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (rows.states, rows.members, rows.timers) = (states, members, timers);
            rows
        });
        ProfileSave {
            replace: false,
            base_seq: self.saved_seq,
            profile_erasures: self.profile_erasures,
            state: self.state(),
            rows,
        }
    }

    /// Everything, replacing whatever is stored.
    fn snapshot(&self) -> ProfileSave {
        let mut rows = self.profiles.snapshot();
        self.memberships.all_rows(&mut rows);
        ProfileSave {
            replace: true,
            base_seq: 0,
            profile_erasures: self.profile_erasures,
            state: self.state(),
            rows,
        }
    }

    /// Takes in a page read by [`read_page`]: loads what it needs into a working set,
    /// applies its events and fires the timers due; says whether more timers are due.
    fn take_in(&mut self, page: Page, now: i64) -> Result<bool> {
        let corrupt = |e: String| StoreError::Corrupt(format!("stored profiles: {e}"));
        let added: FxHashSet<ProfileId> = self
            .profiles
            .load(&page.rows)
            .map_err(corrupt)?
            .into_iter()
            .collect();
        let states: Vec<(i64, String)> = page
            .rows
            .states
            .into_iter()
            .filter(|(id, _)| added.contains(&ProfileId(*id)))
            .collect();
        self.memberships
            .load(&self.profiles, &states, now)
            .map_err(corrupt)?;
        // The book's own timers are the truth for the profiles it held already: the stored
        // ones may be older (the last page's save still on its way).
        let due: Vec<(String, i64, i64)> = page
            .due
            .iter()
            .filter(|(_, profile, _)| added.contains(&ProfileId(*profile)))
            .cloned()
            .collect();
        self.memberships.add_timers(&due);
        for (event, parsed) in page.events.iter().zip(page.parsed) {
            self.memberships.keep_news(event.seq > self.replaying_until);
            let applied = self.profiles.apply_parsed(event, parsed);
            self.memberships
                .on_event(&self.profiles, &applied, event, now);
        }
        let more = self
            .memberships
            .fire_timers(&self.profiles, now, TIMERS_PER_PAGE);
        Ok(more || page.due.len() == TIMERS_PER_PAGE)
    }

    /// Evicts the least recently used profiles beyond `capacity`, except those a save not
    /// yet stored holds (`saving`): a page that needs one again must not read it from the
    /// store before then.
    fn evict(&mut self, capacity: usize, saving: &FxHashSet<ProfileId>) {
        let evicted = self.profiles.evict_to(capacity, saving);
        self.memberships.evict(&evicted);
    }

    /// Reads the log from where this book stands to its end.
    async fn catch_up(&mut self, store: &dyn Store) -> Result<()> {
        self.catch_up_holding(store, usize::MAX).await.map(drop)
    }

    /// Reads the log from where this book stands to its end while it holds at most
    /// `capacity` profiles; false when it stopped for holding more (this book holds every
    /// profile it meets: it has nowhere to evict them to).
    async fn catch_up_holding(&mut self, store: &dyn Store, capacity: usize) -> Result<bool> {
        loop {
            let now = time::now_ms();
            let page = read_page(store, self.profiles.last_seq(), now, self).await?;
            let full = page.events.len() == PAGE;
            let more = self.take_in(page, now)?;
            if self.profiles.profile_count() > capacity {
                return Ok(false);
            }
            if !full && !more {
                return Ok(true);
            }
        }
    }
}

/// A page of the log with its bodies parsed once and, for a working set, what it needs
/// from the store: the stored profiles holding identifiers the book does not hold, and
/// those whose stored timers are due.
struct Page {
    events: Vec<StoredEvent>,
    parsed: Vec<Option<Parsed>>,
    due: Vec<(String, i64, i64)>,
    rows: ProfileRows,
}

/// What a book can say about itself before a page is read, without holding its lock
/// across the store's answers.
trait Holds {
    fn partial(&self) -> bool;
    fn unknown(&self, parsed: &[Option<Parsed>]) -> Vec<Identifier>;
    fn holds(&self, profile: ProfileId) -> bool;
}

impl Holds for Profiles {
    fn partial(&self) -> bool {
        self.is_partial()
    }

    fn unknown(&self, parsed: &[Option<Parsed>]) -> Vec<Identifier> {
        self.unknown_identifiers(parsed.iter().flatten())
    }

    fn holds(&self, profile: ProfileId) -> bool {
        Profiles::holds(self, profile)
    }
}

impl Holds for Live {
    fn partial(&self) -> bool {
        self.read().profiles.is_partial()
    }

    fn unknown(&self, parsed: &[Option<Parsed>]) -> Vec<Identifier> {
        self.read().profiles.unknown(parsed)
    }

    fn holds(&self, profile: ProfileId) -> bool {
        self.read().profiles.holds(profile)
    }
}

/// A page of the log after `after`, its bodies parsed, before the store was asked what
/// the page needs.
struct Fetched {
    after: i64,
    /// What of the bodies was built.
    keys: ReadKeys,
    events: Vec<StoredEvent>,
    parsed: Vec<Option<Parsed>>,
}

async fn fetch(store: &dyn Store, after: i64, keys: ReadKeys, rules: &Rules) -> Result<Fetched> {
    let events = store.read_events(after, PAGE, None).await?;
    let parsed = keys.parse(events.iter().map(|e| e.body.as_str()), rules);
    Ok(Fetched {
        after,
        keys,
        events,
        parsed,
    })
}

async fn read_page(store: &dyn Store, after: i64, now: i64, book: &Book) -> Result<Page> {
    let keys = ReadKeys::of(&book.memberships);
    let fetched = fetch(store, after, keys, &book.rules.rules).await?;
    complete(store, fetched, now, &book.profiles).await
}

/// A fetched page with what a working set needs from the store for it.
async fn complete(
    store: &dyn Store,
    fetched: Fetched,
    now: i64,
    book: &impl Holds,
) -> Result<Page> {
    let mut page = Page {
        events: fetched.events,
        parsed: fetched.parsed,
        due: Vec::new(),
        rows: ProfileRows::default(),
    };
    if !book.partial() {
        return Ok(page);
    }
    let identifiers: Vec<(String, String)> = book
        .unknown(&page.parsed)
        .into_iter()
        .map(|i| (i.id_type.as_str().to_owned(), i.value))
        .collect();
    page.due = store.due_timers(now, TIMERS_PER_PAGE).await?;
    let ids: Vec<i64> = page
        .due
        .iter()
        .map(|(_, profile, _)| *profile)
        .filter(|&p| !book.holds(ProfileId(p)))
        .collect();
    if !identifiers.is_empty() || !ids.is_empty() {
        page.rows = store.working_set(identifiers, ids).await?;
    }
    Ok(page)
}

/// Profiles and memberships rebuilt from the whole log (a new audience's backfill). The
/// enter and exit records of the replay are history, not news: none is left to sync.
pub async fn rebuild(store: &dyn Store, rules: ProfileRules) -> Result<Book> {
    let profile_erasures = store.profile_erasures().await?;
    let mut book = Book::new(Definitions::load(store).await?, rules, profile_erasures);
    book.catch_up(store).await?;
    book.replayed();
    Ok(book)
}

/// How far a rebuild into the store has come.
#[derive(Debug, Clone, Copy)]
pub struct Rebuilding {
    /// The log position applied and stored.
    pub seq: i64,
    /// The log's end when the rebuild started.
    pub end: i64,
    /// Live profiles stored so far.
    pub profiles: i64,
}

/// The checkpoint that keeps the log position a rebuild replays up to, so that a rebuild
/// stopped part way (`kill -9`) goes on as one.
const REBUILD_UNTIL: &str = "profiles:rebuild-until";

/// Starts a rebuild of the stored profiles: they are replaced with nothing at position 0
/// under these rules and definitions, and the returned book (a working set) replays the log
/// up to its present end as the server's follower does, each page stored as it goes.
async fn start_rebuild(
    store: &dyn Store,
    definitions: Definitions,
    rules: ProfileRules,
) -> Result<Book> {
    let state = ProfilesState {
        seq: 0,
        rules: rules.fingerprint.clone(),
        definitions: definitions.fingerprint(),
    };
    store
        .set_checkpoint(REBUILD_UNTIL, store.last_seq().await?)
        .await?;
    store
        .save_profiles(ProfileSave {
            replace: true,
            base_seq: 0,
            profile_erasures: store.profile_erasures().await?,
            state: state.clone(),
            rows: ProfileRows::default(),
        })
        .await?;
    Book::resume(store, definitions, rules, &state).await
}

/// Rebuilds the stored profiles from the whole log holding at most `capacity` profiles in
/// memory, so that memory stays bounded whatever the history's length (`sightline identity
/// rebuild`). A rebuild stopped part way leaves a stored position under the new rules from
/// which the next start goes on. `progress` hears after every page.
pub async fn rebuild_into_store(
    store: &dyn Store,
    rules: ProfileRules,
    capacity: usize,
    mut progress: impl FnMut(Rebuilding),
) -> Result<Book> {
    let mut book = start_rebuild(store, Definitions::load(store).await?, rules).await?;
    let end = book.replaying_until;
    let mut live = 0;
    loop {
        let now = time::now_ms();
        let first = book.profiles.last_seq();
        let page = read_page(store, first, now, &book).await?;
        let full = page.events.len() == PAGE;
        let more = book.take_in(page, now)?;
        let mut save = book.changes();
        save.rows.audience_changes = news_rows(&book.memberships.take_changes());
        // A profile's id is the seq of the event that created it.
        live += save
            .rows
            .profiles
            .iter()
            .filter(|(id, _)| *id > first)
            .count() as i64
            - save.rows.retired.len() as i64;
        book.saved_seq = save.state.seq;
        store.save_profiles(save).await?;
        book.evict(capacity, &FxHashSet::default());
        progress(Rebuilding {
            seq: book.saved_seq,
            end,
            profiles: live,
        });
        if !full && !more {
            return Ok(book);
        }
    }
}

/// The server's book at start, which takes no longer however long the history: the stored
/// profiles as a working set at their stored position, when they were kept under the same
/// identity rules and definitions (the follower applies the events past it); else a
/// rebuild started (the stored profiles replaced with nothing), which the follower carries
/// out as it follows the log, its progress in the log, /metrics and `/readyz?verbose`.
pub async fn open(store: &dyn Store, rules: ProfileRules) -> Result<Book> {
    let definitions = Definitions::load(store).await?;
    let kept_under = |state: &ProfilesState| {
        state.rules == rules.fingerprint && state.definitions == definitions.fingerprint()
    };
    let log_end = store.last_seq().await?;
    let resumable = store
        .profiles_state()
        .await?
        .filter(|state| kept_under(state) && state.seq <= log_end);
    let replay_from = resumable.as_ref().map_or(0, |state| state.seq);
    metrics::gauge!("sightline_profiles_start_replay_from_seq").set(replay_from as f64);
    match resumable {
        Some(state) => {
            tracing::info!(seq = state.seq, "profiles: resuming from the store");
            Book::resume(store, definitions, rules, &state).await
        }
        None => {
            tracing::info!(
                end = log_end,
                "profiles: rebuilding from the log (first start, or the identity rules or audience definitions changed)"
            );
            start_rebuild(store, definitions, rules).await
        }
    }
}

/// Enter and exit records as the store keeps them: `(audience, JSON)`.
fn news_rows(news: &[sightline_audience::MembershipChange]) -> Vec<(String, String)> {
    news.iter()
        .filter_map(|c| Some((c.audience.clone(), serde_json::to_string(c).ok()?)))
        .collect()
}

/// A save the follower owes the store.
enum Owed {
    Changes(Box<ProfileSave>),
    /// Another process saved profiles in between: this server's working set may be stale,
    /// so it starts again from what is stored (both follow the same log).
    Reopen,
}

/// Makes the store hold what the book holds; on failure, says what is still owed.
async fn pay(store: &dyn Store, book: &Live, save: ProfileSave) -> Result<(), Owed> {
    let seq = save.state.seq;
    match store.save_profiles(save.clone()).await {
        Ok(()) => {
            book.write().saved_seq = seq;
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "profiles: cannot store the profiles");
            Err(match e {
                StoreError::Conflict(_) => Owed::Reopen,
                _ => Owed::Changes(Box::new(save)),
            })
        }
    }
}

/// The profiles processor: applies new log events as they are committed, fires membership
/// timers, and saves what changed (with the audience enter and exit records, which audience
/// sync reads) after every page, then evicts the least recently used profiles beyond its
/// cache. A new audience or trait definition rebuilds the book from the log beside it, then
/// swaps it in, or when the profiles outnumber the cache, rebuilds the stored profiles
/// ([`Follower::reload`]).
pub struct Follower {
    store: Arc<dyn Store>,
    book: Live,
    /// Profiles held in memory at most (beyond those a page needs).
    capacity: usize,
    /// A save that failed: new events wait until the store holds what the book holds.
    owed: std::sync::Mutex<Option<Owed>>,
    /// When the definitions were last compared with the stored ones.
    checked: std::sync::Mutex<Instant>,
    /// When a rebuild's progress was last logged.
    said: std::sync::Mutex<Instant>,
    /// The next page, read and parsed while the book applies this one (when behind), with
    /// the book's count of erasures when it was asked for.
    ahead: std::sync::Mutex<Option<(u64, tokio::task::JoinHandle<Result<Fetched>>)>>,
    /// The last page's save, stored while the book applies the next one.
    saving: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<(), Owed>>>>,
    /// A book being built for new definitions while this one goes on.
    reloading: std::sync::Mutex<Option<Reload>>,
}

/// A book being built from the log for changed audience or trait definitions.
struct Reload {
    definitions: Definitions,
    /// The erasures the book in use had seen when it started: one since may have removed
    /// events it applied, so it is started again.
    erasures: u64,
    /// The book, or `None` when the profiles outnumber the follower's cache.
    task: tokio::task::JoinHandle<Result<Option<Book>>>,
}

/// How often the follower compares the audience and trait definitions with the stored ones.
const DEFINITIONS_EVERY: Duration = Duration::from_secs(1);

impl Follower {
    pub fn new(store: Arc<dyn Store>, book: Live, capacity: usize) -> Follower {
        Follower {
            store,
            book,
            capacity,
            owed: std::sync::Mutex::new(None),
            checked: std::sync::Mutex::new(Instant::now()),
            said: std::sync::Mutex::new(Instant::now()),
            ahead: std::sync::Mutex::new(None),
            saving: std::sync::Mutex::new(None),
            reloading: std::sync::Mutex::new(None),
        }
    }

    /// Swaps in the book built for changed audience or trait definitions once it is built,
    /// else starts building one. It replays the whole log beside the follower, which goes
    /// on applying pages to the book in use meanwhile (a replay inside the follower's step
    /// stalled every profile and delivery for as long as the log took to read: minutes at
    /// millions of events). Only the events applied meanwhile, and the store of the whole
    /// new book (so no member of an audience that is gone stays behind), wait for the
    /// follower's turn, which the caller holds.
    ///
    /// That book holds every profile, so it is built only while they fit the follower's
    /// cache: beyond it, memory would grow with the history. Then the stored profiles are
    /// rebuilt under the new definitions instead, a page at a time, as a change of identity
    /// rules rebuilds them ([`start_rebuild`]): lookups show the profiles as far as the
    /// rebuild has come until it is done.
    async fn reload(&self) -> Result<()> {
        let store = self.store.as_ref();
        let definitions = Definitions::load(store).await?;
        let running = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let erasures = self.book.erasures();
        let current = self.book.read().definitions == definitions;
        match running {
            Some(reload) if current => reload.task.abort(),
            Some(reload) if reload.definitions != definitions || reload.erasures != erasures => {
                reload.task.abort();
            }
            Some(reload) if !reload.task.is_finished() => {
                *self
                    .reloading
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(reload);
                return Ok(());
            }
            Some(reload) => match reload.task.await {
                Ok(Ok(None)) => {
                    tracing::info!(
                        capacity = self.capacity,
                        "profiles: more profiles than the cache holds; rebuilding them in the store for the new audience and trait definitions"
                    );
                    let rules = self.book.rules().clone();
                    *self.book.write() = start_rebuild(store, reload.definitions, rules).await?;
                    return Ok(());
                }
                Ok(Ok(Some(mut fresh))) => {
                    fresh.catch_up(store).await?;
                    fresh.replayed();
                    store.save_profiles(fresh.snapshot()).await?;
                    fresh.saved_seq = fresh.profiles.last_seq();
                    fresh.profiles.track_changes_after(fresh.saved_seq);
                    fresh.profiles.make_partial();
                    *self.book.write() = fresh;
                    tracing::info!("profiles: the new audience and trait definitions are in use");
                    return Ok(());
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "profiles: building the book for new definitions failed; starting again");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "profiles: building the book for new definitions stopped; starting again");
                }
            },
            None => {}
        }
        if current {
            return Ok(());
        }
        tracing::info!(
            "profiles: audience or trait definitions changed; replaying the log for them beside the profiles in use"
        );
        let (store, rules) = (Arc::clone(&self.store), self.book.rules().clone());
        let (building, capacity) = (definitions.clone(), self.capacity);
        let task = tokio::spawn(async move {
            let profile_erasures = store.profile_erasures().await?;
            let mut fresh = Book::new(building, rules, profile_erasures);
            let whole = fresh.catch_up_holding(store.as_ref(), capacity).await?;
            Ok(whole.then_some(fresh))
        });
        *self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Reload {
            definitions,
            erasures,
            task,
        });
        Ok(())
    }

    /// Waits for the last page's save; a failed one is owed.
    async fn saved(&self) -> Result<()> {
        let saving = self
            .saving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let debt = match saving {
            None => return Ok(()),
            Some(saving) => match saving.await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(debt)) => debt,
                // It panicked: what it stored is unknown, so start again from the store.
                Err(_) => Owed::Reopen,
            },
        };
        *self.owed.lock().unwrap_or_else(PoisonError::into_inner) = Some(debt);
        anyhow::bail!("the profiles could not be stored")
    }

    /// Stores `save` while the follower goes on: the next page's changes go on top of it,
    /// and until it is stored, the book keeps every profile it holds.
    async fn save(&self, save: ProfileSave) {
        let saving = Arc::clone(&self.book.saving).lock_owned().await;
        let (store, book) = (Arc::clone(&self.store), self.book.clone());
        let task = tokio::spawn(async move {
            let _saving = saving;
            pay(store.as_ref(), &book, save).await
        });
        *self.saving.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// The page after `after`: the one read ahead if it starts there, else read now.
    /// While behind, the page after it is read and parsed meanwhile, on another thread.
    async fn fetch(&self, after: i64) -> Result<Fetched> {
        let ahead = self
            .ahead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let erasures = self.book.erasures();
        let keys = ReadKeys::of(&self.book.read().memberships);
        let fetched = match ahead {
            Some((asked, ahead)) => match ahead.await {
                Ok(Ok(fetched))
                    if fetched.after == after && asked == erasures && fetched.keys == keys =>
                {
                    fetched
                }
                // Read for a book since replaced (whose definitions may read other
                // properties), possibly before an erasure's deletes, or failed: read again.
                _ => fetch(self.store.as_ref(), after, keys, &self.book.rules.rules).await?,
            },
            None => fetch(self.store.as_ref(), after, keys, &self.book.rules.rules).await?,
        };
        if let (PAGE, Some(last)) = (fetched.events.len(), fetched.events.last()) {
            let (store, next, keys) = (Arc::clone(&self.store), last.seq, fetched.keys.clone());
            let rules = Arc::clone(&self.book.rules);
            let ahead =
                tokio::spawn(async move { fetch(store.as_ref(), next, keys, &rules.rules).await });
            *self.ahead.lock().unwrap_or_else(PoisonError::into_inner) = Some((erasures, ahead));
        }
        Ok(fetched)
    }

    /// Settles a debt; an error while it stands.
    async fn settle(&self, debt: Owed) -> Result<()> {
        let store = self.store.as_ref();
        let outcome = match debt {
            Owed::Changes(save) => pay(store, &self.book, *save).await,
            Owed::Reopen => {
                let rules = self.book.rules();
                let fresh = open(store, rules.clone()).await?;
                *self.book.write() = fresh;
                // A page read ahead meanwhile may hold events an erasure since removed.
                self.book.erasures.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
        };
        if let Err(debt) = outcome {
            *self.owed.lock().unwrap_or_else(PoisonError::into_inner) = Some(debt);
            anyhow::bail!("the profiles could not be stored");
        }
        Ok(())
    }

    /// Reads a page, applies it, then waits for the last page's save and starts this
    /// one's: the store writes one page while the book applies the next.
    async fn page(&self) -> Result<Step> {
        // Not `Live::turn`, which waits for the last save too.
        let _turn = self.book.turn.lock().await;
        let store = self.store.as_ref();
        let due = {
            let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
            let due = checked.elapsed() >= DEFINITIONS_EVERY;
            if due {
                *checked = Instant::now();
            }
            due
        };
        if due {
            self.saved().await?;
        }
        let debt = self
            .owed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(debt) = debt {
            self.settle(debt).await?;
        }
        if due {
            self.reload().await?;
        }
        let after = self.book.read().profiles.last_seq();
        let now = time::now_ms();
        let page = complete(store, self.fetch(after).await?, now, &self.book).await?;
        let full = page.events.len() == PAGE;
        let more = {
            let mut book = self.book.write();
            let more = book.take_in(page, now)?;
            metrics::gauge!("sightline_profiles_applied_seq").set(book.profiles.last_seq() as f64);
            metrics::gauge!("sightline_profiles_held").set(book.profiles.profile_count() as f64);
            if let Some((seq, end)) = book.rebuilding() {
                metrics::gauge!("sightline_profiles_rebuild_seq").set(seq as f64);
                metrics::gauge!("sightline_profiles_rebuild_end_seq").set(end as f64);
                let mut said = self.said.lock().unwrap_or_else(PoisonError::into_inner);
                if said.elapsed() >= Duration::from_secs(5) {
                    *said = Instant::now();
                    tracing::info!(
                        seq,
                        end,
                        "profiles: rebuilding, {}% of the log",
                        seq * 100 / end.max(1)
                    );
                }
            }
            more
        };
        // This page's save goes on top of the last one.
        self.saved().await?;
        let save = {
            let mut book = self.book.write();
            let news = book.memberships.take_changes();
            // Timers change memberships with no new event: their records and states are
            // saved too.
            let changed = book.profiles.last_seq() != book.saved_seq
                || book.memberships.changed()
                || !news.is_empty();
            changed.then(|| {
                let mut save = book.changes();
                save.rows.audience_changes = news_rows(&news);
                save
            })
        };
        let mut saving = FxHashSet::default();
        if let Some(save) = save {
            saving.extend(save.rows.profile_ids().map(ProfileId));
            self.save(save).await;
        }
        self.book.write().evict(self.capacity, &saving);
        Ok(if full || more { Step::More } else { Step::Idle })
    }
}

impl Processor for Follower {
    fn name(&self) -> String {
        "profiles".into()
    }

    fn step(&self) -> StepFuture<'_> {
        Box::pin(self.page())
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(50)
    }

    fn applied_through(&self) -> PositionFuture<'_> {
        // What a lookup shows, not what the book applied and has yet to store.
        Box::pin(async { Ok(Some(self.book.saved_seq())) })
    }

    fn drain(&self) -> DrainFuture<'_> {
        // A failed save is logged, and owed to the next step of whoever runs it next.
        Box::pin(async {
            let _ = self.saved().await;
        })
    }
}

/// Delivery reads the consent in force for an event's profile from the server's book when
/// it holds the profile, else from the stored profiles; an event waits until the stored
/// profiles have taken it in.
pub struct Ledger {
    pub book: Live,
    pub store: Arc<dyn Store>,
}

#[async_trait::async_trait]
impl sightline_activate::ConsentLedger for Ledger {
    fn known_through(&self) -> i64 {
        let book = self.book.read();
        // A working set answers from the store for what it does not hold: only what is
        // stored is known. A book that holds every profile knows what it applied.
        if book.profiles.is_partial() {
            book.saved_seq
        } else {
            book.profiles.last_seq()
        }
    }

    async fn consent_for(
        &self,
        events: &[(&StoredEvent, &Value)],
    ) -> Result<Vec<Option<sightline_consent::ConsentState>>, StoreError> {
        let at = |event: &StoredEvent, body: &Value| sightline_profiles::event_time(event, body);
        let mut answers = Vec::with_capacity(events.len());
        // The events on profiles the book does not hold: their identifiers, by rank.
        let mut stored = Vec::new();
        {
            let book = self.book.read();
            for (i, &(event, body)) in events.iter().enumerate() {
                answers.push(match book.profiles.locate_event(body) {
                    EventProfile::Held(profile) => book
                        .profiles
                        .facts(profile)
                        .map(|facts| facts.consent.state_at(at(event, body), event.seq)),
                    EventProfile::None => None,
                    EventProfile::Stored(identifiers) => {
                        stored.push((i, identifiers));
                        None
                    }
                });
            }
        }
        if stored.is_empty() {
            return Ok(answers);
        }
        // Each identifier asked once for the page; each profile's document read once.
        let mut asked: Vec<(String, String)> = stored
            .iter()
            .flat_map(|(_, identifiers)| identifiers)
            .map(|i| (i.id_type.as_str().to_owned(), i.value.clone()))
            .collect();
        asked.sort_unstable();
        asked.dedup();
        let found = self.store.stored_profiles(asked.clone()).await?;
        let mut docs: FxHashMap<i64, ProfileDoc> = FxHashMap::default();
        let mut holder: FxHashMap<(&str, &str), i64> = FxHashMap::default();
        for ((id_type, value), profile) in asked.iter().zip(found) {
            let Some(profile) = profile else { continue };
            holder.insert((id_type, value), profile.id);
            if let std::collections::hash_map::Entry::Vacant(slot) = docs.entry(profile.id) {
                let doc = ProfileDoc::read(&profile).map_err(|e| {
                    StoreError::Corrupt(format!("stored profile {}: {e}", profile.id))
                })?;
                slot.insert(doc);
            }
        }
        for (i, identifiers) in stored {
            let (event, body) = events[i];
            // The holder of the highest-ranked identifier that is stored.
            answers[i] = identifiers
                .iter()
                .find_map(|id| holder.get(&(id.id_type.as_str(), id.value.as_str())))
                .and_then(|profile| docs.get(profile))
                .map(|doc| doc.facts.consent.state_at(at(event, body), event.seq));
        }
        Ok(answers)
    }
}

/// A member as the API and the command line show it: the profile with its identifiers.
pub fn member_json(identity: &sightline_identity::Profile) -> serde_json::Value {
    serde_json::json!({"id": identity.id, "identifiers": identity.identifiers})
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::{EventType, NewEvent};
    use std::collections::BTreeMap;

    fn viewed(anonymous_id: &str) -> NewEvent {
        NewEvent {
            source_id: 1,
            message_id: format!("m-{anonymous_id}"),
            event_type: EventType::Track,
            received_at: time::now_ms(),
            body: format!(r#"{{"type":"track","event":"Viewed","anonymousId":"{anonymous_id}"}}"#),
        }
    }

    fn rules() -> ProfileRules {
        ProfileRules {
            rules: Rules::default(),
            policy: Policy::default(),
            fingerprint: "test".into(),
        }
    }

    /// Events logged after the last save of a server that then died were never taken in
    /// by a follower: the start that resumes applies them and stores their audience news
    /// (so audience sync sends them); a rebuild's news stay history.
    #[tokio::test]
    async fn a_resumed_start_stores_the_news_of_the_events_past_the_save() {
        let (_dir, store) = keen_store(r#"event "Viewed" count >= 1 within 30d"#).await;
        store.append(vec![viewed("a1")], 0).await.unwrap();
        follow(store.clone()).await;
        assert!(
            store
                .audience_history("keen", 0, 10)
                .await
                .unwrap()
                .is_empty(),
            "a rebuild's enter records are history"
        );
        // Acknowledged, then the server died before its follower saved.
        store.append(vec![viewed("a2")], 0).await.unwrap();
        follow(store.clone()).await;
        let history = store.audience_history("keen", 0, 10).await.unwrap();
        assert_eq!(history.len(), 1, "{history:?}");
        assert!(history[0].1.contains("entered"), "{history:?}");
        assert_eq!(
            store.audience_sizes().await.unwrap(),
            [("keen".to_string(), 2)]
        );
    }

    /// An event of a small population where ids often meet: identifies link anonymous ids
    /// to users, aliases and emails merge profiles, consent comes and goes.
    fn mixed(n: u64) -> NewEvent {
        let pick = |salt: u64, m: u64| {
            let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
            x ^= x >> 33;
            x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
            (x ^ (x >> 33)) % m
        };
        let (a, u) = (pick(1, 40), pick(2, 15));
        let body = match pick(3, 5) {
            0 => serde_json::json!({"type":"track","event":"Viewed","anonymousId":format!("a{a}")}),
            1 => {
                serde_json::json!({"type":"identify","anonymousId":format!("a{a}"),"userId":format!("u{u}"),"traits":{"plan":format!("p{n}")}})
            }
            2 => {
                serde_json::json!({"type":"alias","previousId":format!("a{a}"),"userId":format!("u{u}")})
            }
            3 => {
                serde_json::json!({"type":"identify","userId":format!("u{u}"),"traits":{"email":format!("e{a}@x.test")}})
            }
            _ => serde_json::json!({"type":"track","event":"Viewed","anonymousId":format!("a{a}"),
                "context":{"consent":{"purposes":{"analytics": n.is_multiple_of(2)}}}}),
        };
        NewEvent {
            source_id: 1,
            message_id: format!("m{n}"),
            event_type: EventType::Track,
            received_at: time::now_ms(),
            body: body.to_string(),
        }
    }

    /// Starts as the server does and follows the log to its end with a cache of three.
    async fn follow(store: Arc<dyn Store>) {
        let live = Live::new(open(store.as_ref(), rules()).await.unwrap());
        let follower = Follower::new(store, live, 3);
        while let Step::More = follower.page().await.unwrap() {}
        follower.page().await.unwrap();
        follower.drain().await;
    }

    const TWO_VIEWS: &str = r#"event "Viewed" count >= 2 within 30d"#;

    /// A new SQLite store with the audience `keen` under `rule`.
    async fn keen_store(rule: &str) -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            sightline_store::SqliteStore::open(dir.path())
                .await
                .unwrap(),
        );
        store.create_audience("keen", rule, &[]).await.unwrap();
        (dir, store)
    }

    /// The server's follower holding two profiles at a time, loading the rest from the
    /// store as pages need them, stores what a rebuild of the whole log stores.
    #[tokio::test]
    async fn a_follower_with_a_small_cache_stores_what_a_rebuild_does() {
        let (_dir, store) = keen_store(TWO_VIEWS).await;
        store.append((0..50).map(mixed).collect(), 0).await.unwrap();
        let live = Live::new(open(store.as_ref(), rules()).await.unwrap());
        let follower = Follower::new(store.clone(), live.clone(), 2);
        for batch in 1..8u64 {
            store
                .append((batch * 50..batch * 50 + 50).map(mixed).collect(), 0)
                .await
                .unwrap();
            while let Step::More = follower.page().await.unwrap() {}
            assert!(live.read().profiles.profile_count() <= 2 + PAGE);
        }
        follower.page().await.unwrap();
        follower.drain().await;
        assert_stored_as_rebuilt(store.as_ref()).await;
    }

    /// Delivery's consent gate gets the same answer for every event whether the profile
    /// it is on is held in memory or read from the store for the page.
    #[tokio::test]
    async fn the_consent_ledger_answers_alike_from_the_book_and_from_the_store() {
        use sightline_activate::ConsentLedger;
        let (_dir, store) = keen_store(TWO_VIEWS).await;
        store
            .append((0..400).map(mixed).collect(), 0)
            .await
            .unwrap();
        let small = Live::new(open(store.as_ref(), rules()).await.unwrap());
        let follower = Follower::new(store.clone(), small.clone(), 2);
        while let Step::More = follower.page().await.unwrap() {}
        follower.page().await.unwrap();
        follower.drain().await;
        let whole = Live::new(rebuild(store.as_ref(), rules()).await.unwrap());
        let events = store.read_events(0, 1_000, None).await.unwrap();
        let bodies: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_str(&e.body).unwrap())
            .collect();
        let page: Vec<(&StoredEvent, &Value)> = events.iter().zip(&bodies).collect();
        let ledger = |book: &Live| Ledger {
            book: book.clone(),
            store: store.clone(),
        };
        let held = ledger(&whole).consent_for(&page).await.unwrap();
        let read = ledger(&small).consent_for(&page).await.unwrap();
        let on_stored = page
            .iter()
            .filter(|(_, body)| {
                matches!(
                    small.read().profiles.locate_event(body),
                    EventProfile::Stored(_)
                )
            })
            .count();
        assert!(on_stored > 100, "the store answers for most: {on_stored}");
        let stated = |answers: &[Option<sightline_consent::ConsentState>]| {
            answers
                .iter()
                .filter(|a| a.as_ref().is_some_and(|s| !s.is_empty()))
                .count()
        };
        assert!(
            stated(&held) > 50,
            "most events are judged by a ledger entry"
        );
        assert_eq!(read, held);
    }

    /// A new audience is built from the log beside the follower, which goes on applying
    /// the log to the book in use; once it is swapped in, what is stored is what a rebuild
    /// of the whole log stores, the new audience's members included.
    #[tokio::test]
    async fn a_new_audience_is_built_beside_the_follower() {
        let rebuilt_in_store = new_audience_while_following(1_000).await;
        assert!(!rebuilt_in_store, "every profile fits the cache");
    }

    /// When the profiles outnumber the follower's cache, a new audience's book is not
    /// built in memory: the stored profiles are rebuilt under the new definitions a page
    /// at a time, and end as a rebuild of the whole log.
    #[tokio::test]
    async fn a_new_audience_rebuilds_the_store_when_the_profiles_outnumber_the_cache() {
        let rebuilt_in_store = new_audience_while_following(3).await;
        assert!(rebuilt_in_store, "the profiles do not fit a cache of three");
    }

    /// Adds an audience while a follower holding `capacity` profiles follows the log, and
    /// checks what is stored once the new definitions are in use; says whether the stored
    /// profiles were rebuilt for them.
    async fn new_audience_while_following(capacity: usize) -> bool {
        let (_dir, store) = keen_store(TWO_VIEWS).await;
        store
            .append((0..200).map(mixed).collect(), 0)
            .await
            .unwrap();
        let live = Live::new(open(store.as_ref(), rules()).await.unwrap());
        let follower = Follower::new(store.clone(), live.clone(), capacity);
        while let Step::More = follower.page().await.unwrap() {}
        let check_definitions_now = || {
            *follower.checked.lock().unwrap() = Instant::now() - DEFINITIONS_EVERY;
        };
        store
            .create_audience("once", r#"event "Viewed" count >= 1 within 30d"#, &[])
            .await
            .unwrap();
        check_definitions_now();
        follower.page().await.unwrap();
        assert!(
            follower.reloading.lock().unwrap().is_some(),
            "the new book is built beside the follower"
        );
        assert!(live.read().memberships.names().all(|name| name != "once"));
        // The follower goes on with the book in use meanwhile.
        store
            .append((200..260).map(mixed).collect(), 0)
            .await
            .unwrap();
        while let Step::More = follower.page().await.unwrap() {}
        let deadline = Instant::now() + Duration::from_secs(60);
        while live.read().memberships.names().all(|name| name != "once") {
            assert!(
                Instant::now() < deadline,
                "the new definitions were never put in use"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            check_definitions_now();
            follower.page().await.unwrap();
        }
        assert!(follower.reloading.lock().unwrap().is_none());
        // The first start rebuilt up to the log's end then; a rebuild for the new
        // definitions, up to its end now.
        let rebuilt_in_store = match store.checkpoint(REBUILD_UNTIL).await.unwrap() {
            200 => false,
            260 => true,
            other => panic!("a rebuild up to {other}"),
        };
        while let Step::More = follower.page().await.unwrap() {}
        follower.page().await.unwrap();
        follower.drain().await;
        assert_stored_as_rebuilt(store.as_ref()).await;
        let sizes = store.audience_sizes().await.unwrap();
        assert!(
            sizes
                .iter()
                .any(|(name, members)| name == "once" && *members > 0),
            "{sizes:?}"
        );
        rebuilt_in_store
    }

    /// A page read ahead before an erasure's deletes may hold the erased events: the
    /// follower reads it again rather than bring the person back.
    #[tokio::test]
    async fn a_page_read_ahead_before_an_erasure_is_read_again() {
        let (_dir, store) = keen_store(TWO_VIEWS).await;
        store
            .append((0..PAGE).map(|i| viewed(&format!("a{i}"))).collect(), 0)
            .await
            .unwrap();
        let appended = store.append(vec![viewed("ghost")], 0).await.unwrap();
        let Some(sightline_store::Appended::Stored(seq)) = appended.first().cloned() else {
            panic!("not stored: {appended:?}");
        };
        let live = Live::new(open(store.as_ref(), rules()).await.unwrap());
        let follower = Follower::new(store.clone(), live.clone(), 2 * PAGE);
        assert!(matches!(follower.page().await.unwrap(), Step::More));
        // The next page (the ghost's event) is read before the erasure deletes it.
        while !follower
            .ahead
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|(_, ahead)| ahead.is_finished())
        {
            tokio::task::yield_now().await;
        }
        {
            let _turn = live.turn().await;
            let target = sightline_store::ErasureTarget {
                profiles: Vec::new(),
                identifiers: vec![("anonymous_id".into(), "ghost".into())],
                seqs: vec![seq],
                ..Default::default()
            };
            store.erase(target).await.unwrap();
            live.forget(&[], 0);
        }
        while let Step::More = follower.page().await.unwrap() {}
        follower.drain().await;
        assert!(
            store
                .stored_profile("anonymous_id", "ghost")
                .await
                .unwrap()
                .is_none(),
            "the erased person came back from the page read ahead"
        );
        assert!(store
            .stored_profile("anonymous_id", "a7")
            .await
            .unwrap()
            .is_some());
    }

    /// An erasure by another node (or process) is not told to this follower, whose book
    /// holds the person: its next save is refused, and it reads the profiles again from
    /// the store rather than write the erased person back.
    #[tokio::test]
    async fn a_save_after_another_nodes_erasure_reads_the_profiles_again() {
        let (_dir, store) = keen_store(TWO_VIEWS).await;
        let seq_of = |appended: Vec<sightline_store::Appended>| match appended.first() {
            Some(sightline_store::Appended::Stored(seq)) => *seq,
            other => panic!("not stored: {other:?}"),
        };
        let first = seq_of(store.append(vec![viewed("ann")], 0).await.unwrap());
        let live = Live::new(open(store.as_ref(), rules()).await.unwrap());
        let follower = Follower::new(store.clone(), live.clone(), PAGE);
        while let Step::More = follower.page().await.unwrap() {}
        follower.drain().await;
        let ann = store.stored_profile("anonymous_id", "ann").await.unwrap();
        assert_eq!(ann.map(|p| p.id), Some(first));

        let erased = store
            .erase(sightline_store::ErasureTarget {
                profiles: vec![first],
                identifiers: vec![("anonymous_id".into(), "ann".into())],
                seqs: vec![first],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(erased.profile_erasures, 1);
        // Collected by a node that had not read the suppression list yet.
        let mut again = viewed("ann");
        again.message_id = "m-ann-again".into();
        let second = seq_of(store.append(vec![again], 0).await.unwrap());
        for _ in 0..3 {
            // The first save is refused (an error), the next step reads the profiles again.
            let _ = follower.page().await;
            follower.drain().await;
        }
        let ann = store
            .stored_profile("anonymous_id", "ann")
            .await
            .unwrap()
            .expect("her later event makes a profile");
        assert_eq!(ann.id, second, "the erased profile was written back");
        assert_eq!(
            store.audience_members("keen", 0, 10).await.unwrap(),
            [],
            "the erased view still counts"
        );
        assert_eq!(live.read().profile_erasures, 1);
    }

    /// What is stored is what a rebuild of the whole log in memory holds, at the log's end.
    async fn assert_stored_as_rebuilt(store: &dyn Store) {
        let (state, stored) = store.load_profiles().await.unwrap().unwrap();
        assert_eq!(state.seq, store.last_seq().await.unwrap());
        let rebuilt = rebuild(store, rules()).await.unwrap().snapshot().rows;
        let sorted = |mut rows: ProfileRows| {
            rows.identifiers
                .sort_by(|a, b| (&a.id_type, &a.value).cmp(&(&b.id_type, &b.value)));
            rows.events.sort_unstable();
            rows.retired.sort_unstable();
            rows.denied_counts.sort();
            rows
        };
        let (stored, rebuilt) = (sorted(stored), sorted(rebuilt));
        assert!(
            rebuilt.retired.len() > 3,
            "merges happen: {:?}",
            rebuilt.retired
        );
        assert_eq!(stored.profiles, rebuilt.profiles);
        assert_eq!(stored.identifiers, rebuilt.identifiers);
        assert_eq!(stored.events, rebuilt.events);
        assert_eq!(stored.states, rebuilt.states);
        assert_eq!(stored.denied_counts, rebuilt.denied_counts);
        assert_eq!(stored.retired, rebuilt.retired);
        let mut members: BTreeMap<String, i64> = BTreeMap::new();
        for (_, states) in &rebuilt.states {
            for audience in sightline_profiles::stored_audiences(states).unwrap() {
                *members.entry(audience).or_default() += 1;
            }
        }
        let sizes: BTreeMap<String, i64> = store
            .audience_sizes()
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, size)| *size > 0)
            .collect();
        assert_eq!(sizes, members);
    }

    /// A rebuild into the store stopped part way (as by `kill -9` between two pages) leaves
    /// a stored position under the new rules; the next start goes on from it and stores
    /// what a whole rebuild does.
    #[tokio::test]
    async fn a_rebuild_stopped_part_way_goes_on_at_the_next_start() {
        let (_dir, store) = keen_store(TWO_VIEWS).await;
        store
            .append((0..(2 * PAGE + PAGE / 2) as u64).map(mixed).collect(), 0)
            .await
            .unwrap();
        let stopped = tokio::spawn({
            let store = store.clone();
            async move {
                rebuild_into_store(store.as_ref(), rules(), 3, |at| {
                    assert!(at.seq < 2 * PAGE as i64, "stopped after two pages");
                })
                .await
            }
        })
        .await;
        assert!(stopped.is_err(), "the rebuild was stopped");
        let state = store.profiles_state().await.unwrap().unwrap();
        assert_eq!(state.seq, 2 * PAGE as i64, "two pages stored");
        assert_eq!(state.rules, rules().fingerprint);
        follow(store.clone()).await;
        assert_stored_as_rebuilt(store.as_ref()).await;
    }
}

//! The plans in force, by source, held in memory for collection: looking one up is a map
//! read, never a store query. Whoever loads plans from the store replaces the whole map
//! when they change.

use crate::screen::Enforcer;
use crate::tally::Tally;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

#[derive(Default)]
pub struct Registry {
    by_source: RwLock<Arc<HashMap<i64, Arc<Enforcer>>>>,
    tally: Tally,
}

impl Registry {
    /// The plan (with the source's fixes) that judges this source's events, if any.
    pub fn enforcer(&self, source_id: i64) -> Option<Arc<Enforcer>> {
        let by_source = self
            .by_source
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        by_source.get(&source_id).cloned()
    }

    /// Puts a new set of plans in force at once.
    pub fn replace(&self, enforcers: HashMap<i64, Arc<Enforcer>>) {
        *self
            .by_source
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(enforcers);
    }

    /// The violations found since they were last stored.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }
}

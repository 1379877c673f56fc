//! The governance half: the registry fed by stored scans, lineage from the log and the
//! delivery log, metrics per scan and per day, and the report over all of them.

pub mod lineage;
pub mod metrics;
pub mod registry;
pub mod report;
pub mod scans;
pub mod schedule;

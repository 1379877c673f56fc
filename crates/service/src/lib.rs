//! Sightline's application services: every operation the product offers, each taking
//! plain inputs and the acting identity and returning plain results or a typed [`Error`],
//! and the processors that keep derived state current from the log. The command line, the
//! HTTP API and the console are thin adapters over this crate; nothing here knows of them.
//!
//! The modules follow the data flow: sources and keys (`sources`) → the log (`events`) →
//! profiles (`profiles`, `lookup`) → audiences and traits (`audiences`, `sync`) →
//! destinations (`destinations`), with `crm` feeding the log, `attribution` reading it, and
//! the governance half (`governance`) beside it. Role checks live in `access`,
//! the audit log's recording in `audit`, subject access exports in `privacy`.

pub mod access;
pub mod approval;
pub mod attribution;
pub mod audiences;
pub mod audit;
pub mod cluster;
pub mod config;
pub mod consent;
pub mod crm;
pub mod destinations;
pub mod erase;
mod error;
pub mod events;
pub mod export;
pub mod governance;
pub mod lookup;
pub mod plans;
pub mod privacy;
pub mod processors;
pub mod profiles;
pub mod retention;
pub mod sources;
pub mod sync;

pub use error::{imported, Error, Result};

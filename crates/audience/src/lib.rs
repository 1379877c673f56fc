//! Sightline's audiences, pure core: computed traits, the audience rule language (text and
//! JSON forms), evaluation, and incremental membership with time windows.
//!
//! Nothing here does IO or reads a clock: instants ([`Millis`]) are passed in. The
//! processor that reads the log keeps, per profile, a [`TraitState`] per computed trait and
//! a [`MembershipState`] per audience, applies each event to them, stores the
//! [`MembershipChange`]s they return, and sets a timer at the earliest
//! [`Audience::next_change_at`] / [`ComputedTrait::next_change_at`].
//!
//! ```
//! use sightline_audience::{Audience, Cause, Event, EventType, Profile, Transition};
//!
//! const DAY: i64 = 86_400_000;
//! let audience = Audience::parse("buyers", r#"event "Order Completed" within 30d"#).unwrap();
//! let profile = Profile::default();
//! let mut state = audience.new_state();
//! let properties = serde_json::Map::new();
//! let purchase = Event {
//!     seq: 1,
//!     event_type: EventType::Track,
//!     name: Some("Order Completed"),
//!     timestamp: 0,
//!     properties: &properties,
//! };
//! let entered = audience.apply_event(&mut state, "p1", &profile, &purchase, 0).unwrap();
//! assert_eq!(entered.transition, Transition::Entered);
//! let timer = audience.next_change_at(&state, &profile, 0).unwrap();
//! assert_eq!(timer, 30 * DAY);
//! let exited = audience.refresh(&mut state, "p1", &profile, timer, Cause::Timer).unwrap();
//! assert_eq!(exited.transition, Transition::Exited);
//! ```

#![forbid(unsafe_code)]

mod computed;
mod condition;
mod error;
mod eval;
mod event;
mod lexer;
mod membership;
mod parser;
mod printer;
mod rule;
mod time;

pub use computed::{Accumulator, Aggregation, ComputedTrait, Sample, TraitState};
pub use condition::{Comparison, EventFilter, Literal, Test};
pub use error::ParseError;
pub use eval::{evaluate, EventState, Facts, Profile, ProfileView};
pub use event::{Event, EventType};
pub use membership::{Audience, Cause, MembershipChange, MembershipState, Transition};
pub use parser::parse;
pub use rule::{CompareOp, CountCheck, EventCondition, Rule, RuleError, MAX_COUNT, MAX_DEPTH};
pub use time::{Millis, Span, SpanError, TimeUnit};

//! Who acts and what their role allows. Every operation that reads or changes guarded data
//! takes an [`Actor`] and checks it here, so the command line, the HTTP API and the console
//! refuse the same things with the same words.

use crate::{Error, Result};
pub use sightline_core::Role;
pub use sightline_govern::Actor;
use sightline_store::{Governance, Store};

/// The person at the command line without a token: whoever holds the store holds
/// everything, so they act with the admin role (as `cli` in the audit log).
pub fn operator() -> Actor {
    Actor {
        name: "cli".into(),
        role: Role::Admin,
        token: None,
    }
}

/// Both teams and the analysts may read it.
pub const READERS: &[Role] = &[Role::Marketing, Role::Security, Role::Analyst];
/// Profiles: every reader and the privacy team.
pub const PROFILE_READERS: &[Role] = &[
    Role::Marketing,
    Role::Security,
    Role::Analyst,
    Role::Privacy,
];
/// Attribution: the marketing team and the analysts.
pub const ATTRIBUTION_READERS: &[Role] = &[Role::Marketing, Role::Analyst];
/// Exports of a person's data (subject access): the privacy team (and admin) only; an
/// analyst reads profiles but exports no one.
pub const PRIVACY: &[Role] = &[Role::Privacy];
/// The audit log: the security and privacy teams.
pub const AUDITORS: &[Role] = &[Role::Security, Role::Privacy];
/// The marketing team's (and admin's) to change.
pub const MARKETING: &[Role] = &[Role::Marketing];
/// Either team's (and admin's) to change; the governance workflow decides which action
/// is whose.
pub const TEAMS: &[Role] = &[Role::Marketing, Role::Security];
/// The security team's (and admin's) to change.
pub const SECURITY: &[Role] = &[Role::Security];
/// The operational detail (`/metrics`, `/readyz?verbose`: processor and destination
/// names, lags, counts): the `metrics` role a scrape config holds, and every reader, who
/// may already list sources and destinations.
pub const METRICS_READERS: &[Role] = &[
    Role::Marketing,
    Role::Security,
    Role::Analyst,
    Role::Metrics,
];
/// Admin only.
pub const ADMIN: &[Role] = &[];

/// Allows `admin` and the `roles` listed; `what` names the action in the refusal.
pub fn require(actor: &Actor, roles: &[Role], what: &str) -> Result<()> {
    if actor.role == Role::Admin || roles.contains(&actor.role) {
        return Ok(());
    }
    let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).chain(["admin"]).collect();
    Err(Error::Forbidden(format!(
        "{} holds the {} role: {what} needs the {} role",
        actor.name,
        actor.role,
        allowed.join(" or ")
    )))
}

/// The actor an API token is: the person it was created for (`token create --name`), else
/// `token:ID`, with its role. The change log says who did what, and one person's tokens
/// count as the same person for self-approval.
pub async fn actor_of(store: &dyn Governance, token: &sightline_core::Token) -> Result<Actor> {
    let name = store
        .token_name(token.id)
        .await?
        .unwrap_or_else(|| format!("token:{}", token.id));
    Ok(Actor {
        name,
        role: token.role,
        token: Some(token.id),
    })
}

/// The actor a command-line `--token` secret is.
pub async fn actor_for_token(store: &dyn Store, secret: &str) -> Result<Actor> {
    let token = store
        .token_for_hash(&sightline_core::secret::hash(secret.trim()))
        .await?
        .ok_or_else(|| {
            Error::invalid(
                "unknown API token: create one with `sightline token create --role ROLE`",
            )
        })?;
    actor_of(store, &token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor {
            name: "ann".into(),
            role,
            token: Some(1),
        }
    }

    #[test]
    fn admin_may_do_anything_and_others_what_they_are_listed_for() {
        assert!(require(&actor(Role::Admin), ADMIN, "x").is_ok());
        assert!(require(&actor(Role::Marketing), MARKETING, "x").is_ok());
        assert!(require(&actor(Role::Security), READERS, "x").is_ok());
        let refused = require(&actor(Role::Security), MARKETING, "adding audiences");
        let Err(Error::Forbidden(message)) = refused else {
            panic!("security may not add audiences");
        };
        assert_eq!(
            message,
            "ann holds the security role: adding audiences needs the marketing or admin role"
        );
        assert!(matches!(
            require(&actor(Role::Marketing), ADMIN, "importing"),
            Err(Error::Forbidden(_))
        ));
    }
}

//! Audience sync to the ad platforms' audience APIs. Pure: a vendor destination's
//! settings, the vendor list a Sightline audience fills (the settings' `audiences` map,
//! audience name → list id) and the members' emails and phones in clear; requests out.
//! Each platform normalises and hashes (SHA-256, lowercase hex) by the same rules as its
//! conversions (`transform`'s [`HashFormat`]), so nothing leaves in clear.
//!
//! - **Meta custom audiences** (Marketing API, "Custom Audiences" and the
//!   `/{custom_audience_id}/users` reference): adds are a POST and removes a DELETE of
//!   `/{api_version}/{custom_audience_id}/users?access_token=…` with `{"payload":
//!   {"schema": ["EMAIL", "PHONE"], "data": [[email hash, phone hash], …]}, "session":
//!   {…}}`, at most 10,000 rows; a key a member lacks is sent as `""`. Every request is its
//!   own session (`session_id` from the request's key, `batch_seq` 1, `last_batch_flag`).
//!   Answers as the Conversions API's ([`super::meta`]): the Graph error object decides.
//! - **Google Ads Customer Match** (`OfflineUserDataJobService`): an offline user data job
//!   per change — `…/customers/{customer_id}/offlineUserDataJobs:create` with the user list
//!   (`customers/{id}/userLists/{list}`) and, for adds, the consent Sightline checked
//!   (`adUserData` and `adPersonalization` `GRANTED`: only members whose consent grants the
//!   destination's purposes are added); then `{job}:addOperations` with a `create` (add)
//!   or `remove` operation per member, its `userIdentifiers` `hashedEmail` and
//!   `hashedPhoneNumber`; then `{job}:run`. Answers as its conversion uploads
//!   ([`super::google_ads`]).
//!
//! [`HashFormat`]: crate::HashFormat

use super::{encode_query, sha256_hex, with_query, Method, Request, Vendor};
use crate::transform::{normalise_google, normalise_meta_phone};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The most members one request carries (Meta's documented bound; Google's is larger).
pub const MAX_MEMBERS: usize = 10_000;

/// Whether members are added to the vendor's list or removed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Remove,
}

/// A member's contact identifiers, in clear, as the profile holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub emails: Vec<String>,
    pub phones: Vec<String>,
}

/// How an audience change reaches the vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceCall {
    /// One request (Meta).
    Single(Request),
    /// Google's offline user data job: `create` names the job in its answer
    /// ([`job_name`]); then [`Job::operations`] and [`Job::run`] on it.
    Job(Job),
}

/// The requests of a Customer Match job, but for the job's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub create: Request,
    endpoint: String,
    api_version: String,
    headers: Vec<(&'static str, String)>,
    operations: Value,
}

impl Job {
    /// Adds the members to the job `name` (`customers/…/offlineUserDataJobs/…`).
    pub fn operations(&self, name: &str) -> Request {
        self.call(name, "addOperations", self.operations.clone())
    }

    /// Runs the job `name`: Google then applies its operations (in hours, its own pace).
    pub fn run(&self, name: &str) -> Request {
        self.call(name, "run", json!({}))
    }

    fn call(&self, name: &str, verb: &str, body: Value) -> Request {
        Request {
            method: Method::Post,
            url: format!("{}/{}/{name}:{verb}", self.endpoint, self.api_version),
            headers: self.headers.clone(),
            body: body.to_string(),
        }
    }
}

/// Checks a settings' `audiences` map: each list id digits, each audience named.
pub(super) fn check_lists(lists: &BTreeMap<String, String>, what: &str) -> Result<(), String> {
    for (audience, list) in lists {
        if audience.trim().is_empty() {
            return Err("audiences: an entry names no audience".into());
        }
        if list.is_empty() || list.len() > 30 || !list.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "audiences.{audience} = {list:?} is not {what}: its digits, from the platform's audience manager"
            ));
        }
    }
    Ok(())
}

/// The name of the job a `create` answer made (`resourceName`), checked to be one.
pub fn job_name(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let name = body.get("resourceName")?.as_str()?;
    let (customers, rest) = name.split_once('/')?;
    let (_, job) = rest.split_once("/offlineUserDataJobs/")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (customers == "customers" && digits(rest.split('/').next()?) && digits(job))
        .then(|| name.to_owned())
}

impl Vendor {
    /// Whether this vendor type has an audience API Sightline syncs to.
    pub fn syncs_audiences(&self) -> bool {
        matches!(self, Vendor::Meta(_) | Vendor::GoogleAds(_))
    }

    /// The vendor's list an audience fills, or what to configure.
    pub fn audience_list(&self, audience: &str) -> Result<&str, String> {
        let (lists, what) = match self {
            Vendor::Meta(s) => (&s.audiences, "Meta custom audience id"),
            Vendor::GoogleAds(s) => (&s.audiences, "Customer Match user list id"),
            _ => return Err("this destination type has no audience API to sync to".into()),
        };
        lists.get(audience).map(String::as_str).ok_or_else(|| {
            format!("its settings map no {what} for audience {audience:?} (settings.audiences)")
        })
    }

    /// The call applying `change` to `members` on the vendor's `list`; `None` when no
    /// member has an email or phone to send. `key` names the request (Meta's session).
    pub fn audience_call(
        &self,
        endpoint: &str,
        credential: &str,
        list: &str,
        change: Change,
        members: &[Contact],
        key: &str,
    ) -> Option<AudienceCall> {
        let endpoint = endpoint.trim_end_matches('/');
        match self {
            Vendor::Meta(s) => {
                let data: Vec<Value> = members.iter().flat_map(meta_rows).collect();
                if data.is_empty() {
                    return None;
                }
                let digest = Sha256::digest(key.as_bytes());
                // A positive integer JSON keeps exact (below 2^53).
                let session_id = u64::from_be_bytes(digest[..8].try_into().ok()?) >> 12 | 1;
                let body = json!({
                    "payload": {"schema": ["EMAIL", "PHONE"], "data": data},
                    "session": {"session_id": session_id, "batch_seq": 1,
                                "last_batch_flag": true, "estimated_num_total": data.len()},
                });
                Some(AudienceCall::Single(Request {
                    method: match change {
                        Change::Add => Method::Post,
                        Change::Remove => Method::Delete,
                    },
                    url: with_query(
                        &format!("{endpoint}/{}/{list}/users", s.api_version),
                        &format!("access_token={}", encode_query(credential)),
                    ),
                    headers: Vec::new(),
                    body: body.to_string(),
                }))
            }
            Vendor::GoogleAds(s) => {
                let kind = match change {
                    Change::Add => "create",
                    Change::Remove => "remove",
                };
                let operations: Vec<Value> = members
                    .iter()
                    .filter_map(google_identifiers)
                    .map(|ids| json!({kind: {"userIdentifiers": ids}}))
                    .collect();
                if operations.is_empty() {
                    return None;
                }
                let mut metadata = json!({
                    "userList": format!("customers/{}/userLists/{list}", s.customer_id),
                });
                if change == Change::Add {
                    metadata["consent"] =
                        json!({"adUserData": "GRANTED", "adPersonalization": "GRANTED"});
                }
                let headers = s.headers(credential);
                Some(AudienceCall::Job(Job {
                    create: Request {
                        method: Method::Post,
                        url: format!(
                            "{endpoint}/{}/customers/{}/offlineUserDataJobs:create",
                            s.api_version, s.customer_id
                        ),
                        headers: headers.clone(),
                        body: json!({"job": {"type": "CUSTOMER_MATCH_USER_LIST",
                                             "customerMatchUserListMetadata": metadata}})
                        .to_string(),
                    },
                    endpoint: endpoint.to_owned(),
                    api_version: s.api_version.clone(),
                    headers,
                    operations: json!({"operations": operations}),
                }))
            }
            _ => None,
        }
    }
}

/// A member's rows for Meta: one per email or phone, paired in order, `""` for none.
fn meta_rows(member: &Contact) -> Vec<Value> {
    let email = |e: &String| sha256_hex(&e.trim().to_lowercase());
    let phone = |p: &String| sha256_hex(&normalise_meta_phone(p));
    let emails: Vec<String> = member.emails.iter().filter_map(email).collect();
    let phones: Vec<String> = member.phones.iter().filter_map(phone).collect();
    (0..emails.len().max(phones.len()))
        .map(|i| {
            json!([
                emails.get(i).cloned().unwrap_or_default(),
                phones.get(i).cloned().unwrap_or_default()
            ])
        })
        .collect()
}

/// A member's identifiers for Google, `None` when it has neither email nor phone.
fn google_identifiers(member: &Contact) -> Option<Vec<Value>> {
    let emails = member
        .emails
        .iter()
        .filter_map(|e| sha256_hex(&normalise_google(e, false)))
        .map(|hash| json!({"hashedEmail": hash}));
    let phones = member
        .phones
        .iter()
        .filter_map(|p| sha256_hex(&normalise_google(p, true)))
        .map(|hash| json!({"hashedPhoneNumber": hash}));
    let ids: Vec<Value> = emails.chain(phones).collect();
    (!ids.is_empty()).then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `printf %s test@example.com | sha256sum`, and of `14155550100` and `+14155550100`.
    const TEST_EXAMPLE: &str = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b";

    fn meta() -> Vendor {
        Vendor::Meta(
            serde_json::from_value(json!({"pixel_id": "1", "audiences": {"buyers": "2384"}}))
                .unwrap(),
        )
    }

    fn google() -> Vendor {
        Vendor::GoogleAds(
            serde_json::from_value(json!({"customer_id": "1234567890",
                "conversion_action_id": "9", "login_customer_id": "555",
                "audiences": {"buyers": "777"}}))
            .unwrap(),
        )
    }

    fn ann() -> Contact {
        Contact {
            emails: vec![" Test@Example.com ".into()],
            phones: vec!["+1 (415) 555-0100".into()],
        }
    }

    #[test]
    fn lists_are_read_from_the_settings_and_a_missing_one_says_what_to_add() {
        assert_eq!(meta().audience_list("buyers"), Ok("2384"));
        let missing = google().audience_list("browsers").unwrap_err();
        assert!(
            missing.contains("no Customer Match user list id for audience \"browsers\""),
            "{missing}"
        );
        let mut lists = BTreeMap::new();
        lists.insert("buyers".to_string(), "12a".to_string());
        let bad = check_lists(&lists, "a Meta custom audience id").unwrap_err();
        assert!(bad.contains("audiences.buyers"), "{bad}");
        let settings = json!({"pixel_id": "1", "audiences": {"buyers": "x"}});
        let checked = Vendor::check(
            sightline_core::DestinationKind::Meta,
            settings.as_object().unwrap(),
        );
        assert!(checked.unwrap_err().contains("custom audience id"));
    }

    #[test]
    fn meta_adds_post_and_removes_delete_hashed_rows() {
        let Some(AudienceCall::Single(add)) = meta().audience_call(
            "http://fake/",
            "EAA",
            "2384",
            Change::Add,
            &[ann(), Contact::default()],
            "k",
        ) else {
            panic!("one request")
        };
        assert_eq!(add.method, Method::Post);
        assert_eq!(add.url, "http://fake/v25.0/2384/users?access_token=EAA");
        let body: Value = serde_json::from_str(&add.body).unwrap();
        assert_eq!(body["payload"]["schema"], json!(["EMAIL", "PHONE"]));
        assert_eq!(
            body["payload"]["data"],
            json!([[TEST_EXAMPLE, sha256_hex("14155550100").unwrap()]])
        );
        assert_eq!(body["session"]["last_batch_flag"], true);
        let Some(AudienceCall::Single(remove)) =
            meta().audience_call("http://fake", "EAA", "2384", Change::Remove, &[ann()], "k")
        else {
            panic!("one request")
        };
        assert_eq!(remove.method, Method::Delete);
        assert_eq!(
            meta().audience_call(
                "http://f",
                "t",
                "1",
                Change::Add,
                &[Contact::default()],
                "k"
            ),
            None
        );
    }

    #[test]
    fn google_runs_a_customer_match_job_with_consent_on_adds() {
        let Some(AudienceCall::Job(job)) =
            google().audience_call("http://fake", "dev:tok", "777", Change::Add, &[ann()], "k")
        else {
            panic!("a job")
        };
        assert_eq!(
            job.create.url,
            "http://fake/v22/customers/1234567890/offlineUserDataJobs:create"
        );
        assert!(job
            .create
            .headers
            .contains(&("login-customer-id", "555".to_string())));
        let create: Value = serde_json::from_str(&job.create.body).unwrap();
        let metadata = &create["job"]["customerMatchUserListMetadata"];
        assert_eq!(metadata["userList"], "customers/1234567890/userLists/777");
        assert_eq!(metadata["consent"]["adPersonalization"], "GRANTED");
        let name = "customers/1234567890/offlineUserDataJobs/42";
        let add = job.operations(name);
        assert_eq!(add.url, format!("http://fake/v22/{name}:addOperations"));
        let body: Value = serde_json::from_str(&add.body).unwrap();
        assert_eq!(
            body["operations"][0]["create"]["userIdentifiers"],
            json!([{"hashedEmail": TEST_EXAMPLE},
                   {"hashedPhoneNumber": sha256_hex("+14155550100").unwrap()}])
        );
        assert_eq!(job.run(name).url, format!("http://fake/v22/{name}:run"));

        let Some(AudienceCall::Job(job)) = google().audience_call(
            "http://fake",
            "dev:tok",
            "777",
            Change::Remove,
            &[ann()],
            "k",
        ) else {
            panic!("a job")
        };
        let create: Value = serde_json::from_str(&job.create.body).unwrap();
        assert!(create["job"]["customerMatchUserListMetadata"]
            .get("consent")
            .is_none());
        let body: Value = serde_json::from_str(&job.operations(name).body).unwrap();
        assert!(body["operations"][0]["remove"].is_object());
    }

    #[test]
    fn job_names_are_read_and_checked() {
        assert_eq!(
            job_name(br#"{"resourceName":"customers/123/offlineUserDataJobs/456"}"#).as_deref(),
            Some("customers/123/offlineUserDataJobs/456")
        );
        for bad in [
            &br#"{"resourceName":"customers/123/offlineUserDataJobs/4/../x"}"#[..],
            br#"{"resourceName":"https://evil/offlineUserDataJobs/1"}"#,
            br#"{}"#,
            b"not json",
        ] {
            assert_eq!(job_name(bad), None);
        }
    }

    proptest! {
        /// Whatever a profile holds, nothing but SHA-256 hex (or "" for none) leaves.
        #[test]
        fn only_hashes_leave(emails in proptest::collection::vec(".*", 0..3),
                             phones in proptest::collection::vec(".*", 0..3)) {
            let member = Contact { emails, phones };
            let hex = |v: &Value| v.as_str().is_some_and(|s| s.is_empty()
                || (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())));
            for row in meta_rows(&member) {
                prop_assert!(row.as_array().unwrap().iter().all(hex));
            }
            for id in google_identifiers(&member).unwrap_or_default() {
                prop_assert!(id.as_object().unwrap().values().all(hex));
            }
        }
    }
}

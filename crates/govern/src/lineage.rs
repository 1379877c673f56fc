//! Data lineage from evidence: where customer data comes from (sources, scanned sites), the
//! processing steps it crosses (collection, identity, consent gate, transform) and where it
//! goes (destinations, third-party vendors), each edge with the fields that flow, their PII
//! classes, the consent purpose gating it, its owner and its evidence.
//!
//! [`build`] turns plain evidence (sampled events, delivery counts, scanned requests) into a
//! [`Graph`]; [`to_dot`], [`to_mermaid`] and [`to_openlineage`] render it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};

/// How many fields one edge lists at most; the rest are counted in `fields_truncated`.
pub const MAX_FIELDS_PER_EDGE: usize = 200;
/// How deep field paths are followed into nested objects.
const MAX_DEPTH: usize = 4;

/// A kind of personal data, found by a field's name or its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiClass {
    Email,
    Phone,
    Name,
    Address,
    IpAddress,
    BirthDate,
    /// A user or device identifier (user id, anonymous id, advertising id, click id).
    Identifier,
}

impl PiiClass {
    pub fn name(self) -> &'static str {
        match self {
            PiiClass::Email => "email",
            PiiClass::Phone => "phone",
            PiiClass::Name => "name",
            PiiClass::Address => "address",
            PiiClass::IpAddress => "ip_address",
            PiiClass::BirthDate => "birth_date",
            PiiClass::Identifier => "identifier",
        }
    }
}

/// The PII classes a field carries, judged by its name (the last path segment) and, when it
/// is a string, its value (an email address; a phone number in international form).
pub fn classify(path: &str, value: Option<&str>) -> BTreeSet<PiiClass> {
    let mut classes = BTreeSet::new();
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let key: String = leaf
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let by_name: &[(&[&str], PiiClass)] = &[
        (
            &["email", "emailaddress", "mail", "em", "hashedemail"],
            PiiClass::Email,
        ),
        (
            &["phone", "phonenumber", "mobile", "tel", "telephone", "ph"],
            PiiClass::Phone,
        ),
        (
            &[
                "name",
                "firstname",
                "lastname",
                "fullname",
                "fn",
                "ln",
                "surname",
                "givenname",
            ],
            PiiClass::Name,
        ),
        (
            &[
                "address",
                "street",
                "streetaddress",
                "city",
                "zip",
                "zipcode",
                "postcode",
                "postalcode",
                "ct",
                "zp",
            ],
            PiiClass::Address,
        ),
        (&["ip", "ipaddress", "uip"], PiiClass::IpAddress),
        (
            &["birthday", "birthdate", "dob", "dateofbirth", "db"],
            PiiClass::BirthDate,
        ),
        (
            &[
                "userid",
                "anonymousid",
                "uid",
                "cid",
                "clientid",
                "deviceid",
                "advertisingid",
                "gclid",
                "fbclid",
                "fbp",
                "externalid",
                "previousid",
                "groupid",
            ],
            PiiClass::Identifier,
        ),
    ];
    for (names, class) in by_name {
        if names.contains(&key.as_str()) {
            classes.insert(*class);
        }
    }
    if let Some(value) = value {
        if value.contains('@') && sightline_identity::normalise_email(value).is_some() {
            classes.insert(PiiClass::Email);
        }
        if value.trim_start().starts_with('+')
            && sightline_identity::normalise_phone(value, sightline_identity::Region::US).is_some()
        {
            classes.insert(PiiClass::Phone);
        }
    }
    classes
}

/// One sampled event of a source's log (the stored Segment JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct SampledEvent {
    pub received_at: i64,
    pub body: Value,
}

/// A source and a bounded sample of its events.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceEvidence {
    pub name: String,
    pub events: Vec<SampledEvent>,
}

/// A destination, what it is sent (the sampled events it wants, after its transform) and
/// its delivery log counted by status.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationEvidence {
    pub name: String,
    pub kind: String,
    /// Consent purposes every event sent must grant.
    pub purposes: Vec<String>,
    /// Whether it transforms events (allow, deny, hash, rename) before sending.
    pub transform: Option<Value>,
    /// Per source name, the sampled events it wants, as the transform leaves them.
    pub sent: BTreeMap<String, Vec<Value>>,
    /// Delivery-log outcomes by status (`delivered`, `suppressed`, `dead`, …).
    pub deliveries: BTreeMap<String, u64>,
    /// Earliest and latest delivery outcome (ms).
    pub window: Option<(i64, i64)>,
    /// Where its security approval stands (`approved`, `pending approval`, `approved; a
    /// change awaits approval`, …), shown in its node's label; `None` says nothing.
    pub approval: Option<String>,
    /// The audiences synced to it: their members' identifiers reach it in sync messages.
    pub audiences: Vec<String>,
}

/// A request a scan saw a third party receive.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannedRequest {
    pub url: String,
    pub post_body: Option<String>,
}

/// A third-party vendor a stored scan saw, with the requests it received.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorSeen {
    pub name: String,
    /// The scanner's category (`analytics`, `advertising`, …).
    pub category: String,
    /// Whether the category needs consent; its name is then the gating purpose.
    pub needs_consent: bool,
    pub requests: Vec<ScannedRequest>,
}

/// One stored scan of a journey's site.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanEvidence {
    pub id: i64,
    pub journey: String,
    /// The scanned site (host of the journey's first step).
    pub site: String,
    pub at: i64,
    pub vendors: Vec<VendorSeen>,
}

/// Everything the graph is built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub sources: Vec<SourceEvidence>,
    pub destinations: Vec<DestinationEvidence>,
    pub scans: Vec<ScanEvidence>,
    /// Tag owners by vendor name (lowercased), from the registry's inventory.
    pub owners: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Source,
    Site,
    Collection,
    Identity,
    ConsentGate,
    Transform,
    Destination,
    Vendor,
}

impl NodeKind {
    /// Its serde name.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Source => "source",
            NodeKind::Site => "site",
            NodeKind::Collection => "collection",
            NodeKind::Identity => "identity",
            NodeKind::ConsentGate => "consent_gate",
            NodeKind::Transform => "transform",
            NodeKind::Destination => "destination",
            NodeKind::Vendor => "vendor",
        }
    }

    /// Sources and sites hold data in; destinations and vendors receive it; the rest process.
    pub fn is_dataset(self) -> bool {
        matches!(
            self,
            NodeKind::Source | NodeKind::Site | NodeKind::Destination | NodeKind::Vendor
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Node {
    /// Unique in the graph: `KIND:NAME`.
    pub id: String,
    pub kind: NodeKind,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Field {
    pub name: String,
    pub pii: BTreeSet<PiiClass>,
}

/// What an edge rests on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EdgeEvidence {
    /// Sampled events that carried the fields.
    pub events: u64,
    /// Delivery-log outcomes by status.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub deliveries: BTreeMap<String, u64>,
    /// Stored scans that saw the requests, and how many requests they saw.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scans: Vec<i64>,
    pub requests: u64,
    /// Earliest and latest time (ms) of the evidence.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl EdgeEvidence {
    /// The evidence in words: sampled events, delivery outcomes, scanned requests.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.events > 0 {
            parts.push(format!("{} sampled events", self.events));
        }
        if !self.deliveries.is_empty() {
            let counts: Vec<String> = self
                .deliveries
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            parts.push(counts.join(", "));
        }
        if !self.scans.is_empty() {
            let ids: Vec<String> = self.scans.iter().map(|i| format!("#{i}")).collect();
            parts.push(format!(
                "{} requests in scan {}",
                self.requests,
                ids.join(", ")
            ));
        }
        parts.join("; ")
    }

    fn widen(&mut self, at: i64) {
        self.from = Some(self.from.map_or(at, |f| f.min(at)));
        self.to = Some(self.to.map_or(at, |t| t.max(at)));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub fields: Vec<Field>,
    /// Fields left out past [`MAX_FIELDS_PER_EDGE`].
    pub fields_truncated: usize,
    /// Consent purposes that gate it (empty: none).
    pub purposes: Vec<String>,
    pub owner: Option<String>,
    pub evidence: EdgeEvidence,
}

impl Edge {
    /// The PII classes of all its fields.
    pub fn pii(&self) -> BTreeSet<PiiClass> {
        self.fields
            .iter()
            .flat_map(|f| f.pii.iter().copied())
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Graph {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn edge(&self, from: &str, to: &str) -> Option<&Edge> {
        self.edges.iter().find(|e| e.from == from && e.to == to)
    }
}

/// The field paths of an event's data (`properties`, `traits`, `context.traits`, and the
/// identifiers `userId`, `anonymousId`, `context.ip`), each with the PII classes found.
pub fn event_fields(event: &Value) -> BTreeMap<String, BTreeSet<PiiClass>> {
    let mut out = BTreeMap::new();
    for key in ["userId", "anonymousId", "previousId", "groupId"] {
        if let Some(v) = event.get(key).filter(|v| !v.is_null()) {
            out.insert(key.to_owned(), classify(key, v.as_str()));
        }
    }
    if let Some(ip) = event.pointer("/context/ip").and_then(Value::as_str) {
        let mut classes = classify("context.ip", Some(ip));
        classes.insert(PiiClass::IpAddress);
        out.insert("context.ip".into(), classes);
    }
    for root in ["properties", "traits"] {
        if let Some(v) = event.get(root) {
            walk(root, v, 0, &mut out);
        }
    }
    if let Some(v) = event.pointer("/context/traits") {
        walk("context.traits", v, 0, &mut out);
    }
    out
}

/// The field paths of a vendor's request body (a vendor destination's `sent`), from its
/// root, an array's items under the array's own path (`data.user_data.em`), each with the
/// PII classes found.
pub fn request_body_fields(body: &Value) -> BTreeMap<String, BTreeSet<PiiClass>> {
    fn visit(
        path: &str,
        value: &Value,
        depth: usize,
        out: &mut BTreeMap<String, BTreeSet<PiiClass>>,
    ) {
        match value {
            Value::Object(map) if depth <= MAX_DEPTH + 2 => {
                for (key, item) in map {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    visit(&path, item, depth + 1, out);
                }
            }
            Value::Array(items) if depth <= MAX_DEPTH + 2 => {
                for item in items {
                    visit(path, item, depth + 1, out);
                }
            }
            Value::Object(_) | Value::Array(_) => {}
            other if !path.is_empty() => {
                let classes = classify(path, other.as_str());
                out.entry(path.to_owned()).or_default().extend(classes);
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    visit("", body, 0, &mut out);
    out
}

fn walk(path: &str, value: &Value, depth: usize, out: &mut BTreeMap<String, BTreeSet<PiiClass>>) {
    match value {
        Value::Object(map) if depth < MAX_DEPTH => {
            for (k, v) in map {
                walk(&format!("{path}.{k}"), v, depth + 1, out);
            }
        }
        Value::Object(_) => {}
        other if depth > 0 => {
            let classes = classify(path, other.as_str());
            out.entry(path.to_owned()).or_default().extend(classes);
        }
        _ => {}
    }
}

/// The parameter names of a request (query string, and a form or JSON body), each with the
/// PII classes its name or value shows.
pub fn request_fields(request: &ScannedRequest) -> BTreeMap<String, BTreeSet<PiiClass>> {
    let mut out: BTreeMap<String, BTreeSet<PiiClass>> = BTreeMap::new();
    if let Ok(url) = url::Url::parse(&request.url) {
        for (k, v) in url.query_pairs() {
            let classes = classify(&k, Some(&v));
            out.entry(k.into_owned()).or_default().extend(classes);
        }
    }
    if let Some(body) = request.post_body.as_deref() {
        match serde_json::from_str::<Value>(body) {
            Ok(json @ Value::Object(_)) => {
                let mut nested = BTreeMap::new();
                walk("", &json, 0, &mut nested);
                for (k, v) in nested {
                    out.entry(k.trim_start_matches('.').to_owned())
                        .or_default()
                        .extend(v);
                }
            }
            Ok(_) => {}
            Err(_) => {
                for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
                    let classes = classify(&k, Some(&v));
                    out.entry(k.into_owned()).or_default().extend(classes);
                }
            }
        }
    }
    out
}

/// Fields gathered for one edge.
#[derive(Default)]
struct Flow {
    fields: BTreeMap<String, BTreeSet<PiiClass>>,
    evidence: EdgeEvidence,
}

impl Flow {
    fn add_fields(&mut self, fields: BTreeMap<String, BTreeSet<PiiClass>>) {
        for (k, v) in fields {
            self.fields.entry(k).or_default().extend(v);
        }
    }

    fn absorb(&mut self, other: &Flow) {
        for (k, v) in &other.fields {
            self.fields
                .entry(k.clone())
                .or_default()
                .extend(v.iter().copied());
        }
        let e = &other.evidence;
        self.evidence.events += e.events;
        self.evidence.requests += e.requests;
        for (status, n) in &e.deliveries {
            *self.evidence.deliveries.entry(status.clone()).or_default() += n;
        }
        for id in &e.scans {
            if !self.evidence.scans.contains(id) {
                self.evidence.scans.push(*id);
            }
        }
        self.evidence.scans.sort_unstable();
        for at in [e.from, e.to].into_iter().flatten() {
            self.evidence.widen(at);
        }
    }

    fn into_edge(self, from: &str, to: &str, purposes: &[String], owner: Option<String>) -> Edge {
        let total = self.fields.len();
        let fields: Vec<Field> = self
            .fields
            .into_iter()
            .take(MAX_FIELDS_PER_EDGE)
            .map(|(name, pii)| Field { name, pii })
            .collect();
        Edge {
            from: from.to_owned(),
            to: to.to_owned(),
            fields_truncated: total - fields.len(),
            fields,
            purposes: purposes.to_vec(),
            owner,
            evidence: self.evidence,
        }
    }
}

/// Collects nodes and edges; an edge added twice merges its flows.
#[derive(Default)]
struct Builder {
    nodes: BTreeMap<String, Node>,
    edges: BTreeMap<(String, String), PendingEdge>,
}

/// An edge's flow, purposes and owner while the graph is built.
type PendingEdge = (Flow, Vec<String>, Option<String>);

impl Builder {
    fn node(&mut self, kind: NodeKind, name: &str, label: &str) -> String {
        let prefix = match kind {
            NodeKind::Source => "source",
            NodeKind::Site => "site",
            NodeKind::Collection => "step",
            NodeKind::Identity => "step",
            NodeKind::ConsentGate => "consent",
            NodeKind::Transform => "transform",
            NodeKind::Destination => "destination",
            NodeKind::Vendor => "vendor",
        };
        let id = format!("{prefix}:{name}");
        self.nodes.entry(id.clone()).or_insert(Node {
            id: id.clone(),
            kind,
            label: label.to_owned(),
        });
        id
    }

    fn edge(
        &mut self,
        from: &str,
        to: &str,
        flow: &Flow,
        purposes: &[String],
        owner: Option<&String>,
    ) {
        let entry = self
            .edges
            .entry((from.to_owned(), to.to_owned()))
            .or_insert_with(|| (Flow::default(), purposes.to_vec(), None));
        entry.0.absorb(flow);
        if entry.2.is_none() {
            entry.2 = owner.cloned();
        }
    }

    fn finish(self) -> Graph {
        Graph {
            nodes: self.nodes.into_values().collect(),
            edges: self
                .edges
                .into_iter()
                .map(|((from, to), (flow, purposes, owner))| {
                    flow.into_edge(&from, &to, &purposes, owner)
                })
                .collect(),
        }
    }
}

/// The consent gate a purpose set passes: one node per distinct set.
fn gate(b: &mut Builder, purposes: &[String]) -> Option<String> {
    if purposes.is_empty() {
        return None;
    }
    let mut sorted = purposes.to_vec();
    sorted.sort();
    sorted.dedup();
    let name = sorted.join("+");
    Some(b.node(
        NodeKind::ConsentGate,
        &name,
        &format!("consent gate ({})", sorted.join(", ")),
    ))
}

/// Builds the lineage graph. Deterministic: the same evidence gives the same graph, nodes and
/// edges sorted by id.
pub fn build(evidence: &Evidence) -> Graph {
    let mut b = Builder::default();
    let owner = |name: &str| evidence.owners.get(&name.to_lowercase());
    let collection = (!evidence.sources.is_empty())
        .then(|| b.node(NodeKind::Collection, "collection", "collection (/v1 API)"));
    let identity = (!evidence.sources.is_empty())
        .then(|| b.node(NodeKind::Identity, "identity", "identity resolution"));

    let mut collected = Flow::default();
    for source in &evidence.sources {
        let id = b.node(NodeKind::Source, &source.name, &source.name);
        let mut flow = Flow::default();
        for event in &source.events {
            flow.add_fields(event_fields(&event.body));
            flow.evidence.events += 1;
            flow.evidence.widen(event.received_at);
        }
        if let Some(collection) = &collection {
            b.edge(&id, collection, &flow, &[], None);
        }
        collected.absorb(&flow);
    }
    if let (Some(collection), Some(identity)) = (&collection, &identity) {
        // Identity resolution reads the identifiers and contact data only.
        let mut ids = Flow {
            evidence: collected.evidence.clone(),
            ..Flow::default()
        };
        ids.fields = collected
            .fields
            .iter()
            .filter(|(_, pii)| {
                pii.iter()
                    .any(|c| matches!(c, PiiClass::Identifier | PiiClass::Email | PiiClass::Phone))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        b.edge(collection, identity, &ids, &[], None);
    }

    for dest in &evidence.destinations {
        let id = b.node(
            NodeKind::Destination,
            &dest.name,
            &match &dest.approval {
                Some(approval) => format!("{} ({}, {approval})", dest.name, dest.kind),
                None => format!("{} ({})", dest.name, dest.kind),
            },
        );
        let mut flow = Flow::default();
        for events in dest.sent.values() {
            for event in events {
                flow.add_fields(if dest.kind == "webhook" {
                    event_fields(event)
                } else {
                    request_body_fields(event)
                });
                flow.evidence.events += 1;
            }
        }
        for audience in &dest.audiences {
            flow.add_fields(audience_fields(&dest.kind, audience));
        }
        flow.evidence.deliveries = dest.deliveries.clone();
        if let Some((from, to)) = dest.window {
            flow.evidence.widen(from);
            flow.evidence.widen(to);
        }
        let upstream = identity
            .clone()
            .unwrap_or_else(|| b.node(NodeKind::Identity, "identity", "identity resolution"));
        let mut last = upstream;
        if let Some(g) = gate(&mut b, &dest.purposes) {
            b.edge(&last, &g, &flow, &dest.purposes, None);
            last = g;
        }
        if dest.transform.is_some() {
            let t = b.node(
                NodeKind::Transform,
                &dest.name,
                &format!("transform for {}", dest.name),
            );
            b.edge(&last, &t, &flow, &dest.purposes, None);
            last = t;
        }
        b.edge(&last, &id, &flow, &dest.purposes, owner(&dest.name));
    }

    for scan in &evidence.scans {
        let site = b.node(
            NodeKind::Site,
            &scan.site,
            &format!("{} (journey {})", scan.site, scan.journey),
        );
        for vendor in &scan.vendors {
            let id = b.node(NodeKind::Vendor, &vendor.name, &vendor.name);
            let mut flow = Flow::default();
            for request in &vendor.requests {
                flow.add_fields(request_fields(request));
            }
            flow.evidence.requests = vendor.requests.len() as u64;
            flow.evidence.scans = vec![scan.id];
            flow.evidence.widen(scan.at);
            let purposes: Vec<String> = if vendor.needs_consent {
                vec![vendor.category.clone()]
            } else {
                Vec::new()
            };
            let mut last = site.clone();
            if let Some(g) = gate(&mut b, &purposes) {
                b.edge(&last, &g, &flow, &purposes, None);
                last = g;
            }
            b.edge(&last, &id, &flow, &purposes, owner(&vendor.name));
        }
    }
    b.finish()
}

/// The fields an audience's sync messages carry to a destination of `kind`: a webhook gets
/// the members' identifiers (emails and phones with their SHA-256), Meta and Google Ads
/// emails and phones as SHA-256 only, in their audience APIs' fields.
fn audience_fields(kind: &str, audience: &str) -> BTreeMap<String, BTreeSet<PiiClass>> {
    let fields: &[(&str, PiiClass)] = match kind {
        "meta" => &[
            ("users.payload.data.EMAIL", PiiClass::Email),
            ("users.payload.data.PHONE", PiiClass::Phone),
        ],
        "google_ads" => &[
            ("userIdentifiers.hashedEmail", PiiClass::Email),
            ("userIdentifiers.hashedPhoneNumber", PiiClass::Phone),
        ],
        _ => &[
            ("identifiers.user_id", PiiClass::Identifier),
            ("identifiers.anonymous_id", PiiClass::Identifier),
            ("identifiers.email", PiiClass::Email),
            ("identifiers.phone", PiiClass::Phone),
        ],
    };
    fields
        .iter()
        .map(|(name, class)| {
            (
                format!("audience {audience}: {name}"),
                BTreeSet::from([*class]),
            )
        })
        .collect()
}

/// Escapes text for a double-quoted DOT string.
fn dot_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A short summary of an edge for diagram labels.
fn edge_label(edge: &Edge) -> String {
    let mut parts = Vec::new();
    let n = edge.fields.len() + edge.fields_truncated;
    parts.push(format!("{n} field{}", if n == 1 { "" } else { "s" }));
    let pii = edge.pii();
    if !pii.is_empty() {
        let names: Vec<&str> = pii.iter().map(|c| c.name()).collect();
        parts.push(format!("PII: {}", names.join(", ")));
    }
    if !edge.purposes.is_empty() {
        parts.push(format!("purpose: {}", edge.purposes.join(", ")));
    }
    if let Some(owner) = &edge.owner {
        parts.push(format!("owner: {owner}"));
    }
    let evidence = edge.evidence.summary();
    if !evidence.is_empty() {
        parts.push(evidence);
    }
    parts.join("; ")
}

fn dot_shape(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Source | NodeKind::Site => "cylinder",
        NodeKind::Destination | NodeKind::Vendor => "box3d",
        NodeKind::ConsentGate => "diamond",
        _ => "box",
    }
}

/// Graphviz DOT: every id and label double-quoted and escaped.
pub fn to_dot(graph: &Graph) -> String {
    let mut out =
        String::from("digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for node in &graph.nodes {
        out.push_str(&format!(
            "  {} [label={}, shape={}];\n",
            dot_quote(&node.id),
            dot_quote(&node.label),
            dot_shape(node.kind)
        ));
    }
    for edge in &graph.edges {
        out.push_str(&format!(
            "  {} -> {} [label={}];\n",
            dot_quote(&edge.from),
            dot_quote(&edge.to),
            dot_quote(&edge_label(edge))
        ));
    }
    out.push_str("}\n");
    out
}

/// Text safe inside a Mermaid `"…"` label: quotes and markup characters as entity codes.
fn mermaid_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '|' => out.push_str("#124;"),
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn mermaid_shape(kind: NodeKind, label: &str) -> String {
    let l = mermaid_text(label);
    match kind {
        NodeKind::Source | NodeKind::Site => format!("[(\"{l}\")]"),
        NodeKind::ConsentGate => format!("{{\"{l}\"}}"),
        NodeKind::Destination | NodeKind::Vendor => format!("[[\"{l}\"]]"),
        _ => format!("[\"{l}\"]"),
    }
}

/// A Mermaid flowchart. Node ids are `n0`, `n1`, … (graph ids may hold any character);
/// every label is quoted.
pub fn to_mermaid(graph: &Graph) -> String {
    let index: BTreeMap<&str, usize> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut out = String::from("flowchart LR\n");
    for (i, node) in graph.nodes.iter().enumerate() {
        out.push_str(&format!(
            "  n{i}{}\n",
            mermaid_shape(node.kind, &node.label)
        ));
    }
    for edge in &graph.edges {
        let (Some(from), Some(to)) = (index.get(edge.from.as_str()), index.get(edge.to.as_str()))
        else {
            continue;
        };
        out.push_str(&format!(
            "  n{from} -->|\"{}\"| n{to}\n",
            mermaid_text(&edge_label(edge))
        ));
    }
    out
}

/// The core spec the events follow.
pub const OPENLINEAGE_RUN_EVENT_SCHEMA: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const SCHEMA_FACET: &str =
    "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
const DOCUMENTATION_FACET: &str = "https://openlineage.io/spec/facets/1-0-1/DocumentationJobFacet.json#/$defs/DocumentationJobFacet";
/// Sightline's own facet (edge purposes, owner, PII and evidence), described in
/// crates/govern/README.md; named by a URN while no published schema URL exists for it.
pub const EVIDENCE_FACET: &str = "urn:sightline:facet:SightlineLineageOutputDatasetFacet:1";

/// What the OpenLineage export needs besides the graph.
pub struct OpenLineageOptions<'a> {
    /// The events' `eventTime` (the export's time).
    pub event_time: DateTime<Utc>,
    /// The `producer` URI (and every facet's `_producer`).
    pub producer: &'a str,
    /// Job and dataset namespace.
    pub namespace: &'a str,
}

fn dataset(namespace: &str, node: &Node, fields: &[Field], producer: &str) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .map(|f| {
            let mut field = json!({"name": f.name, "type": "string"});
            if !f.pii.is_empty() {
                let names: Vec<&str> = f.pii.iter().map(|c| c.name()).collect();
                field["description"] = json!(format!("PII: {}", names.join(", ")));
            }
            field
        })
        .collect();
    json!({
        "namespace": namespace,
        "name": node.id,
        "facets": {
            "schema": {"_producer": producer, "_schemaURL": SCHEMA_FACET, "fields": fields}
        }
    })
}

/// One OpenLineage run (a START and a COMPLETE RunEvent sharing a runId, from `run_id`) per
/// receiving node: its job is the path of steps into it, its inputs the sources and sites
/// upstream (with the fields they hold), its output the destination or vendor (with the
/// fields it receives), and a `sightline_lineage` output facet carrying purposes, owner, PII
/// classes and evidence.
pub fn to_openlineage(
    graph: &Graph,
    options: &OpenLineageOptions,
    mut run_id: impl FnMut() -> String,
) -> Vec<Value> {
    let producer = options.producer;
    let time = options
        .event_time
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut events = Vec::new();
    for target in graph
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Destination | NodeKind::Vendor))
    {
        let mut steps: Vec<&Node> = Vec::new();
        let mut inputs: Vec<(&Node, &Edge)> = Vec::new();
        let mut frontier = vec![target.id.as_str()];
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        while let Some(id) = frontier.pop() {
            for edge in graph.edges.iter().filter(|e| e.to == id) {
                if !seen.insert(edge.from.as_str()) {
                    continue;
                }
                let Some(node) = graph.node(&edge.from) else {
                    continue;
                };
                if node.kind.is_dataset() {
                    inputs.push((node, edge));
                } else {
                    steps.push(node);
                    frontier.push(&node.id);
                }
            }
        }
        // A vendor reached from sites through one shared gate is fed by every site that
        // passes that gate: keep only the sites whose scans saw this vendor.
        let last: Vec<&Edge> = graph.edges.iter().filter(|e| e.to == target.id).collect();
        if target.kind == NodeKind::Vendor {
            let scans: BTreeSet<i64> = last
                .iter()
                .flat_map(|e| e.evidence.scans.iter().copied())
                .collect();
            inputs.retain(|(_, e)| e.evidence.scans.iter().any(|s| scans.contains(s)));
        }
        steps.sort();
        steps.dedup();
        let mut path: Vec<&str> = steps.iter().map(|s| s.label.as_str()).collect();
        path.reverse();
        let mut merged = Flow::default();
        let mut purposes = BTreeSet::new();
        let mut owner = None;
        for edge in &last {
            merged
                .fields
                .extend(edge.fields.iter().map(|f| (f.name.clone(), f.pii.clone())));
            let as_flow = Flow {
                fields: BTreeMap::new(),
                evidence: edge.evidence.clone(),
            };
            merged.absorb(&as_flow);
            purposes.extend(edge.purposes.iter().cloned());
            owner = owner.or(edge.owner.clone());
        }
        let fields: Vec<Field> = merged
            .fields
            .iter()
            .map(|(name, pii)| Field {
                name: name.clone(),
                pii: pii.clone(),
            })
            .collect();
        let pii: BTreeSet<&str> = fields
            .iter()
            .flat_map(|f| f.pii.iter().map(|c| c.name()))
            .collect();
        let mut output = dataset(options.namespace, target, &fields, producer);
        output["outputFacets"] = json!({
            "sightline_lineage": {
                "_producer": producer,
                "_schemaURL": EVIDENCE_FACET,
                "purposes": purposes,
                "owner": owner,
                "pii": pii,
                "evidence": merged.evidence,
            }
        });
        let inputs: Vec<Value> = inputs
            .iter()
            .map(|(node, edge)| dataset(options.namespace, node, &edge.fields, producer))
            .collect();
        let job = json!({
            "namespace": options.namespace,
            "name": target.id,
            "facets": {
                "documentation": {
                    "_producer": producer,
                    "_schemaURL": DOCUMENTATION_FACET,
                    "description": if path.is_empty() {
                        format!("to {}", target.label)
                    } else {
                        format!("{} → {}", path.join(" → "), target.label)
                    },
                }
            }
        });
        let id = run_id();
        for event_type in ["START", "COMPLETE"] {
            let event = json!({
                "eventType": event_type,
                "eventTime": time,
                "producer": producer,
                "schemaURL": OPENLINEAGE_RUN_EVENT_SCHEMA,
                "run": {"runId": id},
                "job": job,
                "inputs": inputs,
                "outputs": [output],
            });
            events.push(event);
        }
    }
    events
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod vendor_body_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_vendor_request_lists_its_fields_through_arrays() {
        let body = json!({"data": [{"event_name": "Purchase",
            "user_data": {"em": ["ab12"], "client_ip_address": "203.0.113.9"},
            "custom_data": {"value": 3}}]});
        let fields: Vec<_> = request_body_fields(&body).into_keys().collect();
        assert_eq!(
            fields,
            [
                "data.custom_data.value",
                "data.event_name",
                "data.user_data.client_ip_address",
                "data.user_data.em"
            ]
        );
    }
}

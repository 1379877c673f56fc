use super::*;
use proptest::prelude::*;

pub(crate) fn evidence() -> Evidence {
    let signup = json!({
        "type": "identify", "userId": "u1",
        "traits": {"email": "ada@example.com", "plan": "pro", "address": {"city": "Paris"}},
        "context": {"ip": "203.0.113.9"}
    });
    let order = json!({
        "type": "track", "event": "Order Completed", "anonymousId": "a1",
        "properties": {"total": 42, "contact": "+14155550123"}
    });
    Evidence {
        sources: vec![SourceEvidence {
            name: "web".into(),
            events: vec![
                SampledEvent {
                    received_at: 1_000,
                    body: signup,
                },
                SampledEvent {
                    received_at: 2_000,
                    body: order.clone(),
                },
            ],
        }],
        destinations: vec![DestinationEvidence {
            name: "warehouse".into(),
            kind: "webhook".into(),
            purposes: vec!["analytics".into()],
            transform: Some(json!({"deny": ["properties.contact"]})),
            sent: BTreeMap::from([(
                "web".to_string(),
                vec![json!({"type": "track", "anonymousId": "a1", "properties": {"total": 42}})],
            )]),
            deliveries: BTreeMap::from([
                ("delivered".to_string(), 3),
                ("suppressed".to_string(), 1),
            ]),
            window: Some((1_500, 2_500)),
            approval: None,
            audiences: vec![],
        }],
        scans: vec![ScanEvidence {
            id: 7,
            journey: "shop".into(),
            site: "www.shop.test".into(),
            at: 3_000,
            vendors: vec![VendorSeen {
                name: "Meta Pixel".into(),
                category: "advertising".into(),
                needs_consent: true,
                requests: vec![
                    ScannedRequest {
                        url: "https://www.facebook.com/tr?id=1&ev=PageView&ud%5Bem%5D=x".into(),
                        post_body: None,
                    },
                    ScannedRequest {
                        url: "https://www.facebook.com/tr".into(),
                        post_body: Some("em=ada%40example.com&ev=Lead".into()),
                    },
                ],
            }],
        }],
        owners: BTreeMap::from([("meta pixel".to_string(), "growth-team".to_string())]),
    }
}

#[test]
fn classifies_by_name_and_value() {
    assert!(classify("traits.email", None).contains(&PiiClass::Email));
    assert!(classify("properties.note", Some("Ada@Example.com")).contains(&PiiClass::Email));
    assert!(classify("properties.contact", Some("+14155550123")).contains(&PiiClass::Phone));
    assert!(classify("traits.first_name", Some("Ada")).contains(&PiiClass::Name));
    assert!(classify("properties.total", Some("42")).is_empty());
    assert!(classify("properties.note", Some("not @ an email")).is_empty());
}

#[test]
fn graph_from_events_deliveries_and_a_scan() {
    let g = build(&evidence());
    for id in [
        "source:web",
        "step:collection",
        "step:identity",
        "consent:analytics",
        "transform:warehouse",
        "destination:warehouse",
        "site:www.shop.test",
        "consent:advertising",
        "vendor:Meta Pixel",
    ] {
        assert!(g.node(id).is_some(), "missing {id}: {:?}", g.nodes);
    }
    let collected = g.edge("source:web", "step:collection").unwrap();
    let names: Vec<&str> = collected.fields.iter().map(|f| f.name.as_str()).collect();
    assert!(
        names.contains(&"traits.email") && names.contains(&"properties.contact"),
        "{names:?}"
    );
    assert!(names.contains(&"traits.address.city"), "{names:?}");
    assert_eq!(collected.evidence.events, 2);
    assert_eq!(
        (collected.evidence.from, collected.evidence.to),
        (Some(1_000), Some(2_000))
    );
    let pii = collected.pii();
    for c in [
        PiiClass::Email,
        PiiClass::Phone,
        PiiClass::Address,
        PiiClass::IpAddress,
        PiiClass::Identifier,
    ] {
        assert!(pii.contains(&c), "{c:?} in {pii:?}");
    }
    // Identity reads identifiers and contact data, not the plan.
    let ids = g.edge("step:collection", "step:identity").unwrap();
    assert!(ids.fields.iter().all(|f| f.name != "traits.plan"));
    assert!(ids.fields.iter().any(|f| f.name == "traits.email"));

    let delivered = g
        .edge("transform:warehouse", "destination:warehouse")
        .unwrap();
    assert_eq!(delivered.purposes, ["analytics"]);
    assert_eq!(delivered.evidence.deliveries["delivered"], 3);
    assert_eq!(delivered.evidence.deliveries["suppressed"], 1);
    assert!(
        delivered
            .fields
            .iter()
            .all(|f| f.name != "properties.contact"),
        "the deny rule holds"
    );
    assert!(g.edge("step:identity", "consent:analytics").is_some());

    let vendor = g.edge("consent:advertising", "vendor:Meta Pixel").unwrap();
    assert_eq!(vendor.owner.as_deref(), Some("growth-team"));
    assert_eq!(vendor.purposes, ["advertising"]);
    assert_eq!(
        (vendor.evidence.scans.clone(), vendor.evidence.requests),
        (vec![7], 2)
    );
    let em = vendor.fields.iter().find(|f| f.name == "em").unwrap();
    assert!(em.pii.contains(&PiiClass::Email));
    assert!(vendor.fields.iter().any(|f| f.name == "ud[em]"));
}

#[test]
fn vendors_without_consent_need_no_gate() {
    let mut e = evidence();
    e.scans[0].vendors[0].needs_consent = false;
    let g = build(&e);
    let edge = g.edge("site:www.shop.test", "vendor:Meta Pixel").unwrap();
    assert!(edge.purposes.is_empty());
    assert!(g.node("consent:advertising").is_none());
}

#[test]
fn synced_audiences_carry_their_members_contacts_to_the_destination() {
    let mut e = evidence();
    e.destinations[0].kind = "meta".into();
    e.destinations[0].audiences = vec!["buyers".into()];
    let g = build(&e);
    let edge = g
        .edge("transform:warehouse", "destination:warehouse")
        .unwrap();
    let synced: Vec<(&str, Vec<PiiClass>)> = edge
        .fields
        .iter()
        .filter(|f| f.name.starts_with("audience buyers: "))
        .map(|f| (f.name.as_str(), f.pii.iter().copied().collect()))
        .collect();
    assert_eq!(
        synced,
        [
            (
                "audience buyers: users.payload.data.EMAIL",
                vec![PiiClass::Email]
            ),
            (
                "audience buyers: users.payload.data.PHONE",
                vec![PiiClass::Phone]
            ),
        ]
    );
    assert_eq!(edge.purposes, ["analytics"]);
}

/// Braces, brackets and quotes balance outside quoted strings; every quote closes.
fn balanced(text: &str) -> bool {
    let mut stack = Vec::new();
    let mut in_quote = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_quote {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quote = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '{' | '[' | '(' => stack.push(c),
            '}' | ']' | ')' => {
                let open = match c {
                    '}' => '{',
                    ']' => '[',
                    _ => '(',
                };
                if stack.pop() != Some(open) {
                    return false;
                }
            }
            _ => {}
        }
    }
    !in_quote && stack.is_empty()
}

/// Every DOT statement line is `"id" [...]` or `"a" -> "b" [...]`, ids quoted.
fn dot_valid(dot: &str, graph: &Graph) -> bool {
    let lines: Vec<&str> = dot.lines().collect();
    lines.first() == Some(&"digraph lineage {")
        && lines.last() == Some(&"}")
        && balanced(dot)
        && graph
            .nodes
            .iter()
            .all(|n| dot.contains(&format!("  {} [label=", dot_quote(&n.id))))
        && graph.edges.iter().all(|e| {
            dot.contains(&format!(
                "  {} -> {} [label=",
                dot_quote(&e.from),
                dot_quote(&e.to)
            ))
        })
}

/// Mermaid: a flowchart header, node lines `nI<shape>`, edge lines `nI -->|"…"| nJ`, labels
/// without raw quotes inside.
fn mermaid_valid(text: &str, graph: &Graph) -> bool {
    let mut lines = text.lines();
    if lines.next() != Some("flowchart LR") {
        return false;
    }
    let mut nodes = 0;
    let mut edges = 0;
    for line in lines {
        let line = line.trim();
        let Some(rest) = line.strip_prefix('n') else {
            return false;
        };
        if let Some((_, after)) = rest.split_once(" -->|\"") {
            let Some((label, target)) = after.rsplit_once("\"| n") else {
                return false;
            };
            if label.contains('"') || !target.chars().all(|c| c.is_ascii_digit()) {
                return false;
            }
            edges += 1;
        } else {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let shape = &rest[digits.len()..];
            let inner = ["[(\"", "{\"", "[[\"", "[\""]
                .iter()
                .zip(["\")]", "\"}", "\"]]", "\"]"])
                .find_map(|(o, c)| shape.strip_prefix(o).and_then(|s| s.strip_suffix(c)));
            match inner {
                Some(label) if !label.contains('"') && !digits.is_empty() => nodes += 1,
                _ => return false,
            }
        }
    }
    nodes == graph.nodes.len() && edges == graph.edges.len()
}

#[test]
fn renderers_are_valid_on_the_example() {
    let g = build(&evidence());
    let dot = to_dot(&g);
    assert!(dot_valid(&dot, &g), "{dot}");
    assert!(dot.contains("\"vendor:Meta Pixel\""), "{dot}");
    assert!(dot.contains("PII: email"), "{dot}");
    let m = to_mermaid(&g);
    assert!(mermaid_valid(&m, &g), "{m}");
    assert!(m.contains("owner: growth-team"), "{m}");
}

#[test]
fn the_checkers_catch_broken_output() {
    let g = build(&evidence());
    let dot = to_dot(&g).replacen("\"source:web\"", "source:web\"", 1);
    assert!(!dot_valid(&dot, &g));
    let m = to_mermaid(&g).replacen("[(\"", "[(", 1);
    assert!(!mermaid_valid(&m, &g));
}

#[test]
fn openlineage_runs_pair_start_and_complete() {
    let g = build(&evidence());
    let mut n = 0;
    let options = OpenLineageOptions {
        event_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        producer: "https://example.com/sightline",
        namespace: "sightline",
    };
    let events = to_openlineage(&g, &options, || {
        n += 1;
        format!("00000000-0000-4000-8000-{n:012}")
    });
    assert_eq!(events.len(), 4, "two runs: the destination and the vendor");
    assert_eq!(events[0]["eventType"], "START");
    assert_eq!(events[1]["eventType"], "COMPLETE");
    assert_eq!(events[0]["run"]["runId"], events[1]["run"]["runId"]);
    assert_ne!(events[0]["run"]["runId"], events[2]["run"]["runId"]);
    let warehouse = &events[1];
    assert_eq!(warehouse["job"]["name"], "destination:warehouse");
    assert_eq!(warehouse["inputs"][0]["name"], "source:web");
    let facet = &warehouse["outputs"][0]["outputFacets"]["sightline_lineage"];
    assert_eq!(facet["evidence"]["deliveries"]["delivered"], 3);
    assert_eq!(facet["purposes"][0], "analytics");
    let doc = warehouse["job"]["facets"]["documentation"]["description"]
        .as_str()
        .unwrap();
    assert!(
        doc.contains("consent gate (analytics)") && doc.contains("transform"),
        "{doc}"
    );
    let vendor = &events[3];
    assert_eq!(vendor["inputs"][0]["name"], "site:www.shop.test");
    assert_eq!(
        vendor["outputs"][0]["outputFacets"]["sightline_lineage"]["owner"],
        "growth-team"
    );
}

fn arb_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 \"\\\\<>#|{}\\[\\]()@.+_-]{1,12}"
}

fn arb_evidence() -> impl Strategy<Value = Evidence> {
    let source = (
        arb_text(),
        prop::collection::vec((arb_text(), arb_text()), 0..4),
    )
        .prop_map(|(name, props)| SourceEvidence {
            name,
            events: props
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| SampledEvent {
                    received_at: i as i64,
                    body: json!({"type": "track", "properties": {k: v}}),
                })
                .collect(),
        });
    let destination = (
        arb_text(),
        prop::collection::vec(arb_text(), 0..3),
        any::<bool>(),
        prop::collection::vec(arb_text(), 0..2),
    )
        .prop_map(
            |(name, purposes, transform, audiences)| DestinationEvidence {
                name,
                kind: "webhook".into(),
                purposes,
                transform: transform.then(|| json!({})),
                sent: BTreeMap::new(),
                deliveries: BTreeMap::from([("delivered".to_string(), 1)]),
                window: None,
                approval: None,
                audiences,
            },
        );
    let vendor =
        (arb_text(), arb_text(), any::<bool>()).prop_map(|(name, category, needs_consent)| {
            VendorSeen {
                name,
                category,
                needs_consent,
                requests: vec![ScannedRequest {
                    url: "https://t.test/p?a=1".into(),
                    post_body: None,
                }],
            }
        });
    (
        prop::collection::vec(source, 0..3),
        prop::collection::vec(destination, 0..3),
        prop::collection::vec((arb_text(), prop::collection::vec(vendor, 0..3)), 0..3),
    )
        .prop_map(|(sources, destinations, scans)| Evidence {
            sources,
            destinations,
            scans: scans
                .into_iter()
                .enumerate()
                .map(|(i, (site, vendors))| ScanEvidence {
                    id: i as i64,
                    journey: "j".into(),
                    site,
                    at: 0,
                    vendors,
                })
                .collect(),
            owners: BTreeMap::new(),
        })
}

proptest! {
    #[test]
    fn any_graph_renders_valid_and_connected(e in arb_evidence()) {
        let g = build(&e);
        prop_assert_eq!(&g, &build(&e), "deterministic");
        for edge in &g.edges {
            prop_assert!(g.node(&edge.from).is_some() && g.node(&edge.to).is_some());
        }
        for d in &e.destinations {
            let id = format!("destination:{}", d.name);
            prop_assert!(g.node(&id).is_some());
        }
        let dot = to_dot(&g);
        prop_assert!(dot_valid(&dot, &g), "{}", dot);
        let m = to_mermaid(&g);
        prop_assert!(mermaid_valid(&m, &g), "{}", m);
    }
}

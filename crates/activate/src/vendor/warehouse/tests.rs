use super::*;
use proptest::prelude::*;
use serde_json::json;

const LOADED: &str = "2025-11-24T17:00:00Z";

fn columns(row: &Row) -> Vec<&str> {
    row.columns.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn names_are_snake_case_as_segment_makes_them() {
    for (name, expected) in [
        ("productId", "product_id"),
        ("Product ID", "product_id"),
        ("Order Completed", "order_completed"),
        ("order_completed", "order_completed"),
        ("page.url", "page_url"),
        ("  -- spaced out -- ", "spaced_out"),
        ("ÉtéPrix", "t_prix"),
        ("3ds", "_3ds"),
        ("!!!", ""),
        ("HTMLParser", "htmlparser"),
        ("userID2", "user_id2"),
    ] {
        assert_eq!(column_name(name), expected, "{name}");
    }
    assert_eq!(column_name(&"a".repeat(100)).len(), MAX_NAME_BYTES);
}

#[test]
fn event_tables_never_take_a_call_types_table() {
    assert_eq!(
        event_table("Order Completed").as_deref(),
        Some("order_completed")
    );
    assert_eq!(event_table("Users").as_deref(), Some("_users"));
    assert_eq!(event_table("tracks").as_deref(), Some("_tracks"));
    assert_eq!(event_table("?"), None);
}

#[test]
fn a_track_is_a_row_in_tracks_and_one_in_its_events_table() {
    let event = json!({
        "type": "track", "event": "Order Completed", "messageId": "m1",
        "userId": 42, "anonymousId": "a1",
        "timestamp": "2025-11-24T16:00:00.000Z", "receivedAt": "2025-11-24T16:00:01.000Z",
        "sentAt": "2025-11-24T16:00:00.500Z", "originalTimestamp": "2025-11-24T15:59:59.000Z",
        "context": {"library": {"name": "analytics.js", "version": "5"}, "ip": "1.2.3.4"},
        "properties": {"orderId": "o1", "total": 19.99, "quantity": 2, "gift": false,
                       "products": [{"sku": "a"}], "event": "clobber", "id": "clobber",
                       "shipping": {"method": "post", "eta": "2025-11-30T00:00:00+01:00"},
                       "coupon": null}
    });
    let rows = rows(EventType::Track, &event, "m1", LOADED);
    assert_eq!(rows.len(), 2);
    let tracks = &rows[0];
    assert_eq!(tracks.table, "tracks");
    assert_eq!(tracks.on_conflict, OnConflict::Keep);
    assert_eq!(
        columns(tracks),
        [
            "id",
            "anonymous_id",
            "user_id",
            "received_at",
            "sent_at",
            "timestamp",
            "original_timestamp",
            "uuid_ts",
            "context_library_name",
            "context_library_version",
            "context_ip",
            "event",
            "event_text"
        ]
    );
    assert_eq!(tracks.get("id"), Some(&Cell::Text("m1".into())));
    // Ids are text whatever the sender made them.
    assert_eq!(tracks.get("user_id"), Some(&Cell::Text("42".into())));
    assert_eq!(
        tracks.get("timestamp"),
        Some(&Cell::Time("2025-11-24T16:00:00Z".into()))
    );
    assert_eq!(
        tracks.get("event"),
        Some(&Cell::Text("order_completed".into()))
    );
    assert_eq!(
        tracks.get("event_text"),
        Some(&Cell::Text("Order Completed".into()))
    );
    let own = &rows[1];
    assert_eq!(own.table, "order_completed");
    assert_eq!(own.get("order_id"), Some(&Cell::Text("o1".into())));
    assert_eq!(own.get("total"), Some(&Cell::Float(19.99)));
    assert_eq!(own.get("quantity"), Some(&Cell::Int(2)));
    assert_eq!(own.get("gift"), Some(&Cell::Bool(false)));
    assert_eq!(
        own.get("products"),
        Some(&Cell::Text(r#"[{"sku":"a"}]"#.into()))
    );
    assert_eq!(own.get("shipping_method"), Some(&Cell::Text("post".into())));
    assert_eq!(
        own.get("shipping_eta"),
        Some(&Cell::Time("2025-11-30T00:00:00+01:00".into()))
    );
    // Common columns win over properties of the same name; nulls make no column.
    assert_eq!(own.get("id"), Some(&Cell::Text("m1".into())));
    assert_eq!(
        own.get("event"),
        Some(&Cell::Text("order_completed".into()))
    );
    assert_eq!(own.get("coupon"), None);
}

#[test]
fn text_never_carries_a_nul_postgresql_refuses() {
    let event = json!({"event": "E", "properties": {"note": "a\u{0}b", "list": ["\u{0}"]}});
    let rows = rows(EventType::Track, &event, "m", LOADED);
    assert_eq!(rows[1].get("note"), Some(&Cell::Text("a\u{FFFD}b".into())));
    assert_eq!(
        rows[1].get("list"),
        Some(&Cell::Text(r#"["\u0000"]"#.into()))
    );
}

#[test]
fn an_identify_is_a_row_in_identifies_and_merges_into_users() {
    let event = json!({"type": "identify", "userId": "u1", "anonymousId": "a1",
        "receivedAt": "2025-11-24T16:00:01.000Z",
        "traits": {"email": "ann@example.com", "firstName": "Ann", "address": {"city": "Paris"}}});
    let rows = rows(EventType::Identify, &event, "m2", LOADED);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].table, "identifies");
    assert_eq!(rows[0].get("first_name"), Some(&Cell::Text("Ann".into())));
    let user = &rows[1];
    assert_eq!(user.table, "users");
    assert_eq!(user.on_conflict, OnConflict::Merge);
    assert_eq!(
        columns(user),
        [
            "id",
            "received_at",
            "uuid_ts",
            "email",
            "first_name",
            "address_city"
        ]
    );
    assert_eq!(user.get("id"), Some(&Cell::Text("u1".into())));

    let anonymous = json!({"type": "identify", "anonymousId": "a1", "traits": {"plan": "pro"}});
    let rows = super::rows(EventType::Identify, &anonymous, "m3", LOADED);
    assert_eq!(rows.len(), 1, "no users row without a userId");
}

#[test]
fn pages_screens_groups_and_aliases_have_their_tables() {
    let page = json!({"name": "Home", "category": "Docs",
        "properties": {"url": "https://x/", "path": "/", "title": "X"}});
    let rows = rows(EventType::Page, &page, "p", LOADED);
    assert_eq!(rows[0].table, "pages");
    assert_eq!(rows[0].get("name"), Some(&Cell::Text("Home".into())));
    assert_eq!(rows[0].get("category"), Some(&Cell::Text("Docs".into())));
    assert_eq!(rows[0].get("path"), Some(&Cell::Text("/".into())));
    assert_eq!(
        super::rows(EventType::Screen, &page, "s", LOADED)[0].table,
        "screens"
    );
    let group = json!({"groupId": 7, "traits": {"name": "Acme", "employees": 40}});
    let rows = super::rows(EventType::Group, &group, "g", LOADED);
    assert_eq!(rows[0].table, "groups");
    assert_eq!(rows[0].get("group_id"), Some(&Cell::Text("7".into())));
    assert_eq!(rows[0].get("employees"), Some(&Cell::Int(40)));
    let alias = json!({"userId": "u1", "previousId": "a1"});
    let rows = super::rows(EventType::Alias, &alias, "al", LOADED);
    assert_eq!(rows[0].table, "aliases");
    assert_eq!(rows[0].get("previous_id"), Some(&Cell::Text("a1".into())));
}

#[test]
fn a_batch_is_gathered_per_table_and_a_persons_rows_merged() {
    let first = json!({"userId": "u1", "receivedAt": "2025-11-24T16:00:00.000Z",
        "traits": {"plan": "free", "email": "a@x"}});
    let second = json!({"userId": "u1", "receivedAt": "2025-11-24T16:05:00.000Z",
        "traits": {"plan": "pro", "seats": 3}});
    let mut all = rows(EventType::Identify, &first, "m1", LOADED);
    all.extend(rows(EventType::Identify, &second, "m2", LOADED));
    let tables = by_table(all);
    assert_eq!(tables.len(), 2);
    assert_eq!(tables[0].0, "identifies");
    assert_eq!(tables[0].1.len(), 2, "events are never merged");
    let users = &tables[1].1;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].get("plan"), Some(&Cell::Text("pro".into())));
    assert_eq!(users[0].get("email"), Some(&Cell::Text("a@x".into())));
    assert_eq!(users[0].get("seats"), Some(&Cell::Int(3)));
    assert_eq!(
        users[0].get("received_at"),
        Some(&Cell::Time("2025-11-24T16:05:00Z".into()))
    );
}

fn row(cells: &[(&str, Cell)]) -> Row {
    let mut row = Row::new("t".into(), OnConflict::Keep);
    for (name, cell) in cells {
        row.put((*name).into(), cell.clone());
    }
    row
}

#[test]
fn a_change_adds_new_columns_and_widens_ones_a_value_does_not_fit() {
    let rows = [
        row(&[
            ("id", Cell::Text("1".into())),
            ("n", Cell::Int(1)),
            ("b", Cell::Bool(true)),
        ]),
        row(&[
            ("id", Cell::Text("2".into())),
            ("n", Cell::Float(1.5)),
            ("t", Cell::Time("2025-01-01T00:00:00Z".into())),
        ]),
    ];
    let created = change(None, &rows);
    assert_eq!(
        created.add,
        [
            ("id".into(), ColumnType::Text),
            ("b".into(), ColumnType::Boolean),
            ("n".into(), ColumnType::Double),
            ("t".into(), ColumnType::Timestamp)
        ]
    );
    let existing: Columns = [
        ("id".into(), ColumnType::Text),
        ("b".into(), ColumnType::Boolean),
        ("n".into(), ColumnType::BigInt),
    ]
    .into();
    let evolved = change(Some(&existing), &rows);
    assert_eq!(evolved.add, [("t".into(), ColumnType::Timestamp)]);
    assert_eq!(evolved.widen, [("n".into(), ColumnType::Double)]);
    let later = [row(&[("b", Cell::Text("maybe".into()))])];
    assert_eq!(
        change(Some(&existing), &later).widen,
        [("b".into(), ColumnType::Text)]
    );
    assert_eq!(
        ddl("web", "t", true, &evolved),
        [
            r#"ALTER TABLE "web"."t" ADD COLUMN IF NOT EXISTS "t" timestamptz"#,
            r#"ALTER TABLE "web"."t" ALTER COLUMN "n" TYPE double precision USING "n"::double precision"#
        ]
    );
    assert_eq!(
        ddl("web", "t", false, &created),
        [
            r#"CREATE TABLE IF NOT EXISTS "web"."t" ("id" text PRIMARY KEY, "b" boolean, "n" double precision, "t" timestamptz)"#
        ]
    );
}

#[test]
fn a_table_stops_growing_at_its_column_limit() {
    let existing: Columns = (0..MAX_COLUMNS - 1)
        .map(|i| (format!("c{i}"), ColumnType::Text))
        .collect();
    let rows = [row(&[("new_a", Cell::Int(1)), ("new_b", Cell::Int(2))])];
    let change = change(Some(&existing), &rows);
    assert_eq!(change.add, [("new_a".into(), ColumnType::BigInt)]);
    assert_eq!(change.dropped, ["new_b"]);
}

#[test]
fn an_insert_unnests_a_text_array_per_column_and_skips_what_is_already_loaded() {
    let columns: Columns = [
        ("id".into(), ColumnType::Text),
        ("n".into(), ColumnType::Double),
        ("b".into(), ColumnType::Text),
    ]
    .into();
    let rows = [
        row(&[
            ("id", Cell::Text("1".into())),
            ("n", Cell::Int(1)),
            ("b", Cell::Bool(true)),
        ]),
        row(&[("id", Cell::Text("2".into())), ("gone", Cell::Int(9))]),
    ];
    let made = insert("web", "t", &columns, &rows).unwrap();
    assert_eq!(
        made.sql,
        r#"INSERT INTO "web"."t" ("id", "n", "b") SELECT u."id", u."n"::double precision, u."b" FROM unnest($1::text[], $2::text[], $3::text[]) AS u("id", "n", "b") ON CONFLICT ("id") DO NOTHING"#
    );
    assert_eq!(
        made.columns,
        [
            vec![Some("1".into()), Some("2".into())],
            vec![Some("1".into()), None],
            vec![Some("true".into()), None],
        ]
    );
    assert_eq!(insert("web", "t", &columns, &[]), None);
}

#[test]
fn a_persons_row_replaces_values_it_carries_if_it_is_newer() {
    let columns: Columns = [
        ("id".into(), ColumnType::Text),
        ("received_at".into(), ColumnType::Timestamp),
        ("plan".into(), ColumnType::Text),
    ]
    .into();
    let mut user = row(&[
        ("id", Cell::Text("u1".into())),
        ("received_at", Cell::Time("2025-01-01T00:00:00Z".into())),
        ("plan", Cell::Text("pro".into())),
    ]);
    user.on_conflict = OnConflict::Merge;
    let sql = insert("web", "users", &columns, &[user]).unwrap().sql;
    assert!(sql.ends_with(r#"ON CONFLICT ("id") DO UPDATE SET "received_at" = COALESCE(EXCLUDED."received_at", "web"."users"."received_at"), "plan" = COALESCE(EXCLUDED."plan", "web"."users"."plan") WHERE "web"."users"."received_at" IS NULL OR EXCLUDED."received_at" IS NULL OR "web"."users"."received_at" <= EXCLUDED."received_at""#), "{sql}");
}

#[test]
fn a_persons_rows_are_found_by_every_column_naming_them() {
    let table = |names: &[&str]| -> Columns {
        names
            .iter()
            .map(|n| ((*n).to_owned(), ColumnType::Text))
            .collect()
    };
    let tables: BTreeMap<String, Columns> = [
        (
            "tracks".to_owned(),
            table(&["id", "user_id", "anonymous_id"]),
        ),
        ("users".to_owned(), table(&["id", "email"])),
        (
            "aliases".to_owned(),
            table(&["id", "previous_id", "user_id"]),
        ),
        ("unrelated".to_owned(), table(&["id", "sku"])),
    ]
    .into();
    let ids = [
        ("user_id".to_owned(), "u1".to_owned()),
        ("anonymous_id".to_owned(), "a1".to_owned()),
        ("email".to_owned(), "ann@example.com".to_owned()),
    ];
    let deletes = deletes("web", &tables, &ids);
    let sql: Vec<&str> = deletes.iter().map(|d| d.sql.as_str()).collect();
    let any = |n: usize| format!("IN (SELECT jsonb_array_elements_text(${n}::text::jsonb))");
    assert_eq!(
        sql,
        [
            format!(
                r#"DELETE FROM "web"."aliases" WHERE "user_id"::text {} OR "previous_id"::text {}"#,
                any(1),
                any(2)
            ),
            format!(
                r#"DELETE FROM "web"."tracks" WHERE "user_id"::text {} OR "anonymous_id"::text {}"#,
                any(1),
                any(2)
            ),
            format!(
                r#"DELETE FROM "web"."users" WHERE lower(btrim("email"::text)) {} OR "id"::text {}"#,
                any(1),
                any(2)
            ),
        ]
    );
    assert_eq!(
        deletes[0].params,
        [Some(r#"["u1"]"#.into()), Some(r#"["u1","a1"]"#.into())]
    );
    assert_eq!(
        deletes[2].params,
        [
            Some(r#"["ann@example.com"]"#.into()),
            Some(r#"["u1"]"#.into())
        ]
    );
}

#[test]
fn sslmode_is_read_as_libpq_reads_it() {
    let (url, tls) = connection("postgres://u@db:5432/a").unwrap();
    assert_eq!(
        (url.as_str(), tls),
        ("postgres://u@db:5432/a?sslmode=prefer", Tls::Unverified)
    );
    let (url, tls) =
        connection("postgres://u@db/a?application_name=x&sslmode=verify-full").unwrap();
    assert_eq!(
        (url.as_str(), tls),
        (
            "postgres://u@db/a?application_name=x&sslmode=require",
            Tls::VerifyFull
        )
    );
    assert_eq!(
        connection("postgres://u@db/a?sslmode=verify-ca").unwrap().1,
        Tls::VerifyCa
    );
    assert_eq!(
        connection("postgres://u@db/a?sslmode=disable").unwrap().1,
        Tls::Off
    );
    assert_eq!(
        connection("postgres://u@db/a?sslmode=require").unwrap().1,
        Tls::Unverified
    );
    let err = connection("postgres://u@db/a?sslmode=allow-ish").unwrap_err();
    assert!(err.contains("verify-full"), "{err}");
}

#[test]
fn schema_names_are_checked() {
    for good in ["web_prod", "_x", "a1"] {
        assert!(
            Settings {
                schema: good.into()
            }
            .check()
            .is_ok(),
            "{good}"
        );
    }
    for bad in [
        "",
        "Web",
        "1web",
        "web-prod",
        "pg_catalog",
        "information_schema",
        "x\"y",
    ] {
        assert!(Settings { schema: bad.into() }.check().is_err(), "{bad}");
    }
}

fn any_type() -> impl Strategy<Value = ColumnType> {
    prop_oneof![
        Just(ColumnType::Boolean),
        Just(ColumnType::BigInt),
        Just(ColumnType::Double),
        Just(ColumnType::Timestamp),
        Just(ColumnType::Text),
    ]
}

/// Whether a column of type `column` takes a value of type `value`.
fn holds(column: ColumnType, value: ColumnType) -> bool {
    column == value
        || column == ColumnType::Text
        || (column, value) == (ColumnType::Double, ColumnType::BigInt)
}

proptest! {
    #[test]
    fn widening_holds_both_and_does_not_depend_on_order(a in any_type(), b in any_type(), c in any_type()) {
        let w = a.widen(b);
        prop_assert!(holds(w, a) && holds(w, b));
        prop_assert_eq!(w, b.widen(a));
        prop_assert_eq!(w.widen(c), a.widen(b.widen(c)));
        prop_assert_eq!(ColumnType::of_sql(w.sql()), w);
    }

    #[test]
    fn names_are_always_identifiers_we_may_quote(name in any::<String>()) {
        let made = column_name(&name);
        prop_assert!(made.len() <= MAX_NAME_BYTES);
        prop_assert!(made.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        prop_assert!(!made.starts_with(|c: char| c.is_ascii_digit()));
        prop_assert_eq!(column_name(&made), made);
    }

    #[test]
    fn any_event_makes_rows_with_unique_columns_and_an_id(event in proptest_json(), kind in 0usize..6) {
        let kind = [EventType::Track, EventType::Identify, EventType::Page, EventType::Screen, EventType::Group, EventType::Alias][kind];
        for row in rows(kind, &event, "m", LOADED) {
            let mut names = columns(&row);
            prop_assert_eq!(names[0], "id");
            names.sort_unstable();
            names.dedup();
            prop_assert_eq!(names.len(), row.columns.len());
        }
    }
}

fn proptest_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9 :T.Z-]{0,30}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z_ .]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(
        prop_oneof![
            Just("event".to_owned()),
            Just("properties".to_owned()),
            Just("traits".to_owned()),
            Just("context".to_owned()),
            Just("userId".to_owned()),
            Just("name".to_owned())
        ],
        value,
        0..6,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

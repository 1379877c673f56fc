//! The audit log end to end, on both backends: changes made through the command line and
//! the API and profile lookups are appended with who, what and when, secrets never; the
//! API pages it; `sightline audit verify` holds on an untouched chain and fails, naming
//! the entry, once one entry is edited by hand-written SQL.

mod common;

use common::{backends, client, get, get_json, sightline, Backend, Server};
use serde_json::{json, Value};

fn run(backend: &Backend, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    sightline(&refs)
}

fn run_json(backend: &Backend, args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let output = run(backend, &all);
    assert!(
        output.status.success(),
        "sightline {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Edits one stored entry behind Sightline's back.
async fn tamper(backend: &Backend, sql: &str) {
    match backend {
        Backend::Sqlite(dir) => {
            // The audit log has a database file of its own.
            let conn = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
            conn.execute_batch(sql).unwrap();
        }
        Backend::Postgres(url) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client.batch_execute(sql).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_and_lookups_are_audited_and_an_edited_entry_is_detected() {
    for backend in backends("audit").await {
        let name = backend.name();
        let source = run_json(&backend, &["source", "add", "web"]);
        let write_key = source["write_key"].as_str().unwrap().to_string();
        let admin = run_json(&backend, &["token", "create", "--role", "admin"]);
        let admin_id = admin["id"].as_i64().unwrap();
        let admin = admin["token"].as_str().unwrap().to_string();
        let security = run_json(&backend, &["token", "create", "--role", "security"]);
        let security = security["token"].as_str().unwrap().to_string();
        let analyst = run_json(&backend, &["token", "create", "--role", "analyst"]);
        let analyst = analyst["token"].as_str().unwrap().to_string();

        let server = Server::start(&backend, &[]);
        let created = client()
            .post(format!("{}/api/v1/destinations", server.url))
            .bearer_auth(&admin)
            .json(
                &json!({"name": "hook", "url": "http://user:pw@127.0.0.1:9/hook", "purposes": []}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{name}");
        let signing_secret = created.json::<Value>().await.unwrap()["signing_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let disabled = client()
            .post(format!("{}/api/v1/destinations/hook/disable", server.url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(disabled.status(), 200, "{name}");
        // A lookup is a `read` entry, found or not.
        let looked = get(
            &server,
            Some(&admin),
            "/api/v1/profiles/email:ann@example.com",
        )
        .await;
        assert_eq!(looked.status(), 404, "{name}");

        // Security reads the log; an analyst may not.
        assert_eq!(
            get(&server, Some(&analyst), "/api/v1/audit").await.status(),
            403
        );
        let page = get_json(&server, &security, "/api/v1/audit?limit=1000").await;
        let entries = page["entries"].as_array().unwrap();
        let actions: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|e| {
                (
                    e["actor"].as_str().unwrap(),
                    e["action"].as_str().unwrap(),
                    e["target"].as_str().unwrap(),
                )
            })
            .collect();
        let token = format!("token:{admin_id}");
        // Never the identifier in clear: its type and the SHA-256 of `type:value`.
        let read = format!(
            "email:sha256:{}",
            sightline_core::secret::hash("email:ann@example.com")
        );
        assert_eq!(
            actions,
            vec![
                ("cli", "source.create", "web"),
                ("cli", "token.create", &*format!("token:{admin_id}")),
                ("cli", "token.create", &*format!("token:{}", admin_id + 1)),
                ("cli", "token.create", &*format!("token:{}", admin_id + 2)),
                (&*token, "destination.create", "hook"),
                (&*token, "destination.disable", "hook"),
                (&*token, "profile.read", &*read),
            ],
            "{name}"
        );
        assert_eq!(entries[4]["role"], "admin", "{name}");
        let disable = &entries[5];
        assert_eq!(
            serde_json::from_str::<Value>(disable["before"].as_str().unwrap()).unwrap()["disabled"],
            false
        );
        assert_eq!(
            serde_json::from_str::<Value>(disable["after"].as_str().unwrap()).unwrap()["disabled"],
            true
        );
        // Secrets never: the write key, the tokens, the signing secret, the URL's password.
        let text = page.to_string();
        for secret in [&write_key, &admin, &security, &signing_secret] {
            assert!(
                !text.contains(secret.as_str()),
                "{name}: a secret in the audit log"
            );
        }
        assert!(
            !text.contains(":pw@"),
            "{name}: the URL's password in the audit log"
        );
        // Paging: after the fifth, the rest.
        let rest = get_json(&server, &security, "/api/v1/audit?after=5&limit=1").await;
        assert_eq!(rest["entries"][0]["id"], 6, "{name}");
        assert_eq!(rest["next_after"], 6, "{name}");
        drop(server);

        let listed = run(&backend, &["audit", "list"]);
        assert!(listed.status.success(), "{name}");
        assert_eq!(
            String::from_utf8_lossy(&listed.stdout).lines().count(),
            7,
            "{name}"
        );
        let verified = run(&backend, &["audit", "verify"]);
        assert!(
            verified.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
        assert!(
            String::from_utf8_lossy(&verified.stdout).contains("7 entries"),
            "{name}"
        );

        // One entry edited by hand: detected, named.
        tamper(
            &backend,
            "UPDATE audit_log SET target = 'elsewhere' WHERE id = 5",
        )
        .await;
        let verified = run(&backend, &["audit", "verify"]);
        assert!(!verified.status.success(), "{name}: an edit went unseen");
        let stderr = String::from_utf8_lossy(&verified.stderr);
        assert!(stderr.contains("audit entry 5"), "{name}: {stderr}");

        // Put back, then one removed: detected at the entry after it.
        tamper(
            &backend,
            "UPDATE audit_log SET target = 'hook' WHERE id = 5",
        )
        .await;
        assert!(
            run(&backend, &["audit", "verify"]).status.success(),
            "{name}"
        );
        tamper(&backend, "DELETE FROM audit_log WHERE id = 3").await;
        let verified = run(&backend, &["audit", "verify"]);
        assert!(!verified.status.success(), "{name}: a removal went unseen");
        let stderr = String::from_utf8_lossy(&verified.stderr);
        assert!(stderr.contains("audit entry 4"), "{name}: {stderr}");
    }
}

//! The HTTP API's contract. Every route is registered together with its documentation
//! ([`Routes`]): who may call it ([`Access`]), what it takes and what it answers. The OpenAPI
//! document (`GET /api/v1/openapi.json`, checked in as `docs/openapi.json`) and the role
//! matrix (`docs/roles.md`) are made from those registrations, so a route cannot be served
//! undocumented, and the documented roles are the constants the services check
//! ([`sightline_service::access`]).
//!
//! The document is assembled with utoipa's OpenAPI model rather than its `#[utoipa::path]`
//! attributes: the documentation then sits in the one call that registers the route.

use super::ApiState;
use axum::handler::Handler;
use axum::routing::MethodRouter;
use axum::Router;
use serde_json::{json, Value};
use sightline_collect::normalize::Call;
use sightline_core::Role;
use sightline_service::access;
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{KnownFormat, SchemaFormat, SchemaType};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    schema, ArrayBuilder, Components, Content, HttpMethod, Info, ObjectBuilder, OpenApi, Paths,
    RefOr, Required, Response, ResponseBuilder, Schema, Type,
};

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }

    fn openapi(self) -> HttpMethod {
        match self {
            Verb::Get => HttpMethod::Get,
            Verb::Post => HttpMethod::Post,
            Verb::Put => HttpMethod::Put,
            Verb::Delete => HttpMethod::Delete,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Anyone, without credentials: it holds no data (health, readiness, this document).
    Open,
    /// A source's write key as the HTTP Basic username (the tracking API).
    WriteKey,
    /// A bearer token of the `admin` role or one of these; the service checks it with the
    /// same constant.
    Token(&'static [Role]),
}

/// What a request carries or a response answers.
pub enum Payload {
    /// JSON of this schema (boxed: a schema is large, and most payloads are one).
    Json(Box<RefOr<Schema>>),
    /// A body of this media type, described in words.
    Other(&'static str, &'static str),
}

/// Any JSON object, described in words: the shape is the README's, not yet a schema.
pub fn object(description: &str) -> Payload {
    json_payload(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(description)),
    )
}

fn json_payload(schema: ObjectBuilder) -> Payload {
    Payload::Json(Box::new(schema.into()))
}

/// `{"<items>": [objects]}`: a whole list.
pub fn list_of(items: &str, item: &str) -> Payload {
    json_payload(list_schema(items, item))
}

/// `{"<items>": [objects], "<cursor>": integer}`: a page of a list, and the cursor to ask
/// for the next (`null` when the list was empty, for some lists).
pub fn page_of(items: &str, item: &str, cursor: &str) -> Payload {
    json_payload(
        list_schema(items, item)
            .property(
                cursor,
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::Integer, Type::Null])),
            )
            .required(cursor),
    )
}

fn list_schema(items: &str, item: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            items,
            ArrayBuilder::new().items(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some(item)),
            ),
        )
        .required(items)
}

/// JSON of a type's schema.
pub fn json_of<T: utoipa::PartialSchema>() -> Payload {
    Payload::Json(Box::new(T::schema()))
}

/// A path parameter's description and schema.
struct PathParam {
    name: &'static str,
    description: &'static str,
    /// The values it takes; empty for any.
    values: &'static [&'static str],
    integer: bool,
}

/// One route's documentation.
pub struct Doc {
    tag: &'static str,
    summary: String,
    access: Access,
    /// Path parameters' descriptions (by name); the rest are plain strings.
    path: Vec<PathParam>,
    query: Vec<(&'static str, &'static str)>,
    request: Option<Payload>,
    status: u16,
    answer: Payload,
}

impl Doc {
    /// A route under `tag` that answers 200 with `answer`.
    pub fn new(
        tag: &'static str,
        summary: impl Into<String>,
        access: Access,
        answer: Payload,
    ) -> Doc {
        Doc {
            tag,
            summary: summary.into(),
            access,
            path: Vec::new(),
            query: Vec::new(),
            request: None,
            status: 200,
            answer,
        }
    }

    /// Answers `status` (e.g. 201) on success instead of 200.
    pub fn status(mut self, status: u16) -> Doc {
        self.status = status;
        self
    }

    pub fn path(mut self, name: &'static str, description: &'static str) -> Doc {
        self.path.push(PathParam {
            name,
            description,
            values: &[],
            integer: false,
        });
        self
    }

    /// A path segment that is an integer id.
    pub fn path_id(mut self, name: &'static str, description: &'static str) -> Doc {
        self.path.push(PathParam {
            name,
            description,
            values: &[],
            integer: true,
        });
        self
    }

    /// A path segment that takes one of `values`.
    pub fn path_one_of(
        mut self,
        name: &'static str,
        description: &'static str,
        values: &'static [&'static str],
    ) -> Doc {
        self.path.push(PathParam {
            name,
            description,
            values,
            integer: false,
        });
        self
    }

    pub fn query(mut self, name: &'static str, description: &'static str) -> Doc {
        self.query.push((name, description));
        self
    }

    pub fn body(mut self, request: Payload) -> Doc {
        self.request = Some(request);
        self
    }
}

/// A router with the documentation of every route it serves.
pub struct Routes {
    router: Router<ApiState>,
    docs: Vec<(Verb, &'static str, Doc)>,
}

impl Routes {
    pub(super) fn new() -> Routes {
        Routes {
            router: Router::new(),
            docs: Vec::new(),
        }
    }

    pub(super) fn get<H: Handler<T, ApiState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
        doc: Doc,
    ) -> Routes {
        self.on(Verb::Get, path, axum::routing::get(handler), doc)
    }

    pub(super) fn post<H: Handler<T, ApiState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
        doc: Doc,
    ) -> Routes {
        self.on(Verb::Post, path, axum::routing::post(handler), doc)
    }

    pub(super) fn put<H: Handler<T, ApiState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
        doc: Doc,
    ) -> Routes {
        self.on(Verb::Put, path, axum::routing::put(handler), doc)
    }

    pub(super) fn delete<H: Handler<T, ApiState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
        doc: Doc,
    ) -> Routes {
        self.on(Verb::Delete, path, axum::routing::delete(handler), doc)
    }

    /// `method_router` (which must answer `verb` only, e.g. with a layer of its own) at `path`.
    pub(super) fn on(
        mut self,
        verb: Verb,
        path: &'static str,
        method_router: MethodRouter<ApiState>,
        doc: Doc,
    ) -> Routes {
        // axum merges the methods of one path registered more than once.
        self.router = self.router.route(path, method_router);
        self.docs.push((verb, path, doc));
        self
    }

    pub(super) fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.docs.extend(other.docs);
        self
    }

    pub(super) fn into_router(self) -> Router<ApiState> {
        self.router
    }
}

/// The roles that may call a route, `admin` first, in the order of [`Role::ALL`].
fn admitted(roles: &[Role]) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|r| *r == Role::Admin || roles.contains(r))
        .collect()
}

fn error_schema() -> Schema {
    ObjectBuilder::new()
        .description(Some(
            "Every error of the API: a stable `code` to branch on and a `message` that says \
             what to do. A batch refused whole also lists each item's problem in `rejected`.",
        ))
        .property(
            "error",
            ObjectBuilder::new()
                .property("code", ObjectBuilder::new().schema_type(Type::String))
                .required("code")
                .property("message", ObjectBuilder::new().schema_type(Type::String))
                .required("message"),
        )
        .required("error")
        .into()
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(schema::Ref::from_schema_name("Error")))),
        )
        .build()
}

fn content(payload: &Payload) -> (&'static str, Content) {
    match payload {
        Payload::Json(schema) => (
            "application/json",
            Content::new(Some(schema.as_ref().clone())),
        ),
        Payload::Other(media_type, _) => (
            media_type,
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        ),
    }
}

fn operation(verb: Verb, path: &str, doc: &Doc) -> Operation {
    let mut op = Operation::builder()
        .tag(doc.tag)
        .summary(Some(doc.summary.as_str()))
        .operation_id(Some(format!(
            "{} {}",
            verb.as_str(),
            path.trim_start_matches('/')
        )));
    for name in path_parameters(path) {
        let param = doc.path.iter().find(|p| p.name == name);
        let mut schema = ObjectBuilder::new().schema_type(Type::String);
        match param {
            Some(p) if p.integer => {
                schema = ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            }
            Some(p) if !p.values.is_empty() => {
                schema = schema.enum_values(Some(p.values.iter().copied()))
            }
            _ => {}
        }
        let description = param.map(|p| p.description);
        op = op.parameter(
            Parameter::builder()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(description)
                .schema(Some(schema)),
        );
    }
    for (name, description) in &doc.query {
        op = op.parameter(
            Parameter::builder()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if let Some(request) = &doc.request {
        let (media_type, body) = content(request);
        let description = match request {
            Payload::Other(_, words) => Some(*words),
            Payload::Json(_) => None,
        };
        op = op.request_body(Some(
            RequestBody::builder()
                .required(Some(Required::True))
                .description(description)
                .content(media_type, body)
                .build(),
        ));
    }
    let (media_type, answer) = content(&doc.answer);
    let success = match &doc.answer {
        Payload::Other(_, words) => *words,
        Payload::Json(_) => "Done.",
    };
    op = op.response(
        doc.status.to_string(),
        ResponseBuilder::new()
            .description(success)
            .content(media_type, answer)
            .build(),
    );
    let mut description = String::new();
    match doc.access {
        Access::Open => description.push_str("No credentials needed."),
        Access::WriteKey => {
            op = op
                .security(SecurityRequirement::new("writeKey", Vec::<String>::new()))
                .response(
                    "401",
                    error_response("No write key, or one no source holds."),
                );
            description.push_str(
                "The source's write key as the HTTP Basic username (empty password), or as \
                 `writeKey` in the body.",
            );
        }
        Access::Token(roles) => {
            let names: Vec<&str> = admitted(roles).iter().map(|r| r.as_str()).collect();
            op = op
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .response("401", error_response("No API token, or an unknown one."))
                .response("403", error_response("The token's role may not do this."))
                .extensions(Some(
                    [("x-roles".to_string(), json!(names))]
                        .into_iter()
                        .collect(),
                ));
            description.push_str(&format!("Roles: {}.", names.join(", ")));
        }
    }
    op.response(
        "default",
        error_response(
            "Refused or failed: 400 bad input (the message says where), 404 unknown, \
             409 conflict, 413 too large, 429 busy (retry after `Retry-After`), \
             503 store unavailable (retry).",
        ),
    )
    .description(Some(description))
    .build()
}

/// The `{name}`s of a path template, in order.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The tracking API's documentation, made from the paths the collector registers.
fn tracking_docs() -> Vec<(Verb, String, Doc)> {
    sightline_collect::paths()
        .into_iter()
        .map(|(path, call)| {
            let (summary, request) = match call {
                Call::Single(kind) => (
                    format!("Collects one Segment `{kind}` call"),
                    "A Segment call (https://segment.com/docs/connections/spec/); `userId` or \
                     `anonymousId` required; at most 32 KB; gzip accepted.",
                ),
                Call::Batch => (
                    "Collects a batch of Segment calls".to_string(),
                    "`{\"batch\":[calls, each with its `type`]}`; at most 500 KB; gzip accepted.",
                ),
            };
            let doc = Doc::new(
                "tracking",
                summary,
                Access::WriteKey,
                json_payload(
                    ObjectBuilder::new()
                        .description(Some(
                            "Acknowledged once durable: how many calls were stored and how \
                             many were duplicates; `rejected` lists the invalid items of a \
                             batch.",
                        ))
                        .property("success", ObjectBuilder::new().schema_type(Type::Boolean))
                        .required("success")
                        .property("accepted", ObjectBuilder::new().schema_type(Type::Integer))
                        .property(
                            "duplicates",
                            ObjectBuilder::new().schema_type(Type::Integer),
                        ),
                ),
            );
            let body = match call {
                Call::Single(_) => segment_call(),
                Call::Batch => ObjectBuilder::new().schema_type(Type::Object).property(
                    "batch",
                    ArrayBuilder::new().items(
                        segment_call().property(
                            "type",
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .enum_values(Some(
                                    sightline_core::EventType::ALL.map(|t| t.as_str()),
                                )),
                        ),
                    ),
                ),
            };
            (
                Verb::Post,
                path,
                doc.body(json_payload(body.description(Some(request)))),
            )
        })
        .chain(browser_docs())
        .collect()
}

/// The browser's first-party loader and settings (`sightline_collect::browser`): open, the
/// write key in the path (a browser's key is public); 404 for a key no source has.
fn browser_docs() -> [(Verb, String, Doc); 2] {
    let key = "A source's write key";
    [
        (
            Verb::Get,
            sightline_collect::browser::LOADER.into(),
            Doc::new(
                "tracking",
                "Sightline's analytics.js-compatible loader, for the snippet's CDN host",
                Access::Open,
                Payload::Other("application/javascript", "The loader script."),
            )
            .path("write_key", key),
        ),
        (
            Verb::Get,
            sightline_collect::browser::SETTINGS.into(),
            Doc::new(
                "tracking",
                "The settings analytics-next reads from its `cdnURL`, pointing it back here",
                Access::Open,
                object(
                    "`integrations.Segment.io` with `apiKey`, `apiHost` (this server's `/v1`) \
                     and `protocol`; no other integration; metrics off.",
                ),
            )
            .path("write_key", key),
        ),
    ]
}

/// A Segment call's common fields (the spec's others are accepted as sent).
fn segment_call() -> ObjectBuilder {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let object = || ObjectBuilder::new().schema_type(Type::Object);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("userId", string())
        .property("anonymousId", string())
        .property("messageId", string())
        .property("event", string())
        .property("name", string())
        .property("groupId", string())
        .property("previousId", string())
        .property("timestamp", string().description(Some("ISO 8601")))
        .property("properties", object())
        .property("traits", object())
        .property("context", object())
}

/// The document, from the main listener's routes (with `/metrics` on it, the default).
fn build(routes: &Routes) -> OpenApi {
    let mut paths = Paths::new();
    let api = routes.docs.iter().map(|(v, p, d)| (*v, p.to_string(), d));
    let tracking = tracking_docs();
    for (verb, path, doc) in api.chain(tracking.iter().map(|(v, p, d)| (*v, p.clone(), d))) {
        paths.add_path_operation(&path, vec![verb.openapi()], operation(verb, &path, doc));
    }
    let mut components = Components::new();
    components
        .schemas
        .insert("Error".to_string(), RefOr::T(error_schema()));
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token: `sightline token create --role ROLE`. Each operation's \
                     `x-roles` lists the roles it admits.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "writeKey",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Basic)
                .description(Some(
                    "A source's write key as the username, the password empty: \
                     `sightline source add NAME`.",
                ))
                .build(),
        ),
    );
    let mut info = Info::new("Sightline", env!("CARGO_PKG_VERSION"));
    info.description = Some(
        "The tracking API (Segment-compatible, `/v1/*`), the admin and Profile API \
         (`/api/v1/*`) and the operational endpoints of `sightline serve`."
            .into(),
    );
    let mut document = OpenApi::new(info, paths);
    document.components = Some(components);
    document
}

/// Sorts every object's keys, so that the document's text does not depend on hash order.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// The OpenAPI document, as served and as checked in (`docs/openapi.json`).
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let value = serde_json::to_value(build(&super::main_routes(true)))
            .expect("the OpenAPI model always serialises");
        let mut text = serde_json::to_string_pretty(&canonical(value))
            .expect("a JSON value always serialises");
        text.push('\n');
        text
    })
}

/// The route × role matrix in Markdown (`docs/roles.md`).
pub fn roles_markdown() -> String {
    let routes = super::main_routes(true);
    let api = routes.docs.iter().map(|(v, p, d)| (*v, p.to_string(), d));
    let tracking = tracking_docs();
    let mut rows: Vec<(String, Verb, String)> = api
        .chain(tracking.iter().map(|(v, p, d)| (*v, p.clone(), d)))
        .map(|(verb, path, doc)| {
            let (admitted, credential) = match doc.access {
                Access::Open => (Role::ALL.to_vec(), "none"),
                Access::WriteKey => (Vec::new(), "write key"),
                Access::Token(roles) => (admitted(roles), "API token"),
            };
            let mut cells: Vec<&str> = Role::ALL
                .iter()
                .map(|r| if admitted.contains(r) { "✓" } else { "" })
                .collect();
            cells.push(if matches!(doc.access, Access::Open) {
                "✓"
            } else {
                ""
            });
            cells.push(credential);
            (path, verb, cells.join(" | "))
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
    let header: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let mut text = format!(
        "# Who may call what\n\n\
         Generated from the route registrations (`crates/sightline/src/http/`) by \
         `sightline openapi --roles`: `crates/sightline/tests/openapi.rs` fails when this file \
         is stale, and `crates/sightline/tests/roles.rs` checks every cell against a running \
         server. A role without a ✓ gets 403; a route that needs an API token answers 401 \
         without one. The tracking API (`POST /v1/*`) takes a source's write key and refuses \
         every API token (401).\n\n\
         | Route | {} | no token | credential |\n|---|{}---|---|\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for (path, verb, cells) in rows {
        text.push_str(&format!("| `{} {path}` | {cells} |\n", verb.as_str()));
    }
    text
}

/// The roles of the operational detail (`/metrics`, `/readyz?verbose`) on the main listener.
pub const DETAIL: Access = Access::Token(access::METRICS_READERS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_the_braced_segments() {
        assert_eq!(
            path_parameters("/api/v1/tags/{id}/{action}"),
            vec!["id", "action"]
        );
        assert!(path_parameters("/api/v1/tags").is_empty());
    }

    #[test]
    fn every_route_is_documented_once() {
        let document: Value = serde_json::from_str(document()).unwrap();
        let routes = crate::http::main_routes(true);
        let mut seen = std::collections::HashSet::new();
        for (verb, path, _) in &routes.docs {
            assert!(
                seen.insert((verb.as_str(), *path)),
                "{} {path} registered twice",
                verb.as_str()
            );
            let method = verb.as_str().to_lowercase();
            assert!(
                document["paths"][path][&method].is_object(),
                "{} {path} missing from the document",
                verb.as_str()
            );
        }
        for (path, _) in sightline_collect::paths() {
            assert!(document["paths"][&path]["post"].is_object(), "{path}");
        }
        for path in [
            sightline_collect::browser::LOADER,
            sightline_collect::browser::SETTINGS,
        ] {
            assert!(document["paths"][path]["get"].is_object(), "{path}");
        }
    }
}

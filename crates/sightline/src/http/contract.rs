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

/// `{"<items>": [objects]}`: a whole list, its items described in words.
pub fn list_of(items: &str, item: &str) -> Payload {
    list_with(items, loose(item))
}

/// `{"<items>": [item]}`: a whole list of `item`s.
pub fn list_with(items: &str, item: Schema) -> Payload {
    json_payload(list_schema(items, item))
}

/// `{"<items>": [objects], "<cursor>": integer}`: a page of a list, its items described in
/// words, and the cursor to ask for the next (`null` when the list was empty, for some
/// lists).
pub fn page_of(items: &str, item: &str, cursor: &str) -> Payload {
    page_with(items, loose(item), cursor)
}

/// [`page_of`] with `item`'s schema.
pub fn page_with(items: &str, item: Schema, cursor: &str) -> Payload {
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

fn loose(item: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(item))
        .into()
}

fn list_schema(items: &str, item: Schema) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(items, ArrayBuilder::new().items(RefOr::T(item)))
        .required(items)
}

/// JSON of a type's schema.
pub fn json_of<T: utoipa::PartialSchema>() -> Payload {
    Payload::Json(Box::new(T::schema()))
}

/// JSON of this schema (made with [`shape`]).
pub fn json(schema: Schema) -> Payload {
    Payload::Json(Box::new(RefOr::T(schema)))
}

/// Schemas of the answers whose types live outside the HTTP layer (only this crate depends
/// on utoipa): what their `Serialize` (or the `json!` that makes them) writes, built with
/// utoipa's model.
pub mod shape {
    use serde_json::Value;
    use utoipa::openapi::schema::{AdditionalProperties, AnyOfBuilder, SchemaType};
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, RefOr, Schema, Type};

    fn typed(t: Type) -> Schema {
        ObjectBuilder::new().schema_type(t).into()
    }

    pub fn string() -> Schema {
        typed(Type::String)
    }

    pub fn integer() -> Schema {
        typed(Type::Integer)
    }

    pub fn number() -> Schema {
        typed(Type::Number)
    }

    pub fn boolean() -> Schema {
        typed(Type::Boolean)
    }

    /// A string described in words (a format, e.g. `YYYY-MM-DD`).
    pub fn text(description: &str) -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .into()
    }

    /// An ISO 8601 time, as `sightline_core::time::format_ms` writes it.
    pub fn time() -> Schema {
        text("ISO 8601 time (UTC)")
    }

    /// `schema` with a description.
    pub fn about(schema: Schema, description: &str) -> Schema {
        match schema {
            Schema::Object(mut o) => {
                o.description = Some(description.into());
                Schema::Object(o)
            }
            Schema::Array(mut a) => {
                a.description = Some(description.into());
                Schema::Array(a)
            }
            other => other,
        }
    }

    /// A string of a closed set.
    pub fn one_of(values: &[&str]) -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied()))
            .into()
    }

    /// Any JSON value, described in words.
    pub fn any(description: &str) -> Schema {
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .description(Some(description))
            .into()
    }

    /// `schema`, or `null`.
    pub fn nullable(schema: Schema) -> Schema {
        fn with_null(t: SchemaType) -> SchemaType {
            match t {
                SchemaType::Type(Type::Null) => SchemaType::Type(Type::Null),
                SchemaType::Type(t) => SchemaType::from_iter([t, Type::Null]),
                SchemaType::Array(mut ts) => {
                    if !ts.contains(&Type::Null) {
                        ts.push(Type::Null);
                    }
                    SchemaType::Array(ts)
                }
                SchemaType::AnyValue => SchemaType::AnyValue,
            }
        }
        match schema {
            Schema::Object(mut o) => {
                o.schema_type = with_null(o.schema_type);
                if let Some(values) = &mut o.enum_values {
                    values.push(Value::Null);
                }
                Schema::Object(o)
            }
            Schema::Array(mut a) => {
                a.schema_type = with_null(a.schema_type);
                Schema::Array(a)
            }
            other => any_of([other, typed(Type::Null)]),
        }
    }

    /// An array of `item`s.
    pub fn array(item: Schema) -> Schema {
        ArrayBuilder::new().items(RefOr::T(item)).into()
    }

    /// An array of strings.
    pub fn strings() -> Schema {
        array(string())
    }

    /// An object whose keys are names (described) and whose values are `value`s.
    pub fn map_of(keys: &str, value: Schema) -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(keys))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(value))))
            .into()
    }

    /// A free-form JSON object by nature (an event's `properties`, a profile's traits),
    /// described in words.
    pub fn free(description: &str) -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(description))
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(true)))
            .into()
    }

    /// Any of `schemas` (the answer's shape depends on the request, e.g. a path segment).
    pub fn any_of(schemas: impl IntoIterator<Item = Schema>) -> Schema {
        let mut builder = AnyOfBuilder::new();
        for schema in schemas {
            builder = builder.item(RefOr::T(schema));
        }
        builder.build().into()
    }

    /// A JSON object's fields: [`Fields::req`] for those always written, [`Fields::opt`]
    /// for those only sometimes (`skip_serializing_if`, a key added on a condition).
    pub struct Fields(ObjectBuilder);

    impl Fields {
        pub fn new() -> Fields {
            Fields(ObjectBuilder::new().schema_type(Type::Object))
        }

        pub fn described(description: &str) -> Fields {
            Fields(Fields::new().0.description(Some(description)))
        }

        /// A field always present.
        pub fn req(self, name: &str, schema: Schema) -> Fields {
            Fields(self.0.property(name, RefOr::T(schema)).required(name))
        }

        /// A field present only sometimes.
        pub fn opt(self, name: &str, schema: Schema) -> Fields {
            Fields(self.0.property(name, RefOr::T(schema)))
        }

        /// Other fields of any value besides (a free-form part flattened into it).
        pub fn open(self) -> Fields {
            Fields(
                self.0
                    .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(true))),
            )
        }

        pub fn schema(self) -> Schema {
            self.0.into()
        }
    }

    impl Default for Fields {
        fn default() -> Fields {
            Fields::new()
        }
    }

    impl From<Fields> for Schema {
        fn from(fields: Fields) -> Schema {
            fields.schema()
        }
    }

    /// `{"deleted": NAME}`: what a deletion answers.
    pub fn deleted() -> Schema {
        Fields::described("The name of what was deleted")
            .req("deleted", string())
            .schema()
    }

    /// An identifier, `{"type":…,"value":…}` (`sightline_identity::Identifier`).
    pub fn identifier() -> Schema {
        Fields::new()
            .req(
                "type",
                text("`user_id`, `email`, `phone`, `device_id`, `anonymous_id` or a custom type"),
            )
            .req("value", string())
            .schema()
    }

    /// A stored governance record (`registry::Held`): `id` and `version`, then the
    /// record's own fields (`fields`).
    pub fn held(fields: Fields) -> Schema {
        fields
            .req("id", integer())
            .req("version", integer())
            .schema()
    }
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
    /// Other success statuses answered with the same body (e.g. 200 for a duplicate).
    also: Vec<u16>,
    /// Other media types the answer takes on request (e.g. `?format=csv`), described.
    alternatives: Vec<(&'static str, &'static str)>,
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
            also: Vec::new(),
            alternatives: Vec::new(),
        }
    }

    /// Also answers `status` with the same body (e.g. 200 for a duplicate of a 201).
    pub fn also(mut self, status: u16) -> Doc {
        self.also.push(status);
        self
    }

    /// The answer may instead be of `media_type` (described) when the request asks.
    pub fn or_as(mut self, media_type: &'static str, description: &'static str) -> Doc {
        self.alternatives.push((media_type, description));
        self
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
    let mut success = match &doc.answer {
        Payload::Other(_, words) => words.to_string(),
        Payload::Json(_) => "Done.".to_string(),
    };
    for (media_type, words) in &doc.alternatives {
        success.push_str(&format!(" As `{media_type}`: {words}."));
    }
    let mut response = ResponseBuilder::new()
        .description(success)
        .content(media_type, answer);
    for (media_type, _) in &doc.alternatives {
        response = response.content(
            *media_type,
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    let response = response.build();
    for status in &doc.also {
        op = op.response(status.to_string(), response.clone());
    }
    op = op.response(doc.status.to_string(), response);
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
                json(settings()),
            )
            .path("write_key", key),
        ),
    ]
}

/// The settings `sightline_collect::browser` answers: the Segment.io integration pointed
/// back at this server, and nothing else.
fn settings() -> Schema {
    use shape::{array, boolean, free, integer, string, Fields};
    let segment = Fields::described("The Segment.io integration, pointed at this server")
        .req("apiKey", string())
        .req("apiHost", shape::text("This server's host and `/v1`"))
        .req("protocol", shape::one_of(&["http", "https"]))
        .req("unbundledIntegrations", array(string()))
        .req("addBundledMetadata", boolean());
    Fields::described(
        "`integrations.Segment.io` with `apiKey`, `apiHost` (this server's `/v1`) and \
         `protocol`; no other integration; metrics off.",
    )
    .req(
        "integrations",
        Fields::new().req("Segment.io", segment.schema()).schema(),
    )
    .req("plan", free("Every call enabled"))
    .req("edgeFunction", free("None"))
    .req("analyticsNextEnabled", boolean())
    .req("middlewareSettings", free("None"))
    .req("enabledMiddleware", free("None"))
    .req(
        "metrics",
        Fields::new().req("sampleRate", integer()).schema(),
    )
    .req("legacyVideoPluginsEnabled", boolean())
    .req("remotePlugins", array(free("None are listed")))
    .schema()
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

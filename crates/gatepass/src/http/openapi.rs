//! The OpenAPI 3.1 description, served at `GET /openapi.json`.
//!
//! It is generated from the code: every route is registered through utoipa-axum's
//! `routes!`, which takes the method, path, parameters, bodies and responses from the
//! handler's `#[utoipa::path]` annotation, so a route cannot be added without its
//! description. Error responses are built from [`ErrorCode`]: each status lists exactly
//! the codes that map to it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr};
use utoipa::{IntoResponses, PartialSchema};
use utoipa_axum::router::UtoipaMethodRouter;

use crate::error::{ErrorBody, ErrorCode};
use crate::http::api::GrantBody;

/// Security scheme: an access token in `Authorization: Bearer`.
pub const BEARER: &str = "bearer";
/// Security scheme: the access-token cookie set by cookie-mode login.
pub const COOKIE: &str = "session_cookie";
/// Security scheme: the refresh-token cookie (path `/api/refresh`).
pub const REFRESH_COOKIE: &str = "refresh_cookie";
/// Security scheme: this process's operator token in `Authorization: Bearer`.
pub const OPERATOR: &str = "operator_token";
/// Security scheme: `GATEPASS_METRICS_TOKEN` in `Authorization: Bearer`.
pub const METRICS: &str = "metrics_token";
/// Security scheme: an introspection client's HTTP Basic credentials.
pub const BASIC: &str = "introspection_client";
/// Security scheme: an OAuth client's HTTP Basic credentials (`client_secret_basic`).
pub const OAUTH_CLIENT: &str = "oauth_client";

/// The static parts of the description; the paths come from the router.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "gatepass",
        description = "Self-hosted JWT authentication server: accounts, access and refresh tokens, sessions.\n\n\
            Every error body is `{\"error\": \"<message>\", \"code\": \"<machine code>\"}`; the codes are the \
            `ErrorCode` schema. Requests that authenticate with the session cookie and are not GET/HEAD must \
            come from the same origin and carry the session's CSRF token in `X-CSRF-Token`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    modifiers(&Document),
    components(schemas(ErrorBody, ErrorCode, GrantBody)),
    tags(
        (name = "accounts", description = "Registration, login, profile, password change"),
        (name = "sessions", description = "Refresh-token rotation, logout, the caller's sessions"),
        (name = "mfa", description = "Second factors: authenticator apps (TOTP), recovery codes, the second login step"),
        (name = "passkeys", description = "Passkeys (WebAuthn): adding, renaming and removing them, passwordless sign-in"),
        (name = "admin", description = "Accounts, audit trail, signing keys, runtime settings (role `admin` or the operator token)"),
        (name = "tokens", description = "Key discovery, introspection (RFC 7662), revocation (RFC 7009)"),
        (name = "oauth", description = "OAuth 2.1 / OpenID Connect provider: authorization, token, userinfo, metadata"),
        (name = "compat", description = "Routes the seed tutorials' clients call"),
        (name = "pages", description = "Server-rendered pages and their HTML form posts"),
        (name = "admin console", description = "The admin console's pages and form posts (`/admin`, role `admin`)"),
        (name = "ops", description = "Health, metrics, this description"),
    )
)]
pub struct ApiDoc;

/// Sets the version, the security schemes and the responses every operation can give.
struct Document;

impl utoipa::Modify for Document {
    fn modify(&self, api: &mut OpenApi) {
        api.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let components = api.components.get_or_insert_with(Default::default);
        let bearer = |format: &str, description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(format)
                    .description(Some(description.to_owned()))
                    .build(),
            )
        };
        components.add_security_scheme(BEARER, bearer("JWT", "An access token from login, register or refresh."));
        components.add_security_scheme(
            OPERATOR,
            bearer("JWT", "This process's operator token (printed at start-up); admin routes only."),
        );
        components.add_security_scheme(METRICS, bearer("opaque", "GATEPASS_METRICS_TOKEN, when it is set."));
        components.add_security_scheme(
            COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-session",
                "The access-token cookie (named `session` on plain-HTTP loopback). Non-GET requests also need \
                 the `X-CSRF-Token` header and a same-origin `Origin`/`Sec-Fetch-Site`.",
            ))),
        );
        components.add_security_scheme(
            REFRESH_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Secure-refresh",
                "The refresh-token cookie (named `refresh_token` on plain-HTTP loopback); sent only to \
                 paths under `/api/refresh`.",
            ))),
        );
        components.add_security_scheme(
            BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("A client configured in GATEPASS_INTROSPECTION_CLIENTS.".to_owned()))
                    .build(),
            ),
        );
        components.add_security_scheme(
            OAUTH_CLIENT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A registered OAuth client's id and secret (or client_id/client_secret in the form body)."
                            .to_owned(),
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the responses any operation can give whatever its handler does: the request
/// timeout (a layer around every route) and an internal error.
fn add_common_responses(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        for op in operations(item) {
            for (status, response) in [
                (StatusCode::REQUEST_TIMEOUT, error_response(StatusCode::REQUEST_TIMEOUT, "The request took too long")),
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
                ),
            ] {
                op.responses.responses.entry(status.as_str().to_owned()).or_insert(RefOr::T(response));
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Serves `routes` (the operations of one path, from `routes!`) at the seed path `alias`
/// too, through the same handlers. The alias is described as a copy of the main path in
/// which each operation gets the id `<id>_root` and the summary
/// ``<title> (seed alias of `<main path>`)``, `titles` giving the title by operation id.
pub fn with_alias<S>(
    (schemas, mut paths, router): UtoipaMethodRouter<S>,
    alias: &str,
    titles: &[(&str, &str)],
) -> UtoipaMethodRouter<S> {
    let main = paths.paths.iter().next().map(|(path, item)| (path.clone(), item.clone()));
    if let Some((main, mut item)) = main {
        for op in operations(&mut item) {
            let id = op.operation_id.take().unwrap_or_default();
            if let Some((_, title)) = titles.iter().find(|(of, _)| *of == id) {
                op.summary = Some(format!("{title} (seed alias of `{main}`)"));
            }
            op.description = None;
            op.operation_id = Some(format!("{id}_root"));
        }
        paths.paths.insert(alias.to_owned(), item);
    }
    (schemas, paths, router)
}

/// The codes that map to `status`, read from the derived [`ErrorCode`] schema.
pub fn codes_for(status: StatusCode) -> Vec<ErrorCode> {
    let values = match ErrorCode::schema() {
        RefOr::T(Schema::Object(o)) => o.enum_values.unwrap_or_default(),
        _ => Vec::new(),
    };
    values
        .into_iter()
        .filter_map(|v| serde_json::from_value::<ErrorCode>(v).ok())
        .filter(|c| c.status() == status)
        .collect()
}

/// The `{"error", "code"}` schema with `code` limited to the codes of `status`.
fn error_schema(status: StatusCode) -> Schema {
    let codes: Vec<&str> = codes_for(status).into_iter().map(ErrorCode::as_str).collect();
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .property("error", ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)))
            .property("code", ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).enum_values(Some(codes)))
            .required("error")
            .required("code")
            .build(),
    )
}

/// A JSON error response for `status`, with the headers that status always carries.
pub fn error_response(status: StatusCode, description: &str) -> Response {
    with_headers(
        status,
        ResponseBuilder::new()
            .description(describe(status, description))
            .content("application/json", Content::new(Some(error_schema(status)))),
    )
    .build()
}

/// A response that is an HTML page (a form shown again with its errors) or, for CSRF and
/// malformed requests, the JSON error.
pub fn html_or_error_response(status: StatusCode, description: &str) -> Response {
    let mut builder = ResponseBuilder::new().description(describe(status, description));
    builder = builder.content("text/html", Content::new(Some(String::schema())));
    if !codes_for(status).is_empty() {
        builder = builder.content("application/json", Content::new(Some(error_schema(status))));
    }
    builder.build()
}

fn describe(status: StatusCode, description: &str) -> String {
    let codes: Vec<String> = codes_for(status).into_iter().map(|c| format!("`{}`", c.as_str())).collect();
    if codes.is_empty() { description.to_owned() } else { format!("{description}. Codes: {}", codes.join(", ")) }
}

fn with_headers(status: StatusCode, builder: ResponseBuilder) -> ResponseBuilder {
    let integer = || ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)).minimum(Some(1));
    match status {
        StatusCode::UNAUTHORIZED => builder.header(
            header::WWW_AUTHENTICATE.as_str(),
            HeaderBuilder::new()
                .schema(Some(String::schema()))
                .description(Some("RFC 6750 challenge (`Basic` for introspection clients)".to_owned()))
                .build(),
        ),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => builder.header(
            header::RETRY_AFTER.as_str(),
            HeaderBuilder::new().schema(Some(integer())).description(Some("Seconds to wait".to_owned())).build(),
        ),
        _ => builder,
    }
}

/// Responses by status code, as [`IntoResponses`] gives them.
type ResponseMap = BTreeMap<String, RefOr<Response>>;

macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident = $status:ident, $description:literal, $builder:ident;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> ResponseMap {
                let response = $builder(StatusCode::$status, $description);
                ResponseMap::from([(StatusCode::$status.as_str().to_owned(), RefOr::T(response))])
            }
        }
    )*};
}

error_responses! {
    /// 400 with the JSON error.
    BadRequest = BAD_REQUEST, "The request is malformed or a field broke a rule", error_response;
    /// 401 with the JSON error and `WWW-Authenticate`.
    Unauthorized = UNAUTHORIZED, "Missing or unacceptable credentials", error_response;
    /// 403 with the JSON error.
    Forbidden = FORBIDDEN, "Authenticated but not allowed", error_response;
    /// 404 with the JSON error.
    NotFound = NOT_FOUND, "No such resource", error_response;
    /// 409 with the JSON error.
    Conflict = CONFLICT, "The username or e-mail address is taken", error_response;
    /// 413 with the JSON error.
    PayloadTooLarge = PAYLOAD_TOO_LARGE, "The body is larger than 64 KiB", error_response;
    /// 415 with the JSON error.
    UnsupportedMediaType = UNSUPPORTED_MEDIA_TYPE, "The body has a content type this route does not take", error_response;
    /// 429 with the JSON error and `Retry-After`.
    TooManyRequests = TOO_MANY_REQUESTS, "Rate limited", error_response;
    /// 503 with the JSON error and `Retry-After`.
    ServiceUnavailable = SERVICE_UNAVAILABLE, "Storage is unavailable; retry shortly", error_response;
    /// 400 from a form route: the form again, or the JSON error for a malformed body.
    FormBadRequest = BAD_REQUEST, "The form again with its errors (HTML), or a malformed body (JSON)", html_or_error_response;
    /// 401 from a form route: the form again with the error.
    FormUnauthorized = UNAUTHORIZED, "The form again: wrong password (HTML)", html_only_response;
    /// 403 from a form route: the CSRF check (JSON), a stale page or closed registration (HTML).
    FormForbidden = FORBIDDEN,
        "CSRF check failed (JSON), or, for a browser (`Accept: text/html`) posting a stale page, the form again \
         with \"This page had expired, please try again.\" and a fresh token (HTML); registration closed (HTML)",
        html_or_error_response;
    /// 409 from the registration form.
    FormConflict = CONFLICT, "The form again: the username is taken (HTML)", html_only_response;
    /// 429 from a form route.
    FormTooManyRequests = TOO_MANY_REQUESTS, "The form again: rate limited (HTML)", html_only_response;
}

/// 303 from a form route: the usual outcome, success or not.
pub struct FormRedirect;

impl IntoResponses for FormRedirect {
    fn responses() -> ResponseMap {
        let string = || HeaderBuilder::new().schema(Some(String::schema()));
        let response = ResponseBuilder::new()
            .description("Done, or not signed in: see `Location`")
            .header("Location", string().build())
            .header("Set-Cookie", string().description(Some("Changed cookies, if any".to_owned())).build())
            .build();
        ResponseMap::from([(StatusCode::SEE_OTHER.as_str().to_owned(), RefOr::T(response))])
    }
}

/// A grant in the body (or, for cookie delivery, cookies), with the `Set-Cookie` header.
fn grant_response(description: &str, cookies: &str) -> Response {
    let body = Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("GrantBody"))));
    ResponseBuilder::new()
        .description(description)
        .content("application/json", body)
        .header(
            "Set-Cookie",
            HeaderBuilder::new().schema(Some(String::schema())).description(Some(cookies.to_owned())).build(),
        )
        .build()
}

macro_rules! grant_responses {
    ($($(#[$doc:meta])* $name:ident = $status:ident, $description:literal, $cookies:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> ResponseMap {
                let response = grant_response($description, $cookies);
                ResponseMap::from([(StatusCode::$status.as_str().to_owned(), RefOr::T(response))])
            }
        }
    )*};
}

/// 200 from the password step of a login: a grant, or, for an account with a second
/// factor, a challenge for `/api/login/mfa` and no token.
pub struct SignedInOrMfa;

impl IntoResponses for SignedInOrMfa {
    fn responses() -> ResponseMap {
        let one_of = utoipa::openapi::schema::OneOfBuilder::new()
            .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("GrantBody")))
            .item(crate::http::api::mfa::MfaRequired::schema())
            .item(crate::http::api::mfa_enrolment::MfaEnrollmentRequired::schema())
            .build();
        let response = ResponseBuilder::new()
            .description(
                "Signed in; or, for an account with a second factor, `mfa_required` with a challenge and no token; \
                 or, when the account's roles require a factor it lacks, `mfa_enrollment_required`",
            )
            .content("application/json", Content::new(Some(RefOr::T(Schema::OneOf(one_of)))))
            .header(
                "Set-Cookie",
                HeaderBuilder::new()
                    .schema(Some(String::schema()))
                    .description(Some(SIGN_IN_COOKIES.to_owned()))
                    .build(),
            )
            .build();
        ResponseMap::from([(StatusCode::OK.as_str().to_owned(), RefOr::T(response))])
    }
}

/// What `Set-Cookie` carries when a grant is delivered as cookies.
const GRANT_COOKIES: &str = "Session, refresh and CSRF cookies (cookie delivery only)";
/// The same after a password sign-in, which also (re)sets the long-lived device cookie.
const SIGN_IN_COOKIES: &str = "Session, refresh, CSRF and device cookies (cookie delivery only; the device \
     cookie lets the failed-login back-off recognise this browser for the account)";

grant_responses! {
    /// 201 from registration: the new account's first grant.
    Registered = CREATED, "Account created and signed in", SIGN_IN_COOKIES;
    /// 200 from login.
    SignedIn = OK, "Signed in", SIGN_IN_COOKIES;
    /// 200 from a password change.
    PasswordChanged = OK, "Changed; a new grant for this session", GRANT_COOKIES;
    /// 200 from refresh.
    Refreshed = OK, "A new access token and the successor refresh token", "New cookies (cookie refresh only)";
}

/// Named unions of the responses above, so that a route lists its errors in one line:
/// `responses((status = 200, body = X), AccessErrors, BodyErrors)`.
macro_rules! response_sets {
    ($($(#[$doc:meta])* $name:ident = $($part:ident)|+;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> ResponseMap {
                let mut all = ResponseMap::new();
                $(all.extend(<$part as IntoResponses>::responses());)+
                all
            }
        }
    )*};
}

response_sets! {
    /// A route with a request body: malformed (400), too large (413), wrong type (415).
    BodyErrors = BadRequest | PayloadTooLarge | UnsupportedMediaType;
    /// A signed-in route that reads storage: 401 and 503.
    AuthErrors = Unauthorized | ServiceUnavailable;
    /// A signed-in route that may also refuse the caller (role, recent login, CSRF): 401,
    /// 403 and 503.
    AccessErrors = AuthErrors | Forbidden;
    /// A route that issues tokens from a body: [`BodyErrors`], 403 (login CSRF), 429 and 503.
    GrantErrors = BodyErrors | Forbidden | TooManyRequests | ServiceUnavailable;
    /// An HTML form post: the form again or a malformed body (400), CSRF (403), 413, 415
    /// and 503.
    FormErrors = FormBadRequest | FormForbidden | PayloadTooLarge | UnsupportedMediaType | ServiceUnavailable;
    /// An HTML form post that checks a password: [`FormErrors`], 401 and 429.
    FormPasswordErrors = FormErrors | FormUnauthorized | FormTooManyRequests;
}

fn html_only_response(status: StatusCode, description: &str) -> Response {
    ResponseBuilder::new()
        .description(format!("{description} [{}]", status.as_u16()))
        .content("text/html", Content::new(Some(String::schema())))
        .build()
}

/// The description of the whole router, built once.
pub fn document() -> &'static OpenApi {
    static DOC: LazyLock<OpenApi> = LazyLock::new(|| {
        let (_, mut api) = crate::http::routes().split_for_parts();
        add_common_responses(&mut api);
        api
    });
    &DOC
}

/// Headers that every error response of a status carries, so the description marks them
/// `required` (utoipa's header builder has no such flag).
const ALWAYS_SENT: [(&str, &str); 3] = [("401", "www-authenticate"), ("429", "retry-after"), ("503", "retry-after")];

/// The serialized description, built once.
fn document_json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut doc = serde_json::to_value(document()).unwrap_or_default();
        if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
            for op in paths.values_mut().filter_map(|i| i.as_object_mut()).flat_map(|i| i.values_mut()) {
                for (status, name) in ALWAYS_SENT {
                    if let Some(h) = op.pointer_mut(&format!("/responses/{status}/headers/{name}")) {
                        h["required"] = true.into();
                    }
                }
            }
        }
        doc.to_string()
    });
    &JSON
}

/// This OpenAPI 3.1 description of the server.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    let mut response = ([(header::CONTENT_TYPE, "application/json")], document_json()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_serialized_name() {
        let all: Vec<ErrorCode> = [
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::CONFLICT,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ]
        .into_iter()
        .flat_map(codes_for)
        .collect();
        let RefOr::T(Schema::Object(o)) = ErrorCode::schema() else { panic!("ErrorCode is a string enum") };
        assert_eq!(all.len(), o.enum_values.unwrap_or_default().len(), "every code maps to a listed status");
        for code in all {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn document_is_openapi_3_1() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        assert_eq!(json["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(json["paths"]["/openapi.json"]["get"].is_object());
    }
}

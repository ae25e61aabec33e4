//! `GET /v1/openapi.json`: the API's OpenAPI 3.1 document, generated from
//! the typed handlers (`#[utoipa::path]` on each, `ToSchema` on what they
//! take and answer) and built once.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{activations, connectors, deliveries, error, events, integrations, overview, webhooks};

/// Gives a response type whose value is a JSON document built elsewhere (an
/// integration or activation as `present` shows it, a switch report) the
/// schema of a documentation struct that lists its fields.
macro_rules! schema_as {
    ($ty:ty => $doc:ty) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                <$doc as utoipa::PartialSchema>::schema()
            }
        }
        impl utoipa::ToSchema for $ty {
            fn schemas(
                out: &mut Vec<(
                    String,
                    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
                )>,
            ) {
                <$doc as utoipa::ToSchema>::schemas(out)
            }
        }
    };
}
pub(crate) use schema_as;

/// A free-form JSON object, with a description (for types of crates that
/// know no OpenAPI, such as the consent model's `UserState`).
pub(crate) fn free_object(description: &str) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        .description(Some(description))
        .build()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "prefsync",
        description = "Consent-sync engine: Didomi consent events to marketing tools through \
                       sandboxed WebAssembly connectors. Every error answer is an `ErrorBody`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::serve::healthz,
        crate::serve::ready,
        crate::serve::prometheus,
        document,
        events::ingest,
        events::user,
        integrations::list,
        integrations::create,
        integrations::show,
        integrations::replace,
        integrations::remove,
        integrations::check_stored,
        deliveries::deliveries,
        deliveries::dead_letters,
        deliveries::replay_one,
        deliveries::replay_integration,
        deliveries::history,
        overview::overview,
        activations::list,
        activations::create,
        activations::show,
        activations::replace,
        activations::remove,
        activations::run,
        activations::runs,
        connectors::list,
        connectors::upload,
        connectors::show,
        connectors::rollback,
        connectors::redirect_prefix,
        connectors::redirect_rest,
        webhooks::receive,
    ),
    components(schemas(error::ErrorBody, integrations::IntegrationDocument)),
    modifiers(&SecuritySchemes, &ConsolePaths, &UniqueOperationIds),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this document."),
        (name = "events", description = "Didomi consent events in; users' merged state."),
        (name = "integrations", description = "Integrations in Didomi's integration format."),
        (name = "deliveries", description = "The outbox, dead letters, replay and history."),
        (name = "activations", description = "Scheduled reverse-ETL syncs and their runs."),
        (name = "connectors", description = "The connector registry: versions, upgrades, rollbacks."),
        (name = "webhooks", description = "Destinations telling us about consent changes."),
        (name = "console", description = "The admin console's static files (`serve/console.rs`): no token, no data."),
    )
)]
pub struct ApiDoc;

/// The security schemes the operations name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "admin",
            bearer(
                "The admin token: `server.admin_token`, `PREFSYNC_ADMIN_TOKEN`, or generated into \
                 `<data_dir>/admin-token`.",
            ),
        );
        components.add_security_scheme(
            "ingest",
            bearer(
                "The ingest token (`server.ingest_token`, `PREFSYNC_INGEST_TOKEN`); \
                 `POST /v1/events` also takes the admin token.",
            ),
        );
        components.add_security_scheme(
            "webhook_secret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Authorization",
                "The integration's shared secret (`authentication.webhook_secret`), in the header \
                 its `properties.webhook_header` names (default `X-Authorization`).",
            ))),
        );
    }
}

/// The admin console's routes (`serve/console.rs`): static files and
/// redirects, served without a token because they hold no data. Documented
/// here, as the router serves them, so the document keeps listing every route.
struct ConsolePaths;

impl Modify for ConsolePaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{Content, HeaderBuilder, ResponseBuilder};
        let text = || ObjectBuilder::new().schema_type(Type::String).build();
        let redirect = || {
            ResponseBuilder::new()
                .description("See Other: the console starts at `/ui/`.")
                .header(
                    "Location",
                    HeaderBuilder::new()
                        .schema(Some(text()))
                        .description(Some("`/ui/`"))
                        .build(),
                )
                .build()
        };
        let file = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content("text/html", Content::new(Some(text())))
                .build()
        };
        let missing = || {
            ResponseBuilder::new()
                .description("No such console file.")
                .content(
                    "application/json",
                    Content::new(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody"))),
                )
                .build()
        };
        let operation = |id: &str, summary: &str| {
            OperationBuilder::new()
                .tag("console")
                .operation_id(Some(id))
                .summary(Some(summary))
        };
        let paths = &mut openapi.paths;
        paths.add_path_operation(
            "/",
            vec![HttpMethod::Get],
            operation("console_root", "The console, from the server's root.")
                .response("303", redirect()),
        );
        paths.add_path_operation(
            "/ui",
            vec![HttpMethod::Get],
            operation("console_ui", "The console, without the trailing slash.")
                .response("303", redirect()),
        );
        paths.add_path_operation(
            "/ui/",
            vec![HttpMethod::Get],
            operation("console_index", "The console's page.")
                .response("200", file("`index.html`: the console.")),
        );
        paths.add_path_operation(
            "/ui/{name}",
            vec![HttpMethod::Get],
            operation(
                "console_file",
                "One of the console's files (scripts, styles).",
            )
            .parameter(
                ParameterBuilder::new()
                    .name("name")
                    .parameter_in(ParameterIn::Path)
                    .required(utoipa::openapi::Required::True)
                    .description(Some("The file's path under `/ui/` (may hold `/`)."))
                    .schema(Some(text())),
            )
            .response(
                "200",
                file("The file, with its content type (HTML, JavaScript, CSS)."),
            )
            .response("404", missing()),
        );
    }
}

/// An operation served under several methods (the renamed paths) gets
/// one operation id per method: `<id>_<method>`.
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
                ("options", &mut item.options),
                ("head", &mut item.head),
            ];
            let served: Vec<_> = operations
                .into_iter()
                .filter_map(|(method, operation)| Some((method, operation.as_mut()?)))
                .collect();
            let shared = served.len() > 1
                && served
                    .windows(2)
                    .all(|w| w[0].1.operation_id == w[1].1.operation_id);
            if shared {
                for (method, operation) in served {
                    if let Some(id) = &mut operation.operation_id {
                        id.push('_');
                        id.push_str(method);
                    }
                }
            }
        }
    }
}

/// The document, serialized once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serializes")
});

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "health",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = Object),
    )
)]
pub(crate) async fn document() -> Response {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_serializes() {
        let document: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
        assert!(document["paths"]["/v1/events"]["post"].is_object());
    }
}

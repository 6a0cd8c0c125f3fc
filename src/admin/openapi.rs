//! The OpenAPI document of the admin API, generated from the handlers'
//! annotations and served at `/admin/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Assisters Gateway admin API", description = "Manage keys, upstreams, settings, safety, TLS and the status page. Authenticate with `Authorization: Bearer <admin token>` (the token is in `admin-token` in the data directory)."),
    paths(
        super::keys::create, super::keys::list, super::keys::get_key, super::keys::update, super::keys::delete, super::keys::revoke, super::keys::rotate,
        super::tiers::list, super::tiers::get_one, super::tiers::create, super::tiers::update, super::tiers::delete,
        super::upstreams::create, super::upstreams::list, super::upstreams::get_one, super::upstreams::update,
        super::upstreams::delete, super::upstreams::test,
        super::settings::show, super::settings::update, super::health::show,
        super::audit::list, super::audit::verify,
        super::logs::list, super::logs::get_one, super::logs::body,
        super::session::new_link, super::session::logout,
        super::tls::show, super::tls::reload,
        super::status::show, super::status::uptime, super::status::list_subscribers,
        super::status::add_subscriber, super::status::remove_subscriber,
        super::incidents::list, super::incidents::create, super::incidents::get_one,
        super::incidents::update, super::incidents::add_update,
        super::incidents::list_maintenances, super::incidents::schedule, super::incidents::update_maintenance,
        super::usage::usage, super::events::events, super::events::metrics,
        super::crypto::show, super::crypto::rotate,
        super::token::rotate, super::safety::scan,
    ),
    modifiers(&BearerAuth),
    security(("admin_token" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

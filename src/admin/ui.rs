//! The dashboard: the `ui/dist` build, embedded in release builds (read from
//! disk in debug builds), served by the admin listener with a single-page-app
//! fallback to `index.html`.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "ui/dist/"]
#[allow_missing = true]
struct Dist;

const PLACEHOLDER: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Assisters Gateway</title></head>\
     <body><main><h1>Assisters Gateway</h1><p>The dashboard was not built into this binary (run <code>npm run build</code> in <code>ui/</code>). \
     The admin API is served under <code>/admin/</code>; its OpenAPI document is at \
     <a href=\"/admin/openapi.json\">/admin/openapi.json</a>.</p></main></body></html>";

pub async fn index() -> Response {
    file("index.html")
}

pub async fn asset(Path(path): Path<String>, uri: axum::http::Uri) -> Response {
    // An unknown admin route is a 404 in OpenAI's shape, not the app shell:
    // clients (the dashboard included) tell a missing API apart that way.
    if path == "admin" || path.starts_with("admin/") {
        return crate::error::route_not_found(uri).await.into_response();
    }
    file(&path)
}

fn file(path: &str) -> Response {
    let (path, found) = match Dist::get(path) {
        Some(f) => (path, Some(f)),
        // Client-side routes (e.g. /keys) get the app shell.
        None if !path.contains('.') => ("index.html", Dist::get("index.html")),
        None => (path, None),
    };
    let Some(f) = found else {
        if path == "index.html" {
            return Html(PLACEHOLDER).into_response();
        }
        return StatusCode::NOT_FOUND.into_response();
    };
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut resp = f.data.into_owned().into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    // Hashed asset names never change content; the shell must always be fresh.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

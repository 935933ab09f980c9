//! The stylesheet and the script, compiled into the binary and served with a long cache life
//! (their URLs carry the build's version, so a new build is fetched anew).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("../assets/plinth.css");
const JS: &str = include_str!("../assets/plinth.js");

/// The query every page appends to the assets' URLs, so a new build's are fetched anew.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET {base}/assets/{file}`: `plinth.css` or `plinth.js`.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "plinth.css" => (CSS, "text/css; charset=utf-8"),
        "plinth.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}

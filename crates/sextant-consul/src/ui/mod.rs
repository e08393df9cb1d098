//! The web UI at `/ui/`: static HTML, CSS and JavaScript compiled into the
//! binary, so every server serves the same UI with nothing to install and no
//! network access. The pages talk only to this server's HTTP API (the
//! Consul-compatible `/v1/*` endpoints and two summaries from [`summary`]),
//! and stay current with Consul blocking queries.

mod summary;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::HttpState;

/// One file of the UI.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Every file the UI consists of; anything else under `/ui/` is 404.
const ASSETS: &[Asset] = &[
    asset(
        "index.html",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    asset(
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    js("app.js", include_str!("assets/app.js")),
    js("api.js", include_str!("assets/api.js")),
    js("dom.js", include_str!("assets/dom.js")),
    js("services.js", include_str!("assets/services.js")),
    js("service.js", include_str!("assets/service.js")),
    js("nodes.js", include_str!("assets/nodes.js")),
    js("kv.js", include_str!("assets/kv.js")),
];

const fn asset(name: &'static str, content_type: &'static str, body: &'static str) -> Asset {
    Asset {
        name,
        content_type,
        body,
    }
}

const fn js(name: &'static str, body: &'static str) -> Asset {
    asset(name, "text/javascript; charset=utf-8", body)
}

/// The UI's pages and files, and the summaries its pages poll.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { serve("index.html") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
        .route("/v1/sextant/ui/services", get(summary::services))
        .route("/v1/sextant/ui/nodes", get(summary::nodes))
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, format!("no UI file {name:?}")).into_response();
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            // Revalidate every time: after an upgrade the browser must not mix
            // old and new files.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the page loads by name is one the server serves.
    #[test]
    fn every_referenced_file_is_served() {
        let index = ASSETS
            .iter()
            .find(|a| a.name == "index.html")
            .map(|a| a.body);
        let mut referenced: Vec<&str> = Vec::new();
        for asset in ASSETS {
            for part in asset.body.split(['"', '\'']) {
                let name = part.trim_start_matches("./");
                if (name.ends_with(".js") || name.ends_with(".css")) && !name.contains(['/', ' ']) {
                    referenced.push(name);
                }
            }
        }
        assert!(index.is_some());
        assert!(referenced.contains(&"app.js"));
        for name in referenced {
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "{name} is referenced but not served"
            );
        }
    }

    #[test]
    fn unknown_files_are_not_found() {
        assert_eq!(serve("index.html").status(), StatusCode::OK);
        assert_eq!(serve("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve("nope.js").status(), StatusCode::NOT_FOUND);
    }
}

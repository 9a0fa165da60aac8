//! The web console: `GET /` and `GET /console/{file}`.
//!
//! Plain HTML, CSS and JavaScript modules from `console/` at the top of the
//! repository, embedded in the binary with `include_bytes!` (no bundler, no build
//! step beyond `cargo build`, nothing to find on disk at run time). The files are
//! gzipped once, at the first request for any of them, and answered gzipped to clients that accept
//! it. Every answer carries an `ETag` (a digest of the file) and `Cache-Control:
//! no-cache`, so a browser keeps its copy and revalidates it with one small request
//! (`304`), and a new binary's files are never mistaken for the old ones.
//!
//! The console uses only chute's public API (the Loki read API, the tail
//! websocket, `/api/v1/cluster`); its files hold no data and need no token.

use std::io::Write;
use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::error::{counted, ApiError};
use super::AppState;

/// One embedded file: its name under `/console/`, its type, its bytes.
struct Source {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Source {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../console/", $name)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of the console; `index.html` is also `/`.
const SOURCES: &[Source] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("icon.svg", SVG),
    asset!("main.js", JS),
    asset!("api.js", JS),
    asset!("util.js", JS),
    asset!("search.js", JS),
    asset!("rows.js", JS),
    asset!("histogram.js", JS),
    asset!("labels.js", JS),
    asset!("tail.js", JS),
    asset!("cluster.js", JS),
];

/// What the page may load and connect to: only chute itself (`'self'` covers
/// the tail's websocket on the same host and port).
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// A file ready to serve: both encodings and the tag of its content.
struct Asset {
    source: &'static Source,
    gzip: Vec<u8>,
    etag: String,
}

/// The assets, gzipped on first use.
fn assets() -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| SOURCES.iter().map(prepare).collect())
}

fn prepare(source: &'static Source) -> Asset {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let gzip = encoder
        .write_all(source.bytes)
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    let digest = Sha256::digest(source.bytes);
    let etag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    Asset {
        source,
        gzip,
        etag: format!("\"{etag}\""),
    }
}

/// `GET /`: the console's page (its query and range live in the query string,
/// which the page reads itself).
pub async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html").unwrap_or_else(|| HttpResponse::NotFound().finish())
}

/// `GET /console/{file}`: one of the console's files; 404 for any other name.
pub async fn file(
    req: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let found = serve(&req, &name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such file in the console",
        )
    });
    counted(&state.metrics, found)
}

/// The answer for the file `name`, or `None` if the console has none.
fn serve(req: &HttpRequest, name: &str) -> Option<HttpResponse> {
    let asset = assets().iter().find(|a| a.source.name == name)?;
    let not_modified = fresh(req, &asset.etag);
    let mut answer = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    answer
        .insert_header((header::ETAG, asset.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if asset.source.content_type == HTML {
        answer
            .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    }
    if not_modified {
        return Some(answer.finish());
    }
    answer.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.source.content_type),
    ));
    let gzip_ok = !asset.gzip.is_empty() && accepts_gzip(req);
    Some(if gzip_ok {
        answer
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(asset.gzip.as_slice())
    } else {
        answer.body(asset.source.bytes)
    })
}

/// Whether the client's copy (`If-None-Match`) is the current one.
fn fresh(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// Whether `Accept-Encoding` takes gzip (and does not refuse it with `q=0`).
fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn every_file_is_gzipped_and_tagged() {
        for a in assets() {
            assert!(!a.gzip.is_empty(), "{}", a.source.name);
            assert!(a.gzip.len() < a.source.bytes.len(), "{}", a.source.name);
            assert_eq!(a.etag.len(), 26, "{}", a.etag);
        }
    }

    #[test]
    fn gzip_is_sent_only_to_those_that_take_it() {
        let with = |v: &str| {
            accepts_gzip(
                &TestRequest::default()
                    .insert_header((header::ACCEPT_ENCODING, v))
                    .to_http_request(),
            )
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, zstd"));
        assert!(!accepts_gzip(&TestRequest::default().to_http_request()));
    }

    #[test]
    fn a_matching_if_none_match_is_fresh() {
        let tagged = |v: &str| {
            TestRequest::default()
                .insert_header((header::IF_NONE_MATCH, v))
                .to_http_request()
        };
        assert!(fresh(&tagged("\"abc\""), "\"abc\""));
        assert!(fresh(&tagged("\"x\", W/\"abc\""), "\"abc\""));
        assert!(!fresh(&tagged("\"abd\""), "\"abc\""));
        assert!(!fresh(&TestRequest::default().to_http_request(), "\"abc\""));
    }
}

//! The client commands of the `chute` binary that talk to a running node, and
//! `chute token`.

use std::process::ExitCode;
use std::sync::OnceLock;

use chute::config::tokens;

pub mod logs;

/// TLS settings for reaching a node over `https://`.
pub type ClientTls = std::sync::Arc<rustls::ClientConfig>;

/// The token this invocation presents (`--token`, `CHUTE_TOKEN`); set once.
static TOKEN: OnceLock<String> = OnceLock::new();

/// Presents `token` on every request this invocation sends.
pub fn present_token(token: &str) {
    let _ = TOKEN.set(token.trim().to_owned());
}

/// `Bearer <token>`, when there is one to present.
pub fn bearer() -> Option<String> {
    TOKEN.get().map(|t| format!("Bearer {t}"))
}

/// `request`, with the token when there is one.
pub fn authorized(request: awc::ClientRequest) -> awc::ClientRequest {
    match bearer() {
        Some(value) => request.insert_header(("authorization", value)),
        None => request,
    }
}

/// `chute token new`: a fresh token, once, and the lines that configure it.
pub fn new_token(tenants: &[String], scopes: &[String], name: Option<String>) -> ExitCode {
    for scope in scopes {
        if chute::config::Scope::parse(scope).is_none() {
            eprintln!("chute token new: --scope {scope:?}: expected ingest, query or admin");
            return ExitCode::from(2);
        }
    }
    for tenant in tenants {
        if tenant != tokens::ALL_TENANTS && !tokens::valid_name(tenant) {
            eprintln!(
                "chute token new: --tenant {tenant:?}: 1 to 64 of A-Z a-z 0-9 . _ -, or \"*\""
            );
            return ExitCode::from(2);
        }
    }
    let name = name.unwrap_or_else(|| {
        let first = if tenants[0] == tokens::ALL_TENANTS {
            "all"
        } else {
            &tenants[0]
        };
        format!("{first}-{}", scopes.join("-"))
    });
    if !tokens::valid_name(&name) {
        eprintln!("chute token new: --name {name:?}: 1 to 64 of A-Z a-z 0-9 . _ -");
        return ExitCode::from(2);
    }
    let token = match tokens::new_token() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("chute token new: no random source: {e}");
            return ExitCode::FAILURE;
        }
    };
    let list = |items: &[String]| {
        items
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("# The token, shown this once: give it to the client; chute keeps only its hash.");
    println!("{token}");
    println!();
    println!("# Add to every node's configuration file, then restart chute:");
    println!("[[tokens]]");
    println!("name = {name:?}");
    println!("sha256 = \"{}\"", tokens::hex(&tokens::digest(&token)));
    println!("tenants = [{}]", list(tenants));
    println!("scopes = [{}]", list(scopes));
    ExitCode::SUCCESS
}

//! Server-rendered pages: the login page at `/`.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::get;
use gatepass_verify::VerifyError;

use crate::error::Error;
use crate::http::AppState;
use crate::http::cookies::CookieSettings;

/// Page routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/", get(home))
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Html<String> {
    let Some(token) = CookieSettings::get(&headers, state.cookies.session_name()) else {
        return Html(login_page(None));
    };
    match state.service.authenticate(&token) {
        Ok(claims) => Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>gatepass</title></head>\
             <body><main><h1>Logged in as {}</h1></main></body></html>",
            escape(&claims.username)
        )),
        Err(Error::Token(VerifyError::Expired)) => Html(login_page(Some("Session expired. Please log in again."))),
        Err(_) => Html(login_page(Some("Invalid session. Please log in again."))),
    }
}

fn login_page(message: Option<&str>) -> String {
    let message = message.map(|m| format!("<p role=\"alert\">{}</p>", escape(m))).unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in · gatepass</title></head>\
         <body><main><h1>Log in</h1>{message}<form method=\"post\" action=\"/login\">\
         <label for=\"username\">Username</label><input id=\"username\" name=\"username\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Log in</button></form></main></body></html>"
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

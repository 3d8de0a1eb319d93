//! `/admin/audit`: the audit trail with filters, newest first and paged, its export as
//! CSV or JSON lines, and the chain verification result.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::audit_item;
use super::views::{AuditPage, notice};
use super::{ConsoleAdmin, ConsolePage};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::api::admin::{entry_view, parse_time};
use crate::http::pages::{clip, css_href, render};
use crate::service::audit_chain::PAGE_VERDICT_MAX_AGE;
use crate::storage::audit::{AuditEntry, AuditQuery};

/// Audit routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(trail)).routes(routes!(export))
}

/// Entries on one page.
const PAGE: i64 = 50;
/// Most entries one export holds; narrow the filters for more.
pub const EXPORT_MAX: usize = 50_000;

/// The filters, read leniently from the query string.
#[derive(Debug, Default, Deserialize)]
struct Filters {
    event: Option<String>,
    user: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
    format: Option<String>,
}

impl Filters {
    fn read(uri: &Uri) -> Self {
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default()
    }

    /// The storage query; a time that does not parse is a 400 with the API's message.
    fn query(&self, limit: i64, before: Option<i64>) -> Result<AuditQuery> {
        let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(AuditQuery {
            user: text(&self.user),
            event: text(&self.event),
            from: parse_time("from", self.from.as_deref().map(str::trim))?,
            to: parse_time("to", self.to.as_deref().map(str::trim))?,
            before_id: before,
            limit,
        })
    }

    /// `&event=…&user=…` for links that keep the filters.
    fn as_query(&self) -> String {
        let mut out = String::new();
        for (k, v) in [("event", &self.event), ("user", &self.user), ("from", &self.from), ("to", &self.to)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                out.push('&');
                out.push_str(&serde_urlencoded::to_string([(k, v)]).unwrap_or_default());
            }
        }
        out
    }
}

/// When the shown verdict was reached, unless just now.
fn checked(age: std::time::Duration) -> String {
    match age.as_secs() {
        0 => String::new(),
        s => format!(" (checked {s} s ago; the whole chain is checked again at most once a minute)"),
    }
}

/// The audit trail
///
/// Filters by event, user and time range; newest first, 50 a page; on top, the verdict
/// of a check of the whole chain at most a minute old.
#[utoipa::path(get, path = "/admin/audit", tag = "admin console",
    params(("event" = Option<String>, Query, description = "Event name"),
        ("user" = Option<String>, Query, description = "Actor or subject user id"),
        ("from" = Option<String>, Query, description = "From (epoch seconds or RFC 3339)"),
        ("to" = Option<String>, Query, description = "Up to (epoch seconds or RFC 3339)"),
        ("before" = Option<i64>, Query, description = "Entries with an id below this")),
    responses(ConsolePage))]
async fn trail(State(state): State<AppState>, admin: ConsoleAdmin, uri: Uri) -> Response {
    let f = Filters::read(&uri);
    let core = state.service.core();
    let (chain_intact, chain_text) = match core.recent_audit_verdict(PAGE_VERDICT_MAX_AGE).await {
        Ok((Ok(r), age)) => (true, format!("The chain is intact: {} entries check out{}.", r.entries, checked(age))),
        Ok((Err(b), age)) => (false, format!("The chain is broken{}: {}", checked(age), b.describe())),
        Err(e) => return e.into_response(),
    };
    let mut page = AuditPage {
        css_href: css_href(),
        nav: ConsoleAdmin::nav(&admin, &state, "audit"),
        notice: notice(uri.query()),
        error: None,
        event: clip(f.event.as_deref().unwrap_or("")),
        user: clip(f.user.as_deref().unwrap_or("")),
        from: clip(f.from.as_deref().unwrap_or("")),
        to: clip(f.to.as_deref().unwrap_or("")),
        entries: vec![],
        next: None,
        filter_query: f.as_query(),
        chain_intact,
        chain_text,
    };
    let entries = match f.query(PAGE, f.before) {
        Ok(q) => core.audit_entries(&q).await,
        Err(e) => Err(e),
    };
    match entries {
        Ok(entries) => {
            if entries.len() as i64 == PAGE
                && let Some(last) = entries.last()
            {
                page.next = Some(format!("/admin/audit?before={}{}", last.id, page.filter_query));
            }
            page.entries = entries.iter().map(audit_item).collect();
            render(StatusCode::OK, &page)
        }
        Err(e) if e.status().is_client_error() => {
            page.error = Some(e.message());
            render(e.status(), &page)
        }
        Err(e) => e.into_response(),
    }
}

/// One CSV field: quoted, with a leading `'` on values a spreadsheet would run as a
/// formula.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v.to_owned() };
    format!("\"{}\"", v.replace('"', "\"\""))
}

fn csv_line(e: &AuditEntry) -> String {
    let ev = &e.event;
    let fields = [
        e.id.to_string(),
        crate::domain::clock::rfc3339(e.at),
        ev.event.clone(),
        ev.actor.clone().unwrap_or_default(),
        ev.subject.clone().unwrap_or_default(),
        ev.outcome.clone(),
        ev.ip.clone().unwrap_or_default(),
        ev.user_agent.clone().unwrap_or_default(),
        ev.detail.clone().unwrap_or_default(),
        e.prev_hash.clone(),
        e.hash.clone(),
    ];
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// Export the audit trail
///
/// The entries the filters select, newest first (at most 50 000), as CSV or as JSON
/// lines in the admin API's entry shape.
#[utoipa::path(get, path = "/admin/audit/export", tag = "admin console",
    params(("format" = String, Query, description = "`csv` or `jsonl`"),
        ("event" = Option<String>, Query, description = "Event name"),
        ("user" = Option<String>, Query, description = "Actor or subject user id"),
        ("from" = Option<String>, Query, description = "From"),
        ("to" = Option<String>, Query, description = "Up to")),
    responses((status = 200, description = "The file", content((String = "text/csv"), (String = "application/x-ndjson"))),
        (status = 303, description = "Not signed in: to `/`"), (status = 400, description = "A bad filter or format"),
        (status = 403, description = "Not an admin", body = String, content_type = "text/html")))]
async fn export(State(state): State<AppState>, _: ConsoleAdmin, uri: Uri) -> Result<Response> {
    let f = Filters::read(&uri);
    let csv = match f.format.as_deref() {
        Some("csv") => true,
        Some("jsonl") => false,
        _ => return Err(Error::BadRequest("format must be csv or jsonl".into())),
    };
    let core = state.service.core();
    let mut out = String::new();
    if csv {
        out.push_str("id,at,event,actor,subject,outcome,ip,user_agent,detail,prev_hash,hash\r\n");
    }
    let (mut before, mut count) = (None, 0usize);
    while count < EXPORT_MAX {
        let entries = core.audit_entries(&f.query(200, before)?).await?;
        for e in &entries {
            if csv {
                out.push_str(&csv_line(e));
            } else {
                out.push_str(&serde_json::to_string(&entry_view(e)).map_err(|e| Error::Internal(e.to_string()))?);
                out.push('\n');
            }
        }
        count += entries.len();
        match entries.last() {
            Some(last) if entries.len() == 200 => before = Some(last.id),
            _ => break,
        }
    }
    let (content_type, name) = if csv {
        ("text/csv; charset=utf-8", "attachment; filename=\"gatepass-audit.csv\"")
    } else {
        ("application/x-ndjson", "attachment; filename=\"gatepass-audit.jsonl\"")
    };
    let mut response = out.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CONTENT_DISPOSITION, HeaderValue::from_static(name));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
        assert_eq!(csv_field("=cmd()"), "\"'=cmd()\"");
        assert_eq!(csv_field("x,y\nz"), "\"x,y\nz\"");
    }
}

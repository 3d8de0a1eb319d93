//! `/admin`: the overview, with the last 24 hours of sign-ins as a server-rendered SVG
//! chart (no script, so the CSP stays strict).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::{Bar, InstanceItem, KeyItem, OverviewPage, Stamp, notice};
use super::{ConsoleAdmin, ConsolePage};
use crate::auth::keys::KeyStatus;
use crate::http::AppState;
use crate::http::pages::{css_href, render};

/// Overview route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(overview))
}

/// A key as the console lists it.
pub fn key_item(k: &KeyStatus) -> KeyItem {
    KeyItem {
        kid: k.kid.clone(),
        alg: k.alg.clone(),
        state: format!("{:?}", k.state).to_lowercase(),
        created_at: Stamp::at(k.created_at),
        activates_at: Stamp::at(k.activates_at),
        retires_at: k.retires_at.map(Stamp::at),
        revoked_at: k.revoked_at.map(Stamp::at),
    }
}

/// Bars of the chart: per hour a sign-in bar and a failure bar, scaled to the busiest hour.
fn bars(sign_ins: &[i64; 24], failures: &[i64; 24]) -> Vec<Bar> {
    const BASE: i64 = 110;
    const TALLEST: i64 = 100;
    let max = sign_ins.iter().chain(failures.iter()).copied().max().unwrap_or(0).max(1);
    let mut out = Vec::with_capacity(48);
    for hour in 0..24 {
        for (offset, class, counts, what) in [(0, "ok", sign_ins, "sign-ins"), (9, "fail", failures, "failures")] {
            let n = counts[hour];
            let h = n * TALLEST / max;
            let ago = 23 - hour;
            let label = format!("{n} {what}, {ago} h ago");
            out.push(Bar { x: hour * 20 + offset, y: BASE - h, h, class, label });
        }
    }
    out
}

/// Console overview
///
/// Users, active sessions, sign-ins and failures over 24 hours, mails waiting, signing
/// keys, the rate-limit backend, and the instances serving the database with their health.
#[utoipa::path(get, path = "/admin", tag = "admin console", responses(ConsolePage))]
async fn overview(State(state): State<AppState>, admin: ConsoleAdmin, uri: Uri) -> Response {
    let o = match state.service.overview(Some(&state.instance.id)).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let (sign_ins, failures) = (o.sign_ins.iter().sum(), o.failures.iter().sum());
    let chart_summary = format!(
        "{sign_ins} sign-ins and {failures} failed sign-ins over the last 24 hours; the busiest hour had {} sign-ins.",
        o.sign_ins.iter().max().unwrap_or(&0)
    );
    let redis_state = match o.redis_up {
        None => "this instance only",
        Some(true) => "shared store answers",
        Some(false) => "shared store not answering",
    };
    let page = OverviewPage {
        css_href: css_href(),
        nav: admin.nav(&state, "overview"),
        notice: notice(uri.query()),
        error: None,
        users: o.users,
        live_sessions: o.live_sessions,
        outbox: o.outbox,
        sign_ins,
        failures,
        bars: bars(&o.sign_ins, &o.failures),
        chart_summary,
        keys: o.keys.iter().map(key_item).collect(),
        rate_limit_backend: o.rate_limit_backend,
        redis_state,
        storage_backend: o.storage_backend,
        instances: o
            .instances
            .into_iter()
            .map(|i| InstanceItem {
                listen: i.beat.listen,
                id: i.beat.id,
                version: i.beat.version,
                started_at: Stamp::at(i.beat.started_at),
                last_seen: Stamp::at(i.beat.last_seen),
                up: i.up,
                this: i.this,
            })
            .collect(),
    };
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_hour() {
        let mut ok = [0; 24];
        ok[23] = 4;
        ok[0] = 2;
        let mut fail = [0; 24];
        fail[23] = 1;
        let b = bars(&ok, &fail);
        assert_eq!(b.len(), 48);
        assert_eq!((b[46].h, b[46].y), (100, 10));
        assert_eq!(b[0].h, 50);
        assert_eq!(b[47].h, 25);
        assert!(b[46].label.starts_with("4 sign-ins, 0 h ago"));
    }
}

//! The revocation feed for verifiers: `GET /api/revocations/stream`, Server-Sent Events.
//!
//! Authenticated like introspection (a service credential of
//! `GATEPASS_INTROSPECTION_CLIENTS`, HTTP Basic). The event format is documented for other
//! languages in `docs/revocation-feed.md`; this file only shapes the service's
//! [`FeedEvent`]s into SSE text.
//!
//! The service hands revocations over in batches (what one read of the log found, a
//! replay page) and each batch is written as one chunk, its text shared by every
//! subscriber: with a hundred subscribers and thousands of revocations a second, one write
//! per event per subscriber would cost the instance more than everything else it serves.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::{Stream, StreamExt as _};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::introspect::basic_credentials;
use crate::domain::Revocation;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::openapi::{ServiceUnavailable, Unauthorized};
use crate::service::revocation_feed::{FeedBatch, FeedEvent};
use crate::storage::{FeedEntry, FeedItem};

/// The feed's route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

/// Data of a `revoked` event: tokens of session `sid` are refused until `until`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedEvent<'a> {
    /// Session id (the tokens' `sid` claim).
    sid: &'a str,
    /// Epoch seconds after which no token of the session can be valid anyway; the entry
    /// can be forgotten then.
    until: i64,
    /// `revoked` (logout, password change, refresh-token reuse, account disabled or roles
    /// changed) or `user_deleted`.
    reason: &'static str,
}

/// Data of a `key_revoked` event: tokens whose header names `kid` are refused until `until`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRevokedEvent<'a> {
    /// Signing key id (the tokens' `kid` header).
    kid: &'a str,
    /// Epoch seconds after which no token signed by the key can be valid anyway.
    until: i64,
}

/// Data of the `ready` event that ends the replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyEvent {
    /// The position the subscriber is now current to (also the event's `id`).
    head: i64,
    /// `true` when the replay was a full snapshot rather than a resumption after
    /// `Last-Event-ID`.
    snapshot: bool,
}

/// One event of the stream as an SSE parser hands it over (the OpenAPI description of
/// the stream's items; the server writes them as text).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FeedSseEvent {
    /// `revoked`, `key_revoked` or `ready`.
    event: String,
    /// Position in the deployment-wide order, decimal: the `Last-Event-ID` to resume from.
    id: String,
    /// JSON: [`RevokedEvent`], [`KeyRevokedEvent`] or [`ReadyEvent`], by `event`.
    data: String,
}

/// One event, or a batch of them, in SSE form (`event:`, `id:`, `data:` lines and a blank
/// line each). A batch's text is made once, by the first subscriber that sends it, and
/// shared, not copied.
fn event_text(event: FeedEvent) -> Bytes {
    match event {
        FeedEvent::Entries { batch, from } => Bytes::from_owner(BatchText { batch, from }),
        FeedEvent::Ready { head, snapshot } => {
            let mut out = String::new();
            sse(&mut out, "ready", head, serde_json::to_string(&ReadyEvent { head, snapshot }));
            Bytes::from(out)
        }
    }
}

/// A batch's text from entry `from` on, as the bytes of a chunk.
struct BatchText {
    batch: Arc<FeedBatch>,
    from: usize,
}

impl AsRef<[u8]> for BatchText {
    fn as_ref(&self) -> &[u8] {
        self.batch.wire_from(self.from, encode_entry).as_bytes()
    }
}

/// Appends one revocation in SSE form to `out`.
fn encode_entry(entry: &FeedEntry, out: &mut String) {
    match &entry.item {
        FeedItem::Session(r) => {
            let reason = match r.reason {
                Revocation::Revoked => "revoked",
                Revocation::UserDeleted => "user_deleted",
            };
            sse(
                out,
                "revoked",
                entry.seq,
                serde_json::to_string(&RevokedEvent { sid: &r.sid, until: r.until, reason }),
            );
        }
        FeedItem::Key { kid, until } => {
            sse(out, "key_revoked", entry.seq, serde_json::to_string(&KeyRevokedEvent { kid, until: *until }));
        }
    }
}

/// Appends one SSE event.
fn sse(out: &mut String, name: &str, id: i64, data: serde_json::Result<String>) {
    // Serializing these plain structs cannot fail, and JSON from serde_json holds no
    // newline; an empty object keeps the stream valid all the same.
    let data = data.unwrap_or_else(|_| "{}".to_owned());
    let _ = write!(out, "event: {name}\nid: {id}\ndata: {data}\n\n");
}

/// The response body: each event or batch as one chunk, and a `:heartbeat` comment after
/// `heartbeat` without any event.
fn sse_body(events: impl Stream<Item = FeedEvent> + Send + 'static, heartbeat: Duration) -> Body {
    let events = Box::pin(events);
    let start = tokio::time::Instant::now() + heartbeat;
    let mut tick = tokio::time::interval_at(start, heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let chunks = futures_util::stream::unfold((events, tick), |(mut events, mut tick)| async move {
        let chunk = tokio::select! {
            event = events.next() => {
                tick.reset();
                event_text(event?)
            }
            _ = tick.tick() => Bytes::from_static(b":heartbeat\n\n"),
        };
        Some((Ok::<_, std::convert::Infallible>(chunk), (events, tick)))
    });
    Body::from_stream(chunks)
}

/// Follow revocations (Server-Sent Events)
///
/// For services that verify tokens themselves: first every revocation whose tokens may
/// not have expired yet (or, with `Last-Event-ID`, those after it), then a `ready` event,
/// then each new revocation as it is committed on any instance. Events: `revoked`
/// `{sid, until, reason}`, `key_revoked` `{kid, until}`, `ready` `{head, snapshot}`; each
/// carries an `id` to resume from. A comment line (`:heartbeat`) is sent every
/// `GATEPASS_REVOCATION_FEED_HEARTBEAT`. A malformed or unknown `Last-Event-ID` gets a full
/// snapshot. Needs an introspection client's Basic credentials. See
/// docs/revocation-feed.md.
#[utoipa::path(get, path = "/api/revocations/stream", tag = "tokens", security(("introspection_client" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received, to resume after it")),
    responses((status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = FeedSseEvent),
        Unauthorized, ServiceUnavailable))]
async fn stream(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let (id, secret) = basic_credentials(&headers).ok_or(Error::InvalidClient)?;
    if !state.introspection.check(&id, &secret) {
        return Err(Error::InvalidClient);
    }
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let events = state.service.core().subscribe_revocations(last_event_id).await?;
    tracing::info!(client = %id, resume = last_event_id.is_some(), "revocation feed subscriber connected");
    let mut response = Response::new(sse_body(events, state.feed_heartbeat));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // nginx would otherwise buffer the stream and delay every event.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

//! gatepass: a self-hosted JWT authentication server.
//!
//! Layout, with dependencies pointing one way (`http` → `service` → `auth`/`storage` →
//! `domain`):
//! - [`config`]: flags, environment and `.env`, resolved once.
//! - [`mailing`]: where mail goes and how links are built (part of the configuration).
//! - [`domain`]: validated types (`Username`, `Password`, …); no I/O.
//! - [`auth`]: password hashing, token issuing, refresh material, revocation, CSRF.
//! - [`storage`]: the `Storage` trait and its backends.
//! - [`service`]: the use cases, one per file; the only code that touches storage.
//! - [`http`]: router, layers, handlers. Errors map to responses in [`error`].
//! - [`cli`]: the `gatepass` command line, one file per command group.
//! - [`app`]: the composition root that wires all of it into a server.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod limits;
pub mod mailing;
pub(crate) mod server;
pub mod service;
pub mod storage;
pub(crate) mod telemetry;

pub use gatepass_verify as verify;

//! gatepass: a self-hosted JWT authentication server.
//!
//! Layout, with dependencies pointing one way (`http` → `service` → `auth`/`storage` →
//! `domain`):
//! - [`config`]: flags, environment and `.env`, resolved once.
//! - [`domain`]: validated types (`Username`, `Password`, …); no I/O.
//! - [`auth`]: password hashing, token issuing, refresh material, revocation, CSRF.
//! - [`storage`]: the `Storage` trait and its backends.
//! - [`service`]: account and session operations.
//! - [`http`]: router, layers, handlers. Errors map to responses in [`error`].
//! - [`admin`]: account administration and runtime settings (API and CLI).
//! - [`cli`]: the `gatepass` command line.

pub mod admin;
pub mod admin_cli;
pub mod app;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod import;
pub mod limits;
pub mod server;
pub mod service;
pub mod settings;
pub mod storage;
pub mod telemetry;

pub use gatepass_verify as verify;

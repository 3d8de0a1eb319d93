//! The integration tests, as one test binary (one link instead of one per file). Each
//! module is one area; tests are named `it::<module>::<test>`, so
//! `cargo test -p gatepass --test it sessions::` runs one area.

mod common;

mod abuse;
mod accounts;
mod admin;
mod admin_console;
mod audit;
mod backoff;
mod browser_admin;
mod browser_cross_origin;
mod browser_csrf;
mod browser_e2e;
mod browser_mfa;
mod browser_passkeys;
mod browser_review;
mod cluster;
mod config_reference;
mod demo;
mod email;
mod email_browser;
mod email_migration;
mod hostile;
mod import;
mod keys;
mod mfa;
mod mfa_pages;
mod multi_instance;
mod oidc;
mod oidc_cluster;
mod oidc_device;
mod oidc_flows;
mod oidc_keys;
mod oidc_resources;
mod oidc_revocation;
mod oidc_verify;
mod openapi;
mod operator;
mod ops;
mod outage;
mod page_forms;
mod passkeys;
mod precis;
mod races;
mod redis_limits;
mod revocation_feed;
mod sessions;
mod startup_checks;
mod storage_conformance;

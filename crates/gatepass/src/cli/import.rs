//! `gatepass import --from sqlite:PATH`.

use std::io::Write;

use crate::app;
use crate::config::{SecurityArgs, StoreArgs};

/// Runs `gatepass import`.
pub(super) async fn run(from: &str, dry_run: bool, store: &StoreArgs, security: &SecurityArgs) -> anyhow::Result<()> {
    let path = from.strip_prefix("sqlite:").ok_or_else(|| anyhow::anyhow!("--from must be sqlite:PATH"))?;
    let path = path.trim_start_matches("//");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let core = app::open_core_with(store, security, cores).await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {elapsed_precise}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = crate::service::import::import_sqlite(&core, path, dry_run, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .await?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    let verb = if dry_run { "would import" } else { "imported" };
    writeln!(out, "read {} rows; {verb} {}; skipped {}", report.read, report.imported, report.skipped.len())?;
    for (who, why) in &report.skipped {
        writeln!(out, "  skipped {who}: {why}")?;
    }
    Ok(())
}

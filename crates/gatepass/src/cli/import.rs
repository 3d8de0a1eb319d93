//! `gatepass import --from sqlite:PATH`.

use std::io::Write;

use crate::app;
use crate::config::{SecurityArgs, StoreArgs};
use crate::service::import::{SourceShape, import_sqlite, source_path};

/// Runs `gatepass import`.
pub(super) async fn run(
    from: &str,
    shape: &SourceShape,
    dry_run: bool,
    store: &StoreArgs,
    security: &SecurityArgs,
) -> anyhow::Result<()> {
    let path = source_path(from);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let core = app::open_core_with(store, security, cores).await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {elapsed_precise}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Off a terminal the bar hides itself: say how far it got in plain lines instead.
    let plain = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = import_sqlite(&core, &path, shape, dry_run, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if plain && (done == total || done % (total / 10).max(100) == 0) {
            eprintln!("progress: {done}/{total} rows");
        }
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

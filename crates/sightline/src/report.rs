//! `sightline report --out report.html` and `GET /api/v1/report`: gathers the registry, the
//! metrics series and the lineage graph from the store and renders them with
//! `sightline_govern::report`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sightline_govern::backlog::Filter;
use sightline_govern::report::ReportInput;
use sightline_store::Store;

use crate::cli::StoreArgs;
use crate::config::FileConfig;
use crate::metrics::{Attribution, AttributionArgs};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The HTML file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    attribution: AttributionArgs,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: ReportArgs, file: &FileConfig) -> Result<()> {
    let attribution = args.attribution.attribution(file)?;
    let store = args.store.open(file).await?;
    let html = render(store.as_ref(), attribution).await?;
    std::fs::write(&args.out, html)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("report: {}", args.out.display());
    Ok(())
}

/// The report as one HTML document.
pub async fn render(store: &dyn Store, attribution: Option<Attribution>) -> Result<String> {
    let series = crate::metrics::series(store, attribution).await?;
    let tags = crate::registry::tags(store, None).await?;
    let backlog = crate::registry::backlog_items(store, &Filter::default()).await?;
    let vendors = crate::registry::vendors(store, false).await?;
    let lineage = sightline_govern::lineage::build(&crate::lineage::gather(store).await?);
    let now = chrono::Utc::now();
    Ok(sightline_govern::report::render(&ReportInput {
        generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        today: now.date_naive(),
        tags: tags.into_iter().map(|t| (t.id, t.value)).collect(),
        backlog: backlog.into_iter().map(|b| (b.id, b.value)).collect(),
        vendors: vendors.into_iter().map(|v| v.value).collect(),
        scans: series.scans,
        days: series.days,
        lineage,
    }))
}

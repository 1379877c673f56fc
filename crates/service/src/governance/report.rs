//! `sightline report --out report.html` and `GET /api/v1/report`: gathers the registry, the
//! metrics series and the lineage graph from the store and renders them with
//! `sightline_govern::report`.

use sightline_govern::backlog::Filter;
use sightline_govern::report::ReportInput;
use sightline_store::Store;

use super::metrics::Attribution;
use crate::Result;

/// The report as one HTML document.
pub async fn render(store: &dyn Store, attribution: Option<Attribution>) -> Result<String> {
    let series = super::metrics::series(store, attribution).await?;
    let tags = super::registry::tags(store, None).await?;
    let backlog = super::registry::backlog_items(store, &Filter::default()).await?;
    let vendors = super::registry::vendors(store, false).await?;
    let lineage = sightline_govern::lineage::build(&super::lineage::gather(store).await?);
    let flows = crate::approval::all_flows(store, false).await?;
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
        flows,
    }))
}

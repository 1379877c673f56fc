//! The governance report: one self-contained HTML file for a CMO and a CISO to read
//! together. Built from plain data; the binary gathers it (`sightline report`).

use crate::backlog::BacklogItem;
use crate::lineage::Graph;
use crate::metrics::{DayMetrics, ScanMetrics};
use crate::tag::Tag;
use crate::vendor::VendorRisk;

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// When it was made (RFC 3339, UTC), shown in the header.
    pub generated_at: String,
    /// Today, for overdue deadlines and reviews.
    pub today: chrono::NaiveDate,
    /// The inventory with each tag's id.
    pub tags: Vec<(i64, Tag)>,
    /// The findings backlog with each item's id.
    pub backlog: Vec<(i64, BacklogItem)>,
    pub vendors: Vec<VendorRisk>,
    /// Per-scan metrics, oldest first.
    pub scans: Vec<ScanMetrics>,
    /// Per-day metrics, oldest first.
    pub days: Vec<DayMetrics>,
    pub lineage: Graph,
}

/// The report as one HTML document.
pub fn render(input: &ReportInput) -> String {
    todo!("{input:?}")
}

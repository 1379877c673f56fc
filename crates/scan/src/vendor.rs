//! What the scanner says of a third party: its vendor and the category that decides whether
//! loading it needs consent.

use serde::{Deserialize, Serialize};

/// What a vendor does, which decides whether it needs consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Analytics,
    Advertising,
    Social,
    SessionReplay,
    CustomerData,
    MarketingAutomation,
    AbTesting,
    Support,
    TagManager,
    Cmp,
    Essential,
    /// A third party the catalog does not know.
    Unknown,
}

impl Category {
    /// The categories that need consent: the purposes a visitor grants or refuses.
    pub const PURPOSES: [Category; 8] = [
        Category::Analytics,
        Category::Advertising,
        Category::Social,
        Category::SessionReplay,
        Category::CustomerData,
        Category::MarketingAutomation,
        Category::AbTesting,
        Category::Support,
    ];

    /// The name used in catalog files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Category::Analytics => "analytics",
            Category::Advertising => "advertising",
            Category::Social => "social",
            Category::SessionReplay => "session_replay",
            Category::CustomerData => "customer_data",
            Category::MarketingAutomation => "marketing_automation",
            Category::AbTesting => "ab_testing",
            Category::Support => "support",
            Category::TagManager => "tag_manager",
            Category::Cmp => "cmp",
            Category::Essential => "essential",
            Category::Unknown => "unknown",
        }
    }

    /// Whether loading this vendor needs the visitor's consent. Tag managers and consent
    /// platforms load before consent by design (they are what asks for and applies it), and
    /// unknown third parties are not judged without evidence of what they are.
    pub fn needs_consent(self) -> bool {
        !matches!(
            self,
            Category::TagManager | Category::Cmp | Category::Essential | Category::Unknown
        )
    }

    /// Whether the vendor sells or shares data in the sense GPC opts out of.
    pub fn is_sale_or_sharing(self) -> bool {
        matches!(self, Category::Advertising | Category::Social)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vendor {
    pub name: String,
    pub category: Category,
}

//! A rated record (rating.md §5): the staged record, the mapping and price version that rated
//! it, where it sits on its ladder and its amounts. The rating engine makes them; cost
//! partitions are written from them.

use crate::model::billing::Reseller;
use crate::model::decimal::Dec10;
use crate::model::reference::{Organization, TenantMapping};
use crate::model::usage::UsageRecord;
use crate::pricing::price_book::PriceVersion;

/// A rated record: the numbers of rating.md §5 and where it sits on its ladder.
#[derive(Clone, Debug)]
pub struct RatedRow<'a> {
    /// The staged record.
    pub rec: &'a UsageRecord,
    /// Its tenant's registration.
    pub mapping: &'a TenantMapping,
    /// Its organization.
    pub org: &'a Organization,
    /// The reseller that bills the organization, if any (billing.md).
    pub reseller: Option<&'a Reseller>,
    /// The price version that rated it.
    pub version: &'a PriceVersion,
    /// Quantity in price units.
    pub pricing_quantity: Dec10,
    /// Ladder position before.
    pub cum_before: Dec10,
    /// Ladder position after.
    pub cum_after: Dec10,
    /// Minimum of the tier where the row starts.
    pub tier_first_minimum: Dec10,
    /// Minimum of the tier where the row ends.
    pub tier_last_minimum: Dec10,
    /// USD list cost (telescoped).
    pub list_cost_usd: Dec10,
    /// FX rate applied (USD per unit of the billing currency).
    pub fx_usd_per_unit: Dec10,
    /// List cost in the billing currency.
    pub list_cost: Dec10,
    /// Billed = effective = contracted cost.
    pub billed_cost: Dec10,
    /// What the partner invoices the reseller for the row (`x_ResellerCost`, billing.md);
    /// `None` for a direct customer.
    pub reseller_cost: Option<Dec10>,
    /// Unit price of the tier where `cum_after` falls, in the billing currency.
    pub list_unit_price: Dec10,
    /// The same tier's unit price in USD, the pricing currency (`PricingCurrency*UnitPrice`).
    pub list_unit_price_usd: Dec10,
}

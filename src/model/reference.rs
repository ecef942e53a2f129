//! Reference data (inputs.md §3): partnerships, organizations, the tenant registry, subscription
//! transfers and Microsoft's FX rates. Stored as `staged/reference/<table>.parquet`, each
//! column typed (decimals for percentages and rates, dates for transfers).

use crate::error::{Error, Result};
use crate::model::decimal::Dec10;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// Type of a reference column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColKind {
    /// Text.
    Str,
    /// Decimal(38,10).
    Dec,
    /// Date.
    Date,
}

/// A reference table's definition.
#[derive(Debug)]
pub struct RefTableDef {
    /// Table name = file stem.
    pub name: &'static str,
    /// Columns with kind and whether a value is required.
    pub columns: &'static [(&'static str, ColKind, bool)],
    /// Columns forming the row key.
    pub key: &'static [&'static str],
}

/// `partnerships.csv`.
pub const PARTNERSHIPS: RefTableDef = RefTableDef {
    name: "partnerships",
    columns: &[
        ("partnership_id", ColKind::Str, true),
        ("partnership_name", ColKind::Str, true),
    ],
    key: &["partnership_id"],
};
/// `organizations.csv`.
pub const ORGANIZATIONS: RefTableDef = RefTableDef {
    name: "organizations",
    columns: &[
        ("organization_id", ColKind::Str, true),
        ("organization_name", ColKind::Str, true),
        ("billing_currency", ColKind::Str, true),
        ("consumption_adjustment_percent", ColKind::Dec, false),
        ("reservation_markup_percent", ColKind::Dec, false),
        // billing.md: empty = a direct customer; else the reseller that bills it.
        ("reseller_id", ColKind::Str, false),
    ],
    key: &["organization_id"],
};
/// `tenants.csv`.
pub const TENANTS: RefTableDef = RefTableDef {
    name: "tenants",
    columns: &[
        ("customer_tenant_id", ColKind::Str, true),
        ("organization_id", ColKind::Str, true),
        ("partnership_id", ColKind::Str, true),
    ],
    key: &["customer_tenant_id"],
};
/// `transfers.csv`.
pub const TRANSFERS: RefTableDef = RefTableDef {
    name: "transfers",
    columns: &[
        ("subscription_id", ColKind::Str, true),
        ("transferred_in_on", ColKind::Date, true),
    ],
    key: &["subscription_id"],
};
/// `fx_rates.csv` (Microsoft's columns renamed to snake case).
pub const FX_RATES: RefTableDef = RefTableDef {
    name: "fx_rates",
    columns: &[
        ("currency_code", ColKind::Str, true),
        ("usd_per_unit", ColKind::Dec, true),
        ("month", ColKind::Str, true),
    ],
    key: &["currency_code", "month"],
};

/// `resellers.csv` (billing.md): the markup with which the partner invoices a reseller.
pub const RESELLERS: RefTableDef = RefTableDef {
    name: "resellers",
    columns: &[
        ("reseller_id", ColKind::Str, true),
        ("reseller_name", ColKind::Str, true),
        ("billing_currency", ColKind::Str, true),
        ("consumption_markup_percent", ColKind::Dec, false),
        ("reservation_markup_percent", ColKind::Dec, false),
    ],
    key: &["reseller_id"],
};
/// `reservation_settings.csv` (billing.md): `setting,value` of the reservation product.
pub const RESERVATION_SETTINGS: RefTableDef = RefTableDef {
    name: "reservation_settings",
    columns: &[
        ("setting", ColKind::Str, true),
        ("value", ColKind::Str, true),
    ],
    key: &["setting"],
};
/// `reservation_skus.csv` (billing.md): Microsoft's "Supported Billing Cycles" per SKU.
pub const RESERVATION_SKUS: RefTableDef = RefTableDef {
    name: "reservation_skus",
    columns: &[
        ("sku_id", ColKind::Str, true),
        ("supported_billing_cycles", ColKind::Str, true),
    ],
    key: &["sku_id"],
};
/// `price_lists.csv` (billing.md): the SKUs a reseller or organization may order.
pub const PRICE_LISTS: RefTableDef = RefTableDef {
    name: "price_lists",
    columns: &[
        ("holder_id", ColKind::Str, true),
        ("sku_id", ColKind::Str, true),
    ],
    key: &["holder_id", "sku_id"],
};

/// Subscription friendly names (`SubAccountName`): `subscriptions.csv`, or Partner Center's
/// subscription lists as `pull` saves them (`subscriptions/<tenant>.json`).
pub const SUBSCRIPTIONS: RefTableDef = RefTableDef {
    name: "subscriptions",
    columns: &[
        ("subscription_id", ColKind::Str, true),
        ("friendly_name", ColKind::Str, true),
    ],
    key: &["subscription_id"],
};

/// Every reference table.
pub const ALL_TABLES: [&RefTableDef; 10] = [
    &PARTNERSHIPS,
    &ORGANIZATIONS,
    &TENANTS,
    &TRANSFERS,
    &FX_RATES,
    &RESELLERS,
    &RESERVATION_SETTINGS,
    &RESERVATION_SKUS,
    &PRICE_LISTS,
    &SUBSCRIPTIONS,
];

/// A typed cell.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    /// Text (empty = missing).
    Str(String),
    /// Decimal.
    Dec(Option<Dec10>),
    /// Date.
    Date(Option<NaiveDate>),
}

impl Cell {
    /// The empty value of a column of `kind` (a missing optional cell).
    pub fn empty(kind: ColKind) -> Cell {
        match kind {
            ColKind::Str => Cell::Str(String::new()),
            ColKind::Dec => Cell::Dec(None),
            ColKind::Date => Cell::Date(None),
        }
    }

    /// Text form (decimals plain, dates ISO).
    pub fn text(&self) -> String {
        match self {
            Cell::Str(s) => s.clone(),
            Cell::Dec(d) => d.map(|d| d.to_plain()).unwrap_or_default(),
            Cell::Date(d) => d.map(|d| d.to_string()).unwrap_or_default(),
        }
    }
}

/// Rows of one reference table, by column position of its definition.
pub type RefRows = Vec<Vec<Cell>>;

/// An organization (billing account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    /// ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// ISO 4217 billing currency.
    pub billing_currency: String,
    /// Consumption markup (+) or discount (-) in percent.
    pub consumption_adjustment_percent: Dec10,
    /// Reservation markup in percent.
    pub reservation_markup_percent: Dec10,
}

/// A tenant's registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantMapping {
    /// Tenant GUID.
    pub customer_tenant_id: String,
    /// Organization.
    pub organization_id: String,
    /// Partnership.
    pub partnership_id: String,
}

/// All reference data, typed and indexed.
#[derive(Clone, Debug, Default)]
pub struct Reference {
    /// Partnership ID -> name.
    pub partnerships: BTreeMap<String, String>,
    /// Organization ID -> organization.
    pub organizations: BTreeMap<String, Organization>,
    /// Tenant GUID -> mapping.
    pub tenants: BTreeMap<String, TenantMapping>,
    /// Subscription GUID -> date transferred in.
    pub transfers: BTreeMap<String, NaiveDate>,
    /// (currency, `YYYY-MM`) -> USD per unit.
    pub fx: BTreeMap<(String, String), Dec10>,
    /// Billing settings (billing.md): resellers, which organization each bills, and the
    /// reservation product's settings.
    pub billing: crate::model::billing::BillingReference,
    /// Subscription ID -> friendly name (`SubAccountName`), from Partner Center's
    /// subscription lists when ingested.
    pub subscription_names: BTreeMap<String, String>,
}

fn s(c: &Cell) -> String {
    c.text()
}
fn d(c: &Cell) -> Dec10 {
    match c {
        Cell::Dec(Some(v)) => *v,
        _ => Dec10::ZERO,
    }
}

impl Reference {
    /// The registered tenant that `text` names (a GUID in any case, braces allowed), or why
    /// none: `tenants show` and `tenants remove` share this check and lookup.
    pub fn registered_tenant(&self, text: &str) -> Result<&TenantMapping> {
        let g = crate::model::ids::normalize_guid(text)
            .ok_or_else(|| Error::config(format!("'{text}' is not a GUID")))?;
        self.tenants
            .get(&g)
            .ok_or_else(|| Error::config(format!("tenant {g} is not registered")))
    }

    /// Assemble the typed reference data from its tables, each read by `table` (the lake's
    /// staged reference tables; empty rows for a table never ingested).
    pub fn from_tables(
        mut table: impl FnMut(&'static RefTableDef) -> Result<RefRows>,
    ) -> Result<Reference> {
        let mut r = Reference::default();
        for row in table(&PARTNERSHIPS)? {
            r.partnerships.insert(s(&row[0]), s(&row[1]));
        }
        let organizations = table(&ORGANIZATIONS)?;
        r.billing.apply(ORGANIZATIONS.name, &organizations);
        for row in organizations {
            let o = Organization {
                id: s(&row[0]),
                name: s(&row[1]),
                billing_currency: s(&row[2]),
                consumption_adjustment_percent: d(&row[3]),
                reservation_markup_percent: d(&row[4]),
            };
            r.organizations.insert(o.id.clone(), o);
        }
        for row in table(&TENANTS)? {
            let t = TenantMapping {
                customer_tenant_id: s(&row[0]),
                organization_id: s(&row[1]),
                partnership_id: s(&row[2]),
            };
            r.tenants.insert(t.customer_tenant_id.clone(), t);
        }
        for row in table(&TRANSFERS)? {
            if let Cell::Date(Some(day)) = row[1] {
                r.transfers.insert(s(&row[0]), day);
            }
        }
        for row in table(&FX_RATES)? {
            r.fx.insert((s(&row[0]), s(&row[2])), d(&row[1]));
        }
        for def in crate::model::billing::BILLING_TABLES {
            r.billing.apply(def.name, &table(def)?);
        }
        for row in table(&SUBSCRIPTIONS)? {
            r.subscription_names.insert(s(&row[0]), s(&row[1]));
        }
        Ok(r)
    }

    /// Microsoft's USD-per-unit rate of `currency` for `month`; 1 for USD.
    pub fn fx_usd_per_unit(&self, currency: &str, month: &str) -> Option<Dec10> {
        if currency.eq_ignore_ascii_case("USD") {
            return Some(Dec10::ONE);
        }
        self.fx
            .get(&(currency.to_ascii_uppercase(), month.to_string()))
            .copied()
    }

    /// Problems that make the registry unusable (unknown organization or partnership, and
    /// the billing settings' problems of billing.md).
    pub fn registry_problems(&self) -> Vec<String> {
        let mut p = self.billing.problems(&self.organizations);
        for t in self.tenants.values() {
            if !self.organizations.contains_key(&t.organization_id) {
                p.push(format!(
                    "tenant {} is registered to unknown organization '{}'",
                    t.customer_tenant_id, t.organization_id
                ));
            }
            if !self.partnerships.contains_key(&t.partnership_id) {
                p.push(format!(
                    "tenant {} is registered to unknown partnership '{}'",
                    t.customer_tenant_id, t.partnership_id
                ));
            }
        }
        p
    }
}

/// Rebuild the tenants table from mappings (for `tenants add|remove`).
pub fn tenant_rows(tenants: &BTreeMap<String, TenantMapping>) -> RefRows {
    tenants
        .values()
        .map(|t| {
            vec![
                Cell::Str(t.customer_tenant_id.clone()),
                Cell::Str(t.organization_id.clone()),
                Cell::Str(t.partnership_id.clone()),
            ]
        })
        .collect()
}

/// Fails with a configuration error listing every problem.
pub fn ensure_no_problems(problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Config { problems })
    }
}

//! Billing reference data (billing.md): resellers and the organizations they bill, and the
//! reservation product's settings (monthly billing, each SKU's supported billing cycles,
//! price lists). Parsed from the staged reference tables and validated as a whole.

use crate::model::decimal::Dec10;
use crate::model::reference::{
    Cell, Organization, RefRows, RefTableDef, PRICE_LISTS, RESELLERS, RESERVATION_SETTINGS,
    RESERVATION_SKUS,
};
use std::collections::{BTreeMap, BTreeSet};

/// The billing tables besides `organizations.csv` (whose `reseller_id` column is read with it).
pub const BILLING_TABLES: [&RefTableDef; 4] = [
    &RESELLERS,
    &RESERVATION_SETTINGS,
    &RESERVATION_SKUS,
    &PRICE_LISTS,
];

/// The one setting of `reservation_settings.csv`.
pub const MONTHLY_BILLING_ENABLED: &str = "monthly_billing_enabled";

/// A reseller (indirect partner's customer that bills its own organizations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reseller {
    /// ID.
    pub id: String,
    /// Name (the `InvoiceIssuerName` of its organizations' rows).
    pub name: String,
    /// ISO 4217 billing currency, shared with all its organizations.
    pub billing_currency: String,
    /// Markup on consumption with which the partner invoices the reseller, in percent.
    pub consumption_markup_percent: Dec10,
    /// Markup on reservations with which the partner invoices the reseller, in percent.
    pub reservation_markup_percent: Dec10,
}

/// Billing reference data, as staged.
#[derive(Clone, Debug, Default)]
pub struct BillingReference {
    /// Reseller ID -> reseller.
    pub resellers: BTreeMap<String, Reseller>,
    /// Organization ID -> reseller ID (organizations with a `reseller_id`).
    pub org_reseller: BTreeMap<String, String>,
    /// `setting` -> `value` of `reservation_settings.csv`.
    pub settings: BTreeMap<String, String>,
    /// Upper-case SKU ID -> `supported_billing_cycles` text.
    pub sku_cycles: BTreeMap<String, String>,
    /// Holder ID -> upper-case SKU IDs it may order.
    pub price_lists: BTreeMap<String, BTreeSet<String>>,
}

fn text(c: &Cell) -> String {
    c.text()
}

fn percent(c: &Cell) -> Dec10 {
    match c {
        Cell::Dec(Some(v)) => *v,
        _ => Dec10::ZERO,
    }
}

fn sku_key(sku: &str) -> String {
    sku.trim().to_ascii_uppercase()
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`), case-insensitive.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// The billing cycles of a `supported_billing_cycles` cell (`OneTime`, `Monthly`, or both
/// separated by `|`); `Err` names the first token that is neither.
pub fn parse_cycles(text: &str) -> Result<BTreeSet<&'static str>, String> {
    let mut out = BTreeSet::new();
    for token in text.split('|').map(str::trim) {
        match token.to_ascii_lowercase().as_str() {
            "onetime" => out.insert("OneTime"),
            "monthly" => out.insert("Monthly"),
            _ => return Err(token.to_string()),
        };
    }
    Ok(out)
}

impl BillingReference {
    /// Replace what table `name` holds with `rows` (organizations: only the reseller links).
    pub fn apply(&mut self, name: &str, rows: &RefRows) {
        match name {
            "organizations" => {
                self.org_reseller = rows
                    .iter()
                    .filter_map(|r| {
                        let reseller = r.get(5).map(text).unwrap_or_default();
                        (!reseller.is_empty()).then(|| (text(&r[0]), reseller))
                    })
                    .collect();
            }
            "resellers" => {
                self.resellers = rows
                    .iter()
                    .map(|r| {
                        let v = Reseller {
                            id: text(&r[0]),
                            name: text(&r[1]),
                            billing_currency: text(&r[2]),
                            consumption_markup_percent: percent(&r[3]),
                            reservation_markup_percent: percent(&r[4]),
                        };
                        (v.id.clone(), v)
                    })
                    .collect();
            }
            "reservation_settings" => {
                self.settings = rows.iter().map(|r| (text(&r[0]), text(&r[1]))).collect();
            }
            "reservation_skus" => {
                self.sku_cycles = rows
                    .iter()
                    .map(|r| (sku_key(&text(&r[0])), text(&r[1])))
                    .collect();
            }
            "price_lists" => {
                let mut lists: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for r in rows {
                    lists
                        .entry(text(&r[0]))
                        .or_default()
                        .insert(sku_key(&text(&r[1])));
                }
                self.price_lists = lists;
            }
            _ => {}
        }
    }

    /// The reseller that bills organization `org`, if any.
    pub fn reseller_of(&self, org: &str) -> Option<&Reseller> {
        self.resellers.get(self.org_reseller.get(org)?)
    }

    /// Whether `Monthly` reservation orders are billed (`false` unless enabled, as in the
    /// seed product).
    pub fn monthly_billing_enabled(&self) -> bool {
        self.settings
            .get(MONTHLY_BILLING_ENABLED)
            .and_then(|v| parse_bool(v))
            .unwrap_or(false)
    }

    /// The billing cycles `sku` supports; `None` when `reservation_skus.csv` does not list it
    /// (then every cycle is allowed).
    pub fn supported_cycles(&self, sku: &str) -> Option<BTreeSet<&'static str>> {
        self.sku_cycles
            .get(&sku_key(sku))
            .map(|t| parse_cycles(t).unwrap_or_default())
    }

    /// The price lists that limit what `org` may order: its own and its reseller's, each
    /// only when that holder has at least one row. Returns (holder ID, allowed SKUs).
    pub fn price_lists_of(&self, org: &str) -> Vec<(&str, &BTreeSet<String>)> {
        let mut out = Vec::new();
        if let Some(reseller) = self.org_reseller.get(org) {
            if let Some((id, list)) = self.price_lists.get_key_value(reseller) {
                out.push((id.as_str(), list));
            }
        }
        if let Some((id, list)) = self.price_lists.get_key_value(org) {
            out.push((id.as_str(), list));
        }
        out
    }

    /// Whether a price list allows `sku`.
    pub fn lists(list: &BTreeSet<String>, sku: &str) -> bool {
        list.contains(&sku_key(sku))
    }

    /// Every problem of the billing tables against `organizations`, in a stable order.
    pub fn problems(&self, organizations: &BTreeMap<String, Organization>) -> Vec<String> {
        let mut p = Vec::new();
        for (org, reseller) in &self.org_reseller {
            let Some(r) = self.resellers.get(reseller) else {
                p.push(format!(
                    "organization '{org}' names unknown reseller_id '{reseller}' (not in resellers.csv)"
                ));
                continue;
            };
            if let Some(o) = organizations.get(org) {
                if !o.billing_currency.eq_ignore_ascii_case(&r.billing_currency) {
                    p.push(format!(
                        "reseller '{}' bills in {} but its organization '{org}' bills in {}: a reseller and its organizations share one billing currency",
                        r.id, r.billing_currency, o.billing_currency
                    ));
                }
            }
        }
        for (setting, value) in &self.settings {
            if setting != MONTHLY_BILLING_ENABLED {
                p.push(format!(
                    "reservation_settings.csv: unknown setting '{setting}' (expected {MONTHLY_BILLING_ENABLED})"
                ));
            } else if parse_bool(value).is_none() {
                p.push(format!(
                    "reservation_settings.csv: {MONTHLY_BILLING_ENABLED} '{value}' is not true or false"
                ));
            }
        }
        for (sku, cycles) in &self.sku_cycles {
            if let Err(bad) = parse_cycles(cycles) {
                p.push(format!(
                    "reservation_skus.csv: sku_id '{sku}' has supported billing cycle '{bad}' (expected OneTime, Monthly or OneTime|Monthly)"
                ));
            }
        }
        for holder in self.price_lists.keys() {
            if !self.resellers.contains_key(holder) && !organizations.contains_key(holder) {
                p.push(format!(
                    "price_lists.csv: holder_id '{holder}' is neither a reseller nor an organization"
                ));
            }
        }
        p
    }
}

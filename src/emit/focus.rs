//! FOCUS conformance (outputs.md "FOCUS conformance"): units and services mapped with
//! Microsoft's open data (the FinOps toolkit's `PricingUnits.csv` and `Services.csv`, vendored
//! unchanged under `data/finops-toolkit/` with their MIT licence), resource types from the
//! resource URI, and the invoice and price IDs the cost columns carry.

use crate::model::decimal::Dec10;
use crate::model::units::Unit;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The FinOps toolkit's unit table, embedded so that a binary never depends on a data path.
const PRICING_UNITS_CSV: &str = include_str!("../../data/finops-toolkit/PricingUnits.csv");
/// The FinOps toolkit's service table.
const SERVICES_CSV: &str = include_str!("../../data/finops-toolkit/Services.csv");

/// A unit of measure in FOCUS UnitFormat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FocusUnit {
    /// `PricingUnit` / `ConsumedUnit` (the toolkit's `DistinctUnits`), e.g. `Hours`.
    pub unit: String,
    /// `x_PricingBlockSize`: how many `unit` one price unit holds (`100 Hours` -> 100).
    pub block: Dec10,
    /// Whether the string is in `PricingUnits.csv` (false: normalised by rule, and counted in
    /// the rate manifest).
    pub known: bool,
}

/// Remove thousands separators (a comma between two digits), so that `10,000s` and `10000s`
/// are one key. Applied to the table's keys and to the looked-up strings alike.
fn strip_thousands(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, ch) in c.iter().enumerate() {
        let between_digits = *ch == ','
            && i > 0
            && c[i - 1].is_ascii_digit()
            && c.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if !between_digits {
            out.push(*ch);
        }
    }
    out
}

struct UnitTable {
    /// Key as written (thousands separators stripped).
    exact: HashMap<String, (String, Dec10)>,
    /// Key trimmed and lowercased, for strings that differ only in case or outer spaces.
    loose: HashMap<String, (String, Dec10)>,
}

fn unit_table() -> &'static UnitTable {
    static T: OnceLock<UnitTable> = OnceLock::new();
    T.get_or_init(|| {
        let mut exact = HashMap::new();
        let mut loose = HashMap::new();
        let mut rd = csv::Reader::from_reader(PRICING_UNITS_CSV.as_bytes());
        for rec in rd.records().flatten() {
            let (Some(key), Some(block), Some(unit)) = (rec.get(0), rec.get(2), rec.get(3)) else {
                continue;
            };
            let Ok(block) = Dec10::parse(block.trim()) else {
                continue;
            };
            let k = strip_thousands(key);
            let v = (unit.to_string(), block);
            // The first row of a key wins (the file is sorted; duplicates do not occur).
            loose
                .entry(k.trim().to_lowercase())
                .or_insert_with(|| v.clone());
            exact.entry(k).or_insert(v);
        }
        UnitTable { exact, loose }
    })
}

/// Map an Azure unit string (`100 Hours`, `1 GB/Month`, `10K`) to FOCUS UnitFormat through
/// `PricingUnits.csv`. A string the table lacks is normalised by rule: the leading number (with
/// `K`/`M` multipliers, rating.md §3) is the block size, the rest of the text, trimmed, with a
/// leading `/` dropped and the first letter capitalised, is the unit (`Units` when empty).
pub fn focus_unit(raw: &str) -> FocusUnit {
    let t = unit_table();
    let key = strip_thousands(raw);
    if let Some((unit, block)) = t
        .exact
        .get(&key)
        .or_else(|| t.loose.get(&key.trim().to_lowercase()))
    {
        return FocusUnit {
            unit: unit.clone(),
            block: *block,
            known: true,
        };
    }
    let parsed = Unit::parse(raw);
    let text = key.trim();
    let num_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, mut rest) = text.split_at(num_end);
    // The multiplier letters parse counted (`10K`, `1M/Month`) are part of the number.
    if !num.is_empty() && parsed.multiplier != Dec10::parse(num).unwrap_or(Dec10::ONE) {
        rest = &rest[1..];
    }
    let rest = rest.trim().trim_start_matches('/').trim();
    let mut unit: String = match rest.chars().next() {
        None => "Units".to_string(),
        Some(first) => first.to_uppercase().chain(rest.chars().skip(1)).collect(),
    };
    unit = unit.split_whitespace().collect::<Vec<_>>().join(" ");
    // A string that does not parse at all keeps its text whole, block 1.
    let block = if parsed.base == raw.to_lowercase().replace(char::is_whitespace, "") {
        unit = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if unit.is_empty() {
            unit = "Units".to_string();
        }
        Dec10::ONE
    } else {
        parsed.multiplier
    };
    FocusUnit {
        unit,
        block,
        known: false,
    }
}

/// Unit strings missing from `PricingUnits.csv` among rated rows (each row's price unit and
/// consumed unit), for the rate manifest: how many rows carry at least one, and how many rows
/// carry each string. Each distinct string is looked up once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnknownUnits {
    /// Rows with at least one unknown unit.
    pub rows: u64,
    /// Rows per unknown unit string.
    pub by_unit: std::collections::BTreeMap<String, u64>,
}

impl UnknownUnits {
    /// Count `rows` (each the row's unit strings).
    pub fn count<'a>(rows: impl IntoIterator<Item = [Option<&'a str>; 2]>) -> UnknownUnits {
        let mut known: HashMap<&str, bool> = HashMap::new();
        let mut out = UnknownUnits::default();
        for units in rows {
            let mut any = false;
            let mut seen: Option<&str> = None;
            for u in units.into_iter().flatten() {
                if seen == Some(u) {
                    continue;
                }
                seen = Some(u);
                if !*known.entry(u).or_insert_with(|| focus_unit(u).known) {
                    any = true;
                    *out.by_unit.entry(u.to_string()).or_insert(0) += 1;
                }
            }
            out.rows += any as u64;
        }
        out
    }

    /// Add another count.
    pub fn add(&mut self, o: &UnknownUnits) {
        self.rows += o.rows;
        for (u, c) in &o.by_unit {
            *self.by_unit.entry(u.clone()).or_insert(0) += c;
        }
    }
}

/// A FOCUS service: `ServiceName`, `ServiceCategory`, `ServiceSubcategory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service<'a> {
    /// `ServiceName`.
    pub name: &'a str,
    /// `ServiceCategory` (FOCUS allowed value).
    pub category: &'a str,
    /// `ServiceSubcategory` (FOCUS allowed value).
    pub subcategory: &'a str,
}

struct ServiceRow {
    consumed: String,
    name: String,
    category: String,
    subcategory: String,
}

struct ServiceTable {
    rows: Vec<ServiceRow>,
    /// Lowercase resource type -> rows, in file order.
    by_type: HashMap<String, Vec<usize>>,
    /// Lowercase service name -> first row.
    by_name: HashMap<String, usize>,
}

fn service_table() -> &'static ServiceTable {
    static T: OnceLock<ServiceTable> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = ServiceTable {
            rows: Vec::new(),
            by_type: HashMap::new(),
            by_name: HashMap::new(),
        };
        let mut rd = csv::Reader::from_reader(SERVICES_CSV.as_bytes());
        for rec in rd.records().flatten() {
            let f = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
            let row = ServiceRow {
                consumed: f(0).to_lowercase(),
                name: f(2),
                category: f(3),
                subcategory: f(4),
            };
            if row.name.is_empty() || row.category.is_empty() {
                continue;
            }
            let i = t.rows.len();
            t.by_type.entry(f(1).to_lowercase()).or_default().push(i);
            t.by_name.entry(row.name.to_lowercase()).or_insert(i);
            t.rows.push(row);
        }
        t
    })
}

impl ServiceTable {
    fn service(&self, i: usize) -> Service<'static> {
        // The table lives in a static OnceLock, so its strings are 'static.
        let r: &'static ServiceRow = &service_table().rows[i];
        Service {
            name: &r.name,
            category: &r.category,
            subcategory: &r.subcategory,
        }
    }

    /// The row of a resource type: the one whose consumed service is the type's own provider
    /// namespace when several rows share the type (`microsoft.web/sites` is App Service, not
    /// Functions), else the first.
    fn by_resource_type(&self, resource_type: &str) -> Option<usize> {
        let rows = self.by_type.get(resource_type)?;
        let ns = resource_type.split('/').next().unwrap_or("");
        rows.iter()
            .copied()
            .find(|&i| self.rows[i].consumed == ns)
            .or_else(|| rows.first().copied())
    }
}

/// What an unknown service maps to (FOCUS's catch-all category).
pub const OTHER: Service<'static> = Service {
    name: "Other",
    category: "Other",
    subcategory: "Other (Other)",
};

/// The service of a usage row: by the resource's type in `Services.csv`, else by the price
/// sheet's `serviceName` matching a toolkit service name, else the price sheet's name (or
/// `Other`) in category `Other`. Each `ServiceName` so has exactly one category: toolkit names
/// carry the toolkit's (one per name), every other name is `Other`.
pub fn usage_service<'a>(
    resource_type: Option<&str>,
    service_name: Option<&'a str>,
) -> Service<'a> {
    let t = service_table();
    if let Some(i) = resource_type.and_then(|rt| t.by_resource_type(rt)) {
        return t.service(i);
    }
    let name = service_name.map(str::trim).filter(|s| !s.is_empty());
    if let Some(&i) = name.and_then(|n| t.by_name.get(&n.to_lowercase())) {
        return t.service(i);
    }
    Service {
        name: name.unwrap_or(OTHER.name),
        ..OTHER
    }
}

/// Reservation product families (the start of the order's product title) and the resource
/// type whose service they reserve.
const RESERVED: &[(&str, &str)] = &[
    ("reserved vm instance", "microsoft.compute/virtualmachines"),
    ("virtual machines", "microsoft.compute/virtualmachines"),
    ("sql database", "microsoft.sql/servers"),
    ("sql managed instance", "microsoft.sql/managedinstances"),
    ("azure cosmos db", "microsoft.documentdb/databaseaccounts"),
    ("cosmos db", "microsoft.documentdb/databaseaccounts"),
    ("app service", "microsoft.web/serverfarms"),
    ("azure cache for redis", "microsoft.cache/redis"),
    ("azure databricks", "microsoft.databricks/workspaces"),
    ("storage", "microsoft.storage/storageaccounts"),
    ("azure blob storage", "microsoft.storage/storageaccounts"),
];

/// The service a reservation covers, from its product title (`Reserved VM Instance, ...` is
/// Virtual Machines); an unknown product is `Other`.
pub fn reserved_service(product_title: &str) -> Service<'static> {
    let title = product_title.trim().to_lowercase();
    let t = service_table();
    RESERVED
        .iter()
        .find(|(prefix, _)| title.starts_with(prefix))
        .and_then(|(_, rt)| t.by_resource_type(rt))
        .map(|i| t.service(i))
        .unwrap_or(OTHER)
}

/// `ResourceType`: the provider namespace and type path of an Azure resource URI, lowercase
/// (`.../providers/Microsoft.Sql/servers/s1/databases/d1` -> `microsoft.sql/servers/databases`).
/// None when the URI names no provider resource.
pub fn resource_type(uri: &str) -> Option<String> {
    let lower = uri.to_lowercase();
    let at = lower.rfind("/providers/")?;
    let segs: Vec<&str> = lower[at + "/providers/".len()..]
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (ns, rest) = segs.split_first()?;
    let types: Vec<&str> = rest.iter().step_by(2).copied().collect();
    if types.is_empty() {
        return None;
    }
    Some(format!("{ns}/{}", types.join("/")))
}

/// `InvoiceId`: the partner's invoice to the organization for a billing month.
pub fn invoice_id(organization_id: &str, month: &str) -> String {
    format!("{organization_id}-{month}")
}

/// `SkuPriceId` of a usage row: meter, tier (its minimum, price units) and the price
/// version's effective date, e.g. `<meter>:100:2026-01-01`.
pub fn usage_sku_price_id(meter_id: &str, tier_minimum: Dec10, effective: &str) -> String {
    format!("{meter_id}:{}:{effective}", tier_minimum.to_plain())
}

/// `CommitmentDiscountId` (and `ResourceId`) of a reservation: its fully qualified ID.
pub fn reservation_id(order_id: &str, reservation_id: &str) -> String {
    format!(
        "/providers/microsoft.capacity/reservationorders/{}/reservations/{}",
        order_id.to_lowercase(),
        reservation_id.to_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> (String, String, bool) {
        let f = focus_unit(s);
        (f.unit, f.block.to_plain(), f.known)
    }

    #[test]
    fn units_from_the_toolkit_table() {
        assert_eq!(u("100 Hours"), ("Hours".into(), "100".into(), true));
        assert_eq!(u("1 Hour"), ("Hours".into(), "1".into(), true));
        assert_eq!(u("1 GB/Month"), ("GB/Month".into(), "1".into(), true));
        assert_eq!(u("10K"), ("Units".into(), "10000".into(), true));
        assert_eq!(u("Hours"), ("Hours".into(), "1".into(), true));
        // thousands separators are stripped on both sides of the lookup
        assert_eq!(
            u("10000 1,000s"),
            ("Transactions in Thousands".into(), "10000".into(), true)
        );
        assert_eq!(u("10,000s"), ("Transactions".into(), "1".into(), true));
        assert_eq!(u("1 gb/month"), ("GB/Month".into(), "1".into(), true));
    }

    #[test]
    fn unknown_units_are_normalised_by_rule() {
        assert_eq!(u("5 Widgets"), ("Widgets".into(), "5".into(), false));
        assert_eq!(u("20K/Hour"), ("Hour".into(), "20000".into(), false));
        assert_eq!(u("7"), ("Units".into(), "7".into(), false));
        assert_eq!(
            u("1 GB/10 Hours"),
            ("1 GB/10 Hours".into(), "1".into(), false)
        );
    }

    #[test]
    fn services_by_resource_type_then_name() {
        let vm = usage_service(Some("microsoft.compute/virtualmachines"), Some("Bandwidth"));
        assert_eq!(
            (vm.name, vm.category, vm.subcategory),
            ("Virtual Machines", "Compute", "Virtual Machines")
        );
        let site = usage_service(Some("microsoft.web/sites"), None);
        assert_eq!(site.name, "Azure App Service");
        let mon = usage_service(None, Some("Azure Monitor"));
        assert_eq!(
            (mon.name, mon.category, mon.subcategory),
            (
                "Azure Monitor",
                "Management and Governance",
                "Observability"
            )
        );
        let bw = usage_service(None, Some("Bandwidth"));
        assert_eq!(
            (bw.name, bw.category, bw.subcategory),
            ("Bandwidth", "Other", "Other (Other)")
        );
        assert_eq!(usage_service(None, None), OTHER);
        let r = reserved_service("Reserved VM Instance, Standard_D2_v3, EU West, 1 Year");
        assert_eq!((r.name, r.category), ("Virtual Machines", "Compute"));
        assert_eq!(reserved_service("Something new"), OTHER);
    }

    #[test]
    fn every_toolkit_service_name_has_one_category() {
        let t = service_table();
        let mut seen: HashMap<&str, (&str, &str)> = HashMap::new();
        for r in &t.rows {
            let prev = seen.insert(&r.name, (&r.category, &r.subcategory));
            assert!(
                prev.is_none_or(|p| p == (&r.category[..], &r.subcategory[..])),
                "{}",
                r.name
            );
        }
        assert!(t.rows.len() > 300, "{}", t.rows.len());
    }

    #[test]
    fn resource_types_from_uris() {
        let rt = |s: &str| resource_type(s);
        assert_eq!(
            rt("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1").as_deref(),
            Some("microsoft.compute/virtualmachines")
        );
        assert_eq!(
            rt("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Sql/servers/a/databases/b")
                .as_deref(),
            Some("microsoft.sql/servers/databases")
        );
        assert_eq!(rt("/subscriptions/s/resourceGroups/rg"), None);
        assert_eq!(rt(""), None);
    }
}

//! Deterministic generator of benchmark inputs: Partner Center utilization pages in the real
//! route layout (`customers/<tenant>/subscriptions/<sub>/utilizations/azure/page-NNNN.json`),
//! a matching Retail Prices page with tiered meters and a mid-month price change, and the
//! reference files (partnerships, organizations in USD/EUR/JPY, tenants, FX).
//!
//! `cargo run --release --example generate -- --records 1000000 --out bench_data/1M`
//! Options: `--tenants 50 --subscriptions-per-tenant 4 --meters 20 --days 31 --page-size 1000
//! --month 2026-01 --edge-cases --gzip`. The same options always produce the same bytes.
//!
//! `--gzip` writes each page as `page-NNNN.json.gz` (fastest level): about a tenth of the
//! disk, so that a 100 M-record month fits.
//!
//! Month shapes of `make bench` (`BENCH_SHAPE`): the default is 200 subscriptions (50
//! tenants x 4); `--tenants 4 --subscriptions-per-tenant 1` is a few huge subscriptions,
//! `--tenants 1 --subscriptions-per-tenant 1` one subscription, and `--tenants 1000
//! --subscriptions-per-tenant 5` 5,000 small ones. Records are spread evenly over the
//! subscriptions.
//!
//! `--edge-cases` mixes in, deterministically, records that exercise the corners of the
//! rating rules: zero quantities, quantities with 10 decimals (unit conversion then rounds),
//! numbers written as exponents and as JSON strings, and records cspcost quarantines (negative
//! quantity, a meter without a price, a usage unit of another base, an unregistered tenant),
//! which must not climb the ladders. Without it the output is unchanged.
//!
//! The integration tests include this file as a module (`tests/it/bench_check.rs`) and call
//! [`run`] directly, so it depends only on std and on `flate2`, a dependency of cspcost.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Utilization records (the edge-case tenant's few records come on top).
    pub records: u64,
    /// Output directory.
    pub out: PathBuf,
    /// Customer tenants (one organization per five tenants).
    pub tenants: u64,
    /// Subscriptions of each tenant.
    pub subs_per_tenant: u64,
    /// Priced meters.
    pub meters: u64,
    /// Days of the month with usage.
    pub days: u64,
    /// Records per page file.
    pub page_size: u64,
    /// Year of the month.
    pub year: i32,
    /// Month (1-12).
    pub month: u32,
    /// Mix in corner cases and records to quarantine.
    pub edge_cases: bool,
    /// Write the usage pages gzipped (`.json.gz`).
    pub gzip: bool,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            records: 1_000_000,
            out: PathBuf::from("bench_data/1M"),
            tenants: 50,
            subs_per_tenant: 4,
            meters: 20,
            days: 31,
            page_size: 1000,
            year: 2026,
            month: 1,
            edge_cases: false,
            gzip: false,
        }
    }
}

/// What [`run`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// Utilization records written.
    pub records: u64,
    /// Bytes of utilization pages.
    pub bytes: u64,
    /// Subscriptions with usage.
    pub subscriptions: u64,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--edge-cases" || args[i] == "--gzip" {
            if args[i] == "--gzip" {
                o.gzip = true;
            } else {
                o.edge_cases = true;
            }
            i += 1;
            continue;
        }
        let v = args
            .get(i + 1)
            .ok_or_else(|| format!("{} needs a value", args[i]))?;
        let num = || -> Result<u64, String> {
            let t = v.to_ascii_uppercase();
            let (digits, mult) = match t.chars().last() {
                Some('K') => (&t[..t.len() - 1], 1_000),
                Some('M') => (&t[..t.len() - 1], 1_000_000),
                _ => (t.as_str(), 1),
            };
            digits
                .parse::<u64>()
                .map(|n| n * mult)
                .map_err(|_| format!("{}: '{v}' is not a number", args[i]))
        };
        match args[i].as_str() {
            "--records" => o.records = num()?,
            "--out" => o.out = PathBuf::from(v),
            "--tenants" => o.tenants = num()?,
            "--subscriptions-per-tenant" => o.subs_per_tenant = num()?,
            "--meters" => o.meters = num()?,
            "--days" => o.days = num()?.max(1),
            "--page-size" => o.page_size = num()?.max(1),
            "--month" => {
                let (y, m) = v.split_once('-').ok_or("--month is YYYY-MM")?;
                o.year = y.parse().map_err(|_| "--month is YYYY-MM")?;
                o.month = m.parse().map_err(|_| "--month is YYYY-MM")?;
            }
            other => return Err(format!("unknown option {other}")),
        }
        i += 2;
    }
    Ok(o)
}

fn guid(kind: u32, n: u64) -> String {
    format!(
        "{kind:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (n >> 32) & 0xffff,
        (n >> 20) & 0xfff,
        (n >> 8) & 0xfff,
        n
    )
}

/// xorshift64*: deterministic, fast, good enough for quantities.
fn rand(seed: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn meter_unit(m: u64) -> (&'static str, &'static str) {
    // (price unit, usage unit): some meters report Hours against a per-100-Hours price.
    match m % 4 {
        0 => ("1 GB/Month", "1 GB/Month"),
        1 => ("1 GB", "1 GB"),
        2 => ("1 Hour", "Hours"),
        _ => ("100 Hours", "Hours"),
    }
}

fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    fs::write(path, text)
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("generate: {e}");
            std::process::exit(2);
        }
    };
    match run(&o) {
        Ok(g) => println!(
            "generated {} utilization records ({} MB) for {} tenants, {} subscriptions, {} meters, {} days into {}",
            g.records,
            g.bytes / 1_000_000,
            o.tenants,
            g.subscriptions,
            o.meters,
            o.days.min(chrono_last_day(o.year, o.month) as u64),
            o.out.display()
        ),
        Err(e) => {
            eprintln!("generate: {e}");
            std::process::exit(1);
        }
    }
}

/// Write the month's inputs under `o.out`: `usage/`, `prices/` and `reference/`.
pub fn run(o: &Opts) -> std::io::Result<Generated> {
    let days = o.days.min(chrono_last_day(o.year, o.month) as u64);
    let o = &Opts {
        days,
        out: o.out.clone(),
        ..*o
    };
    let orgs = (o.tenants / 5).max(1);
    let currencies = ["USD", "EUR", "JPY"];
    // Reference data.
    let r = o.out.join("reference");
    write_file(
        &r.join("partnerships.csv"),
        "partnership_id,partnership_name\np-1,Bench Partner One\np-2,Bench Partner Two\n",
    )?;
    let mut s = String::from("organization_id,organization_name,billing_currency,consumption_adjustment_percent,reservation_markup_percent\n");
    for g in 0..orgs {
        let _ = writeln!(
            s,
            "org-{g:04},Organization {g},{},{},5",
            currencies[(g % 3) as usize],
            (g % 7) as i64 * 2 - 4
        );
    }
    write_file(&r.join("organizations.csv"), &s)?;
    let mut s = String::from("customer_tenant_id,organization_id,partnership_id\n");
    for t in 0..o.tenants {
        let _ = writeln!(s, "{},org-{:04},p-{}", guid(0xa0, t), t % orgs, 1 + t % 2);
    }
    write_file(&r.join("tenants.csv"), &s)?;
    let ym = format!("{:04}{:02}", o.year, o.month);
    write_file(&r.join("fx_rates.csv"), &format!("\"CurrencyCode\",\"USDPerUnit\",\"Month\"\n\"EUR\",\"1.0854\",\"{ym}\"\n\"JPY\",\"0.0064\",\"{ym}\"\n"))?;
    // Prices: tiered meters, half of them with a new version on the 15th.
    let mut items = Vec::new();
    for m in 0..o.meters {
        let (unit, _) = meter_unit(m);
        let base = 1 + rand(m) % 900;
        let tiers: &[(u64, u64)] = match m % 3 {
            0 => &[(0, 100), (5_000, 95), (50_000, 90)],
            1 => &[(0, 0), (5, 100), (100, 96)],
            _ => &[(0, 100)],
        };
        let mut versions = vec![(format!("{:04}-01-01T00:00:00Z", o.year - 1), 100u64)];
        if m % 2 == 0 {
            versions.push((format!("{:04}-{:02}-15T00:00:00Z", o.year, o.month), 92));
        }
        for (eff, pct) in versions {
            for (min, tier_pct) in tiers {
                let price_micro = base * 1000 * tier_pct * pct / 10_000;
                let price = format!("{}.{:06}", price_micro / 1_000_000, price_micro % 1_000_000);
                items.push(format!(
                    r#"{{"currencyCode":"USD","tierMinimumUnits":{min}.0,"retailPrice":{price},"unitPrice":{price},"armRegionName":"westeurope","location":"EU West","effectiveStartDate":"{eff}","meterId":"{}","meterName":"Meter {m}","productId":"P{m:05}","skuId":"P{m:05}/0001","productName":"Product {m}","skuName":"Sku {m}","serviceName":"{}","serviceId":"S{m:05}","serviceFamily":"{}","unitOfMeasure":"{unit}","type":"Consumption","isPrimaryMeterRegion":true,"armSkuName":""}}"#,
                    guid(0xc0, m),
                    ["Storage", "Bandwidth", "Virtual Machines", "Azure Monitor"][(m % 4) as usize],
                    ["Storage", "Networking", "Compute", "Management and Governance"][(m % 4) as usize],
                ));
            }
        }
    }
    write_file(
        &o.out.join("prices/retail-prices-page-1.json"),
        &format!(
            r#"{{"BillingCurrency":"USD","CustomerEntityId":"Default","CustomerEntityType":"Retail","Items":[{}],"NextPageLink":null,"Count":{}}}"#,
            items.join(","),
            items.len()
        ),
    )?;
    // Usage: record i -> (subscription, day, meter, resource); each subscription's records are
    // written to its own route in pages of `page_size`.
    let subs = o.tenants * o.subs_per_tenant;
    let per_sub = o.records.div_ceil(subs);
    let mut written = 0u64;
    let mut bytes = 0u64;
    for sub in 0..subs {
        let n = per_sub.min(o.records - written);
        if n == 0 {
            break;
        }
        let tenant = sub / o.subs_per_tenant;
        bytes += write_subscription(o, tenant, sub, n)?;
        written += n;
    }
    let mut subscriptions = subs.min(o.records.div_ceil(per_sub.max(1)));
    if o.edge_cases {
        // A tenant missing from tenants.csv: its usage is quarantined UNMAPPED_TENANT.
        let n = (o.days * 3).min(o.records.max(1));
        bytes += write_subscription(o, o.tenants + 1, subs + 1, n)?;
        written += n;
        subscriptions += 1;
    }
    Ok(Generated {
        records: written,
        bytes,
        subscriptions,
    })
}

/// The `quantity` token of a record and, for corner cases, another meter, unit or
/// additionalInfo. `x` is the record's random draw.
struct Shape {
    quantity: String,
    meter: Option<u64>,
    unit: Option<&'static str>,
    additional_info: &'static str,
}

fn shape(o: &Opts, x: u64, meter: u64) -> Shape {
    let q_micro = 1 + x % 50_000_000;
    let mut sh = Shape {
        quantity: format!("{}.{:06}", q_micro / 1_000_000, q_micro % 1_000_000),
        meter: None,
        unit: None,
        additional_info: "{}",
    };
    if !o.edge_cases {
        return sh;
    }
    match rand(x ^ 0x5eed) % 1000 {
        // Rated at 0; the row sits in the tier holding its position.
        0..=9 => sh.quantity = "0".into(),
        // 10 decimals: a per-100-Hours price then needs round10 after conversion.
        10..=29 => {
            sh.quantity = format!("{}.{:010}", q_micro / 1_000_000, (x >> 17) % 10_000_000_000)
        }
        // The same number as an exponent, and as a JSON string.
        30..=34 => sh.quantity = format!("{q_micro}E-6"),
        35..=39 => sh.quantity = format!("\"{}\"", sh.quantity),
        // Quarantined, and left off the ladder: negative, no price, a unit of another base.
        40..=44 => sh.quantity = format!("-{}", sh.quantity),
        45..=49 => sh.meter = Some(o.meters + 7),
        50..=54 => sh.unit = Some(if meter % 4 < 2 { "Hours" } else { "1 GB" }),
        // Keys out of order: the canonical key sorts them.
        55..=74 => {
            sh.additional_info = r#"{"ServiceType":"Standard_D2s_v3","ImageType":"Canonical"}"#
        }
        _ => {}
    }
    sh
}

/// Write the pages of one subscription (`n` records); returns their bytes.
fn write_subscription(o: &Opts, tenant: u64, sub: u64, n: u64) -> std::io::Result<u64> {
    let (t, s) = (guid(0xa0, tenant), guid(0xb0, sub));
    let dir = o.out.join(format!(
        "usage/customers/{t}/subscriptions/{s}/utilizations/azure"
    ));
    fs::create_dir_all(&dir)?;
    let mut bytes = 0;
    let pages = n.div_ceil(o.page_size);
    for p in 0..pages {
        let ext = if o.gzip { "json.gz" } else { "json" };
        let path = dir.join(format!("page-{:04}.{ext}", p + 1));
        // The page is built in memory, then written plain or gzipped in one go.
        let mut w: Vec<u8> = Vec::with_capacity(1 << 20);
        let lo = p * o.page_size;
        let hi = ((p + 1) * o.page_size).min(n);
        write!(w, r#"{{"totalCount":{n},"items":["#)?;
        for k in lo..hi {
            // Day-major order, as the API returns: all meters and resources of day 1 first.
            let slots = n.div_ceil(o.days);
            let day = 1 + k / slots;
            let j = k % slots;
            let meter = (j + sub) % o.meters;
            let resource = j / o.meters;
            let (_, usage_unit) = meter_unit(meter);
            let x = rand(sub.wrapping_mul(1_000_003) ^ k);
            let sh = shape(o, x, meter);
            if k > lo {
                w.write_all(b",")?;
            }
            // Partner Center writes UTC days in the partner's offset (-08:00 here).
            let (y, mo) = (o.year, o.month);
            let prev = if day == 1 { None } else { Some(day - 1) };
            let start = match prev {
                Some(d) => format!("{y:04}-{mo:02}-{d:02}T16:00:00-08:00"),
                None => {
                    let (py, pm) = if mo == 1 { (y - 1, 12) } else { (y, mo - 1) };
                    let last = chrono_last_day(py, pm);
                    format!("{py:04}-{pm:02}-{last:02}T16:00:00-08:00")
                }
            };
            let end = format!("{y:04}-{mo:02}-{day:02}T16:00:00-08:00");
            write!(
                w,
                r#"{{"usageStartTime":"{start}","usageEndTime":"{end}","resource":{{"id":"{}","name":"Meter {meter}","category":"Category","subcategory":"Sub","region":"EU West"}},"quantity":{},"unit":"{}","infoFields":{{}},"instanceData":{{"resourceUri":"/subscriptions/{s}/resourceGroups/rg-{}/providers/Microsoft.Compute/virtualMachines/vm-{resource}","location":"westeurope","partNumber":"","orderNumber":"","additionalInfo":{},"tags":{{"env":"{}"}}}},"attributes":{{"objectType":"AzureUtilizationRecord"}}}}"#,
                guid(0xc0, sh.meter.unwrap_or(meter)),
                sh.quantity,
                sh.unit.unwrap_or(usage_unit),
                resource % 7,
                sh.additional_info,
                ["prod", "dev", "test"][(resource % 3) as usize],
            )?;
        }
        let next = if p + 1 < pages {
            format!(
                r#","next":{{"uri":"customers/{t}/subscriptions/{s}/utilizations/azure?seek_operation=Next","method":"GET","headers":[{{"key":"MS-ContinuationToken","value":"token-{p}"}}]}}"#
            )
        } else {
            String::new()
        };
        write!(
            w,
            r#"],"links":{{"self":{{"uri":"customers/{t}/subscriptions/{s}/utilizations/azure","method":"GET","headers":[]}}{next}}},"attributes":{{"objectType":"Collection"}}}}"#
        )?;
        let file = BufWriter::with_capacity(1 << 20, fs::File::create(&path)?);
        if o.gzip {
            let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            gz.write_all(&w)?;
            gz.finish()?.flush()?;
        } else {
            let mut file = file;
            file.write_all(&w)?;
            file.flush()?;
        }
        bytes += fs::metadata(&path)?.len();
    }
    Ok(bytes)
}

fn chrono_last_day(y: i32, m: u32) -> u32 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][(m - 1) as usize]
}

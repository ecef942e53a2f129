//! Run `bill`: build every statement of a month (organizations, then resellers), check that
//! the totals balance, write `statement.json` / `statement.csv` atomically, optionally issue
//! them, and write the manifest.

use crate::bill::issued::{Issued, IssuedMonth, IssuedStatement};
use crate::bill::rows::{org_month_rows, CostRow};
use crate::bill::statement::{
    adjustment_lines, charge_lines, fx_used, round_minor, sum_lines, HolderKind, Line, LineKind,
    Statement,
};
use crate::emit::costs::{partition_dir, partition_value};
use crate::emit::manifest::{Manifest, PartitionSummary};
use crate::error::{Error, Result};
use crate::model::currency::minor_unit_digits;
use crate::model::decimal::Dec10;
use crate::model::reference::{ensure_no_problems, Reference};
use crate::model::time::{month_of, parse_month};
use crate::store::Lake;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// `bill` as requested (command line or pipeline), before validation.
#[derive(Debug, Clone)]
pub struct BillRequest<'a> {
    /// `YYYY-MM`.
    pub month: &'a str,
    /// Only this organization.
    pub org: Option<&'a str>,
    /// Issue the month's statements.
    pub issue: bool,
}

/// Validated `bill` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillOptions {
    /// `YYYY-MM`.
    pub month: String,
    /// Only this organization.
    pub org: Option<String>,
    /// Issue the month's statements.
    pub issue: bool,
}

impl BillRequest<'_> {
    /// Validated options, or every problem at once; `name` says how a field is called where
    /// the user wrote it (`--month`, `bill.month`).
    pub fn validate(
        &self,
        name: &dyn Fn(&str) -> String,
    ) -> std::result::Result<BillOptions, Vec<String>> {
        let mut problems = Vec::new();
        let month = self.month.trim();
        if parse_month(month).map(month_of).as_deref() != Some(month) {
            problems.push(format!("{} '{month}' is not YYYY-MM", name("month")));
        }
        if self.issue && self.org.is_some() {
            // A month is issued as a whole, so that an issued month is closed for everyone.
            problems.push(format!(
                "{} issues a whole month: drop {}",
                name("issue"),
                name("org")
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(BillOptions {
            month: month.to_string(),
            org: self.org.map(str::to_string),
            issue: self.issue,
        })
    }
}

/// What one statement amounts to, for the terminal and the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementSummary {
    /// Holder kind.
    pub holder_kind: HolderKind,
    /// Holder ID.
    pub holder_id: String,
    /// Invoice ID.
    pub invoice_id: String,
    /// Currency.
    pub currency: String,
    /// Number of lines (rounding line included).
    pub lines: usize,
    /// Total, with the currency's minor-unit digits.
    pub total: String,
    /// Number of adjustment lines.
    pub adjustments: usize,
    /// Their sum.
    pub adjustments_total: String,
    /// `statement.json`, lake-relative.
    pub path: String,
}

/// Outcome of `bill`.
#[derive(Debug, Clone)]
pub struct BillReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// The month.
    pub month: String,
    /// Statements, organizations first.
    pub statements: Vec<StatementSummary>,
    /// The month was already issued: nothing was rewritten.
    pub already_issued: bool,
    /// This run issued the month.
    pub issued_now: bool,
}

/// Directory of a statement.
pub fn statement_dir(month: &str, kind: HolderKind, id: &str) -> String {
    format!(
        "bills/month={month}/{}={}",
        kind.dir_key(),
        partition_value(id)
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A holder's rows by month: the month billed and every issued month before it.
type HolderRows = BTreeMap<String, Vec<CostRow>>;

/// Everything about a holder that does not depend on the month.
struct HolderInfo {
    kind: HolderKind,
    id: String,
    name: String,
    issuer: String,
    currency: String,
    markup: (Dec10, Dec10),
}

fn holder_info(reference: &Reference, kind: HolderKind, id: &str) -> HolderInfo {
    let partnerships_of = |orgs: &BTreeSet<&str>| -> String {
        let names: BTreeSet<String> = reference
            .tenants
            .values()
            .filter(|t| orgs.contains(t.organization_id.as_str()))
            .map(|t| {
                reference
                    .partnerships
                    .get(&t.partnership_id)
                    .cloned()
                    .unwrap_or_else(|| t.partnership_id.clone())
            })
            .collect();
        names.into_iter().collect::<Vec<_>>().join(", ")
    };
    match kind {
        HolderKind::Organization => {
            let org = reference.organizations.get(id);
            let reseller = reference.billing.reseller_of(id);
            HolderInfo {
                kind,
                id: id.to_string(),
                name: org
                    .map(|o| o.name.clone())
                    .unwrap_or_else(|| id.to_string()),
                issuer: match reseller {
                    Some(r) => r.name.clone(),
                    None => partnerships_of(&BTreeSet::from([id])),
                },
                currency: org.map(|o| o.billing_currency.clone()).unwrap_or_default(),
                markup: org
                    .map(|o| {
                        (
                            o.consumption_adjustment_percent,
                            o.reservation_markup_percent,
                        )
                    })
                    .unwrap_or((Dec10::ZERO, Dec10::ZERO)),
            }
        }
        HolderKind::Reseller => {
            let r = reference.billing.resellers.get(id);
            let orgs: BTreeSet<&str> = reference
                .billing
                .org_reseller
                .iter()
                .filter(|(_, res)| *res == id)
                .map(|(o, _)| o.as_str())
                .collect();
            HolderInfo {
                kind,
                id: id.to_string(),
                name: r.map(|r| r.name.clone()).unwrap_or_else(|| id.to_string()),
                issuer: partnerships_of(&orgs),
                currency: r.map(|r| r.billing_currency.clone()).unwrap_or_default(),
                markup: r
                    .map(|r| (r.consumption_markup_percent, r.reservation_markup_percent))
                    .unwrap_or((Dec10::ZERO, Dec10::ZERO)),
            }
        }
    }
}

fn unbalanced(detail: String) -> Error {
    Error::Unbalanced {
        stage: "bill".into(),
        detail,
    }
}

/// Build one holder's statement for `month` from its rows, or `None` when it has neither
/// rows nor adjustments. Checks, before anything is written, that its own lines add up to its
/// rows' exact sum rounded once and that after it every issued month it adjusts is billed
/// exactly as the current `costs/` say.
fn build_statement(
    issued: &Issued,
    info: &HolderInfo,
    month: &str,
    rows: &HolderRows,
) -> Result<Option<Statement>> {
    let of =
        |m: &str| -> Vec<&CostRow> { rows.get(m).map(|r| r.iter().collect()).unwrap_or_default() };
    let mine = of(month);
    let currency = mine
        .first()
        .map(|r| r.currency.clone())
        .unwrap_or_else(|| info.currency.clone());
    let digits = minor_unit_digits(&currency);
    let (mut lines, exact) = charge_lines(&mine, info.kind, digits)?;
    let own = sum_lines(&lines)?;
    if own != round_minor(exact, digits) {
        return Err(unbalanced(format!(
            "{} {} {month}: lines sum to {} but the rows' exact sum {} rounds to {}",
            info.kind.as_str(),
            info.id,
            own.to_plain(),
            exact.to_plain(),
            round_minor(exact, digits).to_plain()
        )));
    }
    let mut adjustments: Vec<Line> = Vec::new();
    for m in issued.issued_before(month) {
        let (current, _) = charge_lines(&of(m), info.kind, digits)?;
        let billed = issued.billed_for(info.kind, &info.id, m)?;
        let adj = adjustment_lines(m, &current, &billed)?;
        // Issued + adjusted must now equal what the month's rows say.
        let before = billed
            .values()
            .try_fold(Dec10::ZERO, |s, (a, _)| s.checked_add(*a))
            .ok_or_else(|| unbalanced(format!("issued amounts of {m} overflow")))?;
        let after = before
            .checked_add(sum_lines(&adj)?)
            .ok_or_else(|| unbalanced(format!("adjustments of {m} overflow")))?;
        let now = sum_lines(&current)?;
        if after != now {
            return Err(unbalanced(format!(
                "{} {} {m}: issued {} + adjustments {} != current costs {}",
                info.kind.as_str(),
                info.id,
                before.to_plain(),
                sum_lines(&adj)?.to_plain(),
                now.to_plain()
            )));
        }
        adjustments.extend(adj);
    }
    if mine.is_empty() && adjustments.is_empty() {
        return Ok(None);
    }
    // Charges, then adjustments, then the rounding line last.
    let rounding = lines.pop();
    lines.extend(adjustments);
    lines.extend(rounding);
    let total = sum_lines(&lines)?;
    Ok(Some(Statement {
        invoice_id: crate::model::invoice_id(&info.id, month),
        month: month.to_string(),
        issuer: info.issuer.clone(),
        holder_kind: info.kind,
        holder_id: info.id.clone(),
        holder_name: info.name.clone(),
        currency,
        digits,
        fx: fx_used(&mine),
        markup_percent: info.markup,
        lines,
        rows_exact: exact,
        rows: mine.len(),
        total,
        issued: false,
    }))
}

/// Organizations to bill for `month` (those with a `costs/` partition in it or in an issued
/// earlier month, or with an issued statement), and resellers with an issued statement.
fn candidates(
    lake: &Lake,
    reference: &Reference,
    issued: &Issued,
    months: &[String],
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let mut orgs = BTreeSet::new();
    let mut resellers = BTreeSet::new();
    for (kind, id) in issued.holders() {
        match kind {
            HolderKind::Organization => orgs.insert(id),
            HolderKind::Reseller => resellers.insert(id),
        };
    }
    for id in reference.organizations.keys() {
        for m in months {
            if !lake.list_dir(&partition_dir(id, m))?.is_empty() {
                orgs.insert(id.clone());
                break;
            }
        }
    }
    Ok((orgs, resellers))
}

fn summary(s: &Statement, path: String) -> StatementSummary {
    let (n, sum) = s.adjustments();
    StatementSummary {
        holder_kind: s.holder_kind,
        holder_id: s.holder_id.clone(),
        invoice_id: s.invoice_id.clone(),
        currency: s.currency.clone(),
        lines: s.lines.len(),
        total: s.money(s.total),
        adjustments: n,
        adjustments_total: s.money(sum),
        path,
    }
}

/// Check that an issued statement's files still hold the bytes that were issued.
fn verify_issued(lake: &Lake, s: &IssuedStatement) -> Result<()> {
    for (path, want) in [(&s.json_path, &s.json_sha256), (&s.csv_path, &s.csv_sha256)] {
        let got = lake.get_bytes(path)?.map(|b| sha256_hex(&b));
        if got.as_deref() != Some(want.as_str()) {
            return Err(Error::config(format!(
                "{path}: issued statement {} does not match the SHA-256 recorded in bills/_issued.json ({want}); issued statements never change",
                s.invoice_id
            )));
        }
    }
    Ok(())
}

/// Run `bill`.
pub fn bill(lake: &Lake, opts: &BillOptions, run_id: &str) -> Result<BillReport> {
    let started = std::time::Instant::now();
    let month = opts.month.as_str();
    let mut m = Manifest::start(
        run_id,
        "bill",
        serde_json::json!({ "month": month, "org": opts.org, "issue": opts.issue }),
    );
    let reference = Reference::load(lake)?;
    ensure_no_problems(reference.registry_problems())?;
    let mut issued = Issued::load(lake)?;
    if let Some(done) = issued.months.get(month) {
        if opts.issue {
            return Err(Error::config(format!(
                "{month} was already issued by run {} at {} (bills/_issued.json); issued statements never change: bill a later month to carry restatements as adjustments",
                done.run_id, done.issued_at
            )));
        }
        let statements = show_issued_month(lake, opts, done, &mut m)?;
        let manifest = m.finish(lake, started)?;
        return Ok(BillReport {
            manifest,
            month: month.to_string(),
            statements,
            already_issued: true,
            issued_now: false,
        });
    }
    let built = build_month(lake, &reference, &issued, opts)?;
    if let Some(o) = &opts.org {
        if built.is_empty() {
            return Err(Error::config(format!(
                "--org '{o}': no cost rows of that organization in {month} (run `rate` / `reserve` first, or check the ID)"
            )));
        }
    }
    let counts = check_balances(&built, month, &mut m)?;
    let written = write_statements(lake, &built, opts, &mut m)?;
    // Issued last: a crash before this leaves the month open, to be issued again.
    if opts.issue {
        issued.months.insert(
            month.to_string(),
            IssuedMonth {
                run_id: run_id.to_string(),
                issued_at: chrono::Utc::now().to_rfc3339(),
                statements: written.issued,
            },
        );
        issued.save(lake)?;
        m.notes.push(format!(
            "{month} issued: {} statement(s) recorded with their SHA-256 in bills/_issued.json",
            built.len()
        ));
    }
    m.counts.insert("statements".into(), built.len() as u64);
    m.counts.insert("rows".into(), counts.rows);
    m.counts.insert("lines".into(), counts.lines);
    m.counts
        .insert("adjustment_lines".into(), counts.adjustment_lines);
    let manifest = m.finish(lake, started)?;
    Ok(BillReport {
        manifest,
        month: month.to_string(),
        statements: written.summaries,
        already_issued: false,
        issued_now: opts.issue,
    })
}

/// An issued month is shown as issued, never rebuilt: verify each of its statements (those
/// of `--org`, if given) against the recorded SHA-256, record it in the manifest unchanged
/// and return its summary.
fn show_issued_month(
    lake: &Lake,
    opts: &BillOptions,
    done: &IssuedMonth,
    m: &mut Manifest,
) -> Result<Vec<StatementSummary>> {
    let mut statements = Vec::new();
    for s in done.statements.iter().filter(|s| {
        opts.org
            .as_ref()
            .is_none_or(|o| *o == s.holder_id && s.holder_kind == HolderKind::Organization)
    }) {
        verify_issued(lake, s)?;
        statements.push(issued_summary(s)?);
        m.partitions.push(PartitionSummary {
            path: s.json_path.clone(),
            rows: s.lines.len() as u64,
            billed_cost: Some(s.total.clone()),
            action: "unchanged".into(),
        });
    }
    m.counts
        .insert("statements".into(), statements.len() as u64);
    m.notes.push(format!(
        "{} is issued: its statements were verified against bills/_issued.json and not rewritten",
        opts.month
    ));
    Ok(statements)
}

/// The summary of a statement as it was issued.
fn issued_summary(s: &IssuedStatement) -> Result<StatementSummary> {
    let adj: Vec<&Line> = s
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Adjustment)
        .collect();
    let digits = minor_unit_digits(&s.currency);
    Ok(StatementSummary {
        holder_kind: s.holder_kind,
        holder_id: s.holder_id.clone(),
        invoice_id: s.invoice_id.clone(),
        currency: s.currency.clone(),
        lines: s.lines.len(),
        total: s.total.clone(),
        adjustments: adj.len(),
        adjustments_total: sum_lines(adj.iter().copied())?.to_fixed(digits),
        path: s.json_path.clone(),
    })
}

/// Every statement of an open month: organizations first, then (without `--org`) their
/// resellers.
fn build_month(
    lake: &Lake,
    reference: &Reference,
    issued: &Issued,
    opts: &BillOptions,
) -> Result<Vec<Statement>> {
    let month = opts.month.as_str();
    let mut months: Vec<String> = issued.issued_before(month).map(str::to_string).collect();
    months.push(month.to_string());
    let (orgs, mut resellers) = candidates(lake, reference, issued, &months)?;
    // One organization's rows in memory at a time; a reseller's organizations' rows are kept
    // for its statement.
    let mut reseller_rows: BTreeMap<String, HolderRows> = BTreeMap::new();
    let mut built = Vec::new();
    let push = |built: &mut Vec<Statement>, info: &HolderInfo, rows: &HolderRows| {
        if let Some(mut s) = build_statement(issued, info, month, rows)? {
            s.issued = opts.issue;
            built.push(s);
        }
        Ok::<(), Error>(())
    };
    for id in orgs
        .iter()
        .filter(|id| opts.org.as_ref().is_none_or(|o| o == *id))
    {
        let mut rows = HolderRows::new();
        for m in &months {
            rows.insert(m.clone(), org_month_rows(lake, id, m)?);
        }
        let info = holder_info(reference, HolderKind::Organization, id);
        push(&mut built, &info, &rows)?;
        if opts.org.is_some() {
            continue;
        }
        if let Some(r) = reference.billing.org_reseller.get(id) {
            resellers.insert(r.clone());
            let all = reseller_rows.entry(r.clone()).or_default();
            for (m, v) in rows {
                all.entry(m).or_default().extend(v);
            }
        }
    }
    // --org bills that organization only, never a partial reseller statement.
    if opts.org.is_none() {
        for id in &resellers {
            let info = holder_info(reference, HolderKind::Reseller, id);
            let rows = reseller_rows.remove(id).unwrap_or_default();
            push(&mut built, &info, &rows)?;
        }
    }
    Ok(built)
}

/// What the statements of a month add up to, for the manifest's counts.
struct BilledCounts {
    /// Organizations' cost rows billed.
    rows: u64,
    /// Statement lines written.
    lines: u64,
    /// Of them, adjustment lines.
    adjustment_lines: u64,
}

/// The manifest's balance: per statement, the total equals its rows' exact sum rounded
/// once, plus the adjustments it carries; each is noted in the manifest.
fn check_balances(built: &[Statement], month: &str, m: &mut Manifest) -> Result<BilledCounts> {
    let mut counts = BilledCounts {
        rows: 0,
        lines: 0,
        adjustment_lines: 0,
    };
    for s in built {
        let (n_adj, adj) = s.adjustments();
        let rounded = round_minor(s.rows_exact, s.digits);
        let expected = rounded
            .checked_add(adj)
            .ok_or_else(|| unbalanced("statement total overflows".into()))?;
        if s.total != expected {
            return Err(unbalanced(format!(
                "{}: total {} != round_minor(sum) {} + adjustments {}",
                s.invoice_id,
                s.money(s.total),
                s.money(rounded),
                s.money(adj)
            )));
        }
        m.notes.push(format!(
            "{} {} {}: total {} = round_minor({} {}) {} + adjustments {} ({} rows, {} lines)",
            s.holder_kind.as_str(),
            s.holder_id,
            month,
            s.money(s.total),
            match s.holder_kind {
                HolderKind::Organization => "BilledCost",
                HolderKind::Reseller => "x_ResellerCost",
            },
            s.rows_exact.to_plain(),
            s.money(rounded),
            s.money(adj),
            s.rows,
            s.lines.len()
        ));
        if s.holder_kind == HolderKind::Organization {
            counts.rows += s.rows as u64;
        }
        counts.lines += s.lines.len() as u64;
        counts.adjustment_lines += n_adj as u64;
    }
    Ok(counts)
}

/// The statements as written: their summaries, and their records for `bills/_issued.json`.
struct WrittenStatements {
    summaries: Vec<StatementSummary>,
    issued: Vec<IssuedStatement>,
}

/// Write every statement's `statement.json` and `statement.csv` atomically, each recorded
/// in the manifest.
fn write_statements(
    lake: &Lake,
    built: &[Statement],
    opts: &BillOptions,
    m: &mut Manifest,
) -> Result<WrittenStatements> {
    let mut written = WrittenStatements {
        summaries: Vec::new(),
        issued: Vec::new(),
    };
    for s in built {
        let dir = statement_dir(&opts.month, s.holder_kind, &s.holder_id);
        let (json_path, csv_path) = (
            format!("{dir}/statement.json"),
            format!("{dir}/statement.csv"),
        );
        let (json, csv) = (s.to_json()?, s.to_csv()?);
        for (path, bytes) in [(&json_path, &json), (&csv_path, &csv)] {
            lake.put_atomic(path, |f| {
                use std::io::Write;
                f.write_all(bytes)
                    .map_err(|e| Error::io(lake.path(path), e))
            })?;
            m.partitions.push(PartitionSummary {
                path: path.clone(),
                rows: s.lines.len() as u64,
                billed_cost: Some(s.money(s.total)),
                action: if opts.issue { "issued" } else { "written" }.into(),
            });
        }
        written.summaries.push(summary(s, json_path.clone()));
        written.issued.push(IssuedStatement {
            holder_kind: s.holder_kind,
            holder_id: s.holder_id.clone(),
            invoice_id: s.invoice_id.clone(),
            currency: s.currency.clone(),
            total: s.money(s.total),
            json_sha256: sha256_hex(&json),
            json_path,
            csv_sha256: sha256_hex(&csv),
            csv_path,
            lines: s.lines.clone(),
        });
    }
    Ok(written)
}

/// The terminal summary: per statement lines, total, currency and adjustments.
pub fn print_summary(r: &BillReport) {
    let state = if r.already_issued {
        " (issued earlier; not rewritten)"
    } else if r.issued_now {
        " (issued now)"
    } else {
        ""
    };
    crate::outln!("bill {} (run {}){state}", r.month, r.manifest.run_id);
    crate::outln!(
        "  {:<12} {:<14} {:<24} {:>5} {:>16} {:<4} {:>20}",
        "holder",
        "id",
        "invoice",
        "lines",
        "total",
        "cur",
        "adjustments"
    );
    for s in &r.statements {
        crate::outln!(
            "  {:<12} {:<14} {:<24} {:>5} {:>16} {:<4} {:>20}",
            s.holder_kind.as_str(),
            s.holder_id,
            s.invoice_id,
            s.lines,
            s.total,
            s.currency,
            format!("{} ({})", s.adjustments, s.adjustments_total)
        );
    }
    if r.statements.is_empty() {
        crate::outln!("  no statements: no cost rows in {}", r.month);
    }
}

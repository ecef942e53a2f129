//! Stage 4, reconcile (reconciliation.md): cut the rated daily rows to any period and compare
//! them, line by line, with Microsoft's invoice reconciliation file.
//!
//! [`invoice`] reads the invoice (CSV or API JSON), [`extract`] reads `costs/` and builds the
//! period's lines, [`cycle`] re-tiers the same usage over an invoice's charge period,
//! [`variance`] joins both sides and gives each line its reason code, [`write`](mod@write) and
//! [`display`] produce what finance reads, and [`run`] ties them into the command.

pub mod cycle;
pub mod display;
pub mod extract;
pub mod invoice;
pub mod period;
pub mod run;
pub mod variance;
pub mod write;

/// Why a reconciliation cannot run: bad invoice input, or a lake not ready for it. Every
/// variant is a problem the user fixes in their input (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The invoice lacks columns the comparison needs.
    #[error("{path}: not an invoice reconciliation file: missing column(s) {}", .missing.join(", "))]
    InvoiceColumns {
        /// The file.
        path: String,
        /// Column names, as Microsoft spells them.
        missing: Vec<String>,
    },
    /// A line that is not readable as CSV/JSON at all.
    #[error("{path}: line {line}: {problem}")]
    InvoiceSyntax {
        /// The file.
        path: String,
        /// 1-based line in the file.
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// A line whose field does not hold what the spec says it holds.
    #[error("{path}: line {line}: field {field}: {problem}")]
    InvoiceField {
        /// The file.
        path: String,
        /// 1-based line in the file.
        line: u64,
        /// The column or JSON property, as Microsoft spells it.
        field: &'static str,
        /// What is wrong, quoting the value.
        problem: String,
    },
    /// An invoice is in one currency; a second one means two invoices were mixed up.
    #[error("{path}: line {line}: currency {other} differs from {first} on the earlier lines (one invoice file is in one currency)")]
    MixedCurrency {
        /// The file.
        path: String,
        /// Line with the second currency.
        line: u64,
        /// Currency of the earlier lines.
        first: String,
        /// The other currency.
        other: String,
    },
    /// A `--subscription-map` line that cannot be used.
    #[error("{path}: line {line}: {problem}")]
    SubscriptionMap {
        /// The file.
        path: String,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// No Microsoft FX rate to convert USD cost into the invoice currency.
    #[error("no FX rate for {currency} in {month}: ingest Microsoft's fx_rates file for that month (it converts the USD pay-as-you-go cost into the invoice currency)")]
    NoFxRate {
        /// Invoice currency.
        currency: String,
        /// `YYYY-MM` of the charge period's start.
        month: String,
    },
    /// `costs/` was rated with prices the lake no longer has: re-tiering would mix versions.
    #[error("costs/ rows of meter {meter} dated {day} were rated with the price version effective {rated}, but the staged prices now give {now}: run `cspcost rate` before reconciling")]
    StalePrices {
        /// Meter.
        meter: String,
        /// Usage date.
        day: String,
        /// `x_PriceEffectiveStart` of the row.
        rated: String,
        /// What the price book says now (a date, `no price` or `a conflict`).
        now: String,
    },
}

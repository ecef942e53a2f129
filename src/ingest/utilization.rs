//! Partner Center utilization records (inputs.md §1): API pages saved under their route
//! (`customers/<tenant>/subscriptions/<sub>/utilizations/azure/*.json`), NDJSON, or CSV.
//! Each record is validated in the spec's reason order and becomes a [`UsageRecord`] or a
//! [`QuarantineRecord`]; nothing is dropped.
//!
//! The parse is typed and borrowing: a record deserialises into structs of `&str`, `Cow<str>`
//! and `&RawValue` that point into the page buffer (no `serde_json::Value` tree), numbers
//! are read from their token text, and a valid record becomes a [`UsageRow`] that still
//! borrows the page; the only copy of a field is the one into its Arrow column.

use crate::error::{Error, Result};
use crate::ingest::json_text::{canonical_raw, decimal_from_raw, scalar_raw};
use crate::ingest::usage_rows::UsageRow;
use crate::model::decimal::Dec10;
use crate::model::ids::{normalize_guid, normalize_guid_cow};
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::time::{date_to_days, is_leap_second, parse_rfc3339_utc, to_micros};
use crate::store::input::{
    bytes_reader, csv_header, csv_row_error, header_name, logical_name, open_reader,
};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// What one input record became.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A valid record, borrowing the file's text.
    Record(Box<UsageRow<'a>>),
    /// A quarantined one.
    Quarantined(Box<QuarantineRecord>),
}

/// Largest raw text kept for a record that could not be split from its file.
const MAX_RAW: usize = 1 << 20;

/// Tenant and subscription from a `.../customers/<t>/subscriptions/<s>/...` path.
pub fn route_ids(path: &Path) -> (Option<String>, Option<String>) {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let after = |name: &str| {
        parts
            .iter()
            .position(|p| p.eq_ignore_ascii_case(name))
            .and_then(|i| parts.get(i + 1))
            .cloned()
    };
    (after("customers"), after("subscriptions"))
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
}

/// A JSON string borrowed from the input when it has no escapes, owned when it had to be
/// unescaped. (`Option<Cow<str>>` under serde's derive always copies: serde only borrows a
/// bare `Cow<str>` field.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Text<'a>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            // The same words as `String`'s, so that a detail text stays what it was.
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
struct RawResource<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    name: Option<Text<'a>>,
    #[serde(borrow)]
    category: Option<Text<'a>>,
    #[serde(borrow)]
    subcategory: Option<Text<'a>>,
    #[serde(borrow)]
    region: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInstance<'a> {
    #[serde(borrow)]
    resource_uri: Option<Text<'a>>,
    #[serde(borrow)]
    location: Option<Text<'a>>,
    #[serde(borrow)]
    part_number: Option<&'a RawValue>,
    #[serde(borrow)]
    order_number: Option<&'a RawValue>,
    #[serde(borrow)]
    additional_info: Option<&'a RawValue>,
    #[serde(borrow)]
    tags: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord<'a> {
    #[serde(borrow)]
    usage_start_time: Option<Text<'a>>,
    #[serde(borrow)]
    usage_end_time: Option<Text<'a>>,
    #[serde(borrow)]
    resource: Option<RawResource<'a>>,
    #[serde(borrow)]
    quantity: Option<&'a RawValue>,
    #[serde(borrow)]
    unit: Option<Text<'a>>,
    #[serde(borrow)]
    info_fields: Option<&'a RawValue>,
    #[serde(borrow)]
    instance_data: Option<RawInstance<'a>>,
    #[serde(borrow)]
    customer_tenant_id: Option<Text<'a>>,
    #[serde(borrow)]
    subscription_id: Option<Text<'a>>,
}

/// Whether a text is one JSON object, and if so whether it has an `items` key: the test
/// that tells a page from an NDJSON record. It walks the text without building it.
fn object_has_items(text: &str) -> Option<bool> {
    struct Probe(bool);
    struct IsItems(bool);
    impl<'de> Deserialize<'de> for IsItems {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<IsItems, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = IsItems;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a key")
                }
                fn visit_str<E>(self, v: &str) -> std::result::Result<IsItems, E> {
                    Ok(IsItems(v == "items"))
                }
            }
            d.deserialize_str(V)
        }
    }
    impl<'de> Deserialize<'de> for Probe {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Probe, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Probe;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Probe, A::Error> {
                    let mut items = false;
                    while let Some(IsItems(k)) = map.next_key()? {
                        items |= k;
                        map.next_value::<IgnoredAny>()?;
                    }
                    Ok(Probe(items))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Probe>(text).ok().map(|p| p.0)
}

/// Reads one file and hands every record to `sink`. Returns the number of records read.
///
/// A `.json` file is an API page or NDJSON. A leading UTF-8 byte order mark is ignored. The
/// first line that is a JSON record (an object without `items`) makes the file NDJSON and
/// it streams line by line, memory bounded by one line. When the first line is not one,
/// the whole file is read: a page if it parses as one, otherwise NDJSON when at least half
/// of its non-blank lines are records (so a bad first line costs one line, not the file),
/// otherwise one `MALFORMED` record for the file. Bytes that are not UTF-8 quarantine the
/// record (line or page item) that holds them, and an empty or blank file is one
/// `MALFORMED` record: every file yields at least one record, so nothing disappears.
pub fn parse_file(
    path: &Path,
    run_id: &str,
    sink: &mut dyn FnMut(Parsed<'_>) -> Result<()>,
) -> Result<u64> {
    parse_content(path, None, false, run_id, sink)
}

/// [`parse_file`] over the file's bytes when they were already read (to hash them, see
/// [`crate::store::input::read_hashed`]), as on disk or, when `decoded`, a `.gz` file's bytes
/// already decompressed; `None` reads the file.
pub fn parse_content(
    path: &Path,
    content: Option<std::sync::Arc<Vec<u8>>>,
    decoded: bool,
    run_id: &str,
    sink: &mut dyn FnMut(Parsed<'_>) -> Result<()>,
) -> Result<u64> {
    let held = content
        .clone()
        .filter(|_| decoded || !crate::store::input::is_gzip(path));
    let open = || match content {
        Some(bytes) if decoded => Ok(crate::store::input::plain_reader(bytes)),
        Some(bytes) => Ok(bytes_reader(path, bytes)),
        None => open_reader(path),
    };
    let source = path.display().to_string();
    let ctx = FileCtx {
        source: &source,
        route: route_ids(path),
        run_id,
    };
    if logical_name(path).ends_with(".csv") {
        return parse_csv(path, open()?, &ctx, sink);
    }
    if let Some(n) = held.and_then(|bytes| page_in_memory(&bytes, &ctx, sink).transpose()) {
        return n;
    }
    let mut reader = BufReader::with_capacity(1 << 20, open()?);
    let head = match first_line(path, &mut reader)? {
        Head::Blank(content) => return empty_file(&ctx, &content, sink),
        Head::Line(head) => head,
    };
    let mut first = head.line;
    let first_kind = match one_line_page(path, &mut reader, &first, &ctx, sink)? {
        OneLinePage::Parsed(n) => return Ok(n),
        OneLinePage::MoreFollows(rest) => {
            first.extend_from_slice(&rest);
            // An object with an `items` array: what the probe would have said.
            Some(true)
        }
        OneLinePage::No => std::str::from_utf8(&first)
            .ok()
            .and_then(|t| object_has_items(t.trim())),
    };
    if first_kind == Some(false) {
        return stream_ndjson(path, &mut reader, first, head.line_no, &ctx, sink);
    }
    let mut bytes = first;
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let whole = WholeFile {
        first_kind,
        first_no: head.line_no,
        text_start: head.skipped + head.leading.len(),
    };
    parse_whole(bytes, &whole, &ctx, sink)
}

/// The reader of a JSON file.
type JsonReader = BufReader<Box<dyn Read + Send>>;

/// One line into `buf` (cleared first), line ending included; 0 at the end of the file.
fn read_line(path: &Path, reader: &mut JsonReader, buf: &mut Vec<u8>) -> Result<usize> {
    buf.clear();
    reader
        .read_until(b'\n', buf)
        .map_err(|e| Error::io(path, e))
}

/// How a JSON file starts.
enum Head {
    /// It is empty or blank: all it holds.
    Blank(Vec<u8>),
    /// Its first non-blank line.
    Line(FirstLine),
}

/// The first non-blank line of a JSON file.
struct FirstLine {
    /// The blank lines before it.
    leading: Vec<u8>,
    /// Its bytes (a leading BOM dropped), line ending included.
    line: Vec<u8>,
    /// Its 1-based line number: blank lines before it count.
    line_no: i64,
    /// Bytes of the BOM dropped.
    skipped: usize,
}

/// Leading blank lines are skipped (kept for the empty-file record); line numbers count them.
fn first_line(path: &Path, reader: &mut JsonReader) -> Result<Head> {
    let mut leading = Vec::new();
    let mut line = Vec::new();
    let mut line_no = 0i64;
    let mut skipped = 0usize;
    loop {
        if read_line(path, reader, &mut line)? == 0 {
            return Ok(Head::Blank(leading));
        }
        line_no += 1;
        if line_no == 1 && line.starts_with(BOM) {
            line.drain(..BOM.len());
            skipped += BOM.len();
        }
        if !is_blank(&line) {
            return Ok(Head::Line(FirstLine {
                leading,
                line,
                line_no,
                skipped,
            }));
        }
        leading.extend_from_slice(&line);
    }
}

/// What the first line of a JSON file is as a page by itself.
enum OneLinePage {
    /// A page, and the whole file: its items were handed on, this many.
    Parsed(u64),
    /// A page, but more follows: the rest of the file, read.
    MoreFollows(Vec<u8>),
    /// Not a page.
    No,
}

/// A page on one line (how the API's pages are saved) is the whole file: it is parsed once,
/// here, instead of being probed and then parsed again. Anything else (more lines, no
/// `items` array) takes the general path with the bytes already read.
fn one_line_page(
    path: &Path,
    reader: &mut JsonReader,
    first: &[u8],
    ctx: &FileCtx,
    sink: &mut dyn FnMut(Parsed<'_>) -> Result<()>,
) -> Result<OneLinePage> {
    let Some(items) = line_page(first) else {
        return Ok(OneLinePage::No);
    };
    let mut rest = Vec::new();
    reader
        .read_to_end(&mut rest)
        .map_err(|e| Error::io(path, e))?;
    if !is_blank(&rest) {
        return Ok(OneLinePage::MoreFollows(rest));
    }
    one_line_items(&items, ctx, sink).map(OneLinePage::Parsed)
}

/// [`first_line`] and [`one_line_page`] for a file already in memory in the usual shape, a
/// page on its first line and nothing but blanks after it: parsed from the bytes held, without
/// copying the page through a reader and a line buffer (which cost ingest a tenth of its
/// time). `None` for any other shape (a BOM, blank lines first, more lines, not a page), which
/// takes the general path: so both paths see every file alike.
fn page_in_memory(
    bytes: &[u8],
    ctx: &FileCtx,
    sink: &mut dyn FnMut(Parsed<'_>) -> Result<()>,
) -> Result<Option<u64>> {
    let end = memchr::memchr(b'\n', bytes).map_or(bytes.len(), |i| i + 1);
    let (first, rest) = bytes.split_at(end);
    if bytes.starts_with(BOM) || is_blank(first) || !is_blank(rest) {
        return Ok(None);
    }
    let Some(items) = line_page(first) else {
        return Ok(None);
    };
    one_line_items(&items, ctx, sink).map(Some)
}

/// The items of `line` when it is a page by itself (UTF-8, an object with an `items` array).
fn line_page(line: &[u8]) -> Option<Vec<&RawValue>> {
    let text = std::str::from_utf8(line).ok()?;
    match serde_json::from_str::<Page>(text) {
        Ok(Page { items }) => items,
        Err(_) => None,
    }
}

/// The items of a page that is its file's first line, numbered from 1.
fn one_line_items(
    items: &[&RawValue],
    ctx: &FileCtx,
    sink: &mut dyn FnMut(Parsed<'_>) -> Result<()>,
) -> Result<u64> {
    for (i, item) in items.iter().enumerate() {
        sink(ctx.record(item.get(), i as i64 + 1))?;
    }
    Ok(items.len() as u64)
}

/// NDJSON: stream line by line from `first` (line `first_no`), memory bounded by one line.
fn stream_ndjson(
    path: &Path,
    reader: &mut JsonReader,
    first: Vec<u8>,
    first_no: i64,
    ctx: &FileCtx,
    sink: &mut dyn FnMut(Parsed<'_>) -> Result<()>,
) -> Result<u64> {
    let mut n = 0u64;
    let mut line_no = first_no;
    let mut line = first;
    loop {
        if !is_blank(&line) {
            n += 1;
            sink(ctx.ndjson_line(&line, line_no))?;
        }
        if read_line(path, reader, &mut line)? == 0 {
            break;
        }
        line_no += 1;
    }
    Ok(n)
}

/// What is known of a JSON file read whole.
struct WholeFile {
    /// What its first line is: `Some(true)` an object with `items`, `None` not an object.
    first_kind: Option<bool>,
    /// Line number of its first non-blank line.
    first_no: i64,
    /// Bytes of the file before the text read (BOM and leading blank lines).
    text_start: usize,
}

/// A JSON file read whole, from its first non-blank line: a page, NDJSON whose first line
/// is bad, or one `MALFORMED` record.
fn parse_whole(
    bytes: Vec<u8>,
    whole: &WholeFile,
    ctx: &FileCtx,
    sink: &mut dyn FnMut(Parsed<'_>) -> Result<()>,
) -> Result<u64> {
    // Valid UTF-8 (the usual case) becomes the text without a copy; only a file with bad
    // bytes keeps them beside its lossy text.
    let (lossy, original) = match String::from_utf8(bytes) {
        Ok(text) => (
            Lossy {
                text,
                bad: Vec::new(),
            },
            None,
        ),
        Err(e) => {
            let b = e.into_bytes();
            (Lossy::of(&b), Some(b))
        }
    };
    let bytes: &[u8] = original.as_deref().unwrap_or(lossy.text.as_bytes());
    let page = serde_json::from_str::<Page>(&lossy.text);
    if whole.first_kind.is_none()
        && !matches!(page, Ok(Page { items: Some(_) }))
        && mostly_records(bytes)
    {
        let mut n = 0u64;
        for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            if !is_blank(line) {
                n += 1;
                sink(ctx.ndjson_line(line, whole.first_no + i as i64))?;
            }
        }
        return Ok(n);
    }
    let detail = match page {
        Ok(Page { items: Some(items) }) => {
            return page_items(&items, &lossy, whole.text_start, ctx, sink)
        }
        Ok(Page { items: None }) => format!(
            "{} is a JSON object without an `items` array: not a utilization page",
            ctx.source
        ),
        Err(e) => format!(
            "{} is neither a utilization page nor NDJSON: {e}",
            ctx.source
        ),
    };
    sink(ctx.quarantine(ReasonCode::Malformed, detail, 0, &lossy.text))?;
    Ok(1)
}

/// A page's items: an item holding bytes that are not UTF-8 is quarantined alone.
fn page_items(
    items: &[&RawValue],
    lossy: &Lossy,
    text_start: usize,
    ctx: &FileCtx,
    sink: &mut dyn FnMut(Parsed<'_>) -> Result<()>,
) -> Result<u64> {
    for (i, item) in items.iter().enumerate() {
        let row = i as i64 + 1;
        let text = item.get();
        let at = text.as_ptr() as usize - lossy.text.as_ptr() as usize;
        match lossy.first_bad_in(at, at + text.len()) {
            Some(bad) => sink(ctx.quarantine(
                ReasonCode::Malformed,
                format!(
                    "item {row} of {} holds bytes that are not UTF-8 ({} at byte {} of the file); the record is kept as lossy text",
                    ctx.source,
                    hex_bytes(&bad.bytes),
                    text_start + bad.file_offset
                ),
                row,
                text,
            ))?,
            None => sink(ctx.record(text, row))?,
        }
    }
    Ok(items.len() as u64)
}

/// Why a timestamp was refused, as a sentence naming the field, value, record and file.
fn bad_time(field: &str, text: &str, row: i64, source: &str) -> String {
    if is_leap_second(text) {
        format!("{field} '{text}' of record {row} of {source} is a leap second (:60); cspcost refuses it rather than move the record to the next day")
    } else {
        format!("{field} '{text}' is not an RFC 3339 time with an offset")
    }
}

/// The UTF-8 byte order mark some Windows tools write at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// An empty or blank file is one `MALFORMED` record: "0 read" would hide a failed download.
fn empty_file(
    ctx: &FileCtx,
    content: &[u8],
    sink: &mut dyn FnMut(Parsed<'_>) -> Result<()>,
) -> Result<u64> {
    let what = if content.is_empty() {
        "is empty (0 bytes)".to_string()
    } else {
        format!("holds only whitespace ({} bytes)", content.len())
    };
    sink(ctx.quarantine(
        ReasonCode::Malformed,
        format!("{} {what}: no utilization page or record", ctx.source),
        0,
        &String::from_utf8_lossy(content),
    ))?;
    Ok(1)
}

/// Whether at least half of the non-blank lines (and at least one) are JSON records, the
/// test that keeps an NDJSON file whose first line is bad an NDJSON file.
fn mostly_records(bytes: &[u8]) -> bool {
    let (mut lines, mut records) = (0usize, 0usize);
    for line in bytes.split(|b| *b == b'\n').filter(|l| !is_blank(l)) {
        lines += 1;
        let is_record = std::str::from_utf8(line)
            .ok()
            .and_then(|t| object_has_items(t.trim()))
            == Some(false);
        records += usize::from(is_record);
    }
    records > 0 && records * 2 >= lines
}

/// `0xff 0xfe` for a detail sentence.
fn hex_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("0x{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A run of bytes that are not UTF-8, where it sits in the lossy text and in the file.
struct BadBytes {
    text_offset: usize,
    file_offset: usize,
    bytes: Vec<u8>,
}

/// A file's text with every invalid UTF-8 sequence replaced by U+FFFD, remembering where
/// each replacement is, so that only the record holding one is quarantined.
struct Lossy {
    text: String,
    bad: Vec<BadBytes>,
}

impl Lossy {
    fn of(bytes: &[u8]) -> Lossy {
        let mut text = String::with_capacity(bytes.len());
        let mut bad: Vec<BadBytes> = Vec::new();
        let mut file_offset = 0;
        for chunk in bytes.utf8_chunks() {
            text.push_str(chunk.valid());
            file_offset += chunk.valid().len();
            if !chunk.invalid().is_empty() {
                // Adjacent invalid sequences (`0xff 0xfe`) are reported as one run.
                match bad.last_mut() {
                    Some(last)
                        if chunk.valid().is_empty()
                            && last.file_offset + last.bytes.len() == file_offset =>
                    {
                        last.bytes.extend_from_slice(chunk.invalid());
                    }
                    _ => bad.push(BadBytes {
                        text_offset: text.len(),
                        file_offset,
                        bytes: chunk.invalid().to_vec(),
                    }),
                }
                text.push(char::REPLACEMENT_CHARACTER);
                file_offset += chunk.invalid().len();
            }
        }
        Lossy { text, bad }
    }

    /// The first invalid sequence inside text bytes `[start, end)`.
    fn first_bad_in(&self, start: usize, end: usize) -> Option<&BadBytes> {
        let i = self.bad.partition_point(|b| b.text_offset < start);
        self.bad.get(i).filter(|b| b.text_offset < end)
    }
}

struct FileCtx<'a> {
    source: &'a str,
    route: (Option<String>, Option<String>),
    run_id: &'a str,
}

#[derive(Clone, Copy)]
struct Partial<'p> {
    tenant: Option<&'p str>,
    subscription: Option<&'p str>,
    meter: Option<&'p str>,
    date: Option<chrono::NaiveDate>,
}

/// A GUID normalised, borrowed from the input when it already is lowercase.
fn guid_of<'v>(v: &Cow<'v, str>) -> Option<Cow<'v, str>> {
    match v {
        Cow::Borrowed(b) => normalize_guid_cow(b),
        Cow::Owned(o) => normalize_guid(o).map(Cow::Owned),
    }
}

/// The natural key's hash: xxh3-128 of the fields joined by U+001F, streamed into the
/// hasher instead of formatted into a string first (the digest is the same).
fn key_hash(parts: [&str; 4], start: i64, end: i64, additional_info: &str) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\x1f");
    }
    let mut num = [0u8; 24];
    for t in [start, end] {
        let mut w = &mut num[..];
        let _ = std::io::Write::write_fmt(&mut w, format_args!("{t}"));
        let left = w.len();
        h.update(&num[..24 - left]);
        h.update(b"\x1f");
    }
    h.update(additional_info.as_bytes());
    h.digest128()
}

/// A valid record so far, or the quarantine record of its first failure.
type Checked<'a, T> = std::result::Result<T, Parsed<'a>>;

/// Required fields in the spec's order, each with what it may be replaced by.
const REQUIRED_FIELDS: [&str; 6] = [
    "usageStartTime",
    "usageEndTime",
    "resource.id",
    "quantity",
    "customerTenantId (or a customers/<tenant>/ route in the path)",
    "subscriptionId (or a subscriptions/<subscription>/ route in the path)",
];

/// The first required field that is not `present`.
#[inline]
fn first_missing(present: [bool; 6]) -> Option<&'static str> {
    REQUIRED_FIELDS
        .iter()
        .zip(present)
        .find(|(_, p)| !p)
        .map(|(field, _)| *field)
}

/// A record's usage period.
struct UsageTimes {
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
}

/// The fields a record is checked on, as written (IDs from the path's route if absent).
struct KeyFields<'a> {
    tenant: Option<Cow<'a, str>>,
    subscription: Option<Cow<'a, str>>,
    meter: Option<Cow<'a, str>>,
    start: Option<Cow<'a, str>>,
    end: Option<Cow<'a, str>>,
    quantity: Option<&'a RawValue>,
}

/// A record's fields once checked.
struct CheckedKeys<'a> {
    keys: RecordKeys<'a>,
    times: UsageTimes,
    quantity: Dec10,
}

/// A record's three IDs, normalised GUIDs.
struct RecordKeys<'a> {
    customer_tenant_id: Cow<'a, str>,
    subscription_id: Cow<'a, str>,
    meter_id: Cow<'a, str>,
}

/// The `instanceData` fields of a row, canonical where the spec compares them as text.
struct InstanceFields<'a> {
    resource_uri: Cow<'a, str>,
    location: Option<Cow<'a, str>>,
    part_number: Option<Cow<'a, str>>,
    order_number: Option<Cow<'a, str>>,
    additional_info: Cow<'a, str>,
    tags: Cow<'a, str>,
}

impl<'a> InstanceFields<'a> {
    /// Missing fields are empty (`tags` an empty object; tags that are not an object too).
    #[inline]
    fn of(inst: Option<RawInstance<'a>>) -> InstanceFields<'a> {
        let Some(i) = inst else {
            return InstanceFields {
                resource_uri: Cow::default(),
                location: None,
                part_number: None,
                order_number: None,
                additional_info: Cow::default(),
                tags: Cow::Borrowed("{}"),
            };
        };
        InstanceFields {
            resource_uri: i.resource_uri.map(|u| u.0).unwrap_or_default(),
            location: i.location.map(|l| l.0),
            part_number: i.part_number.and_then(scalar_raw),
            order_number: i.order_number.and_then(scalar_raw),
            additional_info: i
                .additional_info
                .map(|v| canonical_raw(v.get()))
                .unwrap_or_default(),
            tags: i
                .tags
                .filter(|v| v.get().starts_with('{'))
                .map(|v| canonical_raw(v.get()))
                .unwrap_or(Cow::Borrowed("{}")),
        }
    }
}

/// The meter's descriptive texts from `resource`.
struct MeterText<'a> {
    name: Option<Cow<'a, str>>,
    category: Option<Cow<'a, str>>,
    subcategory: Option<Cow<'a, str>>,
    region: Option<Cow<'a, str>>,
}

impl<'a> MeterText<'a> {
    #[inline]
    fn of(resource: Option<RawResource<'a>>) -> MeterText<'a> {
        let text_of = |t: Option<Text<'a>>| t.map(|t| t.0);
        match resource {
            Some(r) => MeterText {
                name: text_of(r.name),
                category: text_of(r.category),
                subcategory: text_of(r.subcategory),
                region: text_of(r.region),
            },
            None => MeterText {
                name: None,
                category: None,
                subcategory: None,
                region: None,
            },
        }
    }
}

impl<'c> FileCtx<'c> {
    fn quarantine(&self, reason: ReasonCode, detail: String, row: i64, raw: &str) -> Parsed<'c> {
        self.quarantine_with(
            reason,
            detail,
            row,
            raw,
            Partial {
                tenant: None,
                subscription: None,
                meter: None,
                date: None,
            },
        )
    }

    fn quarantine_with(
        &self,
        reason: ReasonCode,
        detail: String,
        row: i64,
        raw: &str,
        p: Partial,
    ) -> Parsed<'c> {
        let raw = if raw.len() > MAX_RAW {
            &raw[..raw.floor_char_boundary(MAX_RAW)]
        } else {
            raw
        };
        Parsed::Quarantined(Box::new(QuarantineRecord {
            reason,
            detail,
            source_file: self.source.to_string(),
            source_row: row,
            raw: raw.to_string(),
            customer_tenant_id: p.tenant.map(|t| t.to_ascii_lowercase()),
            subscription_id: p.subscription.map(|s| s.to_ascii_lowercase()),
            meter_id: p.meter.map(|m| m.to_ascii_lowercase()),
            usage_date: p.date,
        }))
    }

    /// One NDJSON line (with its line ending): invalid UTF-8 quarantines the line alone.
    fn ndjson_line<'a>(&'a self, line: &'a [u8], line_no: i64) -> Parsed<'a> {
        match std::str::from_utf8(line) {
            Ok(text) => self.record(text.trim(), line_no),
            Err(e) => {
                let lossy = Lossy::of(line);
                let bytes = lossy
                    .bad
                    .first()
                    .map(|b| hex_bytes(&b.bytes))
                    .unwrap_or_default();
                self.quarantine(
                    ReasonCode::Malformed,
                    format!(
                        "line {line_no} of {} holds bytes that are not UTF-8 ({bytes} at byte {} of the line); the record is kept as lossy text",
                        self.source,
                        e.valid_up_to()
                    ),
                    line_no,
                    lossy.text.trim(),
                )
            }
        }
    }

    /// Validate one record's JSON text.
    fn record<'a>(&'a self, text: &'a str, row: i64) -> Parsed<'a> {
        let rec: RawRecord<'a> = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                return self.quarantine(
                    ReasonCode::Malformed,
                    format!(
                        "record {row} of {} is not a valid utilization record: {e}",
                        self.source
                    ),
                    row,
                    text,
                )
            }
        };
        match self.usage_row(rec, text, row) {
            Ok(r) => Parsed::Record(Box::new(r)),
            Err(q) => q,
        }
    }

    /// A parsed record checked in the spec's reason order (required fields, quantity,
    /// times, IDs) and turned into its row, or the quarantine record of the first failure.
    #[inline]
    fn usage_row<'a>(
        &'a self,
        rec: RawRecord<'a>,
        text: &'a str,
        row: i64,
    ) -> Checked<'a, UsageRow<'a>> {
        let route = |r: &'a Option<String>| r.as_deref().map(Cow::Borrowed);
        let mut resource = rec.resource;
        let fields = KeyFields {
            tenant: rec
                .customer_tenant_id
                .map(|t| t.0)
                .or_else(|| route(&self.route.0)),
            subscription: rec
                .subscription_id
                .map(|s| s.0)
                .or_else(|| route(&self.route.1)),
            meter: resource.as_mut().and_then(|r| r.id.take()).map(|m| m.0),
            start: rec.usage_start_time.map(|t| t.0),
            end: rec.usage_end_time.map(|t| t.0),
            quantity: rec.quantity,
        };
        let CheckedKeys {
            keys,
            times,
            quantity,
        } = self.check_keys(fields, text, row)?;
        let inst = InstanceFields::of(rec.instance_data);
        let meter_text = MeterText::of(resource);
        let (usage_start, usage_end) = (to_micros(times.start), to_micros(times.end));
        let key_hash = key_hash(
            [
                &keys.customer_tenant_id,
                &keys.subscription_id,
                &keys.meter_id,
                &inst.resource_uri,
            ],
            usage_start,
            usage_end,
            &inst.additional_info,
        );
        Ok(UsageRow {
            key_hash,
            customer_tenant_id: keys.customer_tenant_id,
            subscription_id: keys.subscription_id,
            meter_id: keys.meter_id,
            meter_name: meter_text.name,
            meter_category: meter_text.category,
            meter_subcategory: meter_text.subcategory,
            meter_region: meter_text.region,
            resource_uri: inst.resource_uri,
            location: inst.location,
            part_number: inst.part_number,
            order_number: inst.order_number,
            additional_info: inst.additional_info,
            tags: inst.tags,
            info_fields: rec.info_fields.map(|v| canonical_raw(v.get())),
            unit: rec.unit.map(|u| u.0).filter(|u| !u.trim().is_empty()),
            quantity,
            usage_start,
            usage_end,
            usage_date: date_to_days(times.start.date_naive()),
            source_file: self.source,
            source_row: row,
            ingest_run_id: self.run_id,
            raw: Cow::Borrowed(text),
            raw_at: None,
        })
    }

    /// The checks in the spec's reason order: required fields, quantity, times, IDs.
    #[inline]
    fn check_keys<'a>(
        &'a self,
        f: KeyFields<'a>,
        text: &'a str,
        row: i64,
    ) -> Checked<'a, CheckedKeys<'a>> {
        let mut partial = Partial {
            tenant: f.tenant.as_deref(),
            subscription: f.subscription.as_deref(),
            meter: f.meter.as_deref(),
            date: None,
        };
        let present = [
            f.start.is_some(),
            f.end.is_some(),
            f.meter.is_some(),
            f.quantity.is_some(),
            f.tenant.is_some(),
            f.subscription.is_some(),
        ];
        if let Some(field) = first_missing(present) {
            return Err(self.quarantine_with(
                ReasonCode::Malformed,
                format!("required field {field} is missing"),
                row,
                text,
                partial,
            ));
        }
        let quantity = self.quantity_of(f.quantity, row, text, partial)?;
        let start_raw = f.start.as_deref().unwrap_or_default();
        let end_raw = f.end.as_deref().unwrap_or_default();
        let times = self.usage_times(start_raw, end_raw, row, text, &mut partial)?;
        let [customer_tenant_id, subscription_id, meter_id] = self.guids(
            [
                ("customer tenant", &f.tenant),
                ("subscription", &f.subscription),
                ("resource.id (meter)", &f.meter),
            ],
            row,
            text,
            partial,
        )?;
        Ok(CheckedKeys {
            keys: RecordKeys {
                customer_tenant_id,
                subscription_id,
                meter_id,
            },
            times,
            quantity,
        })
    }

    /// The quantity, read from its JSON token text.
    #[inline]
    fn quantity_of(
        &self,
        quantity: Option<&RawValue>,
        row: i64,
        text: &str,
        partial: Partial,
    ) -> Checked<'c, Dec10> {
        match quantity.map(decimal_from_raw) {
            Some(Ok(q)) => Ok(q),
            _ => {
                let shown = quantity.map(|q| q.get()).unwrap_or_default();
                Err(self.quarantine_with(
                    ReasonCode::BadNumber,
                    format!("quantity {shown} is not a decimal number"),
                    row,
                    text,
                    partial,
                ))
            }
        }
    }

    /// Start and end, each an RFC 3339 time, the end after the start; the start's date goes
    /// into `partial` for the quarantine records that follow.
    #[inline]
    fn usage_times(
        &self,
        start_raw: &str,
        end_raw: &str,
        row: i64,
        text: &str,
        partial: &mut Partial,
    ) -> Checked<'c, UsageTimes> {
        let Some(start) = parse_rfc3339_utc(start_raw) else {
            return Err(self.quarantine_with(
                ReasonCode::BadTimestamp,
                bad_time("usageStartTime", start_raw, row, self.source),
                row,
                text,
                *partial,
            ));
        };
        partial.date = Some(start.date_naive());
        let Some(end) = parse_rfc3339_utc(end_raw) else {
            return Err(self.quarantine_with(
                ReasonCode::BadTimestamp,
                bad_time("usageEndTime", end_raw, row, self.source),
                row,
                text,
                *partial,
            ));
        };
        if end <= start {
            return Err(self.quarantine_with(
                ReasonCode::BadTimestamp,
                format!("usageEndTime '{end_raw}' is not after usageStartTime '{start_raw}'"),
                row,
                text,
                *partial,
            ));
        }
        Ok(UsageTimes { start, end })
    }

    /// Tenant, subscription and meter, each normalised as a GUID (checked and normalised in
    /// one pass), checked in that order.
    #[inline]
    fn guids<'v>(
        &self,
        ids: [(&str, &Option<Cow<'v, str>>); 3],
        row: i64,
        text: &str,
        partial: Partial,
    ) -> Checked<'c, [Cow<'v, str>; 3]> {
        let mut out: [Cow<'v, str>; 3] = Default::default();
        for ((what, v), slot) in ids.into_iter().zip(&mut out) {
            *slot = v.as_ref().and_then(guid_of).ok_or_else(|| {
                self.quarantine_with(
                    ReasonCode::BadId,
                    format!(
                        "{what} ID '{}' is not a GUID",
                        v.as_deref().unwrap_or_default()
                    ),
                    row,
                    text,
                    partial,
                )
            })?;
        }
        Ok(out)
    }
}

/// CSV header names accepted for each record path (flat API names or dotted paths).
const CSV_FIELDS: &[(&str, &[&str])] = &[
    ("usageStartTime", &["usagestarttime"]),
    ("usageEndTime", &["usageendtime"]),
    ("resource.id", &["resource.id", "resourceid", "meterid"]),
    (
        "resource.name",
        &["resource.name", "resourcename", "metername"],
    ),
    (
        "resource.category",
        &["resource.category", "category", "metercategory"],
    ),
    (
        "resource.subcategory",
        &["resource.subcategory", "subcategory", "metersubcategory"],
    ),
    (
        "resource.region",
        &["resource.region", "region", "meterregion"],
    ),
    ("quantity", &["quantity"]),
    ("unit", &["unit"]),
    ("customerTenantId", &["customertenantid", "customerid"]),
    ("subscriptionId", &["subscriptionid"]),
    (
        "instanceData.resourceUri",
        &["instancedata.resourceuri", "resourceuri"],
    ),
    (
        "instanceData.location",
        &["instancedata.location", "location"],
    ),
    (
        "instanceData.partNumber",
        &["instancedata.partnumber", "partnumber"],
    ),
    (
        "instanceData.orderNumber",
        &["instancedata.ordernumber", "ordernumber"],
    ),
    (
        "instanceData.additionalInfo",
        &["instancedata.additionalinfo", "additionalinfo"],
    ),
    ("instanceData.tags", &["instancedata.tags", "tags"]),
];

fn parse_csv(
    path: &Path,
    input: Box<dyn Read + Send>,
    ctx: &FileCtx,
    sink: &mut dyn FnMut(Parsed<'_>) -> Result<()>,
) -> Result<u64> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers: Vec<String> = csv_header(path, &mut rdr, "a CSV header row")?
        .iter()
        .map(|h| header_name(h).to_ascii_lowercase())
        .collect();
    let positions: Vec<(&str, Option<usize>)> = CSV_FIELDS
        .iter()
        .map(|(field, names)| {
            (
                *field,
                headers.iter().position(|h| names.contains(&h.as_str())),
            )
        })
        .collect();
    let mut n = 0u64;
    for (i, row) in rdr.byte_records().enumerate() {
        n += 1;
        let line = i as i64 + 2;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                let e = csv_row_error(path, e)?;
                sink(ctx.quarantine(
                    ReasonCode::Malformed,
                    format!(
                        "line {line} of {}: CSV row is not readable: {e}",
                        ctx.source
                    ),
                    line,
                    "",
                ))?;
                continue;
            }
        };
        // Bytes that are not UTF-8 quarantine this row only, kept as lossy text.
        let row = match csv::StringRecord::from_byte_record(row) {
            Ok(r) => r,
            Err(e) => {
                sink(not_utf8_row(e, &headers, line, ctx))?;
                continue;
            }
        };
        let raw = row.iter().collect::<Vec<_>>().join(",");
        let json = match csv_row_json(&row, &positions) {
            Ok(json) => json,
            Err(detail) => {
                sink(ctx.quarantine(ReasonCode::Malformed, detail, line, &raw))?;
                continue;
            }
        };
        let parsed = match ctx.record(&json, line) {
            Parsed::Record(mut r) => {
                r.raw = Cow::Owned(raw);
                Parsed::Record(r)
            }
            Parsed::Quarantined(mut q) => {
                q.raw = raw;
                Parsed::Quarantined(q)
            }
        };
        sink(parsed)?;
    }
    Ok(n)
}

/// The quarantine record of a CSV row with bytes that are not UTF-8, kept as lossy text.
fn not_utf8_row<'c>(
    e: csv::FromUtf8Error,
    headers: &[String],
    line: i64,
    ctx: &FileCtx<'c>,
) -> Parsed<'c> {
    let (column, valid_up_to) = (e.utf8_error().field(), e.utf8_error().valid_up_to());
    let bytes = e.into_byte_record();
    let raw = bytes
        .iter()
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(",");
    let name = headers.get(column).map(String::as_str).unwrap_or("?");
    ctx.quarantine(
        ReasonCode::Malformed,
        format!(
            "line {line} of {}: column {name} holds bytes that are not UTF-8 (at byte {} of the cell); the record is kept as lossy text",
            ctx.source,
            valid_up_to
        ),
        line,
        &raw,
    )
}

/// A CSV row as the JSON record it stands for (dotted fields nested), or why a JSON column
/// is not JSON (the last such column).
fn csv_row_json(
    row: &csv::StringRecord,
    positions: &[(&str, Option<usize>)],
) -> std::result::Result<String, String> {
    let mut obj = serde_json::Map::new();
    let mut bad_json = None;
    for (field, pos) in positions {
        let Some(cell) = pos.and_then(|p| row.get(p)).filter(|c| !c.is_empty()) else {
            continue;
        };
        let value = if field.ends_with("additionalInfo") || field.ends_with("tags") {
            match serde_json::from_str::<Value>(cell) {
                Ok(v) => v,
                Err(e) => {
                    bad_json = Some(format!("column {field} is not a JSON object: {e}"));
                    continue;
                }
            }
        } else {
            Value::String(cell.to_string())
        };
        let (outer, inner) = field
            .split_once('.')
            .map(|(a, b)| (a, Some(b)))
            .unwrap_or((field, None));
        match inner {
            None => {
                obj.insert(outer.to_string(), value);
            }
            Some(inner) => {
                let entry = obj
                    .entry(outer.to_string())
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Value::Object(m) = entry {
                    m.insert(inner.to_string(), value);
                }
            }
        }
    }
    match bad_json {
        Some(detail) => Err(detail),
        None => Ok(Value::Object(obj).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossy_text_remembers_where_the_bad_bytes_were() {
        let l = Lossy::of(b"ab\xff\xfecd\xc3");
        assert_eq!(l.text, "ab\u{fffd}\u{fffd}cd\u{fffd}");
        let found: Vec<(usize, usize, Vec<u8>)> = l
            .bad
            .iter()
            .map(|b| (b.text_offset, b.file_offset, b.bytes.clone()))
            .collect();
        assert_eq!(found, vec![(2, 2, vec![0xff, 0xfe]), (10, 6, vec![0xc3])]);
        assert!(l.first_bad_in(0, 2).is_none());
        assert_eq!(l.first_bad_in(0, 3).map(|b| b.file_offset), Some(2));
        assert_eq!(l.first_bad_in(3, 11).map(|b| b.file_offset), Some(6));
    }

    #[test]
    fn mostly_records_tells_ndjson_from_a_broken_page() {
        assert!(mostly_records(b"oops\n{\"a\":1}\n"));
        assert!(!mostly_records(b"{\n  \"items\": [\n    {\"a\":1}\n"));
        assert!(!mostly_records(b"   \n"));
    }

    /// What the parser hands on, as comparable text.
    fn parsed_of(path: &Path, content: Option<Vec<u8>>) -> Vec<String> {
        let mut out = Vec::new();
        let held = content.map(std::sync::Arc::new);
        parse_content(path, held, false, "run-1", &mut |p| {
            out.push(match p {
                Parsed::Record(r) => format!("{r:?}"),
                Parsed::Quarantined(q) => format!("{q:?}"),
            });
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_page_held_in_memory_parses_as_the_same_file_read_from_disk() {
        let item = |q: &str| {
            format!(
                r#"{{"usageStartTime":"2026-01-05T00:00:00Z","usageEndTime":"2026-01-06T00:00:00Z","resource":{{"id":"000000c0-0000-4000-8000-000000000005"}},"quantity":{q},"unit":"1 Hour","instanceData":{{"resourceUri":"/x"}}}}"#
            )
        };
        let page = format!(
            r#"{{"totalCount":3,"items":[{},{},{}]}}"#,
            item("1.5"),
            item("\"x\""),
            item("2")
        );
        let bom = [BOM, page.as_bytes()].concat();
        let pretty = page.replace("\"items\":[", "\"items\":[\n  ");
        let ndjson = format!("{}\n{}\n", item("1"), item("2"));
        let bad_utf8 = page
            .replacen("/x", "/\u{1}x", 1)
            .replace('\u{1}', "\u{fffd}");
        let mut bad_bytes = page.clone().into_bytes();
        let at = page.find("/x").unwrap();
        bad_bytes[at + 1] = 0xff;
        let shapes: Vec<(&str, Vec<u8>, Option<u64>)> = vec![
            ("one line", page.clone().into_bytes(), Some(3)),
            ("line ending", format!("{page}\n").into_bytes(), Some(3)),
            (
                "blanks after",
                format!("{page}\r\n \n\n").into_bytes(),
                Some(3),
            ),
            ("bom", bom, None),
            ("blank first", format!("\n{page}").into_bytes(), None),
            ("pretty", pretty.into_bytes(), None),
            ("ndjson", ndjson.into_bytes(), None),
            ("two pages", format!("{page}\n{page}\n").into_bytes(), None),
            ("not a page", br#"{"totalCount":0}"#.to_vec(), None),
            ("non-ascii", bad_utf8.into_bytes(), Some(3)),
            ("bad bytes", bad_bytes, None),
            ("empty", Vec::new(), None),
            ("blank", b"  \n".to_vec(), None),
        ];
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("customers/e499c962-9218-4dba-8b83-8adc94f47b9f/subscriptions/fc8f8908-f918-4406-af13-d5bc0fe41865/utilizations/azure");
        std::fs::create_dir_all(&sub).unwrap();
        for (name, bytes, fast) in shapes {
            let path = sub.join(format!("{}.json", name.replace(' ', "-")));
            std::fs::write(&path, &bytes).unwrap();
            let ctx = FileCtx {
                source: "f",
                route: route_ids(&path),
                run_id: "run-1",
            };
            let taken = page_in_memory(&bytes, &ctx, &mut |_| Ok(())).unwrap();
            assert_eq!(taken, fast, "{name}: which path the held bytes take");
            let from_disk = parsed_of(&path, None);
            assert!(!from_disk.is_empty(), "{name}: every file yields a record");
            assert_eq!(parsed_of(&path, Some(bytes)), from_disk, "{name}");
        }
        // The page's second item is quarantined on both paths, the others staged.
        let one = sub.join("one-line.json");
        let parsed = parsed_of(&one, Some(page.into_bytes()));
        assert_eq!(parsed.len(), 3);
        assert!(parsed[1].starts_with("QuarantineRecord"), "{}", parsed[1]);
        assert!(parsed[0].starts_with("UsageRow"), "{}", parsed[0]);
        assert!(parsed[2].starts_with("UsageRow"), "{}", parsed[2]);
    }

    #[test]
    fn route_is_read_from_the_path() {
        let (t, s) = route_ids(Path::new("/d/customers/E499C962-9218-4DBA-8B83-8ADC94F47B9F/subscriptions/FC8F8908-F918-4406-AF13-D5BC0FE41865/utilizations/azure/p1.json"));
        assert_eq!(t.as_deref(), Some("E499C962-9218-4DBA-8B83-8ADC94F47B9F"));
        assert_eq!(s.as_deref(), Some("FC8F8908-F918-4406-AF13-D5BC0FE41865"));
        assert_eq!(route_ids(Path::new("/d/records.ndjson")), (None, None));
    }
}

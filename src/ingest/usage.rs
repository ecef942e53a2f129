//! `ingest usage`: utilization dumps into `staged/usage/month=<YYYY-MM>/bucket=<BB>/data.parquet`.
//!
//! Records stream from the files into per-partition buffers that spill to temporary Parquet
//! files, so memory is bounded by the spill threshold plus one partition at merge time, not
//! by the dump. Each partition is then merged with what is already staged: the same natural
//! key twice in this run is `DUPLICATE_RECORD` (first kept, in path order), a key already
//! staged is *unchanged* (same quantity and unit) or *restated* (the new record replaces it).

use crate::emit::manifest::{Manifest, PartitionSummary};
use crate::error::{Error, Result};
use crate::ingest::source::FilePlanner;
use crate::ingest::text_refs::Locator;
use crate::ingest::usage_rows::{UsageBuilder, UsageRow};
use crate::ingest::utilization::{parse_content, Parsed};
use crate::ingest::{finish_ingest, record_counts, IngestCounts};
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::schema::{hash_at, opt_str, Cols, KeyMap, KeySet};
use crate::model::time::days_to_date;
use crate::model::usage::{conform_staged, usage_schema, RawRef};
use crate::progress::Progress;
use crate::staged::ledger::Ledger;
use crate::staged::sources::{Archives, Placement};
use crate::store::Lake;
use arrow::array::{Array, RecordBatch, StringArray};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Records a file's parse holds in its column builders before handing them over as batches.
const SPILL_ROWS: usize = 50_000;

/// Bytes of values the spill buffers before writing every partition's batches to disk. Each
/// flush writes one file per partition, so this sets how many files a month spills (at
/// 50,000 records per flush, 10 M records of 200 partitions made 40,000 small files) against
/// what the parse phase holds in memory.
const SPILL_BYTES: u64 = 128 << 20;
/// A partition's share of a flush is written as up to this many files, in parallel.
const SPILL_PIECES: u64 = 8;

use crate::staged::usage::{bucket_of, file_options, partition_file};
use crate::store::input::{read_hashed, READ_ONCE_MAX};

pub(super) type PartKey = (String, u32);

/// A partition while records stream in: (year * 12 + month - 1, bucket), which sorts like
/// [`PartKey`] and costs no string per record.
type SpillKey = (i32, u32);

fn part_key((month, bucket): SpillKey) -> PartKey {
    let (y, m) = (month.div_euclid(12), month.rem_euclid(12) + 1);
    (format!("{y:04}-{m:02}"), bucket)
}

/// New records of a partition, and their bytes of values in Arrow batches.
#[derive(Clone, Copy, Default)]
struct PartSize {
    rows: u64,
    bytes: u64,
}

fn spill_key(r: &UsageRow) -> SpillKey {
    use chrono::Datelike;
    let d = days_to_date(r.usage_date);
    (
        d.year() * 12 + d.month0() as i32,
        bucket_of(&r.subscription_id),
    )
}

struct Spill {
    dir: PathBuf,
    buffers: BTreeMap<SpillKey, Vec<RecordBatch>>,
    files: BTreeMap<SpillKey, Vec<PathBuf>>,
    /// Records of each partition, buffered or spilled, and their bytes of values.
    sizes: BTreeMap<SpillKey, PartSize>,
    /// Bytes of the buffered batches, and how many make a flush.
    buffered: u64,
    limit: u64,
    spilled_files: usize,
}

impl Spill {
    /// Rows of one partition, in arrival order.
    fn push(&mut self, key: SpillKey, batch: RecordBatch) -> Result<()> {
        let bytes = data_bytes(&batch);
        self.buffered += bytes;
        let size = self.sizes.entry(key).or_default();
        size.rows += batch.num_rows() as u64;
        size.bytes += bytes;
        self.buffers.entry(key).or_default().push(batch);
        if self.buffered >= self.limit {
            self.flush_all()?;
        }
        Ok(())
    }

    /// Write every partition's buffered batches to a file of its own, the files in parallel
    /// (numbered in partition order, so a run's files do not depend on threads).
    fn flush_all(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let piece = (self.limit / SPILL_PIECES).max(1);
        let jobs: Vec<(SpillKey, PathBuf, Vec<RecordBatch>)> = std::mem::take(&mut self.buffers)
            .into_iter()
            .flat_map(|(key, batches)| pieces(batches, piece).map(move |p| (key, p)))
            .map(|(key, batches)| {
                let path = self
                    .dir
                    .join(format!("spill-{:06}.arrow", self.spilled_files));
                self.spilled_files += 1;
                (key, path, batches)
            })
            .collect();
        let written: Vec<Result<(SpillKey, PathBuf)>> = jobs
            .into_par_iter()
            .with_max_len(1)
            .map(|(key, path, batches)| {
                crate::store::scratch::write_file(
                    &path,
                    usage_schema(),
                    crate::store::scratch::Layout::default(),
                    batches.into_iter().map(Ok),
                )?;
                Ok((key, path))
            })
            .collect();
        for w in written {
            let (key, path) = w?;
            self.files.entry(key).or_default().push(path);
        }
        self.buffered = 0;
        Ok(())
    }
}

/// A partition's buffered batches cut, in order, into pieces of about `bytes` each, each
/// written to a spill file of its own: a month of one subscription has one partition, whose
/// flush was one file written on one core while parsing waited.
fn pieces(batches: Vec<RecordBatch>, bytes: u64) -> impl Iterator<Item = Vec<RecordBatch>> {
    let mut out: Vec<Vec<RecordBatch>> = vec![Vec::new()];
    let mut size = 0;
    for b in batches {
        let n = data_bytes(&b);
        if size > 0 && size + n > bytes {
            out.push(Vec::new());
            size = 0;
        }
        size += n;
        out.last_mut().expect("never empty").push(b);
    }
    out.into_iter()
}

/// Bytes of a batch's values (not of its buffers' capacity: a page file's share of one
/// partition is a few rows in builders sized for 1,024).
fn data_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64)
        .sum()
}

/// New records of one partition, in arrival order, from its spill files (as Arrow batches:
/// the merge never materialises records as structs).
fn read_spilled(paths: &[PathBuf]) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for path in paths {
        for b in crate::store::scratch::read_file(path, 64 * 1024)? {
            batches.push(b?);
        }
        // Each spill file is read once: free the disk as the merge goes.
        let _ = std::fs::remove_file(path);
    }
    Ok(batches)
}

/// Outcome of merging one partition.
#[derive(Default)]
pub(super) struct MergeStats {
    pub(super) new: u64,
    pub(super) restated: u64,
    pub(super) unchanged: u64,
    /// Records whose key came earlier in the run, with where their text is when the
    /// staged row refers to it (read back once the merge is done).
    pub(super) duplicates: Vec<(QuarantineRecord, Option<RawRef>)>,
    pub(super) rows: u64,
    pub(super) written: bool,
}

/// Typed views of the columns the merge compares, for one batch.
pub(super) struct MergeCols<'a> {
    pub(super) key: &'a arrow::array::FixedSizeBinaryArray,
    tenant: &'a StringArray,
    pub(super) subscription: &'a StringArray,
    pub(super) meter: &'a StringArray,
    pub(super) uri: &'a StringArray,
    pub(super) addl: &'a StringArray,
    unit: &'a StringArray,
    pub(super) quantity: &'a arrow::array::Decimal128Array,
    pub(super) start: &'a arrow::array::TimestampMicrosecondArray,
    pub(super) end: &'a arrow::array::TimestampMicrosecondArray,
    date: &'a arrow::array::Date32Array,
    source_file: &'a StringArray,
    source_row: &'a arrow::array::Int64Array,
    raw: &'a StringArray,
    refs: Option<crate::model::usage::RawRefs<'a>>,
}

impl<'a> MergeCols<'a> {
    pub(super) fn of(b: &'a RecordBatch) -> Result<MergeCols<'a>> {
        let c = Cols(b);
        Ok(MergeCols {
            key: c.hash128(crate::model::usage::col::KEY_HASH)?,
            tenant: c.str(crate::model::usage::col::TENANT)?,
            subscription: c.str(crate::model::usage::col::SUBSCRIPTION)?,
            meter: c.str(crate::model::usage::col::METER)?,
            uri: c.str("resource_uri")?,
            addl: c.str("additional_info")?,
            unit: c.str("unit")?,
            quantity: c.dec(crate::model::usage::col::QUANTITY)?,
            start: c.ts("usage_start")?,
            end: c.ts("usage_end")?,
            date: c.date("usage_date")?,
            source_file: c.str("source_file")?,
            source_row: c.i64("source_row")?,
            raw: c.str("raw")?,
            refs: crate::model::usage::raw_refs(b),
        })
    }

    pub(super) fn unit_at(&self, i: usize) -> Option<&'a str> {
        opt_str(self.unit, i)
    }
}

/// The quarantine record of a row whose natural key came earlier in the run, and where its
/// text is when the row refers to it.
pub(super) fn duplicate_record(c: &MergeCols, i: usize) -> (QuarantineRecord, Option<RawRef>) {
    let q = QuarantineRecord {
        reason: ReasonCode::DuplicateRecord,
        detail: format!(
            "the natural key (tenant {}, subscription {}, meter {}, resource '{}', start {}) appeared earlier in this run; the first record is kept",
            c.tenant.value(i),
            c.subscription.value(i),
            c.meter.value(i),
            c.uri.value(i),
            crate::model::time::from_micros(c.start.value(i)).to_rfc3339()
        ),
        source_file: c.source_file.value(i).to_string(),
        source_row: c.source_row.value(i),
        raw: c.raw.value(i).to_string(),
        customer_tenant_id: Some(c.tenant.value(i).to_string()),
        subscription_id: Some(c.subscription.value(i).to_string()),
        meter_id: Some(c.meter.value(i).to_string()),
        usage_date: Some(days_to_date(c.date.value(i))),
    };
    (q, c.refs.as_ref().and_then(|r| r.at(i)))
}

/// Classify a partition's new rows (batches from `old_batches` on, in arrival order) against
/// the staged ones indexed in `index`: the same key twice in the run is a duplicate (the
/// first is kept), a staged key is unchanged (same quantity and unit) or restated (the new
/// row takes its place in `rows`), any other key is new.
fn classify_incoming(
    cols: &[MergeCols],
    old_batches: usize,
    rows: &mut Vec<(usize, usize)>,
    index: &mut KeyMap<usize>,
) -> MergeStats {
    let incoming: usize = cols.iter().skip(old_batches).map(|c| c.key.len()).sum();
    let mut seen = KeySet::with_capacity_and_hasher(incoming, Default::default());
    let mut st = MergeStats::default();
    for (b, c) in cols.iter().enumerate().skip(old_batches) {
        for i in 0..c.key.len() {
            let k = hash_at(c.key, i);
            if !seen.insert(k) {
                st.duplicates.push(duplicate_record(c, i));
                continue;
            }
            match index.get(&k) {
                Some(&pos) => {
                    let (ob, oi) = rows[pos];
                    let o = &cols[ob];
                    if o.quantity.value(oi) == c.quantity.value(i) && o.unit_at(oi) == c.unit_at(i)
                    {
                        st.unchanged += 1;
                    } else {
                        st.restated += 1;
                        rows[pos] = (b, i);
                    }
                }
                None => {
                    st.new += 1;
                    index.insert(k, rows.len());
                    rows.push((b, i));
                }
            }
        }
    }
    st
}

/// Key-value metadata of a written partition: the run, and what this merge found, so that a
/// crash before the run's manifest still reports the restatements it published
/// (emit::journal).
pub(super) fn partition_metadata(st: &MergeStats, run_id: &str) -> Vec<(String, String)> {
    vec![
        ("cspcost.run_id".into(), run_id.into()),
        (
            crate::emit::journal::INGEST_COUNTS_KEY.into(),
            crate::emit::journal::format_counts(st.new, st.restated, st.unchanged),
        ),
    ]
}

/// The rows `picks` (`(batch, row)`) of `batches`, as one batch of the usage schema.
pub(super) fn interleave_rows(
    batches: &[RecordBatch],
    picks: &[(usize, usize)],
) -> Result<RecordBatch> {
    let schema = usage_schema();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow::compute::interleave(&arrays, picks)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Merge a partition's new records (arrival order) with what is staged. Works on Arrow
/// batches through `(batch, row)` references and writes the result with `interleave`, so
/// memory is the partition's columnar size, not one struct per record.
fn merge_partition(
    lake: &Lake,
    key: &PartKey,
    incoming: Vec<RecordBatch>,
    run_id: &str,
) -> Result<MergeStats> {
    let rel = partition_file(&key.0, key.1);
    let mut batches: Vec<RecordBatch> = lake
        .get_parquet(&rel)?
        .unwrap_or_default()
        .into_iter()
        .map(conform_staged)
        .collect::<Result<_>>()?;
    let old_batches = batches.len();
    batches.extend(incoming);
    let cols: Vec<MergeCols> = batches.iter().map(MergeCols::of).collect::<Result<_>>()?;
    let mut rows: Vec<(usize, usize)> = Vec::new();
    let all: usize = cols.iter().map(|c| c.key.len()).sum();
    let mut index = KeyMap::with_capacity_and_hasher(all, Default::default());
    for (b, c) in cols.iter().enumerate().take(old_batches) {
        for i in 0..c.key.len() {
            index.insert(hash_at(c.key, i), rows.len());
            rows.push((b, i));
        }
    }
    let mut st = classify_incoming(&cols, old_batches, &mut rows, &mut index);
    st.rows = rows.len() as u64;
    if st.new + st.restated > 0 {
        drop(index);
        super::staged_order::sort_rows(&batches, &mut rows)?;
        drop(cols);
        // The sorted rows are copied a row group at a time while the previous one is
        // encoded: the partition is held once, not twice.
        let mut chunks = rows.chunks(64 * 1024);
        lake.put_parquet_from(
            &rel,
            usage_schema(),
            file_options(partition_metadata(&st, run_id)),
            || {
                chunks
                    .next()
                    .map(|c| interleave_rows(&batches, c))
                    .transpose()
            },
        )?;
        st.written = true;
    }
    Ok(st)
}

/// What parsing one file gave: its rows as batches per partition, in arrival order, and
/// its frame for the run's source archives when its texts are referred to there.
struct FileRows {
    read: u64,
    batches: Vec<(SpillKey, RecordBatch)>,
    quarantined: Vec<QuarantineRecord>,
    archived: Option<Archived>,
}

/// A file's place in the run's source archives, its bytes as a zstd frame, and their size.
struct Archived {
    placed: Placement,
    frame: Vec<u8>,
    len: u64,
}

/// A file read into memory, to parse: its path, bytes (a `.gz` file's decompressed when
/// `decoded`), and its place in the run's source archives when its records' texts can be
/// referred to there.
struct Held<'a> {
    path: &'a PathBuf,
    content: Vec<u8>,
    decoded: bool,
    placed: Option<Placement>,
}

/// Parse the files of a window in parallel; results in the window's order.
fn parse_window(window: Vec<Held>, run_id: &str) -> Vec<Result<FileRows>> {
    window
        .into_par_iter()
        .with_max_len(1)
        .map(|h| {
            let mut batches = Vec::new();
            let mut emit = |key, batch| {
                batches.push((key, batch));
                Ok(())
            };
            let content = Some((h.content, h.decoded));
            let mut rows = parse_rows(h.path, content, h.placed, run_id, &mut emit)?;
            rows.batches = batches;
            Ok(rows)
        })
        .collect()
}

/// Whether staged rows may refer to the source archives for their texts:
/// `CSPCOST_INGEST_RAW_REFS=0` keeps every text in `raw` and writes no archive.
fn refs_enabled() -> bool {
    std::env::var("CSPCOST_INGEST_RAW_REFS").map_or(true, |v| v.trim() != "0")
}

/// A file read and hashed; a `.gz` file's bytes decompressed too when its records can refer
/// to them; and whether they can (held in memory, refs enabled, a JSON page or NDJSON file
/// and not CSV, whose row texts are rebuilt from cells; a `.gz` file only once decompressed,
/// its bytes on disk not being the text).
struct ReadFile {
    hashed: crate::store::input::HashedFile,
    plain: Option<Vec<u8>>,
    referable: bool,
}

impl ReadFile {
    fn read(path: &std::path::Path, refs: bool) -> Result<ReadFile> {
        use crate::store::input::{gunzip_held, is_gzip, logical_name};
        let hashed = read_hashed(path)?;
        let json = refs && hashed.content.is_some() && !logical_name(path).ends_with(".csv");
        // A `.gz` page is decompressed here, on every core, so that its size is known when
        // it is placed in an archive.
        let plain = match &hashed.content {
            Some(c) if json && is_gzip(path) => gunzip_held(c, READ_ONCE_MAX),
            _ => None,
        };
        let referable = json && (plain.is_some() || !is_gzip(path));
        Ok(ReadFile {
            hashed,
            plain,
            referable,
        })
    }
}

/// Parse one file into per-partition column builders, handing each partition's rows to `emit`
/// as a batch whenever SPILL_ROWS are waiting and at the end (batches of one partition in
/// arrival order). The returned [`FileRows`] has no batches: they went to `emit`. A file
/// `placed` in the run's source archives has its records' texts referred to there where its
/// bytes hold them, and its frame made here, on the parsing thread.
fn parse_rows(
    path: &std::path::Path,
    content: Option<(Vec<u8>, bool)>,
    placed: Option<Placement>,
    run_id: &str,
    emit: &mut dyn FnMut(SpillKey, RecordBatch) -> Result<()>,
) -> Result<FileRows> {
    let decoded = content.as_ref().is_some_and(|c| c.1);
    let content = content.map(|c| std::sync::Arc::new(c.0));
    let placed = placed.filter(|_| content.is_some());
    let mut locator = content
        .as_deref()
        .filter(|_| placed.is_some())
        .map(|c| Locator::new(c));
    let mut builders: BTreeMap<SpillKey, UsageBuilder> = BTreeMap::new();
    let mut waiting = 0usize;
    let mut quarantined = Vec::new();
    let mut drain = |builders: &mut BTreeMap<SpillKey, UsageBuilder>| -> Result<()> {
        for (key, mut b) in std::mem::take(builders) {
            emit(key, b.finish()?)?;
        }
        Ok(())
    };
    let read = parse_content(path, content.clone(), decoded, run_id, &mut |p| match p {
        Parsed::Record(mut r) => {
            if let (std::borrow::Cow::Borrowed(text), Some(l), Some(p)) =
                (&r.raw, locator.as_mut(), placed.as_ref())
            {
                r.raw_at = l.locate(text).map(|o| (&*p.archive, p.offset(o)));
            }
            builders.entry(spill_key(&r)).or_default().push(&r)?;
            waiting += 1;
            if waiting >= SPILL_ROWS {
                waiting = 0;
                drain(&mut builders)?;
            }
            Ok(())
        }
        Parsed::Quarantined(q) => {
            quarantined.push(*q);
            Ok(())
        }
    })?;
    drain(&mut builders)?;
    let archived = match (placed, content) {
        (Some(placed), Some(bytes)) => Some(Archived {
            frame: crate::staged::sources::compress_member(&bytes)?,
            len: bytes.len() as u64,
            placed,
        }),
        _ => None,
    };
    Ok(FileRows {
        read,
        batches: Vec::new(),
        quarantined,
        archived,
    })
}

/// What the parse phase of a run produced (its rows are in the spill).
struct ParsedFiles {
    read: u64,
    quarantine: Vec<QuarantineRecord>,
    /// Files read (the others were identical to files already ingested).
    to_read: Vec<crate::staged::ledger::FileToRead>,
}

/// Run `ingest usage`.
pub fn ingest_usage(lake: &Lake, paths: &[PathBuf], run_id: &str) -> Result<Manifest> {
    let started = std::time::Instant::now();
    let (mut m, files) = super::begin_ingest("ingest usage", paths, run_id)?;
    let ledger = Ledger::load(lake, "usage")?;
    let mut spill = Spill {
        dir: lake.scratch_dir(run_id)?.join("usage"),
        buffers: BTreeMap::new(),
        files: BTreeMap::new(),
        sizes: BTreeMap::new(),
        buffered: 0,
        limit: crate::store::scratch::size_override("CSPCOST_INGEST_SPILL_BYTES", SPILL_BYTES),
        spilled_files: 0,
    };
    let mut parsed = parse_files(lake, &files, &ledger, &mut m, &mut spill, run_id)?;
    let results = merge_partitions(lake, &mut spill, run_id)?;
    let (mut new, mut restated, mut unchanged) = (0, 0, 0);
    let mut duplicates = Vec::new();
    let mut changed_months = BTreeSet::new();
    for (key, st) in results {
        new += st.new;
        restated += st.restated;
        unchanged += st.unchanged;
        duplicates.extend(st.duplicates);
        if st.written {
            changed_months.insert(key.0.clone());
            m.partitions.push(PartitionSummary {
                path: partition_file(&key.0, key.1),
                rows: st.rows,
                billed_cost: None,
                action: "written".into(),
            });
        }
    }
    lake.remove_scratch(run_id);
    parsed.quarantine.extend(with_texts(lake, duplicates)?);
    let ParsedFiles {
        read,
        mut quarantine,
        to_read,
    } = parsed;
    quarantine.sort_by(|a, b| (&a.source_file, a.source_row).cmp(&(&b.source_file, b.source_row)));
    let counts = IngestCounts {
        read,
        new,
        restated,
        unchanged,
    };
    record_counts(&mut m, counts, &quarantine)?;
    m.counts.insert("superseded".into(), restated);
    m.counts.insert("unchanged".into(), unchanged);
    m.counts.insert("files".into(), to_read.len() as u64);
    m.counts.insert(
        "files_skipped_identical".into(),
        (m.inputs.len() - to_read.len()) as u64,
    );
    for mo in &changed_months {
        m.months.insert(mo.clone(), "changed".into());
    }
    finish_ingest(lake, m, ledger, "usage", &quarantine, to_read, started)
}

/// Quarantine records with their texts read back from the source archives where the staged
/// rows referred to them.
fn with_texts(
    lake: &Lake,
    records: Vec<(QuarantineRecord, Option<RawRef>)>,
) -> Result<Vec<QuarantineRecord>> {
    let rows: Vec<(&str, Option<&RawRef>)> = records
        .iter()
        .map(|(q, r)| (q.raw.as_str(), r.as_ref()))
        .collect();
    let texts = crate::staged::sources::texts_of(lake, &rows)?;
    Ok(records
        .into_iter()
        .zip(texts)
        .map(|((mut q, _), text)| {
            q.raw = text;
            q
        })
        .collect())
}

/// The input files in windows that are read and parsed together: at most `files_max` files
/// and [`READ_ONCE_MAX`] bytes on disk (a larger file is a window of its own), so that a
/// window's contents bound what the parse phase holds.
fn read_chunks<'a>(files: &'a [PathBuf], sizes: &[u64], files_max: usize) -> Vec<&'a [PathBuf]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, &len) in sizes.iter().enumerate() {
        if i > start && (i - start >= files_max || bytes + len > READ_ONCE_MAX) {
            chunks.push(&files[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    if start < files.len() {
        chunks.push(&files[start..]);
    }
    chunks
}

/// Parse phase: every file read once (its digest decides against the ledger: skipped, or
/// read, and the parser reads the same bytes from memory), parsed on every core a window at a
/// time, and its rows handed to the spill in path order, so that the staged result (and
/// which duplicate is "first") is the same as reading the files one after the other.
fn parse_files(
    lake: &Lake,
    files: &[PathBuf],
    ledger: &Ledger,
    m: &mut Manifest,
    spill: &mut Spill,
    run_id: &str,
) -> Result<ParsedFiles> {
    let mut out = ParsedFiles {
        read: 0,
        quarantine: Vec::new(),
        to_read: Vec::new(),
    };
    let sizes: Vec<u64> = files
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect();
    let mut progress = Progress::new("ingest usage", sizes.iter().sum(), true);
    let mut planner = FilePlanner::new(ledger);
    let mut window: Vec<Held> = Vec::new();
    let window_files = rayon::current_num_threads() * 8;
    let mut archives = Archives::new(lake, run_id);
    let refs = refs_enabled();
    let mut take =
        |parsed: Result<FileRows>, spill: &mut Spill, archives: &mut Archives| -> Result<()> {
            let parsed = parsed?;
            if let Some(a) = parsed.archived {
                archives.append(&a.placed, &a.frame, a.len)?;
            }
            out.read += parsed.read;
            out.quarantine.extend(parsed.quarantined);
            for (key, batch) in parsed.batches {
                spill.push(key, batch)?;
            }
            Ok(())
        };
    let mut to_read = Vec::new();
    for chunk in read_chunks(files, &sizes, window_files) {
        // Read and hash the chunk's files on every core; decide in path order.
        let read: Vec<Result<ReadFile>> = chunk
            .par_iter()
            .with_max_len(1)
            .map(|p| ReadFile::read(p, refs))
            .collect();
        for (path, read) in chunk.iter().zip(read) {
            let ReadFile {
                hashed,
                plain,
                referable,
            } = read?;
            let (input, file) = planner.decide(path, hashed.sha256, hashed.bytes);
            m.inputs.push(input);
            progress.inc(hashed.bytes);
            let Some(f) = file else { continue };
            to_read.push(f);
            match hashed.content {
                Some(content) => {
                    let (content, decoded) = match plain {
                        Some(plain) => (plain, true),
                        None => (content, false),
                    };
                    let placed = referable.then(|| archives.place(content.len() as u64));
                    window.push(Held {
                        path,
                        content,
                        decoded,
                        placed,
                    });
                }
                None => {
                    // A file too large to hold streams on this thread, after the window
                    // before it, handing its rows over every SPILL_ROWS.
                    for parsed in parse_window(std::mem::take(&mut window), run_id) {
                        take(parsed, spill, &mut archives)?;
                    }
                    let parsed = parse_rows(path, None, None, run_id, &mut |key, batch| {
                        spill.push(key, batch)
                    });
                    take(parsed, spill, &mut archives)?;
                }
            }
        }
        for parsed in parse_window(std::mem::take(&mut window), run_id) {
            take(parsed, spill, &mut archives)?;
        }
    }
    // Published before any partition that refers to them.
    archives.finish()?;
    progress.finish();
    out.to_read = to_read;
    Ok(out)
}

/// A partition to merge: its new rows, whether it is merged from disk, and its share of the
/// merge's progress.
struct PartWork {
    key: PartKey,
    new_rows: u64,
    big: bool,
    units: u64,
    paths: Vec<PathBuf>,
}

/// Merge phase: everything goes to disk first; then each partition is read back and merged
/// on its own (from disk when it is too large to hold), so memory holds one partition, or
/// one run of a large one, per worker thread, never the whole run.
fn merge_partitions(
    lake: &Lake,
    spill: &mut Spill,
    run_id: &str,
) -> Result<Vec<(PartKey, MergeStats)>> {
    spill.flush_all()?;
    let sizes = std::mem::take(&mut spill.sizes);
    let parts: Vec<(PartKey, PartSize, Vec<PathBuf>)> = std::mem::take(&mut spill.files)
        .into_iter()
        .map(|(k, files)| {
            (
                part_key(k),
                sizes.get(&k).copied().unwrap_or_default(),
                files,
            )
        })
        .collect();
    let dir = &spill.dir;
    // Progress in rows: a small partition counts its new rows once merged; a large one its new
    // rows as they are classified, then each row it writes (a month of one subscription
    // merges one partition for as long as it parsed).
    let parts: Vec<PartWork> = parts
        .into_par_iter()
        .map(|(key, size, paths)| {
            let staged = lake.parquet_row_count(&partition_file(&key.0, key.1))?;
            let staged = staged.unwrap_or(0);
            // Staged rows are taken to be as large as the new ones on average (in u128: a
            // partition of 100 M staged rows times 100 GB would overflow u64).
            let staged_bytes =
                u128::from(staged) * u128::from(size.bytes) / u128::from(size.rows.max(1));
            let bytes = size
                .bytes
                .saturating_add(u64::try_from(staged_bytes).unwrap_or(u64::MAX));
            let big = super::big_merge::is_big(staged + size.rows, bytes);
            Ok(PartWork {
                key,
                new_rows: size.rows,
                big,
                units: if big {
                    size.rows + staged + size.rows
                } else {
                    size.rows
                },
                paths,
            })
        })
        .collect::<Result<_>>()?;
    let total = parts.iter().map(|p| p.units).sum();
    let progress = std::sync::Mutex::new(Progress::new("ingest usage: merge", total, false));
    let tick = |n: u64| {
        if let Ok(mut p) = progress.lock() {
            p.inc(n)
        }
    };
    let merged = parts
        .into_par_iter()
        .with_max_len(1)
        .map(|p| {
            let st = if p.big {
                super::big_merge::merge_big_partition(lake, &p.key, &p.paths, dir, run_id, &tick)?
            } else {
                let st = merge_partition(lake, &p.key, read_spilled(&p.paths)?, run_id)?;
                tick(p.new_rows);
                st
            };
            Ok((p.key, st))
        })
        .collect();
    if let Ok(p) = progress.into_inner() {
        p.finish();
    }
    merged
}

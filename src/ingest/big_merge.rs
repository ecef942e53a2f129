//! Merging a partition too large to hold (issue 16). A month of a few huge subscriptions
//! puts millions of records in one (month, bucket) partition, and the in-memory merge of
//! [`super::usage`] would hold all of them. Here the partition is merged from disk, with the
//! same outcome row for row:
//!
//! 1. what is staged is indexed by key (position, quantity and unit), never held;
//! 2. the new records stream from the spill in arrival order and are classified as in the
//!    in-memory merge (duplicate, unchanged, restated, new); those kept are sorted in runs of
//!    [`RUN_ROWS`] by the staged order and written to scratch, each run while the next is
//!    classified;
//! 3. the staged file (less its restated rows, it is already in staged order) and the runs
//!    are merged with a heap and streamed into the new partition file.
//!
//! Memory is the index (about 50 bytes per staged row), the seen-key set (about 20 bytes per
//! new row) and two runs, then a message or two of each run, not the partition.

use super::staged_order::OrderKeys;
use super::usage::{
    duplicate_record, interleave_rows, partition_metadata, MergeCols, MergeStats, PartKey,
};
use crate::error::{Error, Result};
use crate::model::schema::{hash_at, KeyMap, KeySet};
use crate::model::usage::{col, usage_schema};
use crate::staged::usage::{file_options, partition_file};
use crate::store::{BatchStream, Lake};
use arrow::array::{BooleanArray, RecordBatch};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Bytes of values (staged plus new, in Arrow batches) above which a partition is merged
/// from disk. The in-memory merge holds the partition once, and two row groups of its sorted
/// copy while it is written, on each worker thread: with two threads, at most about
/// 2 × (192 MiB + 2 × 64 k rows). Merged from disk (runs written, read back and merged with a
/// heap), the partitions of 150 k and 200 k rows of a 10 M month of 200 subscriptions (1.2 KB
/// a row) cost 9 of the month's 70 CPU seconds; merged in memory, only their sort.
const BIG_BYTES: u64 = 192 << 20;
/// Rows (staged plus new) above which a partition is merged from disk whatever its bytes:
/// the sort's index costs about 60 bytes a row besides the batches.
const BIG_ROWS: u64 = 1 << 20;
/// New rows sorted into one run. Two runs are held at a time (one written while the next is
/// classified); 128 k rows each took a 10 M month of one subscription from 805 to 1,105 MiB.
const RUN_ROWS: usize = 64 * 1024;
/// Rows per batch read back.
const READ_ROWS: usize = 1024;
/// Rows per message of a run: the final merge holds about two decoded messages of each run
/// (the current one, and the last while the output takes rows from it), and a month of one
/// subscription of 10 M records makes 153 runs. Measured there (peak RSS, wall): messages
/// of 1,024 rows 948 MiB / 83.6 s, 512 rows 832 MiB / 82.4 s, 256 rows 813 MiB / 90.1 s
/// (every message decompresses each of its buffers with a fresh zstd context).
const RUN_MESSAGE_ROWS: usize = 512;
/// Rows per batch written.
const OUT_ROWS: usize = 64 * 1024;

/// Whether a partition of `rows` rows and about `bytes` bytes of values (staged plus new) is
/// merged from disk.
pub(super) fn is_big(rows: u64, bytes: u64) -> bool {
    use crate::store::scratch::size_override;
    rows > size_override("CSPCOST_INGEST_BIG_ROWS", BIG_ROWS)
        || bytes > size_override("CSPCOST_INGEST_BIG_BYTES", BIG_BYTES)
}

/// The staged rows of a partition, by key: where each is, and what restating compares.
#[derive(Default)]
struct StagedIndex {
    pos: KeyMap<u32>,
    /// Quantity and unit (an index into `units`) of each staged row.
    value: Vec<(i128, Option<u32>)>,
    units: HashMap<String, u32>,
    replaced: Vec<bool>,
}

impl StagedIndex {
    fn load(lake: &Lake, rel: &str) -> Result<StagedIndex> {
        let mut ix = StagedIndex::default();
        let columns = [col::KEY_HASH, col::QUANTITY, "unit"];
        for b in lake
            .parquet_batches(rel, Some(&columns), None, 64 * 1024)?
            .into_iter()
            .flatten()
        {
            let b = b?;
            let c = crate::model::schema::Cols(&b);
            let (k, q, u) = (
                c.hash128(col::KEY_HASH)?,
                c.dec(col::QUANTITY)?,
                c.str("unit")?,
            );
            for i in 0..b.num_rows() {
                let unit = crate::model::schema::opt_str(u, i).map(|s| {
                    let next = ix.units.len() as u32;
                    *ix.units.entry(s.to_string()).or_insert(next)
                });
                ix.pos.insert(hash_at(k, i), ix.value.len() as u32);
                ix.value.push((q.value(i), unit));
            }
        }
        ix.replaced = vec![false; ix.value.len()];
        Ok(ix)
    }

    /// The staged position of a key, and whether the new row has its quantity and unit.
    fn find(&self, key: u128, quantity: i128, unit: Option<&str>) -> Option<(usize, bool)> {
        let &p = self.pos.get(&key)?;
        let (q, u) = self.value[p as usize];
        let unit = unit.map(|s| self.units.get(s).copied());
        let same_unit = match (u, unit) {
            (None, None) => true,
            (Some(a), Some(Some(b))) => a == b,
            _ => false,
        };
        Some((p as usize, q == quantity && same_unit))
    }
}

/// New rows kept so far, waiting to be sorted into a run.
#[derive(Default)]
struct Pending {
    batches: Vec<RecordBatch>,
    rows: Vec<(usize, usize)>,
}

/// Merge a partition from disk: `spilled` are its new records, in arrival order.
pub(super) fn merge_big_partition(
    lake: &Lake,
    key: &PartKey,
    spilled: &[PathBuf],
    scratch: &Path,
    run_id: &str,
    tick: &(dyn Fn(u64) + Sync),
) -> Result<MergeStats> {
    let rel = partition_file(&key.0, key.1);
    let mut staged = StagedIndex::load(lake, &rel)?;
    let dir = scratch.join(format!("merge-{}-{:03}", key.0, key.1));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let (mut st, runs) = classify_spill(&mut staged, spilled, &dir, tick)?;
    let kept_staged = staged.replaced.iter().filter(|r| !**r).count() as u64;
    st.rows = kept_staged + st.new + st.restated;
    if st.new + st.restated > 0 {
        let metadata = partition_metadata(&st, run_id);
        let mut sources: Vec<Cursor> = Vec::new();
        if let Some(s) = lake.parquet_batches(&rel, None, None, READ_ROWS)? {
            sources.push(Cursor::open(s, Some(std::mem::take(&mut staged.replaced)))?);
        }
        drop(staged);
        for r in &runs {
            sources.push(Cursor::open(spill_batches(r)?, None)?);
        }
        let mut merge = Merge::new(sources);
        lake.put_parquet_from(&rel, usage_schema(), file_options(metadata), || {
            let b = merge.next_batch()?;
            tick(b.as_ref().map_or(0, |b| b.num_rows() as u64));
            Ok(b)
        })?;
        st.written = true;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(st)
}

/// Classify the new rows as they stream from the spill (arrival order), as the in-memory
/// merge does, marking restated staged rows; the kept rows go to sorted runs in `dir`. A run
/// is sorted and written while the next one is classified (`rayon::join`): with one
/// partition in the month, the only work there is.
fn classify_spill(
    staged: &mut StagedIndex,
    spilled: &[PathBuf],
    dir: &Path,
    tick: &(dyn Fn(u64) + Sync),
) -> Result<(MergeStats, Vec<PathBuf>)> {
    let run_rows =
        crate::store::scratch::size_override("CSPCOST_INGEST_RUN_ROWS", RUN_ROWS as u64) as usize;
    let mut c = Classifier {
        staged,
        spilled: spilled.iter(),
        batches: None,
        st: MergeStats::default(),
        seen: KeySet::default(),
        run_rows,
        tick,
    };
    let mut runs: Vec<PathBuf> = Vec::new();
    let mut next = c.next_run()?;
    while let Some(p) = next {
        let n = runs.len();
        let (written, following) = rayon::join(|| write_sorted_run(dir, n, p), || c.next_run());
        runs.push(written?);
        next = following?;
    }
    Ok((c.st, runs))
}

/// The classification of a partition's spill, a run of kept rows at a time.
struct Classifier<'a> {
    staged: &'a mut StagedIndex,
    spilled: std::slice::Iter<'a, PathBuf>,
    /// The spill file being read, and its path (removed once read).
    batches: Option<(BatchStream, &'a PathBuf)>,
    st: MergeStats,
    seen: KeySet,
    run_rows: usize,
    /// Progress, in rows read.
    tick: &'a (dyn Fn(u64) + Sync),
}

impl Classifier<'_> {
    /// The next batch of the spill, in arrival order.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some((b, _)) = self.batches.as_mut() {
                if let Some(batch) = b.next().transpose()? {
                    (self.tick)(batch.num_rows() as u64);
                    return Ok(Some(batch));
                }
            }
            // Each spill file is read once: free the disk as the merge goes.
            if let Some((_, path)) = self.batches.take() {
                let _ = std::fs::remove_file(path);
            }
            match self.spilled.next() {
                Some(path) => self.batches = Some((spill_batches(path)?, path)),
                None => return Ok(None),
            }
        }
    }

    /// Classify batches until a run's worth of rows is kept (or the spill ends).
    fn next_run(&mut self) -> Result<Option<Pending>> {
        let mut pending = Pending::default();
        while pending.rows.len() < self.run_rows {
            let Some(b) = self.next_batch()? else {
                break;
            };
            let c = MergeCols::of(&b)?;
            let at = pending.batches.len();
            let kept_before = pending.rows.len();
            for i in 0..b.num_rows() {
                let k = hash_at(c.key, i);
                if !self.seen.insert(k) {
                    self.st.duplicates.push(duplicate_record(&c, i));
                    continue;
                }
                match self.staged.find(k, c.quantity.value(i), c.unit_at(i)) {
                    Some((_, true)) => self.st.unchanged += 1,
                    Some((p, false)) => {
                        self.st.restated += 1;
                        self.staged.replaced[p] = true;
                        pending.rows.push((at, i));
                    }
                    None => {
                        self.st.new += 1;
                        pending.rows.push((at, i));
                    }
                }
            }
            if pending.rows.len() > kept_before {
                pending.batches.push(b);
            }
        }
        Ok((!pending.rows.is_empty()).then_some(pending))
    }
}

/// How runs are written (see [`RUN_MESSAGE_ROWS`]).
fn run_layout() -> crate::store::scratch::Layout {
    crate::store::scratch::Layout::default().with_message_rows(RUN_MESSAGE_ROWS)
}

/// A scratch file read back in batches.
fn spill_batches(path: &Path) -> Result<BatchStream> {
    crate::store::scratch::read_file(path, READ_ROWS)
}

/// Sort kept rows by the staged order and write them as one run.
fn write_sorted_run(dir: &Path, n: usize, mut p: Pending) -> Result<PathBuf> {
    super::staged_order::sort_rows(&p.batches, &mut p.rows)?;
    let path = dir.join(format!("run-{n:05}.arrow"));
    let batches = p
        .rows
        .chunks(OUT_ROWS)
        .map(|c| interleave_rows(&p.batches, c));
    crate::store::scratch::write_file(&path, usage_schema(), run_layout(), batches)?;
    Ok(path)
}

/// One sorted source of the final merge, a batch at a time.
struct Cursor {
    batches: BatchStream,
    /// Staged rows to leave out (restated), by position in the source.
    drop: Option<Vec<bool>>,
    base: usize,
    batch: RecordBatch,
    keys: OrderKeys,
    row: usize,
    /// Index of `batch` among the batches the output holds.
    held: usize,
}

impl Cursor {
    /// Open a source; `None`-like cursors (no rows) are told by [`Cursor::live`].
    fn open(batches: BatchStream, drop: Option<Vec<bool>>) -> Result<Cursor> {
        let empty = RecordBatch::new_empty(usage_schema());
        let mut c = Cursor {
            batches,
            drop,
            base: 0,
            keys: OrderKeys::of(&empty)?,
            batch: empty,
            row: 0,
            held: 0,
        };
        c.next_batch()?;
        Ok(c)
    }

    fn live(&self) -> bool {
        self.row < self.batch.num_rows()
    }

    /// Load the next non-empty batch (less its dropped rows); empty at the end.
    fn next_batch(&mut self) -> Result<()> {
        self.row = 0;
        loop {
            let Some(b) = self.batches.next().transpose()? else {
                self.batch = RecordBatch::new_empty(usage_schema());
                self.keys = OrderKeys::of(&self.batch)?;
                return Ok(());
            };
            // A partition staged before the text references gains them (as nulls).
            let b = crate::model::usage::conform_staged(b)?;
            let n = b.num_rows();
            let b = match &self.drop {
                Some(d) if d[self.base..self.base + n].iter().any(|x| *x) => {
                    let keep: BooleanArray = d[self.base..self.base + n]
                        .iter()
                        .map(|x| Some(!x))
                        .collect();
                    arrow::compute::filter_record_batch(&b, &keep)?
                }
                _ => b,
            };
            self.base += n;
            if b.num_rows() > 0 {
                self.keys = OrderKeys::of(&b)?;
                self.batch = b;
                return Ok(());
            }
        }
    }
}

/// A k-way merge of sorted sources in staged order, producing batches of [`OUT_ROWS`].
struct Merge {
    cursors: Vec<Cursor>,
    /// The batches the next output takes rows from (the cursors' current ones, and the
    /// ones they moved past since the last output).
    held: Vec<RecordBatch>,
    /// Live cursors, a min-heap under [`Merge::less`].
    heap: Vec<usize>,
}

impl Merge {
    fn new(mut cursors: Vec<Cursor>) -> Merge {
        cursors.retain(Cursor::live);
        let mut m = Merge {
            heap: (0..cursors.len()).collect(),
            cursors,
            held: Vec::new(),
        };
        m.hold_current();
        for i in (0..m.heap.len() / 2).rev() {
            sift_down(&mut m.heap, i, |a, b| Merge::less(&m.cursors, a, b));
        }
        m
    }

    fn less(cs: &[Cursor], a: usize, b: usize) -> bool {
        cs[a].keys.at(cs[a].row) < cs[b].keys.at(cs[b].row)
    }

    /// Hold only the live cursors' current batches.
    fn hold_current(&mut self) {
        self.held.clear();
        for &i in &self.heap {
            self.cursors[i].held = self.held.len();
            self.held.push(self.cursors[i].batch.clone());
        }
    }

    /// The next rows in staged order; `None` once every source is exhausted.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(OUT_ROWS);
        while picks.len() < OUT_ROWS {
            let Some(&top) = self.heap.first() else { break };
            let c = &mut self.cursors[top];
            picks.push((c.held, c.row));
            c.row += 1;
            if c.row == c.batch.num_rows() {
                c.next_batch()?;
                if c.live() {
                    c.held = self.held.len();
                    self.held.push(c.batch.clone());
                } else {
                    let last = self.heap.len() - 1;
                    self.heap.swap(0, last);
                    self.heap.pop();
                }
            }
            let cursors = &self.cursors;
            sift_down(&mut self.heap, 0, |a, b| Merge::less(cursors, a, b));
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let out = interleave_rows(&self.held, &picks)?;
        self.hold_current();
        Ok(Some(out))
    }
}

/// Restore the heap property below `i` (a min-heap of cursor indices under `less`).
fn sift_down(heap: &mut [usize], mut i: usize, less: impl Fn(usize, usize) -> bool) {
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut m = i;
        if l < heap.len() && less(heap[l], heap[m]) {
            m = l;
        }
        if r < heap.len() && less(heap[r], heap[m]) {
            m = r;
        }
        if m == i {
            return;
        }
        heap.swap(i, m);
        i = m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition goes to disk by its bytes, or by its rows past the sort index's limit:
    /// the 150 k and 200 k-row partitions of a 10 M month of 200 subscriptions (1,175 bytes a
    /// row) stay in memory, a partition of few but large records does not.
    #[test]
    fn partitions_go_to_disk_by_bytes_or_by_a_million_rows() {
        assert!(!is_big(150_000, 150_000 * 1_175));
        assert!(!is_big(200_000 - 35_000, 165_000 * 1_175));
        assert!(!is_big(1 << 20, 1 << 20));
        assert!(is_big((1 << 20) + 1, 1 << 20));
        assert!(!is_big(1_000, 192 << 20));
        assert!(is_big(1_000, (192 << 20) + 1));
    }
}

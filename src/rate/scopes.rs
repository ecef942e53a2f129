//! Rating the customer and organization scopes (issue 16). Their ladders span subscriptions,
//! and so staged buckets, which hash the subscription. One pass over the month's staged files
//! routes every row to one of `n` groups by (organization, meter), about [`GROUP_ROWS`] rows
//! each: a ladder of either scope lies in one group, and so does every (subscription, meter)
//! block of an organization, which the merge of runs needs ([`crate::rate::runs`]).
//!
//! A group whose ladders are each one (subscription, meter) block (a customer or an
//! organization with one subscription per meter, as in a month of a few huge subscriptions)
//! is rated as a stream, in the staged order, like the default scope. A group of more than
//! [`GROUP_ROWS`] rows whose ladders span blocks (an organization's few huge subscriptions on
//! one meter) is split into one scratch file per block, and each ladder is rated as a stream
//! merged from its blocks. Any other group is loaded and rated in memory as the whole month
//! was before: memory holds a group per worker.

use crate::emit::costs::usage_batch;
use crate::error::Result;
use crate::model::ids::stable_hash64;
use crate::model::schema::Cols;
use crate::model::tier::TierScope;
use crate::model::usage::{col, usage_from_batch, UsageRecord, RATING_COLUMNS};
use crate::pricing::rated::RatedRow;
use crate::rate::engine::output_order;
use crate::rate::engine::{in_staged_order, OutOfOrder, StreamRater};
use crate::rate::run::{fill_raw, MonthJob, UnitOutput};
use crate::rate::runs::RunWriter;
use crate::rate::stream::{chunk_cut, rate_counted, CHUNK_ROWS, READ_ROWS};
use crate::store::scratch;
use arrow::array::{RecordBatch, UInt32Array};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;

/// Rows per group of ladders (`CSPCOST_RATE_GROUP_ROWS` overrides it).
const GROUP_ROWS: u64 = 64 * 1024;
/// Blocks a group may be split into to be merged (each holds a writer, then a reader);
/// a larger group of more is rated in memory, alone.
const MERGE_BLOCKS: usize = 128;
/// Rows per batch read by routing: each group's share of a batch is written as it is.
const ROUTE_READ_ROWS: usize = 64 * 1024;
/// Rows of staged files routed by one task (`CSPCOST_RATE_ROUTE_ROWS` overrides it).
const ROUTE_ROWS: u64 = 1024 * 1024;
/// Buffer of each scratch writer here: routing opens one per group in each task (306 at
/// 10M), a block split up to [`MERGE_BLOCKS`]; at the default 1 MiB each, that was about
/// 300 MiB of buffers.
const WRITER_BUFFER: usize = 64 << 10;

/// How the scratch files of which many are open at once are written.
fn many_open() -> scratch::Layout {
    scratch::Layout::default().with_buffer_bytes(WRITER_BUFFER)
}

/// A stretch of a staged file; `earlier` for the previous month's part of a billing cycle.
#[derive(Clone)]
struct Source {
    file: String,
    rows: Range<u64>,
    earlier: bool,
}

/// A (scope, subscription, meter) triple met in a group: whether its ladders are blocks.
type Triple = (String, String, String);

/// A block split out of a group: its triple, the unit number of its run, its scratch file.
type Block = (Triple, usize, PathBuf);

/// What one routing task wrote for one group.
#[derive(Default)]
struct Piece {
    month: Option<PathBuf>,
    earlier: Option<PathBuf>,
    rows: u64,
    triples: HashSet<Triple>,
}

/// One group of ladders: its pieces in routing order.
#[derive(Default)]
struct Group {
    month: Vec<PathBuf>,
    earlier: Vec<PathBuf>,
    rows: u64,
    triples: HashSet<Triple>,
}

impl Group {
    /// Whether every ladder of the group is one (subscription, meter) block: no scope holds
    /// two subscriptions on one meter, and no such block is shared by two scopes.
    fn ladders_are_blocks(&self) -> bool {
        let mut ladders: HashMap<(&str, &str), &str> = HashMap::new();
        let mut blocks: HashMap<(&str, &str), &str> = HashMap::new();
        self.triples.iter().all(|(scope, sub, meter)| {
            let (scope, sub, meter) = (scope.as_str(), sub.as_str(), meter.as_str());
            *ladders.entry((scope, meter)).or_insert(sub) == sub
                && *blocks.entry((sub, meter)).or_insert(scope) == scope
        })
    }
}

/// The group of (organization, meter) among `n`.
fn group_of(org: &str, meter: &str, n: u64) -> usize {
    let h = stable_hash64(org).rotate_left(29) ^ stable_hash64(meter);
    (h % n) as usize
}

/// Cut `sources` into tasks of about `limit` rows, each a run of consecutive stretches.
fn pack(sources: Vec<Source>, limit: u64) -> Vec<Vec<Source>> {
    let mut tasks: Vec<Vec<Source>> = Vec::new();
    let mut rows = limit;
    for s in sources {
        let mut start = s.rows.start;
        while start < s.rows.end {
            if rows >= limit {
                tasks.push(Vec::new());
                rows = 0;
            }
            let end = s.rows.end.min(start + (limit - rows));
            rows += end - start;
            if let Some(t) = tasks.last_mut() {
                t.push(Source {
                    rows: start..end,
                    ..s.clone()
                });
            }
            start = end;
        }
    }
    tasks
}

impl MonthJob<'_> {
    /// Phase 1 of the customer and organization scopes: route the month into groups of
    /// ladders, rate each group (as a stream when its ladders are blocks), and fill the
    /// quarantine's original text in one pass over the month.
    pub(super) fn rate_groups(&self, files: &[String]) -> Result<Vec<UnitOutput>> {
        let mut sources = self.sources(files, false)?;
        let total: u64 = sources.iter().map(|s| s.rows.end - s.rows.start).sum();
        if let Some(reach) = &self.reach {
            let previous = crate::staged::usage::month_files(self.lake, &reach.previous)?;
            sources.extend(self.sources(&previous, true)?);
        }
        let limit = scratch::size_override("CSPCOST_RATE_GROUP_ROWS", GROUP_ROWS);
        let n = total.div_ceil(limit).max(1);
        let tasks = pack(
            sources,
            scratch::size_override("CSPCOST_RATE_ROUTE_ROWS", ROUTE_ROWS),
        );
        let routed: Vec<BTreeMap<usize, Piece>> = tasks
            .par_iter()
            .enumerate()
            .with_max_len(1)
            .map(|(t, sources)| self.route(t, sources, n))
            .collect::<Result<_>>()?;
        let mut groups: BTreeMap<usize, Group> = BTreeMap::new();
        for pieces in routed {
            for (g, p) in pieces {
                let group = groups.entry(g).or_default();
                group.month.extend(p.month);
                group.earlier.extend(p.earlier);
                group.rows += p.rows;
                group.triples.extend(p.triples);
            }
        }
        // A unit number per possible run set of a group (a stream starts a new set at each
        // stretch at most), so that run paths, and the partition's digest of its runs, do not
        // depend on which worker finished first.
        let stride = tasks.iter().map(Vec::len).sum::<usize>() + 2;
        let merge_base = (n as usize) * stride;
        // Streams, and groups of up to twice the size (hashing spreads sizes around the
        // mean), go side by side; larger groups are merged from blocks, or held alone.
        let (big, together): (Vec<_>, Vec<_>) = groups.into_iter().partition(|(_, g)| {
            g.rows > limit && !self.streams(g) && (self.mergeable(g) || g.rows > 2 * limit)
        });
        let mut out: Vec<UnitOutput> = together
            .par_iter()
            .with_max_len(1)
            .map(|(g, group)| self.rate_group(g * stride, stride, group))
            .collect::<Result<_>>()?;
        // Merges hold a chunk and a batch per block: they run side by side, their ladders on
        // every core. A large group that cannot be merged is held whole: one at a time.
        let merged: Vec<std::result::Result<Vec<UnitOutput>, OutOfOrder>> = big
            .par_iter()
            .with_max_len(1)
            .map(|(g, group)| self.merge_group(merge_base + g * MERGE_BLOCKS, group))
            .collect::<Result<_>>()?;
        for ((g, group), merged) in big.iter().zip(merged) {
            match merged {
                Ok(units) => {
                    remove(group);
                    out.extend(units);
                }
                Err(OutOfOrder) => out.push(self.rate_group(g * stride, stride, group)?),
            }
        }
        let mut quarantine: Vec<_> = out
            .iter_mut()
            .flat_map(|u| std::mem::take(&mut u.quarantine))
            .collect();
        let whole: Vec<_> = files.iter().map(|f| (f.clone(), None)).collect();
        fill_raw(self.lake, &whole, &mut quarantine)?;
        if let Some(first) = out.first_mut() {
            first.quarantine = quarantine;
        }
        Ok(out)
    }

    /// Every staged file as one stretch.
    fn sources(&self, files: &[String], earlier: bool) -> Result<Vec<Source>> {
        files
            .par_iter()
            .map(|f| {
                Ok(Source {
                    file: f.clone(),
                    rows: 0..self.lake.parquet_row_count(f)?.unwrap_or(0),
                    earlier,
                })
            })
            .collect()
    }

    /// Route the rows of one task's stretches to their groups' pieces, keeping their order:
    /// only the rows of this shard, and of the earlier stretches only the cycle's part.
    fn route(&self, task: usize, sources: &[Source], n: u64) -> Result<BTreeMap<usize, Piece>> {
        let mut pieces: BTreeMap<usize, Piece> = BTreeMap::new();
        let mut writers: BTreeMap<(usize, bool), scratch::Writer> = BTreeMap::new();
        for s in sources {
            let batches = self.lake.parquet_batches(
                &s.file,
                Some(&RATING_COLUMNS),
                Some(s.rows.clone()),
                ROUTE_READ_ROWS,
            )?;
            for b in batches.into_iter().flatten() {
                let b = b?;
                for (g, rows) in self.route_batch(&b, s.earlier, n, &mut pieces)? {
                    let part = arrow::compute::take_record_batch(&b, &UInt32Array::from(rows))?;
                    let piece = pieces.entry(g).or_default();
                    piece.rows += part.num_rows() as u64;
                    let w = match writers.entry((g, s.earlier)) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            let kind = if s.earlier { "earlier" } else { "month" };
                            let dir = self.tmp.join(format!("groups/group-{g:06}"));
                            std::fs::create_dir_all(&dir)
                                .map_err(|err| crate::error::Error::io(&dir, err))?;
                            let path = dir.join(format!("{kind}-{task:05}.arrow"));
                            *(if s.earlier {
                                &mut piece.earlier
                            } else {
                                &mut piece.month
                            }) = Some(path.clone());
                            e.insert(scratch::Writer::create_with(
                                &path,
                                &part.schema(),
                                many_open(),
                            )?)
                        }
                    };
                    // Written through: a task has a writer per group, hundreds at 10M.
                    w.write_through(&part)?;
                }
            }
        }
        for w in writers.into_values() {
            w.finish()?;
        }
        Ok(pieces)
    }

    /// The rows of one batch by group, and each group's (scope, subscription, meter) triples.
    fn route_batch(
        &self,
        b: &RecordBatch,
        earlier: bool,
        n: u64,
        pieces: &mut BTreeMap<usize, Piece>,
    ) -> Result<BTreeMap<usize, Vec<u32>>> {
        let c = Cols(b);
        let (tenant, sub, meter) = (
            c.str(col::TENANT)?,
            c.str(col::SUBSCRIPTION)?,
            c.str(col::METER)?,
        );
        let date = c.date("usage_date")?;
        let mut rows: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        let mut last: Option<(usize, &str, &str, &str)> = None;
        for i in 0..b.num_rows() {
            if earlier && !self.reach.as_ref().is_some_and(|r| r.holds(date.value(i))) {
                continue;
            }
            let (t, s, m) = (tenant.value(i), sub.value(i), meter.value(i));
            if !self.owns_tenant(t) {
                continue;
            }
            let org = self.organization_or_tenant(t);
            let g = group_of(org, m, n);
            rows.entry(g).or_default().push(i as u32);
            // Rows come in (subscription, meter) blocks: record a triple when it changes.
            if !earlier && last != Some((g, t, s, m)) {
                let scope = match self.ctx.scope {
                    TierScope::Customer => t,
                    _ => org,
                };
                pieces.entry(g).or_default().triples.insert((
                    scope.to_string(),
                    s.to_string(),
                    m.to_string(),
                ));
                last = Some((g, t, s, m));
            }
        }
        Ok(rows)
    }

    /// Whether a group is rated as a stream: its ladders are blocks, with calendar-month
    /// tiers (billing-cycle ladders reach into the month before).
    fn streams(&self, group: &Group) -> bool {
        self.reach.is_none() && group.ladders_are_blocks()
    }

    /// Rate one group: as a stream when its ladders are blocks (calendar-month tiers),
    /// otherwise, or when the stream turns out not to be in staged order, in memory. Runs
    /// take the unit numbers `base..base + stride`.
    fn rate_group(&self, base: usize, stride: usize, group: &Group) -> Result<UnitOutput> {
        if self.streams(group) {
            if let Ok(out) = self.stream_group(base, stride - 1, group)? {
                remove(group);
                return Ok(out);
            }
        }
        let mut records = Vec::new();
        let mut earlier = Vec::new();
        for (paths, into) in [(&group.month, &mut records), (&group.earlier, &mut earlier)] {
            for p in paths {
                for b in scratch::read_file(p, READ_ROWS)? {
                    usage_from_batch(&b?, into)?;
                }
            }
        }
        remove(group);
        self.rate_loaded(base + stride - 1, records, earlier)
    }

    /// Rate a group whose ladders are blocks as a stream: its pieces, in routing order, are
    /// stretches of staged files, each in staged order. Where a stretch of another file
    /// starts (the order goes back), the runs are finished and new ones begun, so that every
    /// run stays in output order. At most `rolls` run sets; [`OutOfOrder`] (runs removed)
    /// when a ladder opens twice or a stretch is not sorted.
    fn stream_group(
        &self,
        base: usize,
        rolls: usize,
        group: &Group,
    ) -> Result<std::result::Result<UnitOutput, OutOfOrder>> {
        let Some(mut rater) = StreamRater::for_block_ladders(self.ctx, self.month) else {
            return Ok(Err(OutOfOrder));
        };
        let chunk_rows =
            scratch::size_override("CSPCOST_RATE_CHUNK_ROWS", CHUNK_ROWS as u64) as usize;
        let mut out = UnitOutput::default();
        let mut unit = base;
        let mut writers: BTreeMap<String, RunWriter> = BTreeMap::new();
        let give_up = |writers: BTreeMap<String, RunWriter>,
                       out: UnitOutput|
         -> Result<std::result::Result<UnitOutput, OutOfOrder>> {
            for w in writers.into_values() {
                w.discard();
            }
            for r in out.runs {
                let _ = std::fs::remove_file(&r.path);
            }
            Ok(Err(OutOfOrder))
        };
        let mut batches = Vec::new();
        for p in &group.month {
            batches.push(scratch::read_file(p, READ_ROWS)?);
        }
        let mut batches = batches.into_iter().flatten();
        let mut pending: Vec<UsageRecord> = Vec::new();
        let mut done = false;
        while !done || !pending.is_empty() {
            match batches.next().transpose()? {
                Some(b) => usage_from_batch(&b, &mut pending)?,
                None => done = true,
            }
            loop {
                let back = (0..pending.len()).find(|&i| {
                    if i == 0 {
                        !rater.follows(&pending[0])
                    } else {
                        !in_staged_order(&pending[i - 1], &pending[i])
                    }
                });
                let cut = match back {
                    Some(i) => i,
                    None if done => pending.len(),
                    None if pending.len() >= chunk_rows => chunk_cut(&pending),
                    None => 0,
                };
                if cut > 0 {
                    let rest = pending.split_off(cut);
                    let chunk = std::mem::replace(&mut pending, rest);
                    if self
                        .stream_chunk(&mut rater, &chunk, unit, &mut writers, &mut out)?
                        .is_err()
                    {
                        return give_up(writers, out);
                    }
                }
                if back.is_none() {
                    break;
                }
                if unit + 1 >= base + rolls {
                    return give_up(writers, out);
                }
                for (_, w) in std::mem::take(&mut writers) {
                    out.runs.push(w.finish()?);
                }
                unit += 1;
                rater.restart();
            }
        }
        for w in writers.into_values() {
            out.runs.push(w.finish()?);
        }
        Ok(Ok(out))
    }
}

impl MonthJob<'_> {
    /// Rate a large group whose ladders span blocks without holding it: split its rows into
    /// one scratch file per (scope, subscription, meter) block, then rate each ladder (on
    /// every core, a ladder per worker) as a stream merged from its blocks, each block's rows
    /// going to a run of their own (phase 2 opens such a run only when its turn comes). Runs
    /// take the unit numbers `base + block`. [`OutOfOrder`] (nothing kept) when a block is shared by
    /// two scopes, there are more than [`MERGE_BLOCKS`] blocks, or a block is not in staged
    /// order.
    fn merge_group(
        &self,
        base: usize,
        group: &Group,
    ) -> Result<std::result::Result<Vec<UnitOutput>, OutOfOrder>> {
        if !self.mergeable(group) {
            return Ok(Err(OutOfOrder));
        }
        let blocks = self.split_blocks(base, group)?;
        let mut ladders: BTreeMap<(&str, &str), Vec<&Block>> = BTreeMap::new();
        for b in &blocks {
            ladders.entry((&b.0 .0, &b.0 .2)).or_default().push(b);
        }
        let ladders: Vec<Vec<&Block>> = ladders.into_values().collect();
        let rated: Vec<std::result::Result<UnitOutput, OutOfOrder>> = ladders
            .par_iter()
            .with_max_len(1)
            .map(|blocks| self.merge_ladder(blocks))
            .collect::<Result<_>>()?;
        for (_, _, p) in &blocks {
            let _ = std::fs::remove_file(p);
        }
        if rated.iter().any(|r| r.is_err()) {
            for u in rated.into_iter().flatten() {
                for r in u.runs {
                    let _ = std::fs::remove_file(&r.path);
                }
            }
            return Ok(Err(OutOfOrder));
        }
        Ok(Ok(rated.into_iter().flatten().collect()))
    }

    /// Whether a group can be merged from its blocks: calendar-month tiers, at most
    /// [`MERGE_BLOCKS`] blocks, none shared by two scopes.
    fn mergeable(&self, group: &Group) -> bool {
        let mut owner: HashMap<(&str, &str), &str> = HashMap::new();
        let shared = group.triples.iter().any(|(scope, sub, meter)| {
            *owner.entry((sub, meter)).or_insert(scope) != scope.as_str()
        });
        self.reach.is_none() && !shared && group.triples.len() <= MERGE_BLOCKS
    }

    /// Copy a group's rows into one scratch file per block (each in its pieces' order), with
    /// the unit number of the block's run.
    fn split_blocks(&self, base: usize, group: &Group) -> Result<Vec<Block>> {
        let dir = self.tmp.join(format!("blocks-{base:08}"));
        std::fs::create_dir_all(&dir).map_err(|e| crate::error::Error::io(&dir, e))?;
        let mut writers: BTreeMap<Triple, (PathBuf, scratch::Writer)> = BTreeMap::new();
        for p in &group.month {
            for b in scratch::read_file(p, READ_ROWS)? {
                let b = b?;
                let c = Cols(&b);
                let (tenant, sub, meter) = (
                    c.str(col::TENANT)?,
                    c.str(col::SUBSCRIPTION)?,
                    c.str(col::METER)?,
                );
                let key = |i: usize| {
                    let t = tenant.value(i);
                    let scope = match self.ctx.scope {
                        TierScope::Customer => t,
                        _ => self.organization_or_tenant(t),
                    };
                    (scope, sub.value(i), meter.value(i))
                };
                let mut start = 0;
                while start < b.num_rows() {
                    let k = key(start);
                    let mut end = start + 1;
                    while end < b.num_rows() && key(end) == k {
                        end += 1;
                    }
                    let triple = (k.0.to_string(), k.1.to_string(), k.2.to_string());
                    if !writers.contains_key(&triple) {
                        let path = dir.join(format!("block-{:05}.arrow", writers.len()));
                        let w = scratch::Writer::create_with(&path, &b.schema(), many_open())?;
                        writers.insert(triple.clone(), (path, w));
                    }
                    let (_, w) = writers.get_mut(&triple).expect("inserted above");
                    // A copy: a slice would keep the whole batch alive in the writer.
                    let rows = UInt32Array::from_iter_values(start as u32..end as u32);
                    w.write(&arrow::compute::take_record_batch(&b, &rows)?)?;
                    start = end;
                }
            }
        }
        let mut blocks: Vec<(Triple, PathBuf)> = Vec::new();
        for (t, (path, w)) in writers {
            w.finish()?;
            blocks.push((t, path));
        }
        Ok(blocks
            .into_iter()
            .enumerate()
            .map(|(i, (t, path))| (t, base + i, path))
            .collect())
    }

    /// Rate one ladder as the merge of its blocks in rating.md §4's order, in chunks that end
    /// where the start time changes, each block's rows appended to its own run.
    fn merge_ladder(
        &self,
        blocks: &[&Block],
    ) -> Result<std::result::Result<UnitOutput, OutOfOrder>> {
        let Some(mut rater) = StreamRater::for_ladder(self.ctx, self.month) else {
            return Ok(Err(OutOfOrder));
        };
        let chunk_rows =
            scratch::size_override("CSPCOST_RATE_CHUNK_ROWS", CHUNK_ROWS as u64) as usize;
        let mut cursors: Vec<BlockCursor> = blocks
            .iter()
            .map(|(_, _, p)| BlockCursor::open(p))
            .collect::<Result<_>>()?;
        let unit_of: HashMap<&str, usize> =
            blocks.iter().map(|(t, u, _)| (t.1.as_str(), *u)).collect();
        let mut out = UnitOutput::default();
        let mut writers: BTreeMap<usize, RunWriter> = BTreeMap::new();
        let mut chunk: Vec<UsageRecord> = Vec::new();
        loop {
            let next = cursors
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.head().map(|h| (i, h)))
                .min_by(|a, b| crate::rate::engine::scope_order(a.1, b.1))
                .map(|(i, _)| i);
            let full = match (next, chunk.last()) {
                (None, _) => true,
                (Some(i), Some(last)) => {
                    chunk.len() >= chunk_rows
                        && cursors[i].head().map(|h| h.usage_start) != Some(last.usage_start)
                }
                (Some(_), None) => false,
            };
            if full && !chunk.is_empty() {
                let records = std::mem::take(&mut chunk);
                let mut by_block: BTreeMap<usize, Vec<RatedRow>> = BTreeMap::new();
                let rated = rate_counted(&mut rater, &records, &mut out)?;
                let placed = rated.is_ok_and(|rows| {
                    rows.into_iter().all(|row| {
                        let unit = unit_of.get(row.rec.subscription_id.as_str());
                        unit.map(|u| by_block.entry(*u).or_default().push(row))
                            .is_some()
                    })
                });
                if !placed {
                    for w in writers.into_values() {
                        w.discard();
                    }
                    return Ok(Err(OutOfOrder));
                }
                for (unit, mut rows) in by_block {
                    rows.sort_by(output_order);
                    let org = rows[0].org;
                    let w = match writers.entry(unit) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => e.insert(
                            RunWriter::create(&self.run_path(unit, &org.id), org, self.month)?,
                        ),
                    };
                    for c in rows.chunks(64 * 1024) {
                        w.append(&usage_batch(&self.header(org), c, self.run_id)?)?;
                    }
                }
            }
            match next {
                Some(i) => chunk.extend(cursors[i].pop()?),
                None => break,
            }
        }
        out.runs = writers
            .into_values()
            .map(RunWriter::finish)
            .collect::<Result<_>>()?;
        Ok(Ok(out))
    }
}

/// One block's records, read back a batch at a time.
struct BlockCursor {
    batches: crate::store::BatchStream,
    head: std::collections::VecDeque<UsageRecord>,
}

impl BlockCursor {
    fn open(path: &std::path::Path) -> Result<BlockCursor> {
        let mut c = BlockCursor {
            batches: scratch::read_file(path, 1024)?,
            head: Default::default(),
        };
        c.fill()?;
        Ok(c)
    }

    fn fill(&mut self) -> Result<()> {
        if self.head.is_empty() {
            if let Some(b) = self.batches.next().transpose()? {
                let mut v = Vec::new();
                usage_from_batch(&b, &mut v)?;
                self.head.extend(v);
            }
        }
        Ok(())
    }

    fn head(&self) -> Option<&UsageRecord> {
        self.head.front()
    }

    fn pop(&mut self) -> Result<Option<UsageRecord>> {
        let r = self.head.pop_front();
        self.fill()?;
        Ok(r)
    }
}

/// Remove a group's pieces once it is rated (the scratch directory goes at the end anyway;
/// this keeps the disk used to about one copy of the month).
fn remove(group: &Group) {
    for p in group.month.iter().chain(&group.earlier) {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(file: &str, rows: Range<u64>) -> Source {
        Source {
            file: file.into(),
            rows,
            earlier: false,
        }
    }

    #[test]
    fn tasks_cut_stretches_at_the_row_limit_and_keep_their_order() {
        let tasks = pack(vec![src("a", 0..5), src("b", 0..2), src("c", 0..9)], 4);
        let got: Vec<Vec<(String, Range<u64>)>> = tasks
            .iter()
            .map(|t| t.iter().map(|s| (s.file.clone(), s.rows.clone())).collect())
            .collect();
        let want = vec![
            vec![("a".to_string(), 0..4)],
            vec![
                ("a".to_string(), 4..5),
                ("b".to_string(), 0..2),
                ("c".to_string(), 0..1),
            ],
            vec![("c".to_string(), 1..5)],
            vec![("c".to_string(), 5..9)],
        ];
        assert_eq!(got, want);
        assert!(pack(vec![src("a", 0..0)], 4).is_empty());
    }

    #[test]
    fn ladders_are_blocks_only_when_scopes_and_subscriptions_pair_one_to_one() {
        let group = |t: &[(&str, &str, &str)]| Group {
            triples: t
                .iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
                .collect(),
            ..Group::default()
        };
        assert!(
            group(&[("t1", "s1", "m1"), ("t1", "s1", "m2"), ("t2", "s2", "m1")])
                .ladders_are_blocks()
        );
        // One customer, two subscriptions on one meter: the ladder spans two blocks.
        assert!(!group(&[("t1", "s1", "m1"), ("t1", "s2", "m1")]).ladders_are_blocks());
        // One subscription under two tenants: its block holds two ladders.
        assert!(!group(&[("t1", "s1", "m1"), ("t2", "s1", "m1")]).ladders_are_blocks());
        // Two subscriptions of one customer on different meters are separate ladders.
        assert!(group(&[("t1", "s1", "m1"), ("t1", "s2", "m2")]).ladders_are_blocks());
    }
}

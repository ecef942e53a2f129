//! The lake's compressed copies of the utilization files `ingest usage` read, which hold the
//! original text of most staged records: `staged/sources/run=<run_id>/part-<NNNNN>.zst`.
//!
//! A record's text is kept so that a quarantine (a duplicate at ingest, a record `rate`
//! cannot price) shows it. Copied into every staged row, it was nine tenths of the staged
//! bytes (5.8 GB at 10 M records) and about a third of ingest's CPU: copied into the spill,
//! compressed, written, read back, decompressed and compressed again into Parquet. Where the
//! text is its file's bytes at an offset (an uncompressed JSON page or NDJSON file read
//! whole), the staged row holds a [`RawRef`] instead and `raw` is empty.
//!
//! An archive is the run's input files in path order, each a zstd frame (with its checksum)
//! of the file's bytes as they are on disk, cut into archives of about [`ARCHIVE_BYTES`]; a
//! reference's offset counts in the archive's decompressed bytes. The layout depends only on
//! the files and their order, not on threads. Archives are published before any staged
//! partition that refers to them, so a crash leaves at worst an archive nothing refers to.

use crate::error::{Error, Result};
use crate::model::usage::RawRef;
use crate::store::Lake;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Decompressed bytes after which an archive is closed (the next file starts a new one):
/// 88 archives for a 10 M month of 5.6 GB of pages, instead of one file (and one sync, or
/// one PUT) per page.
pub const ARCHIVE_BYTES: u64 = 64 << 20;

/// zstd level of the copies. On the generated pages, `zstd -1` makes 2.6 % of their size and
/// `--fast=1` (level -1) 3.5 % in about half the time; the copies are read only for
/// quarantined records, so speed wins.
const LEVEL: i32 = -1;

/// Lake-relative path of archive `n` of run `run_id`.
pub fn archive_path(run_id: &str, n: u32) -> String {
    format!("staged/sources/run={run_id}/part-{n:05}.zst")
}

/// One file's bytes as a frame of an archive.
pub fn compress_member(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut enc = zstd::bulk::Compressor::new(LEVEL).map_err(|e| zstd_error("compressor", e))?;
    enc.include_checksum(true)
        .map_err(|e| zstd_error("compressor", e))?;
    enc.compress(bytes)
        .map_err(|e| zstd_error("compressing", e))
}

fn zstd_error(what: &str, e: std::io::Error) -> Error {
    Error::io(PathBuf::from(format!("zstd {what}")), e)
}

/// Where a file goes in the run's archives: the archive, and the offset of its first byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Lake-relative path of the archive.
    pub archive: Arc<str>,
    /// Offset of the file's first byte in the decompressed archive.
    pub base: u64,
}

impl Placement {
    /// The offset in the decompressed archive of byte `offset` of the file.
    pub fn offset(&self, offset: u64) -> i64 {
        (self.base + offset) as i64
    }

    /// The reference to `length` bytes at `offset` of the file.
    pub fn at(&self, offset: u64, length: usize) -> RawRef {
        RawRef {
            source: self.archive.to_string(),
            offset: self.offset(offset),
            length: length as i64,
        }
    }
}

/// The archives of one run, written as files are parsed: files are placed in path order
/// ([`Archives::place`]) before they are parsed, and their frames appended in the same order
/// ([`Archives::append`]).
pub struct Archives<'a> {
    lake: &'a Lake,
    run_id: String,
    /// Number of the archive being planned, and its decompressed bytes so far.
    planned: u32,
    planned_bytes: u64,
    /// The archive being written: its placement, staging file and decompressed bytes.
    open: Option<(Arc<str>, PathBuf, std::io::BufWriter<std::fs::File>, u64)>,
}

impl<'a> Archives<'a> {
    /// The archives of run `run_id`, none written yet.
    pub fn new(lake: &'a Lake, run_id: &str) -> Archives<'a> {
        Archives {
            lake,
            run_id: run_id.to_string(),
            planned: 0,
            planned_bytes: 0,
            open: None,
        }
    }

    /// Where the next file, of `len` bytes, goes.
    pub fn place(&mut self, len: u64) -> Placement {
        if self.planned_bytes > 0 && self.planned_bytes + len > ARCHIVE_BYTES {
            self.planned += 1;
            self.planned_bytes = 0;
        }
        let p = Placement {
            archive: archive_path(&self.run_id, self.planned).into(),
            base: self.planned_bytes,
        };
        self.planned_bytes += len;
        p
    }

    /// Append the frame of the file placed at `p` (`len` bytes decompressed), in the order
    /// the files were placed; a new archive publishes the one before it.
    pub fn append(&mut self, p: &Placement, frame: &[u8], len: u64) -> Result<()> {
        if self.open.as_ref().map(|o| &o.0) != Some(&p.archive) {
            self.publish_open()?;
            let tmp = self.lake.staging_file(&p.archive)?;
            let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            self.open = Some((p.archive.clone(), tmp, std::io::BufWriter::new(file), 0));
        }
        let (archive, tmp, w, written) = self.open.as_mut().expect("opened above");
        if *written != p.base {
            return Err(Error::Unbalanced {
                stage: "ingest usage".into(),
                detail: format!(
                    "{archive}: a file placed at byte {} was appended at byte {written}",
                    p.base
                ),
            });
        }
        w.write_all(frame).map_err(|e| Error::io(&*tmp, e))?;
        *written += len;
        Ok(())
    }

    /// Publish the last archive.
    pub fn finish(mut self) -> Result<()> {
        self.publish_open()
    }

    fn publish_open(&mut self) -> Result<()> {
        let Some((archive, tmp, w, _)) = self.open.take() else {
            return Ok(());
        };
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        if !self.lake.is_remote() {
            file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        }
        drop(file);
        self.lake.publish(&archive, &tmp)
    }
}

/// Each record's text, in order: `raw` where it holds it, else read back from where the
/// reference says ([`read_texts`]).
pub fn texts_of(lake: &Lake, rows: &[(&str, Option<&RawRef>)]) -> Result<Vec<String>> {
    let refs: Vec<&RawRef> = rows.iter().filter_map(|(_, r)| *r).collect();
    let mut read = read_texts(lake, &refs)?.into_iter();
    Ok(rows
        .iter()
        .map(|(raw, r)| match r {
            Some(_) => read.next().unwrap_or_default(),
            None => raw.to_string(),
        })
        .collect())
}

/// The texts `refs` point to, in their order. Each archive is read once, streaming, however
/// many texts it holds; a missing archive, a text past its end or not a JSON object is an
/// error naming the archive (the lake was changed by hand).
pub fn read_texts(lake: &Lake, refs: &[&RawRef]) -> Result<Vec<String>> {
    // Each text once (a record can be quarantined in more than one place), in archive and
    // offset order.
    let mut texts: BTreeMap<(&str, i64, i64), String> = refs
        .iter()
        .map(|r| ((r.source.as_str(), r.offset, r.length), String::new()))
        .collect();
    let wanted: Vec<(&str, i64, i64)> = texts.keys().copied().collect();
    let mut keys = wanted.into_iter().peekable();
    while let Some(&(archive, ..)) = keys.peek() {
        let bad = |detail: String| Error::InputFormat {
            path: lake.path(archive).display().to_string(),
            expected: format!("a source archive this lake's staged usage refers to; {detail}"),
        };
        let bytes = lake
            .get_bytes(archive)?
            .ok_or_else(|| bad("it is missing".into()))?;
        let mut dec = zstd::stream::read::Decoder::new(&bytes[..])
            .map_err(|e| bad(format!("it does not decompress: {e}")))?;
        let mut pos = 0u64;
        while let Some(key) = keys.next_if(|k| k.0 == archive) {
            let (offset, length) = (key.1.max(0) as u64, key.2.max(0) as u64);
            let end = offset + length;
            if offset < pos {
                return Err(bad(format!("bytes {offset}..{end} overlap another text")));
            }
            std::io::copy(&mut (&mut dec).take(offset - pos), &mut std::io::sink())
                .map_err(|e| bad(format!("it does not decompress: {e}")))?;
            let mut text = Vec::with_capacity(length as usize);
            (&mut dec)
                .take(length)
                .read_to_end(&mut text)
                .map_err(|e| bad(format!("it does not decompress: {e}")))?;
            if text.len() as u64 != length {
                return Err(bad(format!("it ends before bytes {offset}..{end}")));
            }
            pos = end;
            let text = String::from_utf8(text)
                .ok()
                .filter(|t| t.starts_with('{') && t.ends_with('}'))
                .ok_or_else(|| bad(format!("bytes {offset}..{end} are not a JSON object")))?;
            texts.insert(key, text);
        }
    }
    Ok(refs
        .iter()
        .map(|r| texts[&(r.source.as_str(), r.offset, r.length)].clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake() -> (tempfile::TempDir, Lake) {
        let root = tempfile::tempdir().unwrap();
        let lake = Lake::open(&root.path().display().to_string()).unwrap();
        (root, lake)
    }

    #[test]
    fn files_are_placed_in_order_and_an_archive_closes_past_its_size() {
        let (_root, lake) = lake();
        let mut a = Archives::new(&lake, "r1");
        let first = archive_path("r1", 0);
        assert_eq!(a.place(10).archive.as_ref(), first);
        assert_eq!(a.place(ARCHIVE_BYTES - 10).base, 10);
        // Full: the next file starts archive 1, however small.
        let p = a.place(1);
        assert_eq!(
            (p.archive.as_ref(), p.base),
            (archive_path("r1", 1).as_str(), 0)
        );
        // A file larger than an archive is an archive of its own.
        let (mut b, big) = (Archives::new(&lake, "r2"), ARCHIVE_BYTES * 2);
        assert_eq!(b.place(big).base, 0);
        assert_eq!(b.place(1).archive.as_ref(), archive_path("r2", 1));
        assert_eq!(first, "staged/sources/run=r1/part-00000.zst");
    }

    #[test]
    fn texts_read_back_equal_the_bytes_appended() {
        let (root, lake) = lake();
        let files: [&[u8]; 2] = [
            br#"{"items":[{"a":1},{"b":"x\u00e9"}]}"#,
            b"{\"c\":3}\n{\"d\":4}\n",
        ];
        let mut a = Archives::new(&lake, "r");
        let placed: Vec<Placement> = files.iter().map(|f| a.place(f.len() as u64)).collect();
        for (p, f) in placed.iter().zip(files) {
            a.append(p, &compress_member(f).unwrap(), f.len() as u64)
                .unwrap();
        }
        a.finish().unwrap();
        assert!(root.path().join(archive_path("r", 0)).is_file());
        assert!(!root.path().join(archive_path("r", 1)).exists());
        let refs = [
            placed[1].at(8, 7),
            placed[0].at(10, 7),
            placed[0].at(18, 15),
            placed[1].at(0, 7),
            placed[0].at(10, 7),
        ];
        let texts = read_texts(&lake, &refs.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(
            texts,
            [
                r#"{"d":4}"#,
                r#"{"a":1}"#,
                r#"{"b":"x\u00e9"}"#,
                r#"{"c":3}"#,
                r#"{"a":1}"#
            ]
        );
        // Carried texts as they are, referred ones read back, in order.
        let mixed = texts_of(&lake, &[("{\"x\":1}", None), ("", Some(&refs[1]))]).unwrap();
        assert_eq!(mixed, [r#"{"x":1}"#, r#"{"a":1}"#]);
        // Not a JSON object there, past the end, the archive gone: errors naming it.
        let err = |r: RawRef| read_texts(&lake, &[&r]).unwrap_err().to_string();
        assert!(err(placed[0].at(9, 8)).contains("bytes 9..17 are not a JSON object"));
        assert!(err(placed[1].at(8, 100)).contains("it ends before bytes"));
        std::fs::remove_file(root.path().join(archive_path("r", 0))).unwrap();
        let e = err(placed[0].at(10, 7));
        assert!(
            e.contains("part-00000.zst") && e.contains("it is missing"),
            "{e}"
        );
    }

    #[test]
    fn a_frame_appended_out_of_place_is_refused() {
        let (_root, lake) = lake();
        let mut a = Archives::new(&lake, "r");
        let (p0, p1) = (a.place(5), a.place(5));
        let frame = compress_member(b"{\"\":}").unwrap();
        let e = a.append(&p1, &frame, 5).unwrap_err().to_string();
        assert!(e.contains("placed at byte 5 was appended at byte 0"), "{e}");
        a.append(&p0, &frame, 5).unwrap();
    }
}

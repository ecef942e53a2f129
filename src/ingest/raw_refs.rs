//! A record's `raw` text by reference through the spill. The text of a record of an
//! uncompressed JSON file is where the file holds it, byte for byte: the spill carries where
//! (file, offset, length) instead of a copy, and the merge reads the text back from the file
//! when it builds the partition. At 10 M records the raw text is 5.8 GB, nine tenths of the
//! spill's bytes: each of them was copied into the spill's batches, compressed, written,
//! read back and decompressed.
//!
//! A reference is made only where the file's bytes (those hashed for the ledger) equal the
//! record's text at that offset; anything else (gzip, CSV rows, lossy text, a file streamed
//! because it is too large to hold) keeps its text in the spill. The file must not change
//! between the two phases: the merge checks its size, modification time and inode, and that
//! each text read back is a JSON object, and fails naming the file if not.

use crate::error::{Error, Result};
use crate::model::usage::usage_schema;
use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type, UInt64Type};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Columns the spill adds to the staged usage schema: the input file (its index in the run's
/// file list; null when `raw` holds the text), the text's byte offset and its length.
const FILE: &str = "raw_file";
const OFFSET: &str = "raw_offset";
const LEN: &str = "raw_len";

/// Gap between two texts of one file read back by one read: what lies between two records
/// of a page is a comma, or the records of other partitions.
const READ_GAP: u64 = 64 << 10;
/// Largest single read.
const READ_MAX: u64 = 16 << 20;

/// Whether texts may be referenced: `CSPCOST_INGEST_RAW_REFS=0` carries every text in the
/// spill (inputs on a file system slow to read twice; tests that compare both ways).
pub fn enabled() -> bool {
    std::env::var("CSPCOST_INGEST_RAW_REFS").map_or(true, |v| v.trim() != "0")
}

/// Schema of spill batches: [`usage_schema`] and the three reference columns.
pub fn spill_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let mut fields: Vec<Arc<Field>> = usage_schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(FILE, DataType::UInt32, true)));
        fields.push(Arc::new(Field::new(OFFSET, DataType::UInt64, true)));
        fields.push(Arc::new(Field::new(LEN, DataType::UInt32, true)));
        Arc::new(Schema::new(fields))
    })
    .clone()
}

/// Where a record's text is: input file (index in the run's list) and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawAt {
    /// Index of the file in the run's file list.
    pub file: u32,
    /// Byte offset of the text in the file.
    pub offset: u64,
}

/// Finds each record's text in the bytes of its file, in record order (records of a file are
/// handed on in the order the file holds them).
pub struct Locator<'a> {
    content: &'a [u8],
    file: u32,
    cursor: usize,
}

impl<'a> Locator<'a> {
    /// A locator over the bytes of file `file` as they are on disk (not decompressed).
    pub fn new(content: &'a [u8], file: u32) -> Locator<'a> {
        Locator {
            content,
            file,
            cursor: 0,
        }
    }

    /// Where `text` is, at or after the previous text found; `None` (the text is carried)
    /// when the file does not hold it there byte for byte. After a miss the locator stops,
    /// so that a file whose texts are not its bytes costs one search, not one per record.
    pub fn locate(&mut self, text: &str) -> Option<RawAt> {
        let needle = text.as_bytes();
        let hay = self.content.get(self.cursor..)?;
        // Usually the text starts at the next `{`, after a comma or a line ending.
        let at = match memchr::memchr(b'{', hay) {
            Some(p) if hay[p..].starts_with(needle) => Some(p),
            _ => memchr::memmem::find(hay, needle),
        };
        let Some(p) = at.filter(|_| !needle.is_empty()) else {
            self.cursor = self.content.len() + 1;
            return None;
        };
        let offset = self.cursor + p;
        self.cursor = offset + needle.len();
        Some(RawAt {
            file: self.file,
            offset: offset as u64,
        })
    }
}

/// Bytes of the texts a spill batch carries by reference (what the batch will hold once
/// resolved, beyond its own buffers).
pub fn referenced_bytes(batch: &RecordBatch) -> u64 {
    let Some(len) = batch.column_by_name(LEN) else {
        return 0;
    };
    let len = len.as_primitive::<UInt32Type>();
    len.iter().flatten().map(u64::from).sum()
}

/// An input file whose texts the spill references, as it was when it was read.
#[derive(Clone, Debug)]
struct Seen {
    path: PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
    ino: u64,
}

fn identity(m: &std::fs::Metadata) -> (u64, Option<std::time::SystemTime>, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.len(), m.modified().ok(), m.ino())
}

/// The run's input files, by index, for reading texts back.
#[derive(Debug, Default)]
pub struct RawFiles {
    files: Vec<Option<Seen>>,
}

impl RawFiles {
    /// Record file `index` as it is now (before it is read): the merge refuses it if it
    /// changes after this.
    pub fn record(&mut self, index: usize, path: &Path, meta: &std::fs::Metadata) {
        if self.files.len() <= index {
            self.files.resize(index + 1, None);
        }
        let (len, modified, ino) = identity(meta);
        self.files[index] = Some(Seen {
            path: path.to_path_buf(),
            len,
            modified,
            ino,
        });
    }

    /// A spill batch as a batch of [`usage_schema`], every text in `raw`.
    pub fn resolve(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let n = usage_schema().fields().len();
        let mut columns: Vec<ArrayRef> = batch.columns()[..n].to_vec();
        let file = batch.column(n).as_primitive::<UInt32Type>();
        if file.null_count() < file.len() {
            let raw = columns[n - 1].as_string::<i32>().clone();
            let offset = batch.column(n + 1).as_primitive::<UInt64Type>();
            let len = batch.column(n + 2).as_primitive::<UInt32Type>();
            columns[n - 1] = Arc::new(self.texts(&raw, file, offset, len)?);
        }
        Ok(RecordBatch::try_new(usage_schema(), columns)?)
    }

    /// The `raw` column with every referenced text read back, a run of nearby texts of one
    /// file by one read.
    fn texts(
        &self,
        raw: &StringArray,
        file: &UInt32Array,
        offset: &UInt64Array,
        len: &UInt32Array,
    ) -> Result<StringArray> {
        let rows = raw.len();
        let bytes =
            raw.value_data().len() as u64 + len.iter().flatten().map(u64::from).sum::<u64>();
        let mut out = StringBuilder::with_capacity(rows, bytes as usize);
        let mut open: Option<(u32, File)> = None;
        let mut buf = Vec::new();
        let mut i = 0;
        while i < rows {
            if file.is_null(i) {
                out.append_value(raw.value(i));
                i += 1;
                continue;
            }
            let f = file.value(i);
            let start = offset.value(i);
            let mut end = start + u64::from(len.value(i));
            let mut j = i + 1;
            while j < rows && file.is_valid(j) && file.value(j) == f {
                let (o, l) = (offset.value(j), u64::from(len.value(j)));
                if o < end || o - end > READ_GAP || o + l - start > READ_MAX {
                    break;
                }
                end = o + l;
                j += 1;
            }
            let handle = match open.take() {
                Some((g, h)) if g == f => h,
                _ => self.open(f)?,
            };
            let seen = self.seen(f)?;
            read_span(&handle, start, end, &mut buf).map_err(|e| {
                changed(
                    &seen.path,
                    &format!("reading bytes {start} to {end} failed: {e}"),
                )
            })?;
            for k in i..j {
                let at = (offset.value(k) - start) as usize;
                let slice = &buf[at..at + len.value(k) as usize];
                let text = std::str::from_utf8(slice)
                    .ok()
                    .filter(|t| t.starts_with('{') && t.ends_with('}'))
                    .ok_or_else(|| {
                        changed(
                            &seen.path,
                            &format!(
                                "the record at byte {} is no longer the JSON object read",
                                offset.value(k)
                            ),
                        )
                    })?;
                out.append_value(text);
            }
            open = Some((f, handle));
            i = j;
        }
        Ok(out.finish())
    }

    fn seen(&self, f: u32) -> Result<&Seen> {
        self.files
            .get(f as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                Error::Invariant(format!(
                    "the spill references input file {f}, which the run did not record"
                ))
            })
    }

    /// Open file `f`, refusing it if it is not as it was read.
    fn open(&self, f: u32) -> Result<File> {
        let seen = self.seen(f)?;
        let handle = File::open(&seen.path).map_err(|e| Error::io(&seen.path, e))?;
        let meta = handle.metadata().map_err(|e| Error::io(&seen.path, e))?;
        if identity(&meta) != (seen.len, seen.modified, seen.ino) {
            return Err(changed(
                &seen.path,
                "its size, modification time or inode differ from when it was read",
            ));
        }
        Ok(handle)
    }
}

/// Bytes `start..end` of `file` into `buf` (replacing what it held). `read_to_end` fills the
/// buffer's spare capacity without zeroing it first, as `resize` + `read_exact_at` would.
fn read_span(mut file: &File, start: u64, end: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    buf.clear();
    buf.reserve_exact((end - start) as usize);
    file.seek(SeekFrom::Start(start))?;
    file.take(end - start).read_to_end(buf)?;
    if buf.len() as u64 != end - start {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "the file ends {} bytes short",
                end - start - buf.len() as u64
            ),
        ));
    }
    Ok(())
}

/// The error of an input file that changed between the parse and the merge of a run.
fn changed(path: &Path, why: &str) -> Error {
    Error::BadInput {
        problems: vec![format!(
            "{} changed while it was being ingested ({why}); it must not change until `ingest usage` ends: run it again",
            path.display()
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_finds_texts_in_order_and_stops_at_a_miss() {
        let page = br#"{"totalCount":2,"items":[{"a":1}, {"a":2},{"a":1}]}"#;
        let mut l = Locator::new(page, 7);
        assert_eq!(
            l.locate(r#"{"a":1}"#),
            Some(RawAt {
                file: 7,
                offset: 25
            })
        );
        assert_eq!(
            l.locate(r#"{"a":2}"#),
            Some(RawAt {
                file: 7,
                offset: 34
            })
        );
        // The same text again is found after the last one, not at its first place.
        assert_eq!(
            l.locate(r#"{"a":1}"#),
            Some(RawAt {
                file: 7,
                offset: 42
            })
        );
        assert_eq!(l.locate(r#"{"a":3}"#), None);
        // Stopped: even a text that is there is carried from now on.
        let mut l = Locator::new(page, 0);
        assert_eq!(l.locate(r#"{"b":1}"#), None);
        assert_eq!(l.locate(r#"{"a":1}"#), None);
    }

    /// A spill batch of `texts`, each `(Some((file, offset)), text)` by reference or
    /// `(None, text)` carried.
    fn spill_batch(texts: &[(Option<(u32, u64)>, &str)]) -> RecordBatch {
        let mut b = crate::ingest::usage_rows::UsageBuilder::default();
        for (i, (at, text)) in texts.iter().enumerate() {
            let row = crate::ingest::usage_rows::tests::row(i as i64, Some("Hours"));
            let row = crate::ingest::usage_rows::UsageRow {
                raw: (*text).into(),
                ..row
            };
            let at = at.map(|(file, offset)| RawAt { file, offset });
            b.push(&row, at).unwrap();
        }
        b.finish().unwrap()
    }

    fn raw_of(b: &RecordBatch) -> Vec<String> {
        let raw = b.column_by_name("raw").unwrap().as_string::<i32>();
        raw.iter().map(|v| v.unwrap().to_string()).collect()
    }

    #[test]
    fn texts_are_read_back_from_their_files_and_carried_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        let far = format!(
            r#"[{{"x":1}},{}{{"far":1}}]"#,
            " ".repeat(READ_GAP as usize + 10)
        );
        std::fs::write(&a, &far).unwrap();
        std::fs::write(&b, r#"{"items":[{"b":2}]}"#).unwrap();
        let mut files = RawFiles::default();
        files.record(0, &a, &std::fs::metadata(&a).unwrap());
        files.record(3, &b, &std::fs::metadata(&b).unwrap());
        let far_at = far.find(r#"{"far""#).unwrap() as u64;
        let batch = spill_batch(&[
            (Some((0, 1)), r#"{"x":1}"#),
            (None, "a,b,carried"),
            (Some((3, 10)), r#"{"b":2}"#),
            (Some((0, 1)), r#"{"x":1}"#),
            (Some((0, far_at)), r#"{"far":1}"#),
        ]);
        assert_eq!(referenced_bytes(&batch), 7 + 7 + 7 + 9);
        let out = files.resolve(batch).unwrap();
        assert_eq!(out.schema(), usage_schema());
        assert_eq!(
            raw_of(&out),
            [
                r#"{"x":1}"#,
                "a,b,carried",
                r#"{"b":2}"#,
                r#"{"x":1}"#,
                r#"{"far":1}"#
            ]
        );
    }

    #[test]
    fn a_file_changed_after_it_was_read_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("page.json");
        std::fs::write(&a, r#"{"items":[{"q":1}]}"#).unwrap();
        let mut files = RawFiles::default();
        files.record(0, &a, &std::fs::metadata(&a).unwrap());
        std::fs::write(&a, r#"{"items":[{"q":2}, {"q":3}]}"#).unwrap();
        let e = files
            .resolve(spill_batch(&[(Some((0, 10)), r#"{"q":1}"#)]))
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("page.json changed while it was being ingested"),
            "{msg}"
        );
        // A change that size, time and inode do not show (here: recorded after it) is caught
        // by the text read back.
        std::fs::write(&a, r#"{"items":["q",1]}"#).unwrap();
        let files = {
            let mut f = RawFiles::default();
            f.record(0, &a, &std::fs::metadata(&a).unwrap());
            f
        };
        let e = files
            .resolve(spill_batch(&[(Some((0, 10)), r#"{"q":1}"#)]))
            .unwrap_err();
        assert!(
            e.to_string().contains("is no longer the JSON object read"),
            "{e}"
        );
        std::fs::remove_file(&a).unwrap();
        let e = files
            .resolve(spill_batch(&[(Some((0, 10)), r#"{"q":1}"#)]))
            .unwrap_err();
        assert!(e.to_string().contains("page.json"), "{e}");
    }
}

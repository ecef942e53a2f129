//! The lake: where staged tables, cost partitions, quarantine and manifests live.
//! Every file is written under a temporary name and made visible with one rename, so a
//! crash leaves the previous version intact (outputs.md, writing rules).

use crate::error::{Error, Result};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// A lake rooted in a local directory (`DIR` or `file://DIR`).
#[derive(Clone, Debug)]
pub struct Lake {
    root: PathBuf,
}

impl Lake {
    /// Open (and create) a lake. Object-store URLs are recognised and refused with a clear
    /// message until the object-store backend lands.
    pub fn open(location: &str) -> Result<Lake> {
        let root = if let Some(p) = location.strip_prefix("file://") {
            PathBuf::from(p)
        } else if let Some((scheme, _)) = location.split_once("://") {
            return Err(Error::config(format!(
                "--lake {location}: the {scheme}:// object-store backend is not available in this build; use a local directory or file:// URL"
            )));
        } else {
            PathBuf::from(location)
        };
        fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        Ok(Lake { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute path of a lake-relative path.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Whether a lake-relative file exists.
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Names inside a lake-relative directory, sorted; empty when it does not exist.
    pub fn list_dir(&self, rel: &str) -> Result<Vec<String>> {
        let dir = self.path(rel);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Delete a lake-relative file if present, then its directory if that became empty.
    pub fn remove_file(&self, rel: &str) -> Result<()> {
        let p = self.path(rel);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(p, e)),
        }
        if let Some(parent) = p.parent() {
            if fs::read_dir(parent)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
            {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }

    /// Write bytes atomically (temp file, fsync, rename).
    pub fn put_atomic(&self, rel: &str, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
        let dest = self.path(rel);
        let dir = dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let result = write(&mut file).and_then(|_| file.sync_all().map_err(|e| Error::io(&tmp, e)));
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        crate::faults::maybe_crash("before-rename");
        fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Write a JSON document atomically.
    pub fn put_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<()> {
        let text = serde_json::to_vec_pretty(value).map_err(|e| Error::Json {
            path: rel.to_string(),
            source: e,
        })?;
        self.put_atomic(rel, |f| {
            f.write_all(&text).map_err(|e| Error::io(self.path(rel), e))
        })
    }

    /// Read a JSON document; `None` when the file does not exist.
    pub fn get_json<T: DeserializeOwned>(&self, rel: &str) -> Result<Option<T>> {
        let p = self.path(rel);
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(p, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Json {
                path: p.display().to_string(),
                source: e,
            })
    }

    /// Write batches as one zstd Parquet file, atomically, with key-value metadata.
    pub fn put_parquet(
        &self,
        rel: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
        metadata: Vec<(String, String)>,
    ) -> Result<()> {
        let perr = |e| Error::Parquet {
            path: rel.to_string(),
            source: e,
        };
        self.put_atomic(rel, |file| {
            let kv: Vec<KeyValue> = metadata
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect();
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(perr)?))
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .set_key_value_metadata(Some(kv))
                .build();
            let mut writer = ArrowWriter::try_new(
                file.try_clone().map_err(|e| Error::io(self.path(rel), e))?,
                schema,
                Some(props),
            )
            .map_err(perr)?;
            for b in batches {
                writer.write(b).map_err(perr)?;
            }
            writer.close().map_err(perr)?;
            Ok(())
        })
    }

    /// Read a whole Parquet file; `None` when it does not exist.
    pub fn get_parquet(&self, rel: &str) -> Result<Option<Vec<RecordBatch>>> {
        self.read_parquet(rel, None)
    }

    /// Read only the named columns of a Parquet file (the others are never decoded);
    /// `None` when the file does not exist. A missing name is simply not returned: callers
    /// read columns through [`crate::model::schema::Cols`], which names what is missing.
    pub fn get_parquet_columns(
        &self,
        rel: &str,
        columns: &[&str],
    ) -> Result<Option<Vec<RecordBatch>>> {
        self.read_parquet(rel, Some(columns))
    }

    fn read_parquet(
        &self,
        rel: &str,
        columns: Option<&[&str]>,
    ) -> Result<Option<Vec<RecordBatch>>> {
        let p = self.path(rel);
        let file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(p, e)),
        };
        let perr = |e| Error::Parquet {
            path: p.display().to_string(),
            source: e,
        };
        let mut builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
        if let Some(columns) = columns {
            let mask = parquet::arrow::ProjectionMask::columns(
                builder.parquet_schema(),
                columns.iter().copied(),
            );
            builder = builder.with_projection(mask);
        }
        let reader = builder.with_batch_size(64 * 1024).build().map_err(perr)?;
        let mut out = Vec::new();
        for b in reader {
            out.push(b?);
        }
        Ok(Some(out))
    }

    /// Key-value metadata of a Parquet file; `None` when it does not exist.
    pub fn parquet_metadata(&self, rel: &str) -> Result<Option<Vec<(String, String)>>> {
        let p = self.path(rel);
        let file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(p, e)),
        };
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::Parquet {
                path: p.display().to_string(),
                source: e,
            })?;
        let kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        Ok(Some(
            kv.into_iter()
                .map(|k| (k.key, k.value.unwrap_or_default()))
                .collect(),
        ))
    }

    /// SHA-256 of a lake-relative file (hex); `None` when absent.
    pub fn sha256(&self, rel: &str) -> Result<Option<String>> {
        let p = self.path(rel);
        if !p.exists() {
            return Ok(None);
        }
        sha256_file(&p).map(|(h, _)| Some(h))
    }
}

/// SHA-256 (hex) and byte size of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex::encode(h.finalize()), n))
}

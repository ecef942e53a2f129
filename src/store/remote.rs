//! The object-store side of the lake: a thin synchronous extension over `object_store` for
//! Azure Blob/ADLS (`az://`, `abfs://`), S3 (`s3://`) and Google Cloud Storage (`gs://`).
//!
//! Credentials come only from the environment, through each builder's `from_env()` (the
//! variables are listed in docs/operations.md); they are never printed. Every call blocks on
//! a small Tokio runtime owned by the lake, so callers stay synchronous and async code stays
//! in `store/`. A PUT is atomic per object, so publishing a file is one PUT of a finished
//! local file (a multipart upload, committed once, above [`MULTIPART_THRESHOLD`]).

use crate::error::{Error, Result};
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutMode, PutOptions, PutPayload, UpdateVersion,
    WriteMultipart,
};
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// Files up to this size are published with one PUT; larger ones with a multipart upload
/// (read from disk part by part, visible only when the upload completes). The environment
/// variable `CSPCOST_MULTIPART_THRESHOLD` (bytes) overrides it.
pub const MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;
/// Size of one part of a multipart upload.
const PART_BYTES: usize = 16 * 1024 * 1024;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// An object-store location opened as a lake.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The location without query string or user info, for messages.
    display: String,
    runtime: tokio::runtime::Runtime,
    multipart_threshold: u64,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the store itself: its configuration holds credentials.
        f.debug_struct("Remote")
            .field("location", &self.display)
            .finish()
    }
}

/// `scheme://host/path` of a URL, without user info or query (SAS tokens live there).
fn display_url(url: &url::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    shown.push_str(url.path().trim_end_matches('/'));
    shown
}

impl Remote {
    /// Open `location` (an `az://`, `abfs://`, `s3://` or `gs://` URL) with credentials from
    /// the environment.
    pub fn open(location: &str) -> Result<Remote> {
        let bad = |why: String| Error::config(format!("--lake {location}: {why}"));
        let url = url::Url::parse(location).map_err(|e| bad(format!("not a URL ({e})")))?;
        let display = display_url(&url);
        let (scheme, prefix) =
            ObjectStoreScheme::parse(&url).map_err(|e| bad(format!("unsupported URL ({e})")))?;
        let built: std::result::Result<Arc<dyn ObjectStore>, object_store::Error> = match scheme
        {
            ObjectStoreScheme::MicrosoftAzure => {
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(location)
                    .build()
                    .map(|s| Arc::new(s) as _)
            }
            ObjectStoreScheme::AmazonS3 => object_store::aws::AmazonS3Builder::from_env()
                .with_url(location)
                .build()
                .map(|s| Arc::new(s) as _),
            ObjectStoreScheme::GoogleCloudStorage => {
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(location)
                    .build()
                    .map(|s| Arc::new(s) as _)
            }
            _ => {
                return Err(bad(format!(
                    "the {}:// scheme is not a supported lake; use a directory, file://, az://, abfs://, s3:// or gs://",
                    url.scheme()
                )))
            }
        };
        let store = built.map_err(|e| {
            bad(format!(
                "{e} (credentials are read from the environment; see docs/operations.md)"
            ))
        })?;
        let multipart_threshold = match std::env::var("CSPCOST_MULTIPART_THRESHOLD") {
            Ok(v) => v.trim().parse::<u64>().map_err(|_| {
                Error::config(format!(
                    "CSPCOST_MULTIPART_THRESHOLD '{v}': expected a number of bytes"
                ))
            })?,
            Err(_) => MULTIPART_THRESHOLD,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cspcost-store")
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        Ok(Remote {
            store,
            prefix,
            display,
            runtime,
            multipart_threshold,
        })
    }

    /// The location as shown to people (no credentials).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Where `rel` lives, for messages.
    pub fn location(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.display.clone()
        } else {
            format!("{}/{rel}", self.display)
        }
    }

    fn key(&self, rel: &str) -> Result<ObjectPath> {
        let rel = rel.trim_matches('/');
        let full = match (self.prefix.as_ref(), rel) {
            (p, "") => p.to_string(),
            ("", r) => r.to_string(),
            (p, r) => format!("{p}/{r}"),
        };
        ObjectPath::parse(&full).map_err(|e| Error::ObjectStore {
            location: self.location(rel),
            source: e.into(),
        })
    }

    fn err(&self, rel: &str) -> impl Fn(object_store::Error) -> Error + '_ {
        let location = self.location(rel);
        move |source| Error::ObjectStore {
            location: location.clone(),
            source,
        }
    }

    /// The whole object; `None` when it does not exist.
    pub fn get(&self, rel: &str) -> Result<Option<Bytes>> {
        let key = self.key(rel)?;
        let got = self.runtime.block_on(async {
            match self.store.get(&key).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map_err(self.err(rel))
    }

    /// Bytes `range` of an object.
    pub fn get_range(&self, rel: &str, range: Range<u64>) -> Result<Bytes> {
        let key = self.key(rel)?;
        self.runtime
            .block_on(self.store.get_range(&key, range))
            .map_err(self.err(rel))
    }

    /// Size of an object; `None` when it does not exist.
    pub fn size(&self, rel: &str) -> Result<Option<u64>> {
        let key = self.key(rel)?;
        match self.runtime.block_on(self.store.head(&key)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(rel)(e)),
        }
    }

    /// A tag that changes whenever the object is rewritten (its ETag, else its modification
    /// time and size); `None` when it does not exist.
    pub fn version(&self, rel: &str) -> Result<Option<String>> {
        let key = self.key(rel)?;
        match self.runtime.block_on(self.store.head(&key)) {
            Ok(meta) => Ok(Some(match meta.e_tag {
                Some(tag) => format!("etag:{tag}"),
                None => format!("modified:{}:{}", meta.last_modified.to_rfc3339(), meta.size),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(rel)(e)),
        }
    }

    /// Names directly under `rel/` (objects and common prefixes), sorted.
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        let key = self.key(rel)?;
        let listed = self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&key)))
            .map_err(self.err(rel))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The whole object and its version (ETag and/or version ID), for a conditional
    /// update; `None` when it does not exist.
    pub fn get_versioned(&self, rel: &str) -> Result<Option<(Bytes, UpdateVersion)>> {
        let key = self.key(rel)?;
        let got = self.runtime.block_on(async {
            match self.store.get(&key).await {
                Ok(r) => {
                    let version = UpdateVersion {
                        e_tag: r.meta.e_tag.clone(),
                        version: r.meta.version.clone(),
                    };
                    r.bytes().await.map(|b| Some((b, version)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map_err(self.err(rel))
    }

    /// A conditional PUT: `None` creates the object only if it is absent, `Some(version)`
    /// replaces it only if it is still that version. `Ok(false)` when the condition fails
    /// (another writer got there first). A store that cannot update conditionally falls
    /// back to a plain overwrite (the lease's documented weaker guarantee there).
    pub fn put_conditional(
        &self,
        rel: &str,
        data: Vec<u8>,
        expected: Option<&UpdateVersion>,
    ) -> Result<bool> {
        let key = self.key(rel)?;
        let mode = match expected {
            None => PutMode::Create,
            Some(v) => PutMode::Update(v.clone()),
        };
        let attempt = |mode: PutMode| {
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            self.runtime.block_on(
                self.store
                    .put_opts(&key, PutPayload::from(data.clone()), opts),
            )
        };
        match attempt(mode) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(object_store::Error::NotImplemented { .. }) if expected.is_some() => {
                attempt(PutMode::Overwrite)
                    .map(|_| true)
                    .map_err(self.err(rel))
            }
            Err(e) => Err(self.err(rel)(e)),
        }
    }

    /// Delete an object; absent is fine.
    pub fn delete(&self, rel: &str) -> Result<()> {
        let key = self.key(rel)?;
        match self.runtime.block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(rel)(e)),
        }
    }

    /// Upload a finished local file as `rel`: one PUT, or one multipart upload for large
    /// files. Readers see the previous object until the upload completes.
    pub fn put_file(&self, rel: &str, local: &Path) -> Result<()> {
        let key = self.key(rel)?;
        let size = std::fs::metadata(local)
            .map_err(|e| Error::io(local, e))?
            .len();
        if size <= self.multipart_threshold {
            let data = std::fs::read(local).map_err(|e| Error::io(local, e))?;
            self.runtime
                .block_on(self.store.put(&key, PutPayload::from(data)))
                .map_err(self.err(rel))?;
            return Ok(());
        }
        let mut file = std::fs::File::open(local).map_err(|e| Error::io(local, e))?;
        self.runtime.block_on(async {
            let upload = self
                .store
                .put_multipart(&key)
                .await
                .map_err(self.err(rel))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut buf = vec![0u8; PART_BYTES];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(Error::io(local, e));
                    }
                };
                if n == 0 {
                    break;
                }
                if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    return Err(self.err(rel)(e));
                }
                writer.write(&buf[..n]);
            }
            writer.finish().await.map_err(self.err(rel))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        let u = url::Url::parse("az://user:secret@container/lake/?sv=2024&sig=abc").unwrap();
        assert_eq!(display_url(&u), "az://container/lake");
    }

    #[test]
    fn unsupported_schemes_are_config_errors() {
        let e = Remote::open("ftp://host/lake").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("ftp://"), "{e}");
    }
}

//! Raw input files as Microsoft or the partner wrote them: a local file, `.gz` decompressed
//! (a truncated or non-gzip `.gz` is bad input naming the file), read whole with its SHA-256
//! when small enough, or streamed. `ingest` reads dumps and `reconcile` reads invoices through
//! it.

use crate::error::{Error, Result};
use crate::store::sha256_file;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// The file name without `.gz`, lowercase (used to tell formats apart).
pub fn logical_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.strip_suffix(".gz").map(str::to_string).unwrap_or(name)
}

/// A reader over the file's content, decompressing `.gz`.
pub fn open_reader(path: &Path) -> Result<Box<dyn Read + Send>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(decoded(path, BufReader::with_capacity(1 << 20, f)))
}

/// A reader over a file's bytes already in memory (see [`read_hashed`]), decompressing
/// `.gz` like [`open_reader`]. The bytes are shared: ingest also finds records' texts in
/// them.
pub fn bytes_reader(path: &Path, bytes: std::sync::Arc<Vec<u8>>) -> Box<dyn Read + Send> {
    decoded(path, std::io::Cursor::new(Shared(bytes)))
}

/// A reader over bytes already decompressed (see [`gunzip_held`]).
pub fn plain_reader(bytes: std::sync::Arc<Vec<u8>>) -> Box<dyn Read + Send> {
    Box::new(std::io::Cursor::new(Shared(bytes)))
}

/// The decompressed bytes of a `.gz` file held in memory, when the stream is whole and they
/// fit in `max` bytes; `None` otherwise (the file is then parsed through the decoder, which
/// names a bad stream as before).
pub fn gunzip_held(bytes: &[u8], max: u64) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut d = flate2::bufread::MultiGzDecoder::new(bytes);
    (&mut d).take(max + 1).read_to_end(&mut out).ok()?;
    (out.len() as u64 <= max).then_some(out)
}

/// Shared bytes as a reader's buffer.
struct Shared(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Whether a file is read through gzip (its bytes are not its text).
pub fn is_gzip(path: &Path) -> bool {
    path.extension()
        .map(|e| e.eq_ignore_ascii_case("gz"))
        .unwrap_or(false)
}

fn decoded<R: BufRead + Send + 'static>(path: &Path, inner: R) -> Box<dyn Read + Send> {
    if is_gzip(path) {
        Box::new(GzChecked(flate2::bufread::MultiGzDecoder::new(inner)))
    } else {
        Box::new(inner)
    }
}

/// Files up to this size are read into memory once, hashed from those bytes and parsed from
/// them ([`read_hashed`]); a larger file is hashed in a pass of its own and then parsed
/// streaming, so that memory stays bounded by this size and not by the file.
pub const READ_ONCE_MAX: u64 = 64 << 20;

/// A file's SHA-256 and size, and its bytes (as on disk, still compressed) when it was small
/// enough to keep.
pub struct HashedFile {
    /// SHA-256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// The content, or None for a file above [`READ_ONCE_MAX`] (to be read again).
    pub content: Option<Vec<u8>>,
}

/// Read a file once for both its ledger digest and its parse: the ledger decision is made on
/// the digest before anything of the file is staged, and the parser then reads the same
/// bytes from memory instead of from the file a second time.
pub fn read_hashed(path: &Path) -> Result<HashedFile> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > READ_ONCE_MAX {
        let (sha256, bytes) = sha256_file(path)?;
        return Ok(HashedFile {
            sha256,
            bytes,
            content: None,
        });
    }
    let mut content = Vec::with_capacity(len as usize + 1);
    f.read_to_end(&mut content)
        .map_err(|e| Error::io(path, e))?;
    Ok(HashedFile {
        sha256: hex::encode(Sha256::digest(&content)),
        bytes: content.len() as u64,
        content: Some(content),
    })
}

/// Why a `.gz` file could not be decompressed: carried inside the `io::Error` so that
/// [`Error::io`] reports bad input (exit 2) rather than an I/O failure (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("not a complete gzip stream ({0}): the file is truncated or not gzip")]
pub struct BadGzip(String);

/// A gzip decoder whose complaints about the data become [`BadGzip`]; errors of the file
/// underneath (a failing disk) stay I/O errors.
struct GzChecked<R: BufRead>(flate2::bufread::MultiGzDecoder<R>);

impl<R: BufRead> Read for GzChecked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
        self.0.read(buf).map_err(|e| match e.kind() {
            InvalidData | InvalidInput | UnexpectedEof => {
                std::io::Error::new(InvalidData, BadGzip(e.to_string()))
            }
            _ => e,
        })
    }
}

/// A CSV reader error that is really the file failing to read (a bad `.gz`, a disk error)
/// stops the run; any other is the row's own problem, returned to be quarantined.
pub fn csv_row_error(path: &Path, e: csv::Error) -> Result<csv::Error> {
    if e.is_io_error() {
        if let csv::ErrorKind::Io(io) = e.into_kind() {
            return Err(Error::io(path, io));
        }
        return Err(Error::InputFormat {
            path: path.display().to_string(),
            expected: "a readable CSV file".into(),
        });
    }
    Ok(e)
}

/// A CSV reader over a (possibly compressed) file whose rows may differ in length.
pub fn open_csv(path: &Path) -> Result<csv::Reader<Box<dyn Read + Send>>> {
    Ok(csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(open_reader(path)?))
}

/// A CSV file's header row as written; one that cannot be read stops the file with
/// `InputFormat` saying "`expected`: why".
pub fn csv_header<R: Read>(
    path: &Path,
    rdr: &mut csv::Reader<R>,
    expected: &str,
) -> Result<csv::StringRecord> {
    rdr.headers()
        .cloned()
        .map_err(|e| match csv_row_error(path, e) {
            Err(fatal) => fatal,
            Ok(e) => Error::InputFormat {
                path: path.display().to_string(),
                expected: format!("{expected}: {e}"),
            },
        })
}

/// A header name without surrounding spaces and without the byte order mark some tools
/// write before the first one.
pub fn header_name(h: &str) -> &str {
    h.trim().trim_start_matches('\u{feff}')
}

/// The whole (decompressed) content of a file as bytes.
pub fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    open_reader(path)?
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

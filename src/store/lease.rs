//! One writer per lake: the lease `_lock/writer.json`.
//!
//! Every command that changes the lake takes the lease before its first write and releases
//! it at the end; a second writer is refused (exit 2, naming the holder) or waits
//! (`--wait DURATION`). The lease lists its holders (run ID, process ID, host, command,
//! start, expiry); the shards of one `rate --shard i/n` share it (the lease's command is
//! `rate --shard */n`, one holder per shard), so they still run concurrently, while a
//! different n or any other command is refused.
//!
//! Taking and changing the lease is a read-modify-write done atomically:
//! - on a local lake under an exclusive `flock` of the lake directory (released by the
//!   kernel if the process dies, so it can never go stale), the file itself created with
//!   `O_EXCL` (`create_new`) and replaced by rename;
//! - on an object store with conditional PUTs: create-if-absent (`PutMode::Create`) and
//!   replace-if-unchanged (`PutMode::Update` with the ETag read), retried on a conflict.
//!
//! A background thread renews the holder's expiry every quarter of the lease time
//! (`CSPCOST_LEASE_TTL`, default 120 s). A holder whose expiry has passed, or that is known
//! dead (same host, process gone), is dropped by the next writer, which logs the takeover.

use super::{Backend, Lake};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lake-relative path of the lease.
pub const LEASE_FILE: &str = "_lock/writer.json";
/// Lease time when `CSPCOST_LEASE_TTL` is not set.
pub const DEFAULT_TTL: Duration = Duration::from_secs(120);
/// How often a waiting writer looks at the lease again.
const POLL: Duration = Duration::from_millis(200);
/// Conditional-update conflicts tolerated in a row before giving up (object stores).
const MAX_CONFLICTS: u32 = 50;

/// The lease document.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseDoc {
    /// What the lease is held for: the command (`ingest usage`, `run`), or `rate --shard
    /// */n` shared by the shards of n.
    pub command: String,
    /// The runs holding it.
    pub holders: Vec<Holder>,
}

/// One run holding the lease.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    /// Run ID.
    pub run_id: String,
    /// Process ID.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Process start (clock ticks since boot), so a reused process ID is not taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// The command as run (`rate --shard 1/3`).
    pub command: String,
    /// When it took the lease (RFC 3339).
    pub started_at: String,
    /// Until when it holds the lease unless renewed (RFC 3339).
    pub expires_at: String,
}

impl Holder {
    fn expires(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.expires_at)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// Still holding: not expired, and not known dead.
    fn live(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let unexpired = self.expires().is_some_and(|e| e > now);
        unexpired
            && super::scratch::process_alive(&self.host, self.pid, self.pid_start) != Some(false)
    }

    fn describe(&self) -> String {
        format!(
            "`{}` (run {}, pid {} on {}, since {}, lease until {})",
            self.command, self.run_id, self.pid, self.host, self.started_at, self.expires_at
        )
    }
}

/// What a writer asks for.
#[derive(Clone, Debug)]
pub struct LeaseRequest {
    /// The run.
    pub run_id: String,
    /// The command as run, e.g. `ingest usage` or `rate --shard 0/3`.
    pub command: String,
    /// `Some(n)` for a shard of `rate --shard i/n`: shares the lease with the other
    /// shards of the same n.
    pub shard_count: Option<u32>,
    /// How long to wait for another writer to finish (`--wait`); `None` refuses at once.
    pub wait: Option<Duration>,
}

impl LeaseRequest {
    /// The lease's command: shared by all shards of n, else the command itself.
    fn key(&self) -> String {
        match self.shard_count {
            Some(n) => format!("rate --shard */{n}"),
            None => self.command.clone(),
        }
    }
}

/// A held lease, renewed in the background and released when dropped.
#[derive(Debug)]
pub struct Lease {
    lake: Lake,
    run_id: String,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
}

/// The lease time: `CSPCOST_LEASE_TTL` (a duration such as `2s`, `500ms`, `5m`, or
/// seconds), else [`DEFAULT_TTL`].
pub fn ttl() -> Result<Duration> {
    match std::env::var("CSPCOST_LEASE_TTL") {
        Ok(v) => parse_duration(&v).filter(|d| !d.is_zero()).ok_or_else(|| {
            Error::config(format!(
                "CSPCOST_LEASE_TTL '{v}': expected a duration such as 30s, 500ms or 5m"
            ))
        }),
        Err(_) => Ok(DEFAULT_TTL),
    }
}

/// A duration: a number with `ms`, `s`, `m` or `h` (no unit: seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// What a step of the lease protocol decided.
enum Change {
    /// Leave the lease as it is.
    Keep,
    /// Write this document.
    Write(LeaseDoc),
    /// Delete the lease (no holder left).
    Delete,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn expiry(ttl: Duration) -> String {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    rfc3339(chrono::Utc::now() + ttl)
}

/// What one try at the lease came to.
enum Take {
    /// The lease is ours; these holders' entries were dropped as dead.
    Taken { dropped: Vec<Holder> },
    /// Another live writer holds it: who.
    Refused(String),
}

/// The lease document after `me` tries to take it (lease command `key`), and whether it
/// did: dead holders (expired, or their process gone) are dropped; `me` joins the live ones
/// when there are none, or when `sharded` and they are other shards of the same command.
fn take_or_refuse(
    current: Option<LeaseDoc>,
    me: &Holder,
    key: &str,
    sharded: bool,
) -> (Change, Take) {
    let now = chrono::Utc::now();
    let Some(doc) = current else {
        let doc = LeaseDoc {
            command: key.to_string(),
            holders: vec![me.clone()],
        };
        return (
            Change::Write(doc),
            Take::Taken {
                dropped: Vec::new(),
            },
        );
    };
    let (live, dropped): (Vec<Holder>, Vec<Holder>) =
        doc.holders.into_iter().partition(|h| h.live(now));
    let shared = sharded && doc.command == key && !live.iter().any(|h| h.command == me.command);
    if live.is_empty() || shared {
        let mut holders = live;
        holders.push(me.clone());
        let doc = LeaseDoc {
            command: key.to_string(),
            holders,
        };
        (Change::Write(doc), Take::Taken { dropped })
    } else {
        let who: Vec<String> = live.iter().map(Holder::describe).collect();
        let why = format!("the lake is being written by {}", who.join(", "));
        (Change::Keep, Take::Refused(why))
    }
}

/// Say whose lease was taken over, and why it was free.
fn log_takeovers(dropped: &[Holder]) {
    for h in dropped {
        crate::progress::log(&format!(
            "took over the writer lease of {}: {}",
            h.describe(),
            if h.expires().is_some_and(|e| e <= chrono::Utc::now()) {
                "it expired"
            } else {
                "its process is gone"
            }
        ));
    }
}

impl Lease {
    /// Take the lease of `lake` for `req`, waiting up to `req.wait` for another writer.
    pub fn acquire(lake: &Lake, req: &LeaseRequest) -> Result<Lease> {
        Lease::acquire_for(lake, req, ttl()?)
    }

    /// [`Lease::acquire`] with an explicit lease time.
    fn acquire_for(lake: &Lake, req: &LeaseRequest, ttl: Duration) -> Result<Lease> {
        let (host, pid, pid_start) = super::scratch::current_process();
        let key = req.key();
        let started_at = rfc3339(chrono::Utc::now());
        let deadline = req.wait.map(|w| Instant::now() + w);
        let mut announced = false;
        loop {
            let me = Holder {
                run_id: req.run_id.clone(),
                pid,
                host: host.clone(),
                pid_start,
                command: req.command.clone(),
                started_at: started_at.clone(),
                expires_at: expiry(ttl),
            };
            let mut taken = Take::Refused(String::new());
            transact(lake, |current| {
                let (change, take) = take_or_refuse(current, &me, &key, req.shard_count.is_some());
                taken = take;
                change
            })?;
            match taken {
                Take::Taken { dropped } => {
                    log_takeovers(&dropped);
                    return Ok(Lease::start(lake, me, key.clone(), ttl));
                }
                Take::Refused(why) => match deadline {
                    Some(d) if Instant::now() < d => {
                        if !announced {
                            crate::progress::log(&format!("waiting for the writer lease: {why}"));
                            announced = true;
                        }
                        std::thread::sleep(POLL.min(d.saturating_duration_since(Instant::now())));
                    }
                    _ => {
                        let hint = match req.wait {
                            Some(w) => format!("still held after waiting {} ms", w.as_millis()),
                            None => "pass --wait DURATION (e.g. --wait 5m) to wait for it".into(),
                        };
                        return Err(Error::LeaseHeld {
                            location: lake.path(LEASE_FILE).display().to_string(),
                            detail: format!("{why}; {hint}"),
                        });
                    }
                },
            }
        }
    }

    /// Start renewing the lease just taken by `me` (lease command `key`).
    fn start(lake: &Lake, me: Holder, key: String, ttl: Duration) -> Lease {
        let (tx, rx) = mpsc::channel::<()>();
        let every = ttl / 4;
        let renew_lake = lake.clone();
        let run_id = me.run_id.clone();
        let renew_id = run_id.clone();
        let renewer = std::thread::Builder::new()
            .name("cspcost-lease".into())
            .spawn(move || {
                let mut lost = false;
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    let mut mine = false;
                    let renewed = transact(&renew_lake, |current| {
                        let Some(mut doc) = current else {
                            // The lease vanished (a shard's release raced with this
                            // shard's joining on an object store): take it again.
                            mine = true;
                            let mut h = me.clone();
                            h.expires_at = expiry(ttl);
                            return Change::Write(LeaseDoc {
                                command: key.clone(),
                                holders: vec![h],
                            });
                        };
                        match doc.holders.iter_mut().find(|h| h.run_id == renew_id) {
                            Some(h) => {
                                mine = true;
                                h.expires_at = expiry(ttl);
                                Change::Write(doc)
                            }
                            None => {
                                mine = false;
                                Change::Keep
                            }
                        }
                    });
                    if let Err(e) = renewed {
                        crate::progress::log(&format!("could not renew the writer lease: {e}"));
                    } else if !mine && !lost {
                        lost = true;
                        crate::progress::log(
                            "the writer lease was taken over by another run (this run stalled past its expiry)",
                        );
                    }
                }
            })
            .ok();
        Lease {
            lake: lake.clone(),
            run_id,
            stop: Some(tx),
            renewer,
        }
    }

    /// Stop renewing and give the lease up (the other shards keep theirs).
    pub fn release(mut self) -> Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<()> {
        let Some(stop) = self.stop.take() else {
            return Ok(());
        };
        drop(stop);
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        let run_id = self.run_id.clone();
        transact(&self.lake, |current| {
            let Some(mut doc) = current else {
                return Change::Keep;
            };
            let before = doc.holders.len();
            let now = chrono::Utc::now();
            doc.holders.retain(|h| h.run_id != run_id);
            if doc.holders.len() == before {
                return Change::Keep;
            }
            if doc.holders.iter().all(|h| !h.live(now)) {
                Change::Delete
            } else {
                Change::Write(doc)
            }
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Err(e) = self.release_inner() {
            crate::progress::log(&format!("could not release the writer lease: {e}"));
        }
    }
}

/// One atomic read-modify-write of the lease.
fn transact(lake: &Lake, mut decide: impl FnMut(Option<LeaseDoc>) -> Change) -> Result<()> {
    match &lake.inner.backend {
        Backend::Local { root } => transact_local(root, decide),
        Backend::Remote { store, .. } => {
            let location = store.location(LEASE_FILE);
            for _ in 0..MAX_CONFLICTS {
                let current = store.get_versioned(LEASE_FILE)?;
                let (doc, version) = match current {
                    Some((bytes, v)) => (Some(parse(&bytes, &location)?), Some(v)),
                    None => (None, None),
                };
                match decide(doc) {
                    Change::Keep => return Ok(()),
                    // Object stores have no conditional delete: a shard that joins between
                    // this read and the delete loses the lease for one renewal period; its
                    // next renewal finds no lease and creates it again (create-if-absent).
                    Change::Delete => return store.delete(LEASE_FILE),
                    Change::Write(d) => {
                        if store.put_conditional(LEASE_FILE, to_bytes(&d)?, version.as_ref())? {
                            return Ok(());
                        }
                    }
                }
            }
            Err(Error::LeaseHeld {
                location,
                detail: format!(
                    "the lease changed under {MAX_CONFLICTS} conditional updates in a row"
                ),
            })
        }
    }
}

fn to_bytes(doc: &LeaseDoc) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(doc).map_err(|e| Error::Json {
        path: LEASE_FILE.into(),
        source: e,
    })
}

/// A lease document; an empty or unreadable one (a writer died between creating the file
/// and writing it) counts as free.
fn parse(bytes: &[u8], location: &str) -> Result<LeaseDoc> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(LeaseDoc::default());
    }
    serde_json::from_slice(bytes).map_err(|e| Error::Json {
        path: location.to_string(),
        source: e,
    })
}

fn transact_local(root: &Path, mut decide: impl FnMut(Option<LeaseDoc>) -> Change) -> Result<()> {
    fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    // The directory's flock serialises every writer's read-modify-write of the lease.
    let guard = File::open(root).map_err(|e| Error::io(root, e))?;
    guard.lock().map_err(|e| Error::io(root, e))?;
    let file = root.join(LEASE_FILE);
    let current = match fs::read(&file) {
        Ok(b) => Some(parse(&b, &file.display().to_string())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&file, e)),
    };
    let existed = current.is_some();
    let dir = root.join("_lock");
    match decide(current) {
        Change::Keep => {}
        Change::Delete => {
            match fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&file, e)),
            }
            let _ = fs::remove_dir(&dir);
        }
        Change::Write(doc) => {
            let bytes = to_bytes(&doc)?;
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            if existed {
                let tmp = dir.join(format!("writer.json.{}.tmp", std::process::id()));
                let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
                f.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
                f.sync_all().map_err(|e| Error::io(&tmp, e))?;
                fs::rename(&tmp, &file).map_err(|e| Error::io(&file, e))?;
            } else {
                // Create-if-absent (O_EXCL): even without the directory lock (a filesystem
                // that ignores flock), two writers cannot both create the lease.
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&file)
                    .map_err(|e| Error::io(&file, e))?;
                f.write_all(&bytes).map_err(|e| Error::io(&file, e))?;
                f.sync_all().map_err(|e| Error::io(&file, e))?;
            }
        }
    }
    drop(guard);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("five"), None);
        assert_eq!(parse_duration("3d"), None);
    }

    fn req(run: &str, command: &str, shard_count: Option<u32>) -> LeaseRequest {
        LeaseRequest {
            run_id: run.into(),
            command: command.into(),
            shard_count,
            wait: None,
        }
    }

    #[test]
    fn a_second_writer_is_refused_naming_the_holder_and_shards_of_one_n_share() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().display().to_string()).unwrap();
        let first = Lease::acquire(&lake, &req("r1", "ingest usage", None)).unwrap();
        let e = Lease::acquire(&lake, &req("r2", "rate", None)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.contains("`ingest usage` (run r1, pid "), "{text}");
        assert!(text.contains("--wait"), "{text}");
        first.release().unwrap();
        assert!(
            !dir.path().join("_lock").exists(),
            "a released lease leaves nothing"
        );

        let s0 = Lease::acquire(&lake, &req("s0", "rate --shard 0/3", Some(3))).unwrap();
        let s1 = Lease::acquire(&lake, &req("s1", "rate --shard 1/3", Some(3))).unwrap();
        let doc: LeaseDoc =
            serde_json::from_slice(&fs::read(dir.path().join(LEASE_FILE)).unwrap()).unwrap();
        assert_eq!(doc.command, "rate --shard */3");
        assert_eq!(doc.holders.len(), 2);
        for (r, c, n) in [
            ("x", "rate --shard 0/4", Some(4)),
            ("y", "rate --shard 1/3", Some(3)),
            ("z", "reserve", None),
        ] {
            let e = Lease::acquire(&lake, &req(r, c, n)).unwrap_err();
            assert!(e.to_string().contains("run s0"), "{c}: {e}");
        }
        drop(s0);
        let doc: LeaseDoc =
            serde_json::from_slice(&fs::read(dir.path().join(LEASE_FILE)).unwrap()).unwrap();
        assert_eq!(doc.holders.len(), 1, "shard 1 still holds it");
        drop(s1);
        assert!(!dir.path().join(LEASE_FILE).exists());
    }

    #[test]
    fn a_live_holder_renews_so_its_short_lease_never_expires() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().display().to_string()).unwrap();
        // Renewed every 250 ms: only a stall of the renewer past a whole second (seen with
        // 200 ms under a loaded CI machine) makes this a takeover.
        let ttl = Duration::from_millis(1000);
        let held = Lease::acquire_for(&lake, &req("r1", "ingest usage", None), ttl).unwrap();
        let read = || -> LeaseDoc {
            serde_json::from_slice(&fs::read(dir.path().join(LEASE_FILE)).unwrap()).unwrap()
        };
        let first = read().holders[0].expires_at.clone();
        // Three lease times later the holder is still there, with a later expiry, and a
        // second writer is still refused (not a takeover).
        std::thread::sleep(Duration::from_millis(3000));
        let later = read().holders[0].expires_at.clone();
        assert!(later > first, "{later} <= {first}");
        let e = Lease::acquire_for(&lake, &req("r2", "rate", None), ttl).unwrap_err();
        assert!(e.to_string().contains("run r1"), "{e}");
        held.release().unwrap();
        assert!(!dir.path().join("_lock").exists());
    }

    #[test]
    fn an_expired_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().display().to_string()).unwrap();
        let stale = LeaseDoc {
            command: "ingest usage".into(),
            holders: vec![Holder {
                run_id: "old".into(),
                pid: 1,
                host: "another-host".into(),
                pid_start: None,
                command: "ingest usage".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
                expires_at: "2026-01-01T00:02:00Z".into(),
            }],
        };
        fs::create_dir_all(dir.path().join("_lock")).unwrap();
        fs::write(dir.path().join(LEASE_FILE), to_bytes(&stale).unwrap()).unwrap();
        let l = Lease::acquire(&lake, &req("new", "rate", None)).unwrap();
        let doc: LeaseDoc =
            serde_json::from_slice(&fs::read(dir.path().join(LEASE_FILE)).unwrap()).unwrap();
        assert_eq!(doc.holders.len(), 1);
        assert_eq!(doc.holders[0].run_id, "new");
        l.release().unwrap();
    }
}

//! Object-store lakes (outputs.md): the whole pipeline on Azure Blob Storage, emulated by
//! Azurite, writes the same data as on a local directory, publishes each file with one PUT
//! (or one multipart upload), deletes what disappeared, and leaves no scratch files behind.
//!
//! Azurite comes from npm: `make test` installs it into `node_modules/` (see the Makefile).
//! The harness starts `azurite-blob` on 127.0.0.1 with a free port and a temporary
//! workspace, and kills it when the test ends. `AZURITE_DEBUG_LOG=FILE` makes Azurite log
//! every request there (multipart uploads show as `BlockBlob_StageBlock` +
//! `BlockBlob_CommitBlockList`, single PUTs as `BlockBlob_Upload`).

use crate::common::*;
use base64::Engine;
use object_store::ObjectStoreExt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account (documented by Microsoft; not a secret).
const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn azurite_bin() -> Option<PathBuf> {
    let bin = root().join("node_modules/.bin/azurite-blob");
    if bin.exists() {
        return Some(bin);
    }
    // A missing emulator fails the test, unless it is skipped explicitly (`make test` never
    // sets the variable).
    if std::env::var("CSPCOST_SKIP_AZURITE").is_ok_and(|v| v == "1") {
        eprintln!("object-store test skipped: Azurite is missing and CSPCOST_SKIP_AZURITE=1");
        return None;
    }
    panic!(
        "{} is missing: run `make azurite` (or set CSPCOST_SKIP_AZURITE=1 to skip)",
        bin.display()
    );
}

/// A running `azurite-blob`, killed on drop.
struct Azurite {
    child: Child,
    port: u16,
    _workspace: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Azurite {
    fn start(bin: &PathBuf) -> Azurite {
        let workspace = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = workspace.path().join("azurite.stderr");
        let mut child = Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(workspace.path())
            .args(["--silent", "--skipApiVersionCheck", "--disableTelemetry"])
            .args(
                std::env::var("AZURITE_DEBUG_LOG")
                    .map(|l| vec!["--debug".to_string(), l])
                    .unwrap_or_default(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start azurite-blob");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("azurite-blob exited with {status}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "azurite-blob did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Azurite {
            child,
            port,
            _workspace: workspace,
        }
    }

    fn blob_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What a CSP partner sets for the emulator (docs/operations.md).
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", self.blob_url()),
        ]
    }

    /// Create a container (the one thing `object_store` has no call for), signed with the
    /// account key (Shared Key authorization).
    fn create_container(&self, name: &str) {
        use hmac::{Hmac, Mac};
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&b64.decode(ACCOUNT_KEY).unwrap()).unwrap();
        mac.update(string_to_sign.as_bytes());
        let signature = b64.encode(mac.finalize().into_bytes());
        let request = format!(
            "PUT /{ACCOUNT}/{name}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey {ACCOUNT}:{signature}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            port = self.port
        );
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 201"),
            "create container {name}: {response}"
        );
    }

    /// Copy every object under `container/prefix/` into a local directory, same layout.
    fn mirror(&self, container: &str, prefix: &str) -> tempfile::TempDir {
        let store = object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(ACCOUNT)
            .with_access_key(ACCOUNT_KEY)
            .with_endpoint(format!("{}/{ACCOUNT}", self.blob_url()))
            .with_allow_http(true)
            .with_container_name(container)
            .build()
            .unwrap();
        mirror_store(&store, prefix)
    }
}

fn cost_files(files: &[String]) -> Vec<String> {
    files
        .iter()
        .filter(|f| f.starts_with("costs/"))
        .cloned()
        .collect()
}

#[test]
fn azurite_lake_holds_the_same_data_as_a_local_lake() {
    let Some(bin) = azurite_bin() else { return };
    let azurite = Azurite::start(&bin);
    azurite.create_container("lakes");
    let scratch = tempfile::tempdir().unwrap();
    let mut env = azurite.env();
    // Files above 4 KiB go up as multipart uploads, smaller ones as one PUT: both paths run.
    env.push(("CSPCOST_MULTIPART_THRESHOLD", "4096".into()));
    env.push(("CSPCOST_SCRATCH_DIR", arg(scratch.path())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let remote = "az://lakes/partner/nightly";

    ingest_inputs(remote, &SAMPLE_INPUTS, &env);
    ok_env(["rate", "--lake", remote], &env);
    let local = rated_sample();

    let mirror = azurite.mirror("lakes", "partner/nightly");
    let remote_data = assert_mirror_equals(mirror.path(), local.path());
    assert!(remote_data.keys().any(|k| k.starts_with("staged/usage/")));
    assert_eq!(
        remote_data["costs/org=contoso/month=2026-01/usage-0.parquet"].len(),
        222
    );
    // The local scratch directory of the object-store runs is cleaned up too.
    assert_eq!(files_under(scratch.path()), Vec::<String>::new());

    // Reading commands work on the object store as well.
    let runs = ok_env(["runs", "--lake", remote], &env);
    assert_eq!(
        runs.lines().filter(|l| l.contains("ingest usage")).count(),
        2
    );
    let q = ok_env(["quarantine", "--lake", remote], &env);
    assert!(q.contains("UNMAPPED_TENANT"), "{q}");

    // A rerun with the same inputs writes nothing; after `tenants remove`, the organization's
    // partitions are deleted on the store exactly as on the local lake.
    let again = ok_env(["rate", "--lake", remote], &env);
    assert!(again.contains("partitions: 0 written"), "{again}");
    let adatum = "cb68bce3-1e3f-416d-a860-6a6043d14194";
    ok_env(["tenants", "remove", "--lake", remote, adatum], &env);
    ok_env(["rate", "--lake", remote], &env);
    ok(["tenants", "remove", "--lake", &arg(local.path()), adatum]);
    ok(["rate", "--lake", &arg(local.path())]);
    let mirror = azurite.mirror("lakes", "partner/nightly");
    let remote_files = files_under(mirror.path());
    assert!(!remote_files.iter().any(|f| f.contains("org=adatum")));
    assert_eq!(
        cost_files(&remote_files),
        cost_files(&files_under(local.path()))
    );
    assert_eq!(
        parquet_snapshot(mirror.path()),
        parquet_snapshot(local.path())
    );
}

#[test]
fn missing_container_is_an_error_naming_the_location() {
    let Some(bin) = azurite_bin() else { return };
    let azurite = Azurite::start(&bin);
    let env = azurite.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = cspcost_env(["rate", "--lake", "az://absent/lake"], &env);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("az://absent/lake"), "{err}");
    assert!(
        !err.contains(ACCOUNT_KEY),
        "credentials must never be printed"
    );
}

impl Azurite {
    /// Write one object directly (what another writer's process would have written).
    fn put(&self, container: &str, key: &str, bytes: Vec<u8>) {
        let store = object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(ACCOUNT)
            .with_access_key(ACCOUNT_KEY)
            .with_endpoint(format!("{}/{ACCOUNT}", self.blob_url()))
            .with_allow_http(true)
            .with_container_name(container)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(store.put(&object_store::path::Path::from(key), bytes.into()))
            .unwrap();
    }
}

/// Issue 11 on an object store: a prefix that holds no lake is refused, the writer lease is
/// taken with conditional PUTs and refuses a second writer, and a SAS token in the lake URL
/// appears in no output and no object.
#[test]
fn azurite_lake_refuses_no_lake_and_a_second_writer_and_never_shows_a_sas_token() {
    let Some(bin) = azurite_bin() else { return };
    let azurite = Azurite::start(&bin);
    azurite.create_container("lakes");
    let scratch = tempfile::tempdir().unwrap();
    let mut env = azurite.env();
    env.push(("CSPCOST_SCRATCH_DIR", arg(scratch.path())));
    // A short lease: renewed every 250 ms, so the conditional updates run too.
    env.push(("CSPCOST_LEASE_TTL", "1s".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sas = "az://lakes/sas/lake?sv=2024-11-04&sp=racwdl&sig=SECRET";
    let mut seen = String::new();
    let mut run = |args: &[&str]| {
        let out = cspcost_env(args, &env);
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    };

    for args in [
        &["rate", "--lake", sas][..],
        &["--log-format", "json", "runs", "--lake", sas],
        &["quarantine", "--lake", sas],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("no cspcost lake at az://lakes/sas/lake"),
            "{args:?}: {}",
            stderr(&out)
        );
    }

    for (kind, rel) in &SAMPLE_INPUTS[..3] {
        let out = run(&[
            "--log-format",
            "json",
            "ingest",
            kind,
            "--lake",
            sas,
            &arg(&sample(rel)),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for args in [&["rate", "--lake", sas][..], &["runs", "--lake", sas]] {
        let out = run(args);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // Another live writer holds the lease (this test process, on this host).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let lease = serde_json::json!({
        "command": "ingest usage",
        "holders": [{
            "run_id": "20260101T000000000000Z-7", "pid": std::process::id(), "host": host,
            "command": "ingest usage", "started_at": "2026-01-01T00:00:00.000Z",
            "expires_at": (chrono::Utc::now() + chrono::Duration::seconds(600)).to_rfc3339(),
        }]
    });
    azurite.put(
        "lakes",
        "sas/lake/_lock/writer.json",
        serde_json::to_vec(&lease).unwrap(),
    );
    let out = run(&["reserve", "--lake", sas, "--as-of", "2026-02-16"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("az://lakes/sas/lake/_lock/writer.json: the lake is being written by `ingest usage` (run 20260101T000000000000Z-7"),
        "{}",
        stderr(&out)
    );
    // Expired: taken over, and released at the end (no holder left, object deleted).
    let expired = serde_json::json!({
        "command": "ingest usage",
        "holders": [{
            "run_id": "20260101T000000000000Z-7", "pid": 1, "host": "another-host",
            "command": "ingest usage", "started_at": "2026-01-01T00:00:00.000Z",
            "expires_at": "2026-01-01T00:02:00.000Z",
        }]
    });
    azurite.put(
        "lakes",
        "sas/lake/_lock/writer.json",
        serde_json::to_vec(&expired).unwrap(),
    );
    let out = run(&["reserve", "--lake", sas, "--as-of", "2026-02-16"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("took over the writer lease"),
        "{}",
        stderr(&out)
    );

    let mirror = azurite.mirror("lakes", "sas/lake");
    let files = files_under(mirror.path());
    assert!(!files.iter().any(|f| f.starts_with("_lock")), "{files:?}");
    assert!(files.iter().any(|f| f.starts_with("costs/")), "{files:?}");
    for f in &files {
        let text =
            String::from_utf8_lossy(&std::fs::read(mirror.path().join(f)).unwrap()).into_owned();
        assert!(!text.contains("SECRET"), "{f} holds the SAS signature");
    }
    assert!(
        !seen.contains("SECRET"),
        "an output holds the SAS signature:\n{seen}"
    );
    assert!(!seen.contains("renew"), "every renewal succeeded:\n{seen}");
    assert!(!seen.contains("taken over by another run"), "{seen}");
    // Messages name the lake without its query string.
    assert!(seen.contains("az://lakes/sas/lake"), "{seen}");
}

//! `s3://` lakes against a real S3 API: moto in server mode (`.venv-integ/` from `make
//! integ`), started by tests/s3/moto_s3.py on 127.0.0.1 and a free port with authentication
//! on, so every request must be signed with the access key the harness created.
//!
//! The sample pipeline writes the same data on S3 as on a local directory; files above the
//! multipart threshold go up as multipart uploads and the others as one PUT; `tenants
//! remove` deletes the organization's objects; credentials come only from the `AWS_*`
//! variables and never show; and `rate` killed before any publish leaves every object old or
//! new, and its rerun equals an uninterrupted run.

use crate::common::*;
use object_store::{ObjectStore, ObjectStoreExt};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BUCKET: &str = "lakes";
/// Files above this size are published as multipart uploads in these tests.
const THRESHOLD: u64 = 4096;

/// A running moto S3 server (killed on drop).
struct Moto {
    _server: KillOnDrop,
    port: u16,
    access_key_id: String,
    secret_access_key: String,
    requests: PathBuf,
    /// A local port nobody listens on: the instance-metadata endpoint the S3 client falls
    /// back to without credentials, so that fallback never leaves the machine.
    dead_port: u16,
    _dir: tempfile::TempDir,
}

/// Kills and reaps a child process when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Moto {
    /// Start the server and wait for its JSON line (port and the access key it made).
    fn start() -> Option<Moto> {
        let py = venv_python(".venv-integ", "integ", "CSPCOST_SKIP_S3")?;
        let dir = tempfile::tempdir().unwrap();
        let requests = dir.path().join("requests.log");
        let log = dir.path().join("moto.stderr");
        let mut child = Command::new(py)
            .arg(root().join("tests/s3/moto_s3.py"))
            .arg(BUCKET)
            .arg(&requests)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start moto");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready: serde_json::Value = loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with('{') => break serde_json::from_str(&l).unwrap(),
                Some(Ok(_)) => continue,
                _ => {
                    let err = std::fs::read_to_string(&log).unwrap_or_default();
                    let _ = child.kill();
                    panic!("moto_s3.py ended before it was ready: {err}");
                }
            }
        };
        let s = |k: &str| ready[k].as_str().unwrap().to_string();
        Some(Moto {
            port: ready["port"].as_u64().unwrap() as u16,
            access_key_id: s("access_key_id"),
            secret_access_key: s("secret_access_key"),
            _server: KillOnDrop(child),
            requests,
            dead_port: free_port(),
            _dir: dir,
        })
    }

    /// The variables a partner sets for an S3-compatible store (docs/operations.md), without
    /// the credentials.
    fn endpoint_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            (
                "AWS_METADATA_ENDPOINT",
                format!("http://127.0.0.1:{}", self.dead_port),
            ),
        ]
    }

    /// Endpoint, credentials, the test's multipart threshold and a scratch directory.
    fn lake_env(&self, scratch: &Path) -> Vec<(&'static str, String)> {
        let mut env = self.env();
        env.push(("CSPCOST_MULTIPART_THRESHOLD", THRESHOLD.to_string()));
        env.push(("CSPCOST_SCRATCH_DIR", arg(scratch)));
        env
    }

    /// Endpoint and credentials.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.endpoint_env();
        env.push(("AWS_ACCESS_KEY_ID", self.access_key_id.clone()));
        env.push(("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()));
        env
    }

    fn store(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{}", self.port))
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_bucket_name(BUCKET)
            .build()
            .unwrap()
    }

    /// Every object under `prefix/`, copied into a local directory.
    fn mirror(&self, prefix: &str) -> tempfile::TempDir {
        mirror_store(&self.store(), prefix)
    }

    /// Server-side copy of every object under `from/` to `to/`.
    fn copy_prefix(&self, from: &str, to: &str) {
        let store = self.store();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let from_path = object_store::path::Path::from(from);
            let mut pending = vec![from_path.clone()];
            while let Some(p) = pending.pop() {
                let listed = store.list_with_delimiter(Some(&p)).await.unwrap();
                pending.extend(listed.common_prefixes);
                for o in listed.objects {
                    let rel = o.location.as_ref().strip_prefix(from).unwrap();
                    let dest = object_store::path::Path::from(format!("{to}{rel}"));
                    store.copy(&o.location, &dest).await.unwrap();
                }
            }
        });
    }

    /// `(method, lake-relative path, query)` of every request the server has answered under
    /// `prefix/`, in order.
    fn requests(&self, prefix: &str) -> Vec<(String, String, String)> {
        let log = std::fs::read_to_string(&self.requests).unwrap();
        let base = format!("/{BUCKET}/{prefix}/");
        log.lines()
            .filter_map(|l| {
                // werkzeug: `127.0.0.1 - - [date] "PUT /path?query HTTP/1.1" 200 -`
                let request = l.split('"').nth(1)?;
                let mut parts = request.split(' ');
                let (method, target) = (parts.next()?, parts.next()?);
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let rel = path.strip_prefix(&base)?;
                Some((method.to_string(), rel.to_string(), query.to_string()))
            })
            .collect()
    }

    /// Bulk DeleteObjects requests answered so far.
    fn bulk_deletes(&self) -> usize {
        let log = std::fs::read_to_string(&self.requests).unwrap();
        let bulk = format!("\"POST /{BUCKET}?delete");
        log.lines().filter(|l| l.contains(&bulk)).count()
    }
}

fn envs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// `cspcost run pipelines/nightly.toml` on `lake` (a directory or an `s3://` URL).
fn nightly(lake: &str, env: &[(&str, &str)]) -> String {
    let mut env = env.to_vec();
    env.push(("CSPCOST_LAKE", lake));
    let cfg = root().join("pipelines/nightly.toml");
    ok_env(["run", &arg(&cfg)], &env)
}

#[test]
fn s3_lake_holds_the_same_data_as_a_local_lake() {
    let Some(moto) = Moto::start() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let env = moto.lake_env(scratch.path());
    let env = envs(&env);
    let prefix = "partner/nightly";
    let remote = format!("s3://{BUCKET}/{prefix}");

    nightly(&remote, &env);
    let local = lake();
    nightly(&arg(local.path()), &[]);

    let mirror = moto.mirror(prefix);
    let remote_data = assert_mirror_equals(mirror.path(), local.path());
    let remote_files = files_under(mirror.path());
    assert_eq!(
        remote_data["costs/org=contoso/month=2026-01/usage-0.parquet"].len(),
        222
    );
    assert!(remote_data.keys().any(|k| k.starts_with("staged/usage/")));
    assert!(remote_data.contains_key("assets/reservations.parquet"));
    assert_eq!(files_under(scratch.path()), Vec::<String>::new());

    // Each object was published the way its size says: a multipart upload (one part: the
    // parts are 16 MiB) above the threshold, one PUT up to it; both paths ran.
    let requests = moto.requests(prefix);
    let size = |rel: &str| std::fs::metadata(mirror.path().join(rel)).unwrap().len();
    let started: Vec<&String> = requests
        .iter()
        .filter(|(m, _, q)| m == "POST" && q.starts_with("uploads"))
        .map(|(_, rel, _)| rel)
        .collect();
    let completed = requests
        .iter()
        .filter(|(m, _, q)| m == "POST" && q.starts_with("uploadId="))
        .count();
    let single: Vec<&String> = requests
        .iter()
        .filter(|(m, _, q)| m == "PUT" && q.is_empty())
        .map(|(_, rel, _)| rel)
        .collect();
    assert!(
        started.iter().any(|f| f.starts_with("costs/")),
        "{started:?}"
    );
    assert_eq!(started.len(), completed, "every multipart upload completed");
    assert!(single.iter().any(|f| f.starts_with("_runs/")), "{single:?}");
    // An object's last upload wrote what it holds now: that upload's path fits its size.
    let mut last_upload = std::collections::BTreeMap::new();
    for (m, rel, q) in &requests {
        match (m.as_str(), q.as_str()) {
            ("POST", q) if q.starts_with("uploads") => last_upload.insert(rel, "multipart"),
            ("PUT", "") => last_upload.insert(rel, "single"),
            _ => None,
        };
    }
    for f in &remote_files {
        let how = last_upload[f];
        assert_eq!(how == "multipart", size(f) > THRESHOLD, "{f}: {how} upload");
    }

    // A rerun writes nothing; after `tenants remove` the organization's objects are deleted
    // on the store exactly as on the local lake.
    let again = ok_env(["rate", "--lake", &remote], &env);
    assert!(again.contains("partitions: 0 written"), "{again}");
    let adatum = "cb68bce3-1e3f-416d-a860-6a6043d14194";
    let deletes_before = moto.bulk_deletes();
    ok_env(["tenants", "remove", "--lake", &remote, adatum], &env);
    let after = ok_env(["rate", "--lake", &remote], &env);
    ok(["tenants", "remove", "--lake", &arg(local.path()), adatum]);
    ok(["rate", "--lake", &arg(local.path())]);
    assert!(after.contains(", 2 deleted"), "{after}");
    // object_store deletes with S3's bulk DeleteObjects (`POST /bucket?delete`).
    assert!(
        moto.bulk_deletes() > deletes_before,
        "no DeleteObjects request"
    );
    let mirror = moto.mirror(prefix);
    let remote_files = files_under(mirror.path());
    // The reservation charges of adatum's orders stay (reserve wrote them), as locally.
    assert!(!remote_files
        .iter()
        .any(|f| f.contains("org=adatum") && f.contains("/usage-")));
    assert_mirror_equals(mirror.path(), local.path());
}

/// Run cspcost with only `env` (and PATH, HOME): nothing else of the test's environment.
fn cspcost_only(args: &[&str], home: &Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cspcost"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(env.iter().copied())
        .output()
        .expect("run cspcost")
}

#[test]
fn s3_credentials_come_only_from_aws_variables_and_never_show() {
    let Some(moto) = Moto::start() else { return };
    let home = lake();
    let remote = format!("s3://{BUCKET}/creds");
    let reference = arg(&sample("reference"));
    let ingest = ["ingest", "reference", "--lake", &remote, &reference];
    let secret = moto.secret_access_key.clone();
    let no_secret = |out: &std::process::Output| {
        let text = format!("{}{}", stderr(out), String::from_utf8_lossy(&out.stdout));
        assert!(
            !text.contains(&secret),
            "the secret key was printed: {text}"
        );
    };

    // The right keys in the AWS_* variables: the server accepts the signed requests.
    let good = moto.env();
    let out = cspcost_only(&ingest, home.path(), &envs(&good));
    assert!(out.status.success(), "{}", stderr(&out));
    no_secret(&out);

    // A wrong secret: the server rejects the signature; exit 1, and neither secret shows.
    let mut wrong = moto.env();
    wrong.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789".into()));
    let out = cspcost_only(&ingest, home.path(), &envs(&wrong));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    assert!(err.contains(&remote), "the error names the lake: {err}");
    assert!(!err.contains("not-the-secret"), "{err}");
    no_secret(&out);

    // The right keys only in ~/.aws/credentials: not read. Without AWS_* credentials the
    // client asks the instance-metadata endpoint (here a closed local port) and fails.
    write(
        home.path(),
        ".aws/credentials",
        &format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n",
            moto.access_key_id
        ),
    );
    let out = cspcost_only(&ingest, home.path(), &envs(&moto.endpoint_env()));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("127.0.0.1:{}", moto.dead_port)),
        "{}",
        stderr(&out)
    );
    no_secret(&out);

    // Nothing the runs wrote to the lake holds a credential.
    let mirror = moto.mirror("creds");
    for f in files_under(mirror.path()) {
        let bytes = std::fs::read(mirror.path().join(&f)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&secret), "{f} holds the secret key");
        assert!(!text.contains(&moto.access_key_id), "{f} holds the key ID");
    }
}

#[test]
fn rate_killed_before_any_publish_on_s3_leaves_old_or_new_and_the_rerun_matches() {
    let Some(moto) = Moto::start() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let env = moto.lake_env(scratch.path());
    let env = envs(&env);
    let url = |prefix: &str| format!("s3://{BUCKET}/{prefix}");

    // `base`: rated on the first dump, then given the second (not yet rated).
    ingest_inputs(&url("base"), &SAMPLE_INPUTS[..3], &env);
    ok_env(["rate", "--lake", &url("base")], &env);
    ingest_inputs(&url("base"), &SAMPLE_INPUTS[3..], &env);
    moto.copy_prefix("base/", "uninterrupted/");
    ok_env(["rate", "--lake", &url("uninterrupted")], &env);
    let (old, new) = (moto.mirror("base"), moto.mirror("uninterrupted"));

    let mut crashes = 0;
    for n in 1..=40 {
        let work = format!("work-{n}");
        moto.copy_prefix("base/", &format!("{work}/"));
        let spec = format!("before-rename:{n}");
        let mut crash_env = env.clone();
        crash_env.push(("CSPCOST_CRASH_AT", &spec));
        let out = cspcost_env(["rate", "--lake", &url(&work)], &crash_env);
        if out.status.success() {
            // Fewer than n publishes: this run went through uninterrupted.
            crate::crash::same_data(moto.mirror(&work).path(), new.path(), &spec);
            break;
        }
        crashes += 1;
        assert!(
            stderr(&out).contains(&format!("injected crash at before-rename #{n}")),
            "{spec}: {}",
            stderr(&out)
        );
        let crashed = moto.mirror(&work);
        crate::crash::old_or_new(crashed.path(), old.path(), new.path(), &spec);
        assert!(
            !files_under(crashed.path())
                .iter()
                .any(|f| f.contains("_tmp")),
            "{spec}: nothing temporary on the store"
        );
        assert!(
            !files_under(scratch.path()).is_empty(),
            "{spec}: the crashed run leaves its local scratch"
        );

        ok_env(["rate", "--lake", &url(&work)], &env);
        crate::crash::same_data(
            moto.mirror(&work).path(),
            new.path(),
            &format!("rerun after {spec}"),
        );
        assert_eq!(
            files_under(scratch.path()),
            Vec::<String>::new(),
            "rerun after {spec}: the crashed run's scratch is removed"
        );
    }
    // Five partitions, two quarantine files, the state and the manifest are published.
    assert!(crashes >= 5, "only {crashes} crash points");
}

//! The house layering (`../shared/STYLE.md`, issue 12): a stage module never imports another
//! stage; the shared layers (`emit`, `staged`, `pricing`) import no stage; `model` imports
//! neither the store, nor a stage, nor a shared layer. The orchestrator (`pipeline`), `cli.rs`
//! and `main.rs` may import anything. The same rule as `../shared/tools/layers`, checked over
//! every `crate::` path outside test modules, so that a crossing fails `make test`.

use std::path::{Path, PathBuf};

const STAGES: [&str; 6] = ["ingest", "rate", "reconcile", "reserve", "pull", "bill"];
const LAYERS: [&str; 3] = ["emit", "staged", "pricing"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::<forbidden>` path in the non-test part of the files under `src/<folder>`.
fn crossings(folder: &str, forbidden: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join(folder), &mut files);
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            for other in forbidden {
                let needle = format!("crate::{other}");
                let hit = line.match_indices(&needle).any(|(i, _)| {
                    let next = line[i + needle.len()..].chars().next();
                    !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if hit {
                    found.push(format!(
                        "{}:{}: {folder} -> {other}: {}",
                        f.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn no_module_crosses_the_layering() {
    let mut found = Vec::new();
    for stage in STAGES {
        let others: Vec<&str> = STAGES.iter().copied().filter(|s| *s != stage).collect();
        found.extend(crossings(stage, &others));
    }
    for layer in LAYERS {
        found.extend(crossings(layer, &STAGES));
    }
    let model_forbidden: Vec<&str> = ["store"].into_iter().chain(STAGES).chain(LAYERS).collect();
    found.extend(crossings("model", &model_forbidden));
    assert!(
        found.is_empty(),
        "imports that cross the layering:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_crossing() {
    // The check itself must not be blind: `rate` uses `pricing`, so scanning `rate` for
    // `pricing` finds lines.
    assert!(!crossings("rate", &["pricing"]).is_empty());
}

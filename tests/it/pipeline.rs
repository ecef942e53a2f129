//! `cspcost run pipelines/*.toml`: the shipped pipelines run on `sample_data/` and give the
//! same lake as the commands one by one; config errors are all reported with their lines;
//! `--dry-run` writes nothing.

use crate::common::*;

#[test]
fn nightly_pipeline_equals_the_commands_run_by_hand() {
    let dir = lake();
    let cfg = pipeline_into(dir.path(), "nightly.toml");
    let out = ok(["run", &arg(&cfg)]);
    assert!(
        out.contains("records: 396 read = 356 new + 3 restated + 37 unchanged + 0 quarantined"),
        "{out}"
    );
    // The same stages by hand: every Parquet file of both lakes (staged tables, costs,
    // quarantine, assets) holds the same rows in every column but the run IDs.
    let by_hand = rated_sample();
    let l = arg(by_hand.path());
    ok([
        "ingest",
        "reservations",
        "--lake",
        &l,
        &arg(&sample("reservations")),
    ]);
    ok(["rate", "--lake", &l]);
    ok(["reserve", "--lake", &l, "--as-of", "2026-02-16"]);
    let piped = parquet_snapshot(&dir.path().join("lake"));
    let manual = parquet_snapshot(by_hand.path());
    assert_eq!(
        piped.keys().collect::<Vec<_>>(),
        manual.keys().collect::<Vec<_>>()
    );
    for (file, rows) in &piped {
        assert!(
            !rows.is_empty() || file.contains("quarantine"),
            "{file} is empty"
        );
        assert_eq!(rows, &manual[file], "{file}");
    }
    assert!(piped.keys().any(|k| k.ends_with("purchases-0.parquet")));
    assert!(dir.path().join("lake/assets/reservations.parquet").exists());
    // The run's own manifest is written last and names every stage's run.
    let ms = manifests(&dir.path().join("lake"));
    let run = ms
        .iter()
        .find(|m| m.command == "run")
        .expect("run manifest");
    assert_eq!(run.counts["stages"], 7);
    assert_eq!(run.notes.len(), 7);
    assert!(
        run.notes
            .iter()
            .all(|n| ms.iter().any(|m| n.ends_with(&m.run_id))),
        "{:?}",
        run.notes
    );
    // Nothing changed: a second nightly run ingests nothing and rates nothing.
    let again = ok(["run", &arg(&cfg)]);
    assert!(
        again.contains("files: 0 read, 9 skipped")
            && again.contains("records: 0 staged = 0 rated + 0 quarantined"),
        "{again}"
    );
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let dir = lake();
    let cfg = pipeline_into(dir.path(), "nightly.toml");
    let out = ok(["run", &arg(&cfg), "--dry-run"]);
    assert!(
        out.contains("the lake does not exist yet")
            && out.contains("ingest usage: 9 files, 9 new")
            && out.contains("reserve as of 2026-02-16"),
        "{out}"
    );
    assert!(!dir.path().join("lake").exists());
    ok(["run", &arg(&cfg)]);
    // After new usage arrives, the dry run says which month would be re-rated and why.
    let src = lake();
    let f = write(
        src.path(),
        "late/u.ndjson",
        r#"{"customerTenantId":"686adbc4-fd3f-4688-b527-617394bf68af","subscriptionId":"6ad487b8-95fe-47a5-92c2-b86c364426b3","usageStartTime":"2026-01-20T00:00:00Z","usageEndTime":"2026-01-21T00:00:00Z","resource":{"id":"8a09ff56-1b50-410f-a959-30227b19001e"},"quantity":2}"#,
    );
    ok([
        "ingest",
        "usage",
        "--lake",
        &arg(&dir.path().join("lake")),
        &arg(&f),
    ]);
    let before: Vec<_> = std::fs::read_dir(dir.path().join("lake/_runs"))
        .unwrap()
        .collect();
    let out = ok(["run", &arg(&cfg), "--dry-run"]);
    assert!(out.contains("2026-01: inputs changed"), "{out}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("lake/_runs"))
            .unwrap()
            .count(),
        before.len()
    );
}

#[test]
fn config_errors_are_all_reported_with_lines() {
    let dir = lake();
    let cfg = write(
        dir.path(),
        "bad.toml",
        "lake = \"x\"\nstages = [\"ingest\", \"rate\", \"publish\"]\n[ingest]\nusage = [\"/nonexistent/dump\"]\n[rate]\ntier_scope = \"galaxy\"\nmonths = [\"2026-13\"]\nshard = \"4/2\"\n",
    );
    let out = cspcost(["run", &arg(&cfg)]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    for needle in [
        "bad.toml:4: ingest.usage path /nonexistent/dump does not exist",
        "bad.toml:6: rate.tier_scope 'galaxy'",
        "bad.toml:7: rate.months '2026-13' is not YYYY-MM",
        "bad.toml:8: rate.shard '4/2'",
        "bad.toml:2: unknown stage 'publish'",
    ] {
        assert!(e.contains(needle), "{needle} not in {e}");
    }
    let typo = write(
        dir.path(),
        "typo.toml",
        "lake = \"x\"\nstages = [\"rate\"]\n[rate]\ntier_scop = \"customer\"\n",
    );
    let out = cspcost(["run", &arg(&typo)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("typo.toml (line 4): unknown field `tier_scop`"),
        "{}",
        stderr(&out)
    );
}

/// One command path (issue 12): the same `rate` options through flags and through a
/// pipeline's `[rate]` table give the same request, and each invalid value the same sentence
/// after the field's name (`--tier-scope` or `bad.toml:N: rate.tier_scope`).
#[test]
fn rate_flags_and_pipeline_tables_share_one_validation() {
    use cspcost::rate::run::RateRequest;
    let dir = lake();
    let l = arg(dir.path());
    ok([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&sample("reference")),
    ]);
    let cases: [(&str, &str, &str); 5] = [
        ("--tier-scope", "tier_scope = \"galaxy\"", "rate.tier_scope"),
        (
            "--tier-period",
            "tier_period = \"weekly\"",
            "rate.tier_period",
        ),
        ("--month", "months = [\"2026-13\"]", "rate.months"),
        ("--threads", "threads = 0", "rate.threads"),
        ("--shard", "shard = \"4/2\"", "rate.shard"),
    ];
    let values = ["galaxy", "weekly", "2026-13", "0", "4/2"];
    for ((flag, toml_line, field), value) in cases.iter().zip(values) {
        let cli = cspcost(["rate", "--lake", &l, flag, value]);
        assert_eq!(cli.status.code(), Some(2), "{flag}");
        let cli_err = stderr(&cli);
        let cfg = write(
            dir.path(),
            "bad.toml",
            &format!("lake = \"{l}\"\nstages = [\"rate\"]\n[rate]\n{toml_line}\n"),
        );
        let run = cspcost(["run", &arg(&cfg)]);
        assert_eq!(run.status.code(), Some(2), "{toml_line}");
        let run_err = stderr(&run);
        let after = |text: &str, name: &str| -> String {
            let at = text
                .find(name)
                .unwrap_or_else(|| panic!("{name} not in {text}"));
            text[at + name.len()..].lines().next().unwrap().to_string()
        };
        let pipeline_name = format!("bad.toml:4: {field}");
        assert_eq!(
            after(&cli_err, flag),
            after(&run_err, &pipeline_name),
            "{cli_err}\n{run_err}"
        );
    }
    // Valid options: the same request gives the same options whichever way it came.
    let request = RateRequest {
        months: vec!["2026-01".into()],
        tier_scope: Some("customer".into()),
        tier_period: Some("billing_cycle:15".into()),
        threads: Some(2),
        shard: Some("1/3".into()),
        dry_run: false,
    };
    let by_flag = request.validate(&|f, _| format!("--{f}")).unwrap();
    let by_table = request.validate(&|f, _| format!("rate.{f}")).unwrap();
    assert_eq!(format!("{by_flag:?}"), format!("{by_table:?}"));
    assert_eq!(by_flag.scope.as_str(), "customer");
    assert_eq!(by_flag.period.as_string(), "billing_cycle:15");
    assert_eq!(by_flag.months, vec!["2026-01".to_string()]);
}

/// The text after `name` on its line: the sentence a problem gives after the field's name.
fn sentence_after(text: &str, name: &str) -> String {
    let at = text
        .find(name)
        .unwrap_or_else(|| panic!("{name} not in {text}"));
    text[at + name.len()..].lines().next().unwrap().to_string()
}

/// The flags of a command line as clap parses them (no I/O: clap never opens the lake).
fn parsed(args: &[&str]) -> cspcost::cli::Command {
    use clap::Parser;
    let argv = std::iter::once("cspcost").chain(args.iter().copied());
    cspcost::cli::Cli::try_parse_from(argv).unwrap().command
}

/// The steps of a pipeline file on `lake` with `stages` and `tables`.
fn planned(dir: &std::path::Path, lake: &str, stages: &str, tables: &str) -> Vec<String> {
    let cfg = write(
        dir,
        "good.toml",
        &format!("lake = \"{lake}\"\nstages = [{stages}]\n{tables}"),
    );
    let plan = cspcost::pipeline::plan::load(&cfg).unwrap();
    plan.steps.iter().map(|s| format!("{s:?}")).collect()
}

/// One command path (issue 12) for `reserve` and the enum flags: clap and a pipeline table
/// build the same request, validate it into the same options, and an invalid value gets the
/// same sentence after the field's name (`--as-of` or `bad.toml:4: reserve.as_of`).
#[test]
fn reserve_and_enum_flags_share_one_validation_with_pipeline_tables() {
    use cspcost::cli::{reconcile_options, reserve_options, Command};
    use cspcost::model::choice::Choice;
    use cspcost::model::tier::TierScope;
    use cspcost::pipeline::config::RateConfig;
    use cspcost::reconcile::run::Grain;
    use cspcost::reserve::request::ReserveRequest;
    let dir = lake();
    let l = arg(dir.path());

    // reserve: an invalid date, the same sentence both ways.
    let cli = cspcost(["reserve", "--lake", &l, "--as-of", "2026-13-01"]);
    assert_eq!(cli.status.code(), Some(2));
    let cfg = write(
        dir.path(),
        "bad.toml",
        &format!("lake = \"{l}\"\nstages = [\"reserve\"]\n[reserve]\nas_of = \"2026-13-01\"\n"),
    );
    let run = cspcost(["run", &arg(&cfg)]);
    assert_eq!(run.status.code(), Some(2));
    let by_flag = sentence_after(&stderr(&cli), "--as-of");
    assert_eq!(by_flag, " '2026-13-01': expected a date YYYY-MM-DD");
    assert_eq!(
        by_flag,
        sentence_after(&stderr(&run), "bad.toml:4: reserve.as_of")
    );

    // reserve: a valid date (and the today default), the same request and options.
    let Command::Reserve(a) = parsed(&["reserve", "--lake", &l, "--as-of", "2026-02-16"]) else {
        panic!("not reserve")
    };
    let request = ReserveRequest::from(&a);
    assert_eq!(request.as_of.as_deref(), Some("2026-02-16"));
    let table = "[reserve]\nas_of = \"2026-02-16\"\n";
    let steps = planned(dir.path(), &l, "\"reserve\"", table);
    assert_eq!(
        steps,
        [format!("Reserve({:?})", reserve_options(&a).unwrap())]
    );
    assert_eq!(steps, ["Reserve(ReserveOptions { as_of: 2026-02-16 })"]);
    let Command::Reserve(a) = parsed(&["reserve", "--lake", &l]) else {
        panic!("not reserve")
    };
    assert_eq!(ReserveRequest::from(&a), ReserveRequest::default());
    let today = planned(dir.path(), &l, "\"reserve\"", "");
    assert_eq!(
        today,
        [format!("Reserve({:?})", reserve_options(&a).unwrap())]
    );

    // --tier-scope and rate.tier_scope: one parse, known word or not (clap keeps an unknown
    // one for validation to report with every other problem).
    for word in [
        "subscription",
        "customer",
        "organization",
        "galaxy",
        "Customer",
    ] {
        let Command::Rate(a) = parsed(&["rate", "--lake", &l, "--tier-scope", word]) else {
            panic!("not rate")
        };
        let table: RateConfig = toml::from_str(&format!("tier_scope = \"{word}\"")).unwrap();
        let from_table = table.tier_scope.map(|s| s.into_inner());
        assert_eq!(Some(a.tier_scope.clone()), from_table, "{word}");
        assert_eq!(a.tier_scope, Choice::<TierScope>::parse(word), "{word}");
    }
    let Command::Rate(a) = parsed(&["rate", "--lake", &l, "--tier-scope", "customer"]) else {
        panic!("not rate")
    };
    let table = "[rate]\ntier_scope = \"customer\"\n";
    let steps = planned(dir.path(), &l, "\"rate\"", table);
    let by_flag = cspcost::cli::rate_options(&a).unwrap();
    assert_eq!(steps, [format!("Rate({by_flag:?})")]);
    assert_eq!(by_flag.scope, TierScope::Customer);

    // --grain daily and `daily = true`: the same options; an unknown grain, the sentence
    // of the one parse.
    let out = dir.path().join("recon");
    let o = arg(&out);
    let period = ["--from", "2026-01-01", "--to", "2026-01-31", "--out", &o];
    let flags = [
        &["reconcile", "--lake", &l][..],
        &period,
        &["--grain", "daily"],
    ]
    .concat();
    let Command::Reconcile(a) = parsed(&flags) else {
        panic!("not reconcile")
    };
    let by_flag = reconcile_options(&a).unwrap();
    assert_eq!(by_flag.grain, Grain::Daily);
    let table = format!(
        "[[reconcile]]\nfrom = \"2026-01-01\"\nto = \"2026-01-31\"\nout = \"{o}\"\ndaily = true\n"
    );
    let steps = planned(dir.path(), &l, "\"reconcile\"", &table);
    assert_eq!(steps, [format!("Reconcile({by_flag:?})")]);
    let bad = cspcost(
        [
            &["reconcile", "--lake", &l][..],
            &period,
            &["--grain", "weekly"],
        ]
        .concat(),
    );
    assert_eq!(bad.status.code(), Some(2));
    let why = Choice::<Grain>::parse("weekly").value().unwrap_err();
    assert_eq!(why, "'weekly': expected period or daily");
    assert_eq!(sentence_after(&stderr(&bad), "--grain "), why);

    // --status: the sentence of the one parse, in any case as the assets table accepts.
    use cspcost::reserve::assets::AssetStatus;
    let Command::Assets(a) = parsed(&["assets", "--lake", &l, "--status", "EXPIRED"]) else {
        panic!("not assets")
    };
    assert_eq!(a.status, Some(Choice::Known(AssetStatus::Expired)));
    let why = Choice::<AssetStatus>::parse("pending").value().unwrap_err();
    assert_eq!(why, "'pending': expected active or expired");

    // --log-format: clap itself refuses an unknown word, naming the flag and the values.
    let bad = cspcost(["--log-format", "xml", "runs", "--lake", &l]);
    assert_eq!(bad.status.code(), Some(2));
    let e = stderr(&bad);
    assert!(
        e.contains("invalid value 'xml' for '--log-format <FORMAT>'")
            && e.contains("[possible values: text, json]"),
        "{e}"
    );
}

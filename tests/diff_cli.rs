//! `vaelab ls`, `show` and `diff` on runs with constructed numbers at two commits of a
//! temporary git repository: pairing, unpaired runs, exact deltas and verdicts, JSON = table.
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::git;

use vaelab::config::RunSpec;
use vaelab::model::ModelKind;
use vaelab::store::{write_metrics, EpochRow, Provenance, RunState, RunStatus, Store};

/// A finished run `id` of `spec` built from `commit`, whose final test epoch (2) has exactly
/// `recon` and `kl` (epoch 1 is 10 worse).
fn fake_run(store: &Store, id: &str, spec: &RunSpec, commit: &str, recon: f64, kl: f64) {
    let run = store.run(id);
    run.create(spec).unwrap();
    let mut prov = Provenance::capture(spec, Default::default());
    prov.git_commit = commit.to_string();
    prov.git_dirty = false;
    prov.write(&run).unwrap();
    let row = |epoch: u32, split: &str, extra: f64| EpochRow {
        run_id: id.to_string(),
        epoch,
        split: split.parse().unwrap(),
        recon: recon + extra,
        kl: Some(kl),
        beta_kl: Some(spec.beta * kl),
        loss: recon + extra + spec.beta * kl,
        article_loss: (split == "train").then_some(32.0 * (recon + extra)),
        lr: Some(spec.lr),
        kl_weight: Some(spec.beta),
        capacity: None,
        seconds: 1.0,
    };
    let rows = vec![
        row(1, "train", 12.0),
        row(1, "test", 10.0),
        row(2, "train", 2.0),
        row(2, "test", 0.0),
    ];
    write_metrics(&run.metrics_path(), &rows).unwrap();
    // A done run has its model file (its content does not matter here).
    std::fs::write(run.model_path(), b"").unwrap();
    run.write_status(&RunStatus {
        state: RunState::Done,
        epochs_done: 2,
        message: None,
    })
    .unwrap();
}

fn vae(beta: f64, seed: u64) -> RunSpec {
    RunSpec {
        model: ModelKind::Vae,
        beta,
        seed,
        epochs: 2,
        ..RunSpec::default()
    }
}

fn vaelab_in(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vaelab"))
        .arg("--results")
        .arg(repo.join("results"))
        .args(args)
        .current_dir(repo)
        .output()
        .unwrap()
}

/// A repository with two commits (a fixture changed in between) and runs at both.
fn setup() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("fixture.txt"), "lr = 0.001\n").unwrap();
    std::fs::write(repo.join(".gitignore"), "results/\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "first"]);
    let c1 = git(repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("fixture.txt"), "lr = 0.002\n").unwrap();
    git(repo, &["commit", "-q", "-am", "change the fixture"]);
    let c2 = git(repo, &["rev-parse", "HEAD"]);

    let store = Store::new(repo.join("results"));
    // β = 1 at seeds 0 and 1 on both commits (paired, with a seed spread); β = 3 only at c1
    // and β = 2.5 only at c2 (unpaired); β = 0 seed 5 on both with a large change.
    fake_run(&store, "vae-a10", &vae(1.0, 0), &c1, 40.0, 5.0);
    fake_run(&store, "vae-a11", &vae(1.0, 1), &c1, 42.0, 5.0);
    fake_run(&store, "vae-b10", &vae(1.0, 0), &c2, 40.5, 5.0);
    fake_run(&store, "vae-b11", &vae(1.0, 1), &c2, 42.5, 5.0);
    fake_run(&store, "vae-a3", &vae(3.0, 0), &c1, 50.0, 2.0);
    fake_run(&store, "vae-b25", &vae(2.5, 0), &c2, 48.0, 2.5);
    fake_run(&store, "vae-a0", &vae(0.0, 5), &c1, 30.0, 90.0);
    fake_run(&store, "vae-b0", &vae(0.0, 5), &c2, 33.0, 90.0);
    (dir, c1, c2)
}

#[test]
fn diff_pairs_runs_across_commits_with_exact_deltas_and_verdicts() {
    let (dir, c1, c2) = setup();
    let repo = dir.path();
    let out = vaelab_in(repo, &["diff", "HEAD~1", "HEAD", "--format", "json"]);
    // The β = 0 pair moved by 10%: the exit code says "changed".
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["commits"].as_array().unwrap().len(), 1);
    assert!(json["commits"][0]
        .as_str()
        .unwrap()
        .ends_with("change the fixture"));
    assert!(json["files"][0]
        .as_str()
        .unwrap()
        .starts_with("fixture.txt"));
    assert!(json["a"].as_str().unwrap().contains(&c1[..10]));
    assert!(json["b"].as_str().unwrap().contains(&c2[..10]));

    let pairs = json["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 3, "β=1 × 2 seeds and β=0");
    let pair = |a: &str| pairs.iter().find(|p| p["a"] == a).unwrap();
    assert_eq!(pair("vae-a10")["b"], "vae-b10");
    assert_eq!(pair("vae-a11")["b"], "vae-b11");
    assert_eq!(pair("vae-a0")["b"], "vae-b0");
    let metric = |p: &serde_json::Value, m: &str| {
        p["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["metric"] == m)
            .unwrap()
            .clone()
    };
    // β = 1, seed 0: recon 40 -> 40.5; both sides have seeds 0 and 1 (recon 40/42 and
    // 40.5/42.5: sd √2 each), so noise = 2·√2 and +0.5 is within it.
    let recon = metric(pair("vae-a10"), "test_recon");
    assert_eq!(recon["a"], 40.0);
    assert_eq!(recon["b"], 40.5);
    assert_eq!(recon["delta"], 0.5);
    assert!((recon["delta_pct"].as_f64().unwrap() - 1.25).abs() < 1e-12);
    assert!((recon["noise"].as_f64().unwrap() - 2.0 * 2f64.sqrt()).abs() < 1e-12);
    assert_eq!(recon["noise_from"], "2 sd over 2+2 seeds");
    assert_eq!(recon["changed"], false);
    // Largest per-epoch test-loss delta: +0.5 (at both epochs).
    assert_eq!(pair("vae-a10")["largest_epoch_delta"][1], 0.5);
    // β = 0, one seed: 30 -> 33 (+10%) against the 1% tolerance: changed.
    let recon0 = metric(pair("vae-a0"), "test_recon");
    assert_eq!(recon0["delta"], 3.0);
    assert_eq!(recon0["noise_from"], "tolerance 1%");
    assert_eq!(recon0["changed"], true);
    assert_eq!(metric(pair("vae-a0"), "test_kl")["changed"], false);

    let unpaired = json["unpaired"].as_array().unwrap();
    assert_eq!(unpaired.len(), 2);
    let a3 = unpaired.iter().find(|u| u["id"] == "vae-a3").unwrap();
    assert_eq!(a3["side"], "A");
    assert_eq!(a3["closest"][0], "vae-b25");
    assert_eq!(a3["closest"][1][0], "beta: 3.0 -> 2.5");
    assert_eq!(json["changed"], true);

    // The table says the same things.
    let table = vaelab_in(repo, &["diff", "HEAD~1", "HEAD"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("only in A: vae-a3") && text.contains("differs in beta: 3.0 -> 2.5"));
    assert!(text.contains("only in B: vae-b25"));
    for p in pairs {
        for m in p["metrics"].as_array().unwrap() {
            // A, B and delta stand side by side as cells of one row.
            let cells = [
                format!("{:.4}", m["a"].as_f64().unwrap()),
                format!("{:.4}", m["b"].as_f64().unwrap()),
                format!("{:+.4}", m["delta"].as_f64().unwrap()),
            ];
            let found = text.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.windows(3).any(|w| w == cells)
            });
            assert!(found, "missing {cells:?} in\n{text}");
        }
    }
    // β = 0 recon and loss.
    assert_eq!(text.matches("CHANGED").count(), 2, "{text}");
    // --only-changed hides the β = 1 pairs.
    let only = vaelab_in(repo, &["diff", "HEAD~1", "HEAD", "--only-changed"]);
    assert!(String::from_utf8_lossy(&only.stdout).contains("paired runs (1 of 3 shown)"));
    // Two single runs have no seed spread: +1.25% is a change at the default 1% tolerance,
    // noise at 2%.
    let single = |tol: &str| vaelab_in(repo, &["diff", "vae-a10", "vae-b10", "--tolerance", tol]);
    assert_eq!(single("0.01").status.code(), Some(1));
    assert_eq!(single("0.02").status.code(), Some(0));
    // Markdown renders a table.
    let md = vaelab_in(repo, &["diff", "HEAD~1", "HEAD", "--format", "md"]);
    let md_text = String::from_utf8_lossy(&md.stdout);
    let header = md_text
        .lines()
        .find(|l| l.starts_with("| params"))
        .unwrap_or_else(|| panic!("no Markdown table in:\n{md_text}"));
    let cells: Vec<&str> = header
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells[..5], ["params", "metric", "A", "B", "delta"]);
}

#[test]
fn diff_lists_machine_set_up_differences_that_can_change_numbers() {
    let (dir, c1, c2) = setup();
    let repo = dir.path();
    let store = Store::new(repo.join("results"));
    for id in ["vae-b10", "vae-b11", "vae-b25", "vae-b0"] {
        let run = store.run(id);
        let mut p = Provenance::read(&run).unwrap();
        p.torch_threads = 7;
        p.libtorch = "2.9.1+cpu".into();
        p.write(&run).unwrap();
    }
    let out = vaelab_in(repo, &["diff", &c1, &c2, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let setup = json["setup"].as_array().unwrap();
    let names: Vec<&str> = setup.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["libtorch", "torch_threads"], "{json}");
    assert_eq!(setup[1]["b"], "7");
    assert_eq!(setup[0]["b"], "2.9.1+cpu");
    let table = vaelab_in(repo, &["diff", &c1, &c2]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("machine set-up differences"), "{text}");
    assert!(text.contains("torch_threads: "), "{text}");
    assert!(text.contains(" -> 7"), "{text}");
    // The same set-up on both sides: no such section.
    let same = vaelab_in(repo, &["diff", &c1, &c1]);
    assert!(!String::from_utf8_lossy(&same.stdout).contains("machine set-up"));
}

#[test]
fn ls_filters_and_show_and_unknown_names() {
    let (dir, c1, _) = setup();
    let repo = dir.path();
    let ls = |args: &[&str]| {
        let mut all = vec!["ls"];
        all.extend_from_slice(args);
        let out = vaelab_in(repo, &all);
        assert!(out.status.success(), "{}", common::text(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ls(&[]).len(), 8);
    let mut at_c1 = ls(&["--commit", "HEAD~1"]);
    at_c1.sort();
    assert_eq!(at_c1, ["vae-a0", "vae-a10", "vae-a11", "vae-a3"]);
    assert_eq!(ls(&["--commit", &c1[..8], "--where", "beta=3"]), ["vae-a3"]);
    assert_eq!(ls(&["--where", "beta=1", "--where", "seed=1"]).len(), 2);

    let show = vaelab_in(repo, &["show", "vae-a3"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("beta = 3.0") && text.contains(&format!("git_commit = \"{c1}\"")));
    assert!(text.contains("    2  test"), "{text}");

    for (args, want) in [
        (
            vec!["diff", "nosuch", "HEAD"],
            "no sweep, run id or git revision named \"nosuch\"",
        ),
        (
            vec!["ls", "--where", "colour=red"],
            "--where unknown key `colour`",
        ),
        (vec!["show", "vae-zz"], "no sweep or run named \"vae-zz\""),
    ] {
        let out = vaelab_in(repo, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn plot_diff_overlays_both_sides() {
    let (dir, _, _) = setup();
    let repo = dir.path();
    let out = vaelab_in(repo, &["plot", "--diff", "HEAD~1", "HEAD"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let png = repo.join("results/diffs/HEAD_1..HEAD/tradeoff.png");
    assert!(png.is_file(), "{}", common::text(&out));
    let svg = std::fs::read_to_string(png.with_extension("svg")).unwrap();
    assert!(svg.contains("A: VAE") && svg.contains("B: VAE"));
}

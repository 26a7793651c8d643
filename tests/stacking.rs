//! Stacked sweeps through the real binary: a member trained in a stack has exactly the numbers
//! of its run trained alone; kill -9 anywhere and relaunch gives the uninterrupted numbers;
//! `--dry-run` shows the stacks. (The member that goes non-finite and fails alone while its
//! stack goes on is `sweep_cli::a_diverging_run_is_marked_failed_and_the_sweep_goes_on`.)
// Without the feature the failpoint tests are compiled out, leaving some helpers unused.
#![cfg_attr(not(feature = "failpoints"), allow(dead_code, unused_imports))]
mod common;

use std::path::{Path, PathBuf};

use vaelab::report::figures::Inspector;
use vaelab::store::{Provenance, RunState, Store};

/// Five VAEs that differ in β, seed and learning rate, and two AEs that differ in seed: three
/// epochs on 600 images.
const MATRIX: &str = r#"[sweep]
name = "stacks"
[base]
epochs = 3
limit = 600
hidden = [256]
[grid]
model = ["ae", "vae"]
beta = [1.0, 3.0]
seed = [1, 2]
[[include]]
model = "vae"
beta = 0.5
seed = 3
lr = 0.002
"#;

fn write_matrix(dir: &Path) -> PathBuf {
    let path = dir.join("stacks.toml");
    std::fs::write(&path, MATRIX).unwrap();
    path
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The sweep trained with `--stack STACK` into a fresh results folder, its kernels
/// single-threaded ([`common::SINGLE_THREADED`]).
fn trained(dir: &Path, stack: &str) -> PathBuf {
    let matrix = write_matrix(dir);
    let results = dir.join(format!("results-{stack}"));
    let out = common::vaelab_env(
        &results,
        common::SINGLE_THREADED,
        &["--quiet", "sweep", path(&matrix), "--stack", stack],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    results
}

/// What each run's trained network decodes from two fixed codes.
fn decoded(results: &Path) -> Vec<(String, Vec<Vec<f32>>)> {
    let store = Store::new(results);
    common::metrics_by_run(results)
        .into_iter()
        .map(|(id, _)| {
            let spec = store.run(&id).read_spec().unwrap();
            let model = Inspector::load(&store.run(&id), &spec).unwrap();
            let codes = [vec![0.5; spec.latent], vec![-1.0; spec.latent]];
            (id, model.decode(&codes, &[]))
        })
        .collect()
}

/// Each member of a stack of 5 VAEs (β, seed and lr differing) and of a stack of 2 AEs has
/// bit for bit the per-epoch numbers and the trained network of its run alone (kernels
/// single-threaded, as on a `--jobs` worker; with more threads the kernels may round
/// differently, which `at_other_shapes_members_equal_their_runs_alone_to_rounding` bounds),
/// and its provenance says with whom it trained.
#[test]
fn stacked_members_equal_their_runs_alone_bit_for_bit() {
    let scratch = tempfile::tempdir().unwrap();
    let alone = trained(scratch.path(), "off");
    let stacked = trained(scratch.path(), "8");
    let (a, s) = (
        common::metrics_by_run(&alone),
        common::metrics_by_run(&stacked),
    );
    assert_eq!(a.len(), 7);
    assert!(a.iter().all(|(_, rows)| rows.len() == 6));
    assert_eq!(a, s, "stacked metrics differ from the runs alone");
    assert_eq!(decoded(&alone), decoded(&stacked));

    let store = Store::new(&stacked);
    let stacks: Vec<Vec<String>> = a
        .iter()
        .map(|(id, _)| Provenance::read(&store.run(id)).unwrap().stacks)
        .collect();
    let sizes: Vec<&str> = stacks
        .iter()
        .map(|s| {
            assert_eq!(s.len(), 1, "{s:?}");
            if s[0].contains("stack of 5 with") {
                "5"
            } else if s[0].contains("stack of 2 with") {
                "2"
            } else {
                panic!("{s:?}")
            }
        })
        .collect();
    assert_eq!(sizes.iter().filter(|s| **s == "5").count(), 5, "{stacks:?}");
    assert_eq!(sizes.iter().filter(|s| **s == "2").count(), 2, "{stacks:?}");
    let alone_store = Store::new(&alone);
    let prov = Provenance::read(&alone_store.run(&a[0].0)).unwrap();
    assert_eq!(prov.stacks, ["epochs 1-: stack of 1"]);
}

/// A stacked member's per-epoch `seconds` is its share of the stack's time (README, "Stacked
/// sweeps"): the split's wall time divided by the number of members M, the same for every
/// member, so that M times a member's seconds, summed over epochs 2 to the last, is the time
/// between the stack's first and last epoch lines, measured here as they arrive.
#[test]
fn a_stacked_members_seconds_are_the_split_time_divided_by_the_members() {
    use std::io::BufRead;
    use std::time::Instant;
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("pair.toml");
    // Eight short epochs (the evaluation at the end runs on as many test images as the limit).
    let epochs = 8;
    std::fs::write(
        &matrix,
        format!("[sweep]\nname = \"pair\"\n[base]\nmodel = \"vae\"\nepochs = {epochs}\nlimit = 5000\nhidden = [64]\n[grid]\nseed = [1, 2]\n"),
    )
    .unwrap();
    let results = scratch.path().join("results");
    let mut child = common::command(&results)
        .args(["--quiet", "sweep", path(&matrix), "--stack", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines: Vec<(String, Instant)> = Vec::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        lines.push((line.unwrap(), Instant::now()));
    }
    let text: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
    assert!(child.wait().unwrap().success(), "{text}");
    let runs = common::metrics_by_run(&results);
    assert_eq!(runs.len(), 2);
    let store = Store::new(&results);
    let with_seconds: Vec<Vec<vaelab::store::EpochRow>> = runs
        .iter()
        .map(|(id, _)| vaelab::store::read_metrics(&store.run(id).metrics_path()).unwrap())
        .collect();
    for (id, _) in &runs {
        let stacks = Provenance::read(&store.run(id)).unwrap().stacks;
        assert_eq!(stacks.len(), 1, "{stacks:?}");
        assert!(stacks[0].contains("stack of 2 with"), "{stacks:?}");
    }
    // Every member gets the same share of each split.
    let (a, b) = (&with_seconds[0], &with_seconds[1]);
    assert_eq!(a.len(), 2 * epochs);
    assert_eq!(b.len(), a.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.epoch, &x.split), (y.epoch, &y.split));
        assert!(x.seconds > 0.0, "{x:?}");
        assert_eq!(x.seconds, y.seconds, "epoch {} {}", x.epoch, x.split);
    }
    // When the first member's line of each epoch arrived.
    let first = &runs[0].0;
    let arrived = |epoch: usize| {
        let head = format!("{first} epoch {epoch:>3}/{epochs}");
        lines
            .iter()
            .find(|(l, _)| l.starts_with(&head))
            .unwrap_or_else(|| panic!("no {head:?} in:\n{text}"))
            .1
    };
    let wall = arrived(epochs).duration_since(arrived(1)).as_secs_f64();
    let shares: f64 = a.iter().filter(|r| r.epoch >= 2).map(|r| r.seconds).sum();
    let stack = 2.0 * shares;
    assert!(
        wall > 0.3 && (stack - wall).abs() <= 0.1 * wall + 0.05,
        "2 × a member's seconds of epochs 2-{epochs}: {stack:.3} s; the stack took {wall:.3} s"
    );
}

/// At shapes where libtorch picks another matmul kernel for a stack than for one run (tiny
/// widths, batch 5) a member may differ from its run alone by rounding: within 1e-5 relative
/// after 3 epochs (measured: at most 4.3e-7 after 10 epochs, README "Stacked sweeps"). The
/// same for the literature's setup: a Bernoulli decoder on dynamically binarised images, tanh,
/// the heads on the last hidden layer (each member draws its own binary images), members
/// with their own learning-rate schedules; IWAE with K = 3 draws and Adam's ε = 1e-4; a
/// 2-draw ELBO.
#[test]
fn at_other_shapes_members_equal_their_runs_alone_to_rounding() {
    let scratch = tempfile::tempdir().unwrap();
    let article = "model = \"vae\"\nhidden = [16]\n";
    let literature = "model = \"vae\"\nhidden = [16, 8]\nlikelihood = \"bernoulli\"\nbinarize = \"dynamic\"\nactivation = \"tanh\"\nlayout = \"heads\"\nlr_schedule = \"exponential\"\n";
    // Burda et al.'s IWAE (K = 3) with their Adam ε; and a 2-draw ELBO.
    let iwae = "model = \"vae\"\nhidden = [16]\nlayout = \"heads\"\nlikelihood = \"bernoulli\"\nbinarize = \"dynamic\"\nobjective = \"iwae\"\nsamples = 3\nadam_eps = 1e-4\nbeta = 1.0\n";
    let elbo_k = "model = \"vae\"\nhidden = [16]\nsamples = 2\n";
    for (name, base, axes) in [
        ("small", article, "beta = [0.0, 3.0]\nseed = [1, 2]"),
        (
            "literature",
            literature,
            "beta = [0.0, 3.0]\nlr_decay = [0.5, 0.9]",
        ),
        ("iwae", iwae, "seed = [1, 2]\nlr = [1e-3, 2e-3]"),
        ("elbo-k", elbo_k, "beta = [0.0, 3.0]\nseed = [1, 2]"),
        // KL control: members with different schedules in one stack (none, a warm-up, 3
        // cycles, 2 cycles that ramp all the way), different free bits, different capacities.
        (
            "kl-weights",
            article,
            "kl_warmup = [0, 2]\n[[include]]\nkl_cycles = 3\n[[include]]\nkl_cycles = 2\nkl_cycle_ramp = 1.0",
        ),
        (
            "free-bits",
            article,
            "free_bits = [0.05, 0.3]\nbeta = [1.0, 3.0]",
        ),
        (
            "capacity",
            article,
            "capacity = [1.0, 4.0]\ncapacity_epochs = [0, 2]",
        ),
    ] {
        let matrix = scratch.path().join(format!("{name}.toml"));
        std::fs::write(
            &matrix,
            format!("[sweep]\nname = \"{name}\"\n[base]\n{base}epochs = 3\nlimit = 400\nlatent = 3\nbatch_size = 5\n[grid]\n{axes}\n"),
        )
        .unwrap();
        let train = |stack: &str| {
            let results = scratch.path().join(format!("{name}-{stack}"));
            let out = common::vaelab(
                &results,
                &["--quiet", "sweep", path(&matrix), "--stack", stack],
            );
            assert!(out.status.success(), "{}", common::text(&out));
            common::metrics_by_run(&results)
        };
        let (alone, stacked) = (train("off"), train("4"));
        assert_eq!(alone.len(), 4);
        // The four really trained as one stack (else this compares alone with alone).
        let results = scratch.path().join(format!("{name}-4"));
        let store = Store::new(&results);
        for (id, _) in &stacked {
            let stacks = Provenance::read(&store.run(id)).unwrap().stacks;
            assert!(stacks.iter().any(|s| s.contains("stack of 4")), "{name}: {id}: {stacks:?}");
        }
        for ((id, a), (_, s)) in alone.iter().zip(&stacked) {
            assert_eq!(a.len(), s.len());
            for (a, s) in a.iter().zip(s) {
                // The schedule's columns are each member's own, exactly.
                assert_eq!((a.kl_weight, a.capacity), (s.kl_weight, s.capacity), "{name}: {id}");
                for (x, y) in [
                    (a.recon, s.recon),
                    (a.loss, s.loss),
                    (a.kl.unwrap(), s.kl.unwrap()),
                ] {
                    let rel = (x - y).abs() / x.abs().max(1e-12);
                    assert!(
                        rel <= 1e-5,
                        "{name}: {id} epoch {} {}: {x} vs {y}",
                        a.epoch,
                        a.split
                    );
                }
            }
        }
    }
}

/// `--dry-run` lists the stacks with their size rule and members, writes nothing; a matrix
/// whose runs all differ in shape trains every run alone.
#[test]
fn dry_run_shows_the_stacks() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = write_matrix(scratch.path());
    let results = scratch.path().join("results");
    let out = common::vaelab(
        &results,
        &["sweep", path(&matrix), "--dry-run", "--stack", "3"],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let text = common::text(&out);
    let heads: Vec<&str> = text.lines().filter(|l| l.starts_with("stack ")).collect();
    assert_eq!(heads.len(), 3, "{text}");
    assert!(heads[0].contains("2 member(s) of ae mnist 256-"), "{text}");
    assert!(heads[1].contains("3 member(s) of vae mnist 256-"), "{text}");
    assert!(heads[2].contains("2 member(s) of vae mnist 256-"), "{text}");
    assert!(heads.iter().all(|h| h.contains("at most 3")), "{text}");
    assert!(text.contains("7 runs in 3 entries"), "{text}");
    let auto = common::vaelab(&results, &["sweep", path(&matrix), "--dry-run"]);
    assert!(
        common::text(&auto).contains("auto size"),
        "{}",
        common::text(&auto)
    );
    assert!(!results.exists(), "a dry run wrote {}", results.display());

    let shapes = scratch.path().join("shapes.toml");
    std::fs::write(
        &shapes,
        "[sweep]\nname = \"shapes\"\n[base]\nepochs = 1\nlimit = 300\n[grid]\nlatent = [2, 3, 4]\n",
    )
    .unwrap();
    let out = common::vaelab(&results, &["sweep", path(&shapes), "--dry-run"]);
    let text = common::text(&out);
    assert!(text.contains("every run trains alone"), "{text}");
    assert!(text.contains("3 runs in 3 entries"), "{text}");
}

/// kill -9 a stacked sweep at five exact points (mid-epoch, between writing and renaming a
/// member's metrics, between writing a member's checkpoint and the next, before a model file is
/// saved), relaunching after each: the final numbers and networks equal an uninterrupted
/// stacked sweep's, every member resumed from its last complete epoch (its provenance names
/// each launch's first epoch), and every Parquet file reads.
#[cfg(feature = "failpoints")]
#[test]
fn a_stacked_sweep_killed_anywhere_resumes_to_the_same_numbers() {
    let scratch = tempfile::tempdir().unwrap();
    let clean = trained(scratch.path(), "8");
    let matrix = write_matrix(scratch.path());
    let results = scratch.path().join("results-killed");
    // The fail crate's `N*off->return`: let N hits pass, then SIGKILL (see src/faults.rs).
    let kills = [
        "train::step=7*off->return",
        "durable::before_rename::metrics.parquet=3*off->return",
        "train::step=40*off->return",
        "durable::before_rename::model-2.bpk=2*off->return",
        "train::before_model_save=1*off->return",
    ];
    for kill in kills {
        // Single-threaded like the clean sweep: a relaunch may train the unfinished members
        // in a smaller stack than the clean sweep's, and only single-threaded kernels round
        // alike at every stack size.
        let out = common::vaelab_env(
            &results,
            &[common::SINGLE_THREADED, &[("FAILPOINTS", kill)]].concat(),
            &["--quiet", "sweep", path(&matrix), "--stack", "8"],
        );
        assert_eq!(
            out.status.code(),
            None,
            "{kill}: expected a kill: {}",
            common::text(&out)
        );
    }
    let out = common::vaelab_env(
        &results,
        common::SINGLE_THREADED,
        &["--quiet", "sweep", path(&matrix), "--stack", "8"],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    assert_eq!(
        common::metrics_by_run(&clean),
        common::metrics_by_run(&results)
    );
    assert_eq!(decoded(&clean), decoded(&results));
    let store = Store::new(&results);
    for (id, _) in common::metrics_by_run(&results) {
        let run = store.run(&id);
        assert_eq!(run.current_state(), RunState::Done);
        let firsts: Vec<usize> = Provenance::read(&run)
            .unwrap()
            .stacks
            .iter()
            .map(|l| l["epochs ".len()..l.find('-').unwrap()].parse().unwrap())
            .collect();
        assert!(
            firsts.windows(2).all(|w| w[0] <= w[1]) && firsts.len() >= 2,
            "{id}: launches started at epochs {firsts:?}"
        );
    }
    for table in ["summary", "epochs"] {
        vaelab::store::read_parquet(&results.join(format!("sweeps/stacks/{table}.parquet")))
            .unwrap();
    }
}

//! The HTML report in a real browser (Debian's Chromium, headless, installed by
//! `./scripts/setup`): rows against each run's own `metrics.parquet` and `eval.parquet`, every
//! evaluation column of `summary.parquet` against `eval.parquet`, sorting and filtering by the
//! URL hash and by clicking and typing, the resume note and links of an interrupted sweep, no
//! console errors, no request leaving the file, charts that render, and a page that is live
//! while its sweep runs and stops reloading when it ends.
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vaelab::store::{read_parquet, Store};

/// Runs headless Chromium on `url` with `extra` flags (a fresh profile each time, no
/// background networking); returns (stdout, stderr).
fn chromium(url: &str, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1400,4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs (./scripts/setup installs Debian's chromium)");
    assert!(out.status.success(), "{}", common::text(&out));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn url(page: &Path, hash: &str) -> String {
    format!("file://{}{hash}", page.display())
}

/// The DOM after the page's scripts ran.
fn dom(page: &Path, hash: &str) -> String {
    chromium(&url(page, hash), &["--dump-dom"]).0
}

/// A finished sweep of five tiny runs (an AE, VAEs at β 0, 1, 3, a CVAE at β 1) and one that
/// diverges (lr = 10): its page, and the results root.
fn finished() -> &'static (PathBuf, PathBuf) {
    static SWEEP: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    SWEEP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let matrix = dir.join("page.toml");
        std::fs::write(
            &matrix,
            "[sweep]\nname = \"page\"\ndescription = \"report test\"\n[base]\nepochs = 2\nlimit = 600\nhidden = [16]\n[grid]\nmodel = [\"ae\", \"vae\"]\nbeta = [0.0, 1.0, 3.0]\n[[include]]\nmodel = \"vae\"\nbeta = 1.0\nlr = 10.0\n[[include]]\nmodel = \"cvae\"\nbeta = 1.0\n",
        )
        .unwrap();
        let results = dir.join("results");
        let out = common::vaelab(&results, &["--quiet", "sweep", matrix.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "one run diverges: {}", common::text(&out));
        let page = results.join("sweeps/page/report/index.html");
        assert!(
            common::text(&out).contains(&format!("report: {}", page.display())),
            "{}",
            common::text(&out)
        );
        (page, results)
    })
}

/// One run row of the table: (run id, hidden, [(key, data-value)]).
type Row = (String, bool, Vec<(String, String)>);

/// The run rows of a DOM.
fn rows(dom: &str) -> Vec<Row> {
    dom.split("<tr class=\"run\"")
        .skip(1)
        .map(|chunk| {
            let chunk = &chunk[..chunk.find("</tr>").unwrap()];
            let head = &chunk[..chunk.find('>').unwrap()];
            let attr = |text: &str, name: &str| {
                text.split(&format!("{name}=\""))
                    .nth(1)
                    .map(|s| s[..s.find('"').unwrap()].to_string())
            };
            let id = attr(head, "data-run").unwrap();
            let cells = chunk
                .split("<td")
                .skip(1)
                .map(|td| {
                    let tag = &td[..td.find('>').unwrap()];
                    (
                        attr(tag, "data-key").unwrap(),
                        attr(tag, "data-value").unwrap(),
                    )
                })
                .collect();
            (id, head.contains("hidden"), cells)
        })
        .collect()
}

fn value<'a>(cells: &'a [(String, String)], key: &str) -> &'a str {
    &cells.iter().find(|(k, _)| k == key).unwrap().1
}

/// What each evaluation column of the tables (`summary.parquet`, the page's run table) is,
/// written out here rather than taken from `store::EVAL_SUMMARY`, which builds those tables:
/// (column, metric, k, the standard error rather than the value), always the overall row of
/// `eval.parquet` (no class, no latent dimension).
const EVAL_COLUMNS: [(&str, &str, Option<u32>, bool); 7] = [
    ("test_elbo", "elbo", None, false),
    ("iwae_1000", "iwae", Some(1000), false),
    ("iwae_1000_se", "iwae", Some(1000), true),
    ("active_units", "active_units", None, false),
    ("judged_accuracy", "judged_accuracy", None, false),
    ("prior_class_entropy", "prior_class_entropy", None, false),
    ("judge_accuracy", "judge_accuracy", None, false),
];

/// One row of a run's `eval.parquet`, read with polars (not through vaelab's reader).
#[derive(Debug)]
struct RawEval {
    metric: String,
    k: Option<u32>,
    dim: Option<u32>,
    class: Option<u32>,
    value: f64,
    se: Option<f64>,
}

/// The rows of run `id`'s `eval.parquet` (none when it was not evaluated).
fn raw_eval(results: &Path, id: &str) -> Vec<RawEval> {
    let path = results.join("runs").join(id).join("eval.parquet");
    if !path.exists() {
        return Vec::new();
    }
    let df = read_parquet(&path).unwrap();
    let metric = df.column("metric").unwrap().str().unwrap().clone();
    let k = df.column("k").unwrap().u32().unwrap().clone();
    let dim = df.column("dim").unwrap().u32().unwrap().clone();
    let class = df.column("class").unwrap().u32().unwrap().clone();
    let value = df.column("value").unwrap().f64().unwrap().clone();
    let se = df.column("se").unwrap().f64().unwrap().clone();
    (0..df.height())
        .map(|i| RawEval {
            metric: metric.get(i).unwrap().to_string(),
            k: k.get(i),
            dim: dim.get(i),
            class: class.get(i),
            value: value.get(i).unwrap(),
            se: se.get(i),
        })
        .collect()
}

/// Evaluation column (`metric`, `k`, `se`) of a run from its raw rows: the overall row's value
/// (or standard error), `None` when the run has no such row.
fn eval_cell(rows: &[RawEval], metric: &str, k: Option<u32>, se: bool) -> Option<f64> {
    let found: Vec<&RawEval> = rows
        .iter()
        .filter(|r| r.metric == metric && r.k == k && r.class.is_none() && r.dim.is_none())
        .collect();
    assert!(found.len() <= 1, "{metric} k={k:?}: {found:?}");
    found
        .first()
        .and_then(|r| if se { r.se } else { Some(r.value) })
}

/// (recon, kl, loss) of the last epoch of `split` in run `id`'s `metrics.parquet`, read with
/// polars (not through vaelab's reader).
fn last_epoch(results: &Path, id: &str, split: &str) -> Option<(f64, Option<f64>, f64)> {
    let df = read_parquet(&results.join("runs").join(id).join("metrics.parquet")).unwrap();
    let epoch = df.column("epoch").unwrap().u32().unwrap().clone();
    let splits = df.column("split").unwrap().str().unwrap().clone();
    let recon = df.column("recon").unwrap().f64().unwrap().clone();
    let kl = df.column("kl").unwrap().f64().unwrap().clone();
    let loss = df.column("loss").unwrap().f64().unwrap().clone();
    (0..df.height())
        .filter(|&i| splits.get(i) == Some(split))
        .max_by_key(|&i| epoch.get(i))
        .map(|i| (recon.get(i).unwrap(), kl.get(i), loss.get(i).unwrap()))
}

/// A table cell (`data-value`, empty for none) holds `want`, to the bit (NaN for NaN).
fn holds(shown: &str, want: Option<f64>) -> bool {
    match want {
        None => shown.is_empty(),
        Some(v) => shown
            .parse::<f64>()
            .is_ok_and(|x| x == v || (x.is_nan() && v.is_nan())),
    }
}

/// What each metric column of a run must hold, from its own Parquet files.
fn expected_metrics(results: &Path, id: &str) -> Vec<(&'static str, Option<f64>)> {
    let test = last_epoch(results, id, "test");
    let train = last_epoch(results, id, "train");
    let mut want = vec![
        ("test_recon", test.map(|l| l.0)),
        ("test_kl", test.and_then(|l| l.1)),
        ("test_loss", test.map(|l| l.2)),
        ("train_recon", train.map(|l| l.0)),
        ("train_kl", train.and_then(|l| l.1)),
        ("train_loss", train.map(|l| l.2)),
    ];
    let eval = raw_eval(results, id);
    for (column, metric, k, se) in EVAL_COLUMNS {
        want.push((column, eval_cell(&eval, metric, k, se)));
    }
    want
}

#[test]
fn the_table_has_one_row_per_run_with_its_metrics_and_evaluation() {
    let (page, results) = finished();
    let dom = dom(page, "");
    assert!(
        dom.contains("data-ready=\"1\""),
        "the script did not run to its end"
    );
    assert!(dom.contains("data-state=\"finished\""));
    assert!(
        !dom.contains("http-equiv=\"refresh\""),
        "a finished page reloads"
    );
    let summary = read_parquet(&results.join("sweeps/page/summary.parquet")).unwrap();
    let ids = summary.column("run_id").unwrap().str().unwrap().clone();
    let rows = rows(&dom);
    assert_eq!(rows.len(), summary.height());
    assert_eq!(rows.len(), 6);
    // Each shown number is the run's own: the last epoch's in its metrics.parquet, the overall
    // row of its eval.parquet (every VAE and the CVAE are evaluated when they finish; the AE has
    // no bound, so those cells are empty).
    let shown_eval = ["test_elbo", "iwae_1000", "active_units", "judged_accuracy"];
    for (id, _, cells) in &rows {
        for (key, want) in expected_metrics(results, id) {
            let Some((_, shown)) = cells.iter().find(|(k, _)| k == key) else {
                assert!(!shown_eval.contains(&key), "{id}: no {key} column");
                continue;
            };
            assert!(
                holds(shown, want),
                "{id} {key}: page {shown:?}, runs' Parquet {want:?}"
            );
        }
    }
    // summary.parquet: every evaluation column (and the final metrics) against the same files,
    // and each evaluation column holds a number for some run (the CVAE's judged accuracy
    // included), so no mapping is checked on nulls only.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for i in 0..summary.height() {
        let id = ids.get(i).unwrap();
        for (key, want) in expected_metrics(results, id) {
            let got = summary
                .column(key)
                .unwrap_or_else(|e| panic!("summary.parquet has no {key}: {e}"))
                .f64()
                .unwrap()
                .get(i);
            let same = match (got, want) {
                (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
                (None, None) => true,
                _ => false,
            };
            assert!(same, "{id} {key}: summary {got:?}, runs' Parquet {want:?}");
            *seen.entry(key).or_default() += usize::from(want.is_some());
        }
    }
    for (column, ..) in EVAL_COLUMNS {
        assert!(seen[column] > 0, "no run has a {column}: {seen:?}");
    }
    let states = summary.column("state").unwrap().str().unwrap().clone();
    for k in 0..summary.height() {
        let (_, _, cells) = rows
            .iter()
            .find(|(r, _, _)| r == ids.get(k).unwrap())
            .unwrap();
        assert_eq!(value(cells, "state"), states.get(k).unwrap());
    }
    // The failed run says why.
    let failed: Vec<_> = rows
        .iter()
        .filter(|(_, _, c)| value(c, "state") == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        value(&failed[0].2, "note").contains("non-finite"),
        "{:?}",
        failed[0]
    );
}

#[test]
fn sorting_and_filtering_follow_the_url_hash() {
    let (page, _) = finished();
    let losses = |dom: &str| -> Vec<f64> {
        rows(dom)
            .iter()
            .filter(|(_, hidden, _)| !hidden)
            .map(|(_, _, c)| value(c, "test_loss").parse().unwrap_or(f64::NAN))
            .collect()
    };
    let up = losses(&dom(page, "#sort=test_loss"));
    let finite: Vec<f64> = up.iter().copied().filter(|v| v.is_finite()).collect();
    assert!(finite.windows(2).all(|w| w[0] <= w[1]), "{up:?}");
    assert!(
        up.len() > finite.len() && up.last().unwrap().is_nan(),
        "no value last: {up:?}"
    );
    let down = losses(&dom(page, "#sort=-test_loss"));
    let finite: Vec<f64> = down.iter().copied().filter(|v| v.is_finite()).collect();
    assert!(finite.windows(2).all(|w| w[0] >= w[1]), "{down:?}");
    assert!(down.last().unwrap().is_nan(), "no value last: {down:?}");

    let filtered = rows(&dom(page, "#model=vae&beta=1.0"));
    let shown: Vec<&str> = filtered
        .iter()
        .filter(|(_, hidden, _)| !hidden)
        .map(|(id, _, _)| id.as_str())
        .collect();
    let want: Vec<&str> = filtered
        .iter()
        .filter(|(_, _, c)| value(c, "model") == "vae" && value(c, "beta") == "1.0")
        .map(|(id, _, _)| id.as_str())
        .collect();
    assert_eq!(shown, want);
    assert_eq!(shown.len(), 2, "β = 1 at two learning rates");
}

/// The table after one action of [`drive`].
#[derive(Debug)]
struct Snapshot {
    action: String,
    hash: String,
    /// (run, shown) in the table's order.
    rows: Vec<(String, bool)>,
    /// The headers marked sorted: `key ascending` or `key descending`.
    sorted: Vec<String>,
    /// The "N of M runs shown" line.
    shown: String,
}

impl Snapshot {
    fn visible(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|(_, shown)| *shown)
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// Opens `page` in the real browser with a script run after the page's own that does
/// `actions` as a reader would, through the DOM's events: `click(KEY)` clicks the header of
/// column KEY, `search(TEXT)` types TEXT into the search box; returns the table as it was on
/// load and after each action. (A copy of the page beside it carries the script, so its
/// relative links stay what they are.)
fn drive(page: &Path, actions: &str) -> Vec<Snapshot> {
    const DRIVER: &str = r##"<script>
(function () {
  var log = [];
  function snap(action) {
    var shown = document.getElementById("shown");
    log.push({
      action: action,
      hash: location.hash,
      rows: Array.prototype.map.call(document.querySelectorAll("#runs tbody tr.run"),
        function (r) { return [r.getAttribute("data-run"), !r.hidden]; }),
      sorted: Array.prototype.map.call(document.querySelectorAll("#runs thead th[aria-sort]"),
        function (h) { return h.getAttribute("data-key") + " " + h.getAttribute("aria-sort"); }),
      shown: shown ? shown.textContent : ""
    });
  }
  function click(key) {
    document.querySelector('#runs thead th[data-key="' + key + '"]').click();
    snap("click " + key);
  }
  function search(text) {
    var box = document.getElementById("search");
    box.value = text;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    snap("search " + text);
  }
  snap("load");
  ACTIONS
  var out = document.createElement("pre");
  out.id = "drive-log";
  out.textContent = JSON.stringify(log);
  document.body.appendChild(out);
})();
</script>
"##;
    let html = std::fs::read_to_string(page).unwrap();
    let at = html.rfind("</body>").expect("the page ends its body");
    let driven = format!(
        "{}{}{}",
        &html[..at],
        DRIVER.replace("ACTIONS", actions),
        &html[at..]
    );
    let copy = tempfile::Builder::new()
        .prefix(".driven-")
        .suffix(".html")
        .tempfile_in(page.parent().unwrap())
        .unwrap();
    std::fs::write(copy.path(), driven).unwrap();
    let dom = dom(copy.path(), "");
    let log = dom
        .split("<pre id=\"drive-log\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| panic!("the driver did not finish (an action failed):\n{dom}"))
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    log.as_array()
        .unwrap()
        .iter()
        .map(|s| Snapshot {
            action: text(&s["action"]),
            hash: text(&s["hash"]),
            rows: s["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (text(&r[0]), r[1].as_bool().unwrap()))
                .collect(),
            sorted: s["sorted"].as_array().unwrap().iter().map(text).collect(),
            shown: text(&s["shown"]),
        })
        .collect()
}

/// Clicking a header sorts by its column (numbers as numbers, runs without a value last),
/// clicking it again reverses the order, another header sorts by that one; typing in the search
/// box shows only the runs whose row holds the text; each state is written to the URL hash.
#[test]
fn clicking_a_header_sorts_and_typing_in_the_search_box_filters() {
    let (page, _) = finished();
    let all = rows(&dom(page, ""));
    let n = all.len();
    assert_eq!(n, 6);
    let cell = |id: &str, key: &str| {
        let (_, _, cells) = all.iter().find(|(r, _, _)| r == id).unwrap();
        value(cells, key).to_string()
    };
    let loss = |id: &str| cell(id, "test_loss").parse::<f64>().unwrap_or(f64::NAN);
    let failed: Vec<&str> = all
        .iter()
        .filter(|(_, _, c)| value(c, "state") == "failed")
        .map(|(id, _, _)| id.as_str())
        .collect();
    let cvae: Vec<&str> = all
        .iter()
        .filter(|(_, _, c)| value(c, "model") == "cvae")
        .map(|(id, _, _)| id.as_str())
        .collect();
    assert_eq!((failed.len(), cvae.len()), (1, 1));
    let steps = drive(
        page,
        &format!(
            "click(\"test_loss\"); click(\"test_loss\"); click(\"model\"); search(\"non-finite\"); search(\"{}\"); search(\"\");",
            cvae[0]
        ),
    );
    let actions: Vec<&str> = steps.iter().map(|s| s.action.as_str()).collect();
    let search_id = format!("search {}", cvae[0]);
    assert_eq!(
        actions,
        [
            "load",
            "click test_loss",
            "click test_loss",
            "click model",
            "search non-finite",
            search_id.as_str(),
            "search "
        ]
    );
    let all_shown = format!("{n} of {n} runs shown");
    assert_eq!(
        (
            steps[0].hash.as_str(),
            steps[0].visible().len(),
            steps[0].shown.as_str()
        ),
        ("", n, all_shown.as_str())
    );
    // Sorted by test loss: finite values in order, the runs without one (the diverged run's
    // NaN) last, both ways.
    let order = |s: &Snapshot| -> Vec<String> { s.rows.iter().map(|(id, _)| id.clone()).collect() };
    for (step, hash, sorted, up) in [
        (&steps[1], "#sort=test_loss", "test_loss ascending", true),
        (&steps[2], "#sort=-test_loss", "test_loss descending", false),
    ] {
        assert_eq!(step.hash, hash, "{step:?}");
        assert_eq!(step.sorted, [sorted], "{step:?}");
        assert_eq!(step.visible().len(), n, "{step:?}");
        let values: Vec<f64> = step.rows.iter().map(|(id, _)| loss(id)).collect();
        let finite = values.iter().take_while(|v| v.is_finite()).count();
        assert!(finite >= 2 && finite < n, "{values:?}");
        assert!(
            values[finite..].iter().all(|v| !v.is_finite()),
            "missing values not last: {values:?}"
        );
        let ordered = values[..finite]
            .windows(2)
            .all(|w| if up { w[0] <= w[1] } else { w[0] >= w[1] });
        assert!(ordered, "{sorted}: {values:?}");
    }
    assert_ne!(
        order(&steps[1]),
        order(&steps[2]),
        "the second click changed nothing"
    );
    // A text column sorts as text.
    assert_eq!(steps[3].hash, "#sort=model");
    assert_eq!(steps[3].sorted, ["model ascending"]);
    let models: Vec<String> = steps[3]
        .rows
        .iter()
        .map(|(id, _)| cell(id, "model"))
        .collect();
    assert!(models.windows(2).all(|w| w[0] <= w[1]), "{models:?}");
    // The search box: the failed run's reason, then a run id, then nothing.
    assert_eq!(steps[4].hash, "#sort=model&q=non-finite");
    assert_eq!(steps[4].visible(), failed);
    assert_eq!(steps[4].shown, format!("1 of {n} runs shown"));
    assert_eq!(
        steps[4].sorted,
        ["model ascending"],
        "the search keeps the order"
    );
    assert_eq!(steps[5].hash, format!("#sort=model&q={}", cvae[0]));
    assert_eq!(steps[5].visible(), cvae);
    assert_eq!(steps[6].hash, "#sort=model");
    assert_eq!(
        (steps[6].visible().len(), steps[6].shown.as_str()),
        (n, all_shown.as_str())
    );
}

/// The link of a run row (`<a href>` in its run cell), if it has one.
fn run_link(dom: &str, id: &str) -> Option<String> {
    let row = dom
        .split(&format!("<tr class=\"run\" data-run=\"{id}\""))
        .nth(1)?;
    let cell = &row[..row.find("</td>")?];
    let href = cell.split("<a href=\"").nth(1)?;
    Some(href[..href.find('"')?].to_string())
}

/// A sweep killed during its first run: `vaelab report` writes a page that says how to resume,
/// the interrupted run's note gives that command and its row links to its own page (which says
/// it is interrupted), the queued run has neither link nor page; running the note's command
/// resumes the run, and the page it leaves links every run to its page.
#[test]
fn an_interrupted_sweeps_page_says_how_to_resume_and_links_the_started_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("cut.toml");
    // Two runs of different widths, so two stacks: the second waits while the first trains.
    std::fs::write(
        &matrix,
        "[sweep]\nname = \"cut\"\n[base]\nepochs = 10\nlimit = 2000\n[grid]\nhidden = [[128], [256]]\n",
    )
    .unwrap();
    let source = matrix.to_str().unwrap();
    let results = scratch.path().join("results");
    let mut child = common::command(&results)
        .args(["--quiet", "sweep", source])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let store = Store::new(&results);
    let started = Instant::now();
    loop {
        let done: usize = store
            .run_ids()
            .unwrap_or_default()
            .iter()
            .map(|id| vaelab::train::epochs_on_disk(&store.run(id)))
            .sum();
        if done >= 1 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the sweep ended first");
        assert!(started.elapsed() < Duration::from_secs(300), "no epoch");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: the run is left as its process had it
    child.wait().unwrap();
    let out = common::vaelab(&results, &["report", "cut"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let page = results.join("sweeps/cut/report/index.html");
    let dom = dom(&page, "");
    assert!(dom.contains("data-ready=\"1\"") && dom.contains("data-state=\"finished\""));
    assert!(
        !dom.contains("http-equiv=\"refresh\""),
        "a stopped sweep's page reloads"
    );
    assert!(
        dom.contains(&format!(
            "Not finished: resume with <code>vaelab sweep {source}</code>"
        )),
        "{dom}"
    );
    let table = rows(&dom);
    let with_state = |state: &str| -> String {
        let found: Vec<&Row> = table
            .iter()
            .filter(|(_, _, c)| value(c, "state") == state)
            .collect();
        assert_eq!(found.len(), 1, "{state}: {table:?}");
        found[0].0.clone()
    };
    let (cut, queued) = (with_state("interrupted"), with_state("queued"));
    let note = |id: &str| {
        let (_, _, cells) = table.iter().find(|(r, _, _)| r == id).unwrap();
        value(cells, "note").to_string()
    };
    assert_eq!(note(&cut), format!("resume: vaelab sweep {source}"));
    assert_eq!(note(&queued), "");
    let report_dir = page.parent().unwrap();
    let href = run_link(&dom, &cut).unwrap_or_else(|| panic!("no link for {cut}:\n{dom}"));
    let target = report_dir.join(&href);
    let html = std::fs::read_to_string(&target)
        .unwrap_or_else(|e| panic!("{cut} links to {}: {e}", target.display()));
    assert!(html.contains(&format!("run {cut}")), "{html}");
    assert!(
        html.contains("Interrupted: rerun the same command to resume."),
        "{html}"
    );
    assert_eq!(
        run_link(&dom, &queued),
        None,
        "a queued run has no page to link"
    );
    assert!(!results
        .join(format!("runs/{queued}/report/index.html"))
        .exists());

    // The note's command (with this test's --results and --data) resumes the run.
    let command = note(&cut);
    let args: Vec<&str> = command
        .strip_prefix("resume: vaelab ")
        .unwrap()
        .split_whitespace()
        .collect();
    let mut resume = vec!["--quiet"];
    resume.extend(args);
    let out = common::vaelab(&results, &resume);
    let text = common::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{cut}: resuming after epoch ")),
        "{text}"
    );
    let dom = self::dom(&page, "");
    assert!(!dom.contains("Not finished"), "{dom}");
    for id in [&cut, &queued] {
        let href = run_link(&dom, id).unwrap_or_else(|| panic!("no link for {id}"));
        let html = std::fs::read_to_string(report_dir.join(&href)).unwrap();
        assert!(html.contains(&format!("run {id}")), "{href}");
    }
}

/// Requests the page made itself (Chromium's own background requests have no origin).
fn page_requests(net_log: &Path) -> Vec<String> {
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(net_log).unwrap()).unwrap();
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let p = &e["params"];
            let initiator = p["initiator"].as_str()?;
            (initiator != "not an origin").then(|| format!("{initiator} -> {}", p["url"]))
        })
        .collect()
}

#[test]
fn the_page_loads_without_console_errors_or_network_requests() {
    let (page, _) = finished();
    let scratch = tempfile::tempdir().unwrap();
    let net = scratch.path().join("net.json");
    let flags = [
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        &format!("--log-net-log={}", net.display()),
    ];
    let (dom, stderr) = chromium(&url(page, ""), &flags);
    assert!(dom.contains("data-ready=\"1\""));
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    assert_eq!(page_requests(&net), Vec::<String>::new());

    // The checks can fail: a page with a broken script and a remote image trips both.
    let control = scratch.path().join("control.html");
    std::fs::write(
        &control,
        "<html><body><img src=\"http://127.0.0.1:9/x.png\"><script>undefined_function();</script></body></html>",
    )
    .unwrap();
    let net = scratch.path().join("control.json");
    let flags = [
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        &format!("--log-net-log={}", net.display()),
    ];
    let (_, stderr) = chromium(&url(&control, ""), &flags);
    assert!(stderr.contains(":CONSOLE"), "{stderr}");
    assert!(!page_requests(&net).is_empty());
}

#[test]
fn a_screenshot_shows_the_charts() {
    let (page, _) = finished();
    let scratch = tempfile::tempdir().unwrap();
    let shot = scratch.path().join("page.png");
    chromium(
        &url(page, ""),
        &[&format!("--screenshot={}", shot.display())],
    );
    let img = image::open(&shot).unwrap().to_luma8();
    let dom = dom(page, "");
    let boxes: Vec<Vec<u32>> = dom
        .split("data-box=\"")
        .skip(1)
        .map(|s| {
            s[..s.find('"').unwrap()]
                .split(',')
                .map(|v| v.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(boxes.len(), 2, "the trade-off chart and the curves");
    for b in boxes {
        let (x, y, w, h) = (b[0], b[1], b[2], b[3]);
        assert!(w > 300 && h > 200 && y + h <= img.height(), "box {b:?}");
        let mut dark = 0u64;
        let mut levels = std::collections::BTreeSet::new();
        for yy in y..y + h {
            for xx in x..x + w {
                let v = img.get_pixel(xx, yy)[0];
                if v < 200 {
                    dark += 1;
                }
                levels.insert(v / 8);
            }
        }
        let share = dark as f64 / f64::from(w * h);
        assert!(
            share > 0.01 && share < 0.6,
            "box {b:?}: {share:.3} of it drawn"
        );
        assert!(levels.len() > 10, "box {b:?}: {} grey levels", levels.len());
    }
}

#[test]
fn a_page_written_mid_sweep_is_live_and_stops_reloading_at_the_end() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("live.toml");
    std::fs::write(
        &matrix,
        "[sweep]\nname = \"live\"\n[base]\nepochs = 3\nlimit = 6000\nhidden = [64]\n[grid]\nbeta = [0.0, 1.0]\n",
    )
    .unwrap();
    let results = scratch.path().join("results");
    let mut child = common::command(&results)
        .args(["--quiet", "sweep", matrix.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let page = results.join("sweeps/live/report/index.html");
    let started = Instant::now();
    let live = loop {
        assert!(started.elapsed() < Duration::from_secs(300), "no live page");
        assert!(child.try_wait().unwrap().is_none(), "the sweep ended first");
        if let Ok(html) = std::fs::read_to_string(&page) {
            if html.contains("data-state=\"running\"") {
                break html;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(live.contains("<meta http-equiv=\"refresh\""), "{live}");
    assert!(live.contains("ETA <b id=\"eta\">"), "{live}");
    let dom = dom(&page, "");
    assert!(dom.contains("data-state=\"running\""), "{dom}");
    assert!(dom.contains("id=\"live\""), "{dom}");
    assert!(child.wait().unwrap().success());
    let last = std::fs::read_to_string(&page).unwrap();
    assert!(last.contains("data-state=\"finished\""));
    assert!(!last.contains("http-equiv=\"refresh\""));
    assert!(!last.contains("id=\"live\""));
}

#[test]
fn run_pages_and_the_diff_page_are_written() {
    let (page, results) = finished();
    let dom = dom(page, "");
    let first = rows(&dom)
        .into_iter()
        .find(|(_, _, c)| value(c, "state") == "done")
        .unwrap();
    let run_page = results.join(format!("runs/{}/report/index.html", first.0));
    let html = std::fs::read_to_string(&run_page).unwrap();
    assert!(html.contains(&format!("run {}", first.0)));
    assert!(html.contains("<svg"), "curves inline");
    assert!(html.contains("code_fingerprint = "), "provenance shown");
    // The KL pictures: the sweep's schedules, a VAE run's per-unit heat map.
    assert!(
        dom.contains("../plots/kl_schedules.png"),
        "no KL schedule chart"
    );
    let vae = rows(&dom)
        .into_iter()
        .find(|(_, _, c)| value(c, "state") == "done" && value(c, "model") == "vae")
        .unwrap();
    let vae_page = results.join(format!("runs/{}/report/index.html", vae.0));
    let html = std::fs::read_to_string(&vae_page).unwrap();
    assert!(html.contains("kl_dims.png"), "no KL heat map on {}", vae.0);
    let out = common::vaelab(results, &["diff", "page", "page", "--format", "html"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("<!doctype html>"), "{text}");
    assert!(text.contains("Paired runs (6)"), "{text}");
    let out = common::vaelab(results, &["report", "page", &first.0]);
    assert!(out.status.success(), "{}", common::text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 2, "{printed}");
}

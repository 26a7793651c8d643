//! The HTML report in a real browser (Debian's Chromium, headless, installed by
//! `./scripts/setup`): rows against `summary.parquet`, sorting and filtering, no console
//! errors, no request leaving the file, charts that render, and a page that is live while its
//! sweep runs and stops reloading when it ends.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vaelab::store::read_parquet;

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

/// A finished sweep of four tiny runs (an AE, VAEs at β 0, 1, 3) and one that diverges
/// (lr = 10): its page, and the results root.
fn finished() -> &'static (PathBuf, PathBuf) {
    static SWEEP: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    SWEEP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let matrix = dir.join("page.toml");
        std::fs::write(
            &matrix,
            "[sweep]\nname = \"page\"\ndescription = \"report test\"\n[base]\nepochs = 2\nlimit = 600\nhidden = [16]\n[grid]\nmodel = [\"ae\", \"vae\"]\nbeta = [0.0, 1.0, 3.0]\n[[include]]\nmodel = \"vae\"\nbeta = 1.0\nlr = 10.0\n",
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

#[test]
fn the_table_has_one_row_per_run_with_the_summary_values() {
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
    // The evaluation's numbers too: every VAE is evaluated when it finishes (the AE has no
    // bound, so its cells are empty like its summary's nulls).
    let keys = [
        "test_loss",
        "test_recon",
        "test_kl",
        "train_loss",
        "test_elbo",
        "iwae_1000",
        "active_units",
    ];
    for (i, key) in keys.iter().enumerate() {
        let col = summary.column(key).unwrap().f64().unwrap().clone();
        for k in 0..summary.height() {
            let id = ids.get(k).unwrap();
            let (_, _, cells) = rows.iter().find(|(r, _, _)| r == id).unwrap();
            let shown = value(cells, key);
            match col.get(k) {
                Some(v) => {
                    let x: f64 = shown.parse().unwrap();
                    assert!(
                        x == v || (x.is_nan() && v.is_nan()),
                        "{id} {key}: {x} vs {v}"
                    );
                }
                None => assert_eq!(shown, "", "{id} {key} (#{i})"),
            }
        }
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
    let out = common::vaelab(results, &["diff", "page", "page", "--format", "html"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("<!doctype html>"), "{text}");
    assert!(text.contains("Paired runs (5)"), "{text}");
    let out = common::vaelab(results, &["report", "page", &first.0]);
    assert!(out.status.success(), "{}", common::text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 2, "{printed}");
}

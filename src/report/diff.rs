//! `vaelab diff` as text or Markdown: the comparison of [`crate::compare::diff`], rendered.

use std::fmt::Write as _;

use super::tables::{markdown_table, text_table};
use crate::compare::diff::{Diff, Pair};

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

impl Diff {
    /// Plain text (`md = false`) or Markdown; `only_changed` hides pairs within noise.
    pub fn render(&self, md: bool, only_changed: bool) -> String {
        let mut out = String::new();
        let h = |out: &mut String, title: &str| {
            if md {
                let _ = writeln!(out, "\n## {title}\n");
            } else {
                let _ = writeln!(out, "\n{title}");
            }
        };
        if md {
            let _ = writeln!(out, "# vaelab diff: {} → {}", self.a, self.b);
        } else {
            let _ = writeln!(out, "A: {}\nB: {}", self.a, self.b);
        }
        for (side, label, n) in [("A", &self.a, self.a_runs), ("B", &self.b, self.b_runs)] {
            if n == 0 {
                let _ = writeln!(
                    out,
                    "{}note: side {side} ({label}) has no run{}",
                    if md { "\n> " } else { "" },
                    if label.contains('(') {
                        " built from that commit with a clean tree"
                    } else {
                        ""
                    }
                );
            }
        }
        h(&mut out, &format!("commits A..B ({})", self.commits.len()));
        for c in &self.commits {
            let _ = writeln!(out, "{}{c}", if md { "- " } else { "  " });
        }
        if !self.files.is_empty() {
            h(&mut out, "files changed");
            for f in &self.files {
                let _ = writeln!(out, "{}{f}", if md { "    " } else { "  " });
            }
        }
        h(
            &mut out,
            &format!(
                "dependency changes in Cargo.lock ({})",
                self.dependencies.len()
            ),
        );
        for d in &self.dependencies {
            let _ = writeln!(
                out,
                "{}{}: {} -> {}",
                if md { "- " } else { "  " },
                d.name,
                d.a,
                d.b
            );
        }
        if !self.setup.is_empty() {
            h(&mut out, "machine set-up differences (can change numbers)");
            for d in &self.setup {
                let bullet = if md { "- " } else { "  " };
                let _ = writeln!(out, "{bullet}{}: {} -> {}", d.name, d.a, d.b);
            }
        }
        if !self.unreadable.is_empty() {
            h(
                &mut out,
                &format!(
                    "unreadable runs ({}): this diff is incomplete",
                    self.unreadable.len()
                ),
            );
            for u in &self.unreadable {
                let _ = writeln!(out, "{}{u}", if md { "- " } else { "  " });
            }
        }
        h(
            &mut out,
            &format!("unpaired runs ({})", self.unpaired.len()),
        );
        for u in &self.unpaired {
            let closest = match &u.closest {
                Some((id, keys)) => format!("; closest {id} differs in {}", keys.join(", ")),
                None => "; the other side has no run".to_string(),
            };
            let _ = writeln!(
                out,
                "{}only in {}: {} {}{closest}",
                if md { "- " } else { "  " },
                u.side,
                u.id,
                u.params
            );
        }
        let shown: Vec<&Pair> = self
            .pairs
            .iter()
            .filter(|p| !only_changed || p.metrics.iter().any(|m| m.changed))
            .collect();
        h(
            &mut out,
            &format!(
                "paired runs ({} of {} shown)",
                shown.len(),
                self.pairs.len()
            ),
        );
        let mut rows = Vec::new();
        let mut largest = Vec::new();
        for p in shown {
            for m in &p.metrics {
                let verdict = if m.changed { "CHANGED" } else { "within noise" };
                rows.push(vec![
                    p.params.clone(),
                    m.metric.to_string(),
                    num(m.a),
                    num(m.b),
                    m.delta.map_or("-".into(), |d| format!("{d:+.4}")),
                    m.delta_pct.map_or("-".into(), |v| format!("{v:+.2}%")),
                    format!("±{:.4} ({})", m.noise, m.noise_from),
                    verdict.to_string(),
                ]);
            }
            if let (false, Some((epoch, d))) = (md, p.largest_epoch_delta) {
                largest.push(format!(
                    "  largest per-epoch test-loss delta: {d:+.4} at epoch {epoch} ({} vs {})",
                    p.a, p.b
                ));
            }
        }
        let header = [
            "params", "metric", "A", "B", "delta", "delta %", "noise", "verdict",
        ];
        let right = [false, false, true, true, true, true, false, false];
        out.push_str(&if md {
            markdown_table(&header, rows)
        } else {
            text_table(&header, &right, rows)
        });
        for line in largest {
            let _ = writeln!(out, "{line}");
        }
        if md {
            let _ = writeln!(out);
            for p in self
                .pairs
                .iter()
                .filter(|p| !only_changed || p.metrics.iter().any(|m| m.changed))
            {
                if let Some((epoch, d)) = p.largest_epoch_delta {
                    let _ = writeln!(
                        out,
                        "- {}: largest per-epoch test-loss delta {d:+.4} at epoch {epoch} (`{}` vs `{}`)",
                        p.params, p.a, p.b
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "\n{}",
            match (self.changed, self.pairs.is_empty()) {
                (true, _) => "verdict: some metric changed beyond noise",
                (false, true) => "verdict: no paired runs to compare",
                (false, false) => "verdict: no metric changed beyond noise",
            }
        );
        out
    }
}

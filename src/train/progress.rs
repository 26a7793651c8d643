//! Progress display for training: an indicatif bar in a terminal, plain lines otherwise.
//!
//! [`BarRenderer`] takes the place of Burn's own renderer (its TUI would fight with our bars):
//! it moves the bar through each split's batches and shows the running loss.

use std::sync::Arc;
use std::time::Duration;

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricEntry, MetricId};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::LearnerSummary;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::metrics::LOSS_METRIC;

/// Where training reports go: a live bar on a terminal, or nowhere but the per-epoch lines.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    label: String,
}

impl Progress {
    /// A bar on stderr when it is a terminal and `quiet` is off; hidden otherwise. Inside a
    /// sweep the bar joins the sweep's `multi` display, under its overall bar.
    pub fn new(label: &str, quiet: bool, multi: Option<&MultiProgress>) -> Self {
        let bar = if !quiet && stderr_is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let bar = match multi {
                Some(multi) => multi.add(bar),
                None => bar,
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} {msg} [{bar:30.cyan/blue}] {pos}/{len} img {elapsed_precise} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        bar.set_prefix(label.to_string());
        Self {
            bar,
            label: label.to_string(),
        }
    }

    /// Prints a line above the bar (or plainly, without one). `quiet` hides nothing here: the
    /// per-epoch lines are the log a non-terminal run keeps.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.bar.is_hidden() {
            println!("{}", line.as_ref());
        } else {
            self.bar.println(line.as_ref());
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// The run label shown before the bar.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// Whether live bars make sense (stderr is a terminal).
pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Burn renderer driving a [`Progress`] bar.
pub struct BarRenderer {
    progress: Progress,
    epoch: usize,
    total_epochs: usize,
    split: String,
    /// Burn uses the metric name as its id.
    loss_id: MetricId,
}

impl BarRenderer {
    /// A renderer drawing on `progress`.
    pub fn new(progress: Progress) -> Self {
        Self {
            progress,
            epoch: 0,
            total_epochs: 0,
            split: String::new(),
            loss_id: MetricId::new(Arc::new(LOSS_METRIC.to_string())),
        }
    }

    fn show_loss(&self, entry: &MetricEntry) {
        if entry.metric_id == self.loss_id {
            let msg = format!(
                "epoch {}/{} {} loss {}",
                self.epoch, self.total_epochs, self.split, entry.serialized_entry.formatted
            );
            self.progress.bar.set_message(msg);
        }
    }
}

impl TrainingProgressLogger for BarRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _total_items: Option<usize>,
        _label: Option<&str>,
    ) {
        self.total_epochs = total_epochs;
        self.epoch = starting_epoch;
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = split.to_lowercase();
        self.progress.bar.set_length(total_items as u64);
        self.progress.bar.reset();
        self.progress.bar.set_message(format!(
            "epoch {}/{} {}",
            self.epoch, self.total_epochs, self.split
        ));
    }

    fn update_split(&mut self, items_processed: usize) {
        self.progress.bar.set_position(items_processed as u64);
    }

    fn end_split(&mut self) {}

    fn end(&mut self) {}

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for BarRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, _name: &str, _total_items: usize) {}
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRendererTraining for BarRenderer {
    fn update_train(&mut self, state: MetricState) {
        if let MetricState::Numeric(entry, _) = &state {
            self.show_loss(entry);
        }
    }

    fn update_valid(&mut self, state: MetricState) {
        if let MetricState::Numeric(entry, _) = &state {
            self.show_loss(entry);
        }
    }

    fn on_train_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for BarRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}

    fn on_test_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl MetricsRenderer for BarRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, _definition: MetricDefinition) {}
}

//! Human-readable views of results: for now the per-epoch table printed after training.

use crate::store::EpochRow;

/// A fixed-width table of per-epoch rows: epoch, split, recon, KL, β·KL, loss, article loss.
pub fn epoch_table(rows: &[EpochRow]) -> String {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    let mut out = format!(
        "{:>5}  {:<5}  {:>10}  {:>9}  {:>9}  {:>10}  {:>12}  {:>7}\n",
        "epoch", "split", "recon", "kl", "beta_kl", "loss", "article_loss", "seconds"
    );
    for r in rows {
        out.push_str(&format!(
            "{:>5}  {:<5}  {:>10.3}  {:>9}  {:>9}  {:>10.3}  {:>12}  {:>7.1}\n",
            r.epoch,
            r.split,
            r.recon,
            opt(r.kl),
            opt(r.beta_kl),
            r.loss,
            opt(r.article_loss),
            r.seconds
        ));
    }
    out
}

# Sourced by the scripts: one place for the cache and build locations.
# VAELAB_CACHE: libtorch and MNIST (default ~/.cache/vaelab).
# The build goes where plain `cargo` puts it (./target, LIBTORCH from .cargo/config.toml), so
# `cargo run --release -- …` after ./scripts/run reuses the scripts' build instead of starting a
# second cold one. Both are left alone when the caller sets them.
VAELAB_CACHE="${VAELAB_CACHE:-$HOME/.cache/vaelab}"
export VAELAB_CACHE
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Two cores: build with both, keep libtorch from oversubscribing when tests run in parallel.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-$(nproc)}"

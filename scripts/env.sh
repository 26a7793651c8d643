# Sourced by the scripts: one place for the cache and build locations.
# VAELAB_CACHE: libtorch, MNIST and the cargo build cache (default ~/.cache/vaelab).
# CARGO_TARGET_DIR: defaults to the cache too, so every clone shares one build of Burn and polars.
VAELAB_CACHE="${VAELAB_CACHE:-$HOME/.cache/vaelab}"
export VAELAB_CACHE
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$VAELAB_CACHE/target}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Two cores: build with both, keep libtorch from oversubscribing when tests run in parallel.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-$(nproc)}"
# The same absolute libtorch path for every clone, so a shared build cache never rebuilds torch-sys.
export LIBTORCH="${LIBTORCH:-$VAELAB_CACHE/torch-2.9.0/torchcpu}"

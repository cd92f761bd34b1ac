#!/usr/bin/env bash
# Runs every cargo-fuzz target of kvseal for a bounded time on the committed corpus.
#
#   fuzz/run.sh                 # each target for $FUZZ_SECONDS (default 20) seconds
#   fuzz/run.sh 300             # each target for 300 s
#   fuzz/run.sh 60 duration     # only the named targets
#
# Works on the stable toolchain: `--sanitizer none` needs no -Z flag (AddressSanitizer would need
# nightly). `-a` builds with debug assertions, so integer overflow panics are found too.
# The committed corpus is only read; FUZZ_GROW_CORPUS=1 adds new inputs that increase coverage to
# fuzz/corpus/<target>/ (minimise before committing with `cargo fuzz cmin --sanitizer none -a <target>`). A crash leaves its input in
# fuzz/artifacts/<target>/ and makes this script exit non-zero; reproduce it with
# `cargo fuzz run --sanitizer none -a <target> fuzz/artifacts/<target>/<file>`.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-${FUZZ_SECONDS:-20}}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
flags=(--sanitizer none -a)
cargo fuzz build "${flags[@]}"
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "=== fuzz target $t: ${secs}s, corpus $(ls "corpus/$t" | wc -l) inputs"
    # New inputs go to a scratch directory (libFuzzer writes to, and reduces in, the first corpus
    # directory only), so a run leaves the committed corpus untouched. FUZZ_GROW_CORPUS=1 writes
    # them into fuzz/corpus/<target>/ instead, to grow it on purpose (minimise before committing).
    if [ "${FUZZ_GROW_CORPUS:-0}" = 1 ]; then
        dirs=("corpus/$t")
    else
        scratch="$(mktemp -d)"
        dirs=("$scratch" "corpus/$t")
    fi
    if ! cargo fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 2>"/tmp/kvseal-fuzz-$t.log"; then
        tail -60 "/tmp/kvseal-fuzz-$t.log"
        failed+=("$t")
    else
        grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "/tmp/kvseal-fuzz-$t.log" | tail -2 || true
    fi
    if [ -n "${scratch:-}" ]; then
        rm -rf "$scratch"
        scratch=""
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED targets: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${secs}s each without a crash"

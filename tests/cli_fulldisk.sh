#!/usr/bin/env bash
# A disk that fills up mid-write: every write ends with exit 1 and one line
# "rlhf: error: ... No space left on device" (or "File too large"), no
# crash, no HDF5 text, no .tmp and no partial or empty file left behind, the
# last good checkpoint kept, and metrics.csv not running ahead of latest.h5.
# Two ways to fill it: a file-size limit (ulimit -f, with SIGXFSZ ignored so
# that writes fail with EFBIG), which any user can set, and a real full
# filesystem (a 1 MB tmpfs, filled up), which needs root to mount: that half
# runs as tests/cli_fulldisk_tmpfs.sh (FULLDISK=tmpfs) and is skipped (exit
# 77) where no tmpfs can be mounted.
. "$(dirname "$0")/cli_pipeline.bash"
pipeline_build
P=$D/pretrain/latest.h5 S=$D/sft/latest.h5

# full MODE CMD...: runs CMD with writes failing (MODE limit: any file past
# $KB kB, 64 unless set; MODE tmpfs: the command's paths are already on the
# full tmpfs);
# expects exit 1, one stderr error line (the last) matching $want, no HDF5 text
full() {
    local mode=$1; shift
    if [ "$mode" = limit ]; then
        (trap '' XFSZ; ulimit -f ${KB:-64}; exec "$@") >"$D/out" 2>"$D/err"
    else
        "$@" >"$D/out" 2>"$D/err"
    fi
    local rc=$?
    [ $rc -lt 128 ] || fail "$mode: crash (exit $rc) from: $*: $(tail -3 "$D/err")"
    [ $rc -eq 1 ] || fail "$mode: expected exit 1, got $rc from: $*: $(tail -3 "$D/err")"
    grep -Eq 'HDF5-DIAG|#[0-9]+: .*H5' "$D/err" && fail "$mode: HDF5's own text from: $*: $(cat "$D/err")"
    [ "$(grep -c '^rlhf: error: ' "$D/err")" -eq 1 ] && tail -n 1 "$D/err" | grep -Eq "^rlhf: error: .*($want)" ||
        fail "$mode: not one error line matching '$want' from: $*: $(cat "$D/err")"
}

# rows RUNDIR: "CSV-rows checkpoint-rows" of a run directory
rows() {
    "$PY" - "$1" <<'PYEOF'
import csv, h5py, sys
d = sys.argv[1]
csv_rows = len(list(csv.DictReader(open(d + "/metrics.csv"))))
with h5py.File(d + "/latest.h5") as f:
    print(csv_rows, len(f["metrics/step"]))
PYEOF
}

scenarios() {  # MODE DIR: DIR is where the writes go
    local mode=$1 W=$2
    want='No space left on device|File too large'
    # a fresh run whose first checkpoint cannot be written
    full $mode "$R" pretrain "$CFG" --checkpoint.dir="$W/fresh" --checkpoint.every=1
    grep -q 'step_000001.h5' "$D/err" || fail "$mode: the error does not name the checkpoint"
    [ ! -e "$W/fresh/latest.h5" ] || fail "$mode: latest.h5 after a failed first save"
    [ "$(wc -l <"$W/fresh/metrics.csv")" -le 1 ] || fail "$mode: metrics.csv has rows no checkpoint holds"
    # a resumed run (step 4, on the real disk) whose next save fails
    if [ "$mode" = limit ]; then cp -a "$D/pretrain" "$W/res"; fi
    sum=$(sha256sum "$W/res/step_000004.h5")
    full $mode "$R" pretrain "$CFG" --checkpoint.dir="$W/res" --resume --train.max_steps=8 --checkpoint.every=2
    [ "$(readlink "$W/res/latest.h5")" = step_000004.h5 ] || fail "$mode: latest.h5 moved"
    echo "$sum" | sha256sum -c --quiet - || fail "$mode: the last checkpoint changed"
    r=$(rows "$W/res")
    [ "${r% *}" = "${r#* }" ] || fail "$mode: metrics.csv and latest.h5 disagree (rows: $r)"
    # a rollout dump that cannot be written leaves no file (a rerun is not refused)
    KB=16 full $mode "$R" ppo "$CFG" --checkpoint.init="$S" --checkpoint.dir="$D/ppo_$mode" \
        --ppo.dump_rollouts="$W/rollouts.h5" --train.max_steps=1 --ppo.rollout_batch=64
    [ ! -e "$W/rollouts.h5" ] || fail "$mode: a failed rollout dump left $(stat -c %s "$W/rollouts.h5") bytes"
    # outputs an option names, and prepare's shards
    KB=1 full $mode "$R" sample "$P" --logits "$W/logits.txt"
    KB=1 full $mode "$R" eval "$S" "$CFG" --json "$W/e.json" --show 24 --ppo.reward_model=
    KB=1 full $mode "$R" prepare "$CFG" --data.dir="$W/data"
    for f in "$W/logits.txt" "$W/e.json" "$W/data/tokenizer.h5" "$W/data/train.h5"; do
        [ ! -e "$f" ] || fail "$mode: a failed write left $f"
    done
    leftover=$(find "$W" -name '*.tmp')
    [ -z "$leftover" ] || fail "$mode: .tmp files left: $leftover"
}

if [ "${FULLDISK:-limit}" = limit ]; then
    mkdir "$D/lim"
    scenarios limit "$D/lim"
    echo "cli_fulldisk: ok (file-size limit)"
    exit 0
fi

# a real full filesystem (root only), just large enough for the run to resume
M=$D/tmpfs
mkdir "$M"
if ! mount -t tmpfs -o size=1m tmpfs "$M" 2>/dev/null; then
    echo "cli_fulldisk_tmpfs: skipped: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)"
    exit 77
fi
trap 'umount "$M" 2>/dev/null; rm -rf "$D"' EXIT
# the resumed run's directory (its newest checkpoint), then the disk is filled up
mkdir "$M/res"
cp -a "$D/pretrain"/{.lock,latest.h5,step_000004.h5,metrics.csv} "$M/res/" || fail "the run does not fit the tmpfs"
dd if=/dev/zero of="$M/filler" bs=1k count=1024 2>/dev/null
[ "$(df --output=avail "$M" | tail -1)" -eq 0 ] || fail "the tmpfs is not full"
scenarios tmpfs "$M"
echo "cli_fulldisk: ok (a full tmpfs)"

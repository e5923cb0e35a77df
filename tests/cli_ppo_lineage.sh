#!/usr/bin/env bash
# A PPO run resumes from the reference and reward model it started with,
# named in its checkpoint by resolved path and sha256, whatever the config's
# names (usually DIR/latest.h5 symlinks) point at later; and it refuses to
# resume when one of those files changed.
. "$(dirname "$0")/cli_pipeline.bash"
pipeline_build
real_sft=$(readlink -f "$D/sft/latest.h5")
real_rm=$(readlink -f "$D/reward/latest.h5")
run "$PY" - "$D/ppo/latest.h5" "$real_sft" "$real_rm" <<'PY'
import h5py, sys
f = h5py.File(sys.argv[1], "r")
assert f.attrs["parent"].startswith(sys.argv[2] + " sha256:"), f.attrs["parent"]
rm = bytes(f["state/reward_model"][:]).decode()
assert rm.startswith(sys.argv[3] + " sha256:"), rm
PY
# the SFT and reward runs move on: their latest.h5 now name other files
for s in sft reward; do
    cp "$D/$s/latest.h5" "$D/$s/step_000099.h5"
    printf 'x' >>"$D/$s/step_000099.h5"   # a different file
    ln -sfn step_000099.h5 "$D/$s/latest.h5"
done
run "$R" ppo "$CFG" --checkpoint.dir="$D/ppo" --checkpoint.init="$D/sft/latest.h5" \
    --train.max_steps=6 --resume
run "$PY" - "$D/ppo/latest.h5" "$real_sft" <<'PY'
import h5py, sys
f = h5py.File(sys.argv[1], "r")
assert f.attrs["step"] == 6
assert f.attrs["parent"].startswith(sys.argv[2] + " sha256:"), f.attrs["parent"]
PY
# a recorded file that changed stops the resume with one line
printf 'x' >>"$real_rm"
run_fails "$R" ppo "$CFG" --checkpoint.dir="$D/ppo" --checkpoint.init="$D/sft/latest.h5" \
    --train.max_steps=8 --resume
grep -q "the reward model .* changed since this run started" "$D/err" || fail "$(cat "$D/err")"
echo "cli_ppo_lineage: ok"

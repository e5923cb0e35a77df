#!/usr/bin/env bash
# demo_table.sh DIR: the demo's summary table (Markdown) from the RESULT
# lines `rlhf eval` wrote to DIR/eval_<stage>.result, and the accuracy by
# turn on the held-out conversations.
set -euo pipefail
D=$1
echo "| stage | checkpoint | val loss | task accuracy (greedy / sampled) | RM accuracy | RM AUC on sampled answers | mean reward (greedy / sampled) | KL to SFT |"
echo "|---|---|---|---|---|---|---|---|"
for s in pretrain sft best_of reward ppo ppo_grader dpo grpo; do
    f=$D/eval_$s.result
    [ $s = best_of ] && f=$D/eval_sft.result  # best-of-8 rides on the SFT model's eval
    [ -f "$f" ] || continue
    [ $s = best_of ] && ! grep -q best_of_accuracy "$f" && continue
    awk -v stage="$s" -v ckpt="$D/$s/latest.h5" -v ckpt_sft="$D/sft/latest.h5" '
        function get(k) { return (k in v) ? v[k] : "" }
        function pct(x) { return x == "" ? "–" : sprintf("%.1f%%", 100 * x) }
        function num(x, fmt) { return x == "" ? "–" : sprintf(fmt, x) }
        function both_pct(a, b) { return a == "" ? "–" : (b == "" ? pct(a) : pct(a) " / " pct(b)) }
        # a language model: how its own likelihood ranks the same pairs
        function rm_col(r, l) { return r != "" ? pct(r) : (l == "" ? "–" : "– (own likelihood " pct(l) ")") }
        function both_num(a, b) { return a == "" ? "–" : (b == "" ? num(a, "%.3f") : num(a, "%.3f") " / " num(b, "%.3f")) }
        {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            if (stage == "best_of") {  # the SFT model sampled 8 times, the reward model picks
                # its AUC column: the reward model over all 8 answers of every prompt
                printf "| best-of-8 (SFT + RM) | %s | – | – / %s (one sample %s, any right %s) | – | %s (all 8 answers) | – | – |\n",
                    ckpt_sft, pct(get("best_of_accuracy")), pct(get("best_of_sample_accuracy")), pct(get("best_of_pass")),
                    num(get("best_of_rm_auc"), "%.3f")
                next
            }
            rm = rm_col(get("rm_accuracy"), get("likelihood_accuracy"))
            if (get("rm_accuracy_right_wrong") != "")
                rm = rm " (right vs wrong " pct(get("rm_accuracy_right_wrong")) ", wrong vs wrong " pct(get("rm_accuracy_wrong_wrong")) ")"
            printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", stage, ckpt,
                num(get("val_loss"), "%.3f"),
                both_pct(get("accuracy"), get("sample_accuracy")), rm, num(get("rm_auc"), "%.3f"),
                both_num(get("reward"), get("sample_reward")), num(get("kl"), "%.3f")
        }' "$f"
done
# accuracy by turn on the held-out conversations (rlhf eval's accuracy_turnK):
# each turn asked after the model's own earlier answers, as in `rlhf chat`
if grep -qs 'accuracy_turn1=' "$D"/eval_*.result; then
    echo
    echo "| stage | turn 1 | turn 2 | turn 3 | turn 4 |"
    echo "|---|---|---|---|---|"
    for s in pretrain sft reward ppo ppo_grader dpo grpo; do
        f=$D/eval_$s.result
        grep -qs 'accuracy_turn1=' "$f" || continue
        awk -v stage="$s" '
            function pct(k) { return (k in v) ? sprintf("%.1f%%", 100 * v[k]) : "–" }
            {
                for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                printf "| %s | %s | %s | %s | %s |\n", stage, pct("accuracy_turn1"),
                    pct("accuracy_turn2"), pct("accuracy_turn3"), pct("accuracy_turn4")
            }' "$f"
    done
fi

// rlhf: one binary, git-style subcommands. Each command lives in its own
// file under train/; this file only dispatches.
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "cpu.h"
#include "commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} Command;

static const Command commands[] = {
    {"prepare", cmd_prepare, "CONFIG         corpus -> tokenizer + token shards"},
    {"pretrain", cmd_pretrain, "CONFIG        next-token pretraining (--resume to continue)"},
    {"sft", cmd_sft, "CONFIG             supervised fine-tuning from a checkpoint"},
    {"reward", cmd_reward, "CONFIG          reward model from an SFT checkpoint + preference pairs"},
    {"ppo", cmd_ppo, "CONFIG             PPO with policy, reference, critic and reward model"},
    {"rank", cmd_rank, "CKPT CONFIG     sample k answers per prompt, rank them -> grouped comparisons"},
    {"dpo", cmd_dpo, "CONFIG             DPO / IPO / cDPO from an SFT checkpoint + preference pairs"},
    {"sample", cmd_sample, "CKPT [opts]     generate text (--prompt --temperature --top_k --top_p ...)"},
    {"chat", cmd_chat, "CKPT [opts]     interactive chat (--temperature --top_k --top_p --seed ...)"},
    {"eval", cmd_eval, "CKPT CONFIG     loss / perplexity, task accuracy, RM accuracy, reward, KL"},
    {"inspect", cmd_inspect, "CKPT            stage, lineage, config, parameter table, metrics"},
    {"tasks", cmd_tasks, "[--out DIR] ...   write the task data (SFT, preferences, prompts)"},
    {"env", cmd_env, "                CPU features, BLAS kernels and matmul backend in use"},
    {"help", NULL, "[config]        this help, or every config key with its default"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: rlhf <command> [args]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].usage);
}

int main(int argc, char **argv) {
    // before any BLAS work: OpenBLAS kernels that match the CPU (may re-exec)
    cpu_choose_blas_core(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (!commands[i].run) {  // help
            if (argc > 2 && !strcmp(argv[2], "config")) config_print_help(stdout);
            else usage(stdout);
            return 0;
        }
        return commands[i].run(argc - 1, argv + 1);
    }
    die("unknown command '%s'; hint: run 'rlhf help' for the list", argv[1]);
}

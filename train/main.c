// rlhf: one binary, git-style subcommands. Each command lives in its own
// file under train/; this file only dispatches.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "config.h"
#include "cpu.h"
#include "commands.h"
#include "dist.h"
#include "options.h"

#define RLHF_VERSION "1.0"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *args;   // what the command takes, for the command table
    const char *usage;  // what it does
    int parallel;  // trains data-parallel under mpirun (the trainer's commands)
} Command;

static const Command commands[] = {
    {"prepare", cmd_prepare, "CONFIG", "corpus -> tokenizer + token shards", 0},
    {"pretrain", cmd_pretrain, "CONFIG", "next-token pretraining (--resume to continue)", 1},
    {"sft", cmd_sft, "CONFIG", "supervised fine-tuning from a checkpoint", 1},
    {"reward", cmd_reward, "CONFIG", "reward model from an SFT checkpoint + preference pairs", 1},
    {"ppo", cmd_ppo, "CONFIG", "PPO with policy, reference, critic and reward model", 1},
    {"rank", cmd_rank, "CKPT CONFIG", "sample k answers per prompt, rank them -> grouped comparisons", 0},
    {"dpo", cmd_dpo, "CONFIG", "DPO / IPO / cDPO from an SFT checkpoint + preference pairs", 1},
    {"sample", cmd_sample, "CKPT [opts]", "generate text (--prompt --temperature --top_k --top_p ...)", 0},
    {"chat", cmd_chat, "CKPT [opts]", "interactive chat (--temperature --top_k --top_p --seed ...)", 0},
    {"eval", cmd_eval, "CKPT CONFIG", "loss / perplexity, task accuracy, RM accuracy, reward, KL", 0},
    {"tokenize", cmd_tokenize, "CKPT|--tokenizer gpt2 [FILE]", "text -> token ids (--decode: ids -> text)", 0},
    {"inspect", cmd_inspect, "CKPT", "stage, lineage, config, parameter table, metrics", 0},
    {"import", cmd_import, "DIR OUT.h5", "Hugging Face GPT-2 dir (config.json, model.safetensors) -> checkpoint", 0},
    {"export", cmd_export, "CKPT DIR", "checkpoint -> Hugging Face GPT-2 dir (config.json, model.safetensors, ...)", 0},
    {"tasks", cmd_tasks, "[--out DIR] ...", "write the task data (SFT, preferences, prompts)", 0},
    {"env", cmd_env, "", "CPU features, BLAS kernels and matmul backend in use", 0},
    {"help", NULL, "[config]", "this help, or every config key with its default", 0},
};

static void usage(FILE *out) {
    fprintf(out, "usage: rlhf <command> [args]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const Command *c = &commands[i];
        if (strlen(c->args) <= 16) fprintf(out, "  %-9s %-16s %s\n", c->name, c->args, c->usage);
        else fprintf(out, "  %-9s %s\n  %-9s %-16s %s\n", c->name, c->args, "", "", c->usage);
    }
    fprintf(out, "\nEvery command answers --help / -h with its usage; rlhf --version prints the "
                 "version.\n");
}

// A standard descriptor that was closed when rlhf started would be the next
// file opened (a checkpoint's .tmp), and stdout's text would land in it.
// Each closed one gets /dev/null, read-only: writing to it still fails, so a
// closed stdout is still reported (options_stdout_status).
static void std_fds_reserve(void) {
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            int nul = open("/dev/null", O_RDONLY);
            if (nul >= 0 && nul != fd) {  // only when a lower one was open
                dup2(nul, fd);
                close(nul);
            }
        }
}

static int run_command(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--version")) {
        printf("rlhf.c %s (checkpoint format_version %d)\n", RLHF_VERSION, CKPT_FORMAT_VERSION);
        return 0;
    }
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) name = "help";
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) != 0) continue;
        if (!commands[i].run) {  // help [config]
            if (argc > 3 || (argc == 3 && strcmp(argv[2], "config") != 0))
                die("unknown help topic '%s'; hint: 'rlhf help' or 'rlhf help config'",
                    argv[2]);
            if (argc == 3) config_print_help(stdout);
            else usage(stdout);
            return 0;
        }
        if (dist_launched() && !commands[i].parallel)
            die("'rlhf %s' runs as one process, but mpirun started it; hint: run it without "
                "mpirun (pretrain, sft, reward, ppo and dpo train under mpirun)", name);
        if (commands[i].parallel && dist_init() != 0) die_last();
        return commands[i].run(argc - 1, argv + 1);
    }
    die("unknown command '%s'; hint: run 'rlhf help' for the list", name);
}

int main(int argc, char **argv) {
    std_fds_reserve();
    // before any BLAS work: OpenBLAS kernels that match the CPU (may re-exec)
    cpu_choose_blas_core(argv);
    int status = run_command(argc, argv);
    // output that never arrived (>/dev/full, a closed stdout) is a failure
    int out = options_stdout_status();
    if (dist_size() > 1 && (status || out)) dist_exit(status ? status : out);
    dist_finalize();
    return status ? status : out;
}

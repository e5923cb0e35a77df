// Entry points of the subcommands, one per file in train/. Each takes the
// arguments after `rlhf` (argv[0] is the command name) and returns the
// process exit status; on bad input it prints one line and exits non-zero.
#ifndef RLHF_COMMANDS_H
#define RLHF_COMMANDS_H

int cmd_prepare(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_reward(int argc, char **argv);
int cmd_ppo(int argc, char **argv);
int cmd_dpo(int argc, char **argv);
int cmd_rank(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_tasks(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_env(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

#endif

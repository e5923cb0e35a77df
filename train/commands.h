// Entry points of the subcommands, one per file in train/. Each takes the
// arguments after the command name (argv[0] is the command) and returns the
// process exit status.
#ifndef RLHF_COMMANDS_H
#define RLHF_COMMANDS_H

#endif

// `rlhf env`: what this machine offers the training loop: CPU model,
// cores and threads, the instruction-set features rlhf.c looks for, the
// OpenBLAS core in use (and who chose it) and the matmul backend of each
// precision. Reads nothing from disk but /proc/cpuinfo.
#include <stdio.h>

#include "commands.h"
#include "common.h"
#include "options.h"
#include "run.h"

int cmd_env(int argc, char **argv) {
    const OptionSpec spec = {.usage = "usage: rlhf env"};
    Options o;
    int rc = options_parse(&o, &spec, argc, argv);
    options_free(&o);
    if (rc != 0) die_last();
    run_print_machine(stdout, "");
    return 0;
}

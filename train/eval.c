// rlhf eval (skeleton, being written).
#include "commands.h"
#include "common.h"

int cmd_eval(int argc, char **argv) {
    (void)argc;
    (void)argv;
    die("eval is not implemented yet");
}

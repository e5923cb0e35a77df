// rlhf inspect (skeleton, being written).
#include "commands.h"
#include "common.h"

int cmd_inspect(int argc, char **argv) {
    (void)argc;
    (void)argv;
    die("inspect is not implemented yet");
}

// rlhf chat (skeleton, being written).
#include "commands.h"
#include "common.h"

int cmd_chat(int argc, char **argv) {
    (void)argc;
    (void)argv;
    die("chat is not implemented yet");
}

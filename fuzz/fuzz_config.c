// libFuzzer harness: the INI config reader and the --section.key=value
// overrides. An input is an INI text, optionally followed by a line "--"
// and one override per line. Every outcome must be 0 or -1 with a one-line
// reason; nothing may crash, leak or read out of bounds.
#include "common.h"
#include "config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const uint8_t *sep = NULL;
    for (size_t i = 0; i + 4 <= n; i++)
        if (!memcmp(data + i, "\n--\n", 4)) {
            sep = data + i;
            break;
        }
    size_t ini_len = sep ? (size_t)(sep - data) : n;
    Config cfg;
    config_init(&cfg);
    int rc = config_load(&cfg, fuzz_file("config.ini", data, ini_len));
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(rc == 0 || (rlhf_errmsg[0] && !strchr(rlhf_errmsg, '\n')));
    if (sep) {
        const char *p = (const char *)sep + 4, *end = (const char *)data + n;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            char *line = mallocCheck(len + 1);
            memcpy(line, p, len);
            line[len] = '\0';
            if (!memchr(line, '\0', len)) {
                rc = config_set(&cfg, line);
                FUZZ_CHECK(rc == 0 || rc == -1);
            }
            free(line);
            p += len + 1;
        }
    }
    if (config_validate(&cfg) == 0) {
        char *json = config_to_json(&cfg);
        FUZZ_CHECK(json && json[0] == '{');
        free(json);
    }
    config_free(&cfg);
    return 0;
}

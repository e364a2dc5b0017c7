/* replay_main.c — runs a libFuzzer harness without libFuzzer: every argument
 * is a file, or a directory whose regular files all run (in name order),
 * once each. Built by the ordinary compiler, under ASan/UBSan in the
 * sanitizer build, it is the CI step that replays the seed corpus and every
 * past crash (tests/fuzz/corpus, tests/fuzz/crashes) in seconds. Exits 1
 * when it found nothing to run, so a moved corpus cannot pass silently. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    size_t n;
    uint8_t *buf = fz_read_file(path, &n);
    if (!buf) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        exit(1);
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 1;
}

static int only_visible(const struct dirent *e) { return e->d_name[0] != '.'; }

int main(int argc, char **argv) {
    int runs = 0;
    for (int a = 1; a < argc; a++) {
        struct stat sb;
        if (stat(argv[a], &sb) != 0) continue; /* an absent crashes/ folder: nothing to replay there */
        if (!S_ISDIR(sb.st_mode)) {
            runs += run_file(argv[a]);
            continue;
        }
        struct dirent **list;
        int n = scandir(argv[a], &list, only_visible, alphasort);
        for (int i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], list[i]->d_name);
            if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) runs += run_file(path);
            free(list[i]);
        }
        free(list);
    }
    printf("replayed %d inputs\n", runs);
    return runs > 0 ? 0 : 1;
}

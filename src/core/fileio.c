/* fileio.c — atomic file writes with a running checksum, and checked reads.
 * Every file the library writes goes through here: data lands in
 * "<path>.tmp.<pid>", is flushed and fsync'ed, then renamed over <path> (and
 * the directory fsync'ed), so a crash never leaves a half-written file. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"

hydra_status hydra_afile_open(hydra_afile *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->hash = HYDRA_FNV_OFFSET;
    a->hashing = 1;
    size_t n = strlen(path) + 32;
    a->path = strdup(path);
    a->tmp = malloc(n);
    if (!a->path || !a->tmp) {
        free(a->path);
        free(a->tmp);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    }
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int err = errno;
        hydra_status st = hydra_set_error(HYDRA_ERR_IO, "cannot write %s: %s", path, strerror(err));
        free(a->path);
        free(a->tmp);
        a->path = a->tmp = NULL;
        return st;
    }
    return HYDRA_OK;
}

void hydra_afile_write(hydra_afile *a, const void *p, size_t n) {
    if (a->failed || n == 0) return;
    if (fwrite(p, 1, n, a->f) != n) a->failed = errno ? errno : EIO;
    if (a->hashing) a->hash = hydra_fnv1a(a->hash, p, n);
}

void hydra_afile_u32(hydra_afile *a, uint32_t v) { hydra_afile_write(a, &v, 4); }
void hydra_afile_u64(hydra_afile *a, uint64_t v) { hydra_afile_write(a, &v, 8); }

static void fsync_dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = !slash ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: some filesystems refuse it */
        close(fd);
    }
    free(dir);
}

hydra_status hydra_afile_commit(hydra_afile *a) {
    hydra_status st = HYDRA_OK;
    if (!a->failed && fflush(a->f) != 0) a->failed = errno ? errno : EIO;
    if (!a->failed && fsync(fileno(a->f)) != 0) a->failed = errno ? errno : EIO;
    if (fclose(a->f) != 0 && !a->failed) a->failed = errno ? errno : EIO;
    a->f = NULL;
    if (!a->failed && rename(a->tmp, a->path) != 0) a->failed = errno ? errno : EIO;
    if (a->failed) {
        st = hydra_set_error(HYDRA_ERR_IO, "writing %s failed: %s", a->path, strerror(a->failed));
        unlink(a->tmp);
    } else {
        fsync_dir_of(a->path);
    }
    free(a->path);
    free(a->tmp);
    a->path = a->tmp = NULL;
    return st;
}

void hydra_afile_abort(hydra_afile *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
}

hydra_status hydra_open_regular(const char *path, const char *what, FILE **out, uint64_t *size) {
    *out = NULL;
    *size = 0;
    /* O_NONBLOCK: opening a FIFO with no writer returns at once instead of
     * blocking; the flag is cleared before any read. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return hydra_set_error(HYDRA_ERR_IO, "cannot open %s %s: %s", what, path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        return hydra_set_error(HYDRA_ERR_IO, "cannot stat %s %s: %s", what, path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return hydra_set_error(HYDRA_ERR_IO, "%s %s is not a regular file (%s)", what, path,
                               S_ISDIR(sb.st_mode) ? "a directory" : S_ISFIFO(sb.st_mode) ? "a FIFO" : "a device or socket");
    }
    int fl = fcntl(fd, F_GETFL);
    FILE *f = fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ? NULL : fdopen(fd, "rb");
    if (!f) {
        int err = errno;
        close(fd);
        return hydra_set_error(HYDRA_ERR_IO, "cannot open %s %s: %s", what, path, strerror(err));
    }
    *out = f;
    *size = (uint64_t)sb.st_size;
    return HYDRA_OK;
}

hydra_status hydra_read_file(const char *path, const char *what, size_t max_bytes, uint8_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    FILE *f;
    uint64_t size;
    HYDRA_CHECK(hydra_open_regular(path, what, &f, &size));
    if (size > max_bytes) {
        fclose(f);
        return hydra_set_error(HYDRA_ERR_FORMAT, "%s %s is too large (%llu bytes, limit %zu)", what, path,
                               (unsigned long long)size, max_bytes);
    }
    uint8_t *buf = malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory reading %s %s (%llu bytes)", what, path,
                               (unsigned long long)size);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(buf);
        return hydra_set_error(HYDRA_ERR_IO, "short read on %s %s", what, path);
    }
    *out = buf;
    *n = got;
    return HYDRA_OK;
}

/* fileio.h — atomic writes (temp file, fsync, rename) with a running FNV-1a
 * checksum of everything written, and whole-file reads. */
#ifndef HYDRA_FILEIO_H
#define HYDRA_FILEIO_H

#include "core/internal.h"

typedef struct {
    FILE *f;
    char *path, *tmp;
    uint64_t hash;  /* FNV-1a of all bytes written so far */
    int failed;     /* errno of the first failed write */
    int hashing;    /* 1 (default): keep `hash` up to date; 0: skip (large files without a checksum) */
} hydra_afile;

hydra_status hydra_afile_open(hydra_afile *a, const char *path);
/* Writes are buffered and checked at commit: no per-call status. */
void hydra_afile_write(hydra_afile *a, const void *p, size_t n);
void hydra_afile_u32(hydra_afile *a, uint32_t v); /* host order; every target is little-endian */
void hydra_afile_u64(hydra_afile *a, uint64_t v);
/* Flush, fsync, rename into place. Removes the temp file on failure. */
hydra_status hydra_afile_commit(hydra_afile *a);
void hydra_afile_abort(hydra_afile *a);

/* Little-endian field readers for the headers of our own formats (every
 * target is little-endian; see the static asserts in the writers). */
static inline uint32_t hydra_get_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t hydra_get_u64(const void *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Open `path` for reading only if it is a regular file, checked before any
 * call that could block: a FIFO blocks in fopen() until a writer appears, a
 * directory "opens" and then fails oddly. *size is the file's size. `what`
 * names the file in messages ("checkpoint", "state file", ...). */
hydra_status hydra_open_regular(const char *path, const char *what, FILE **out, uint64_t *size);

/* Read a whole regular file (at most max_bytes) into a malloc'ed buffer;
 * `what` names it in messages. */
hydra_status hydra_read_file(const char *path, const char *what, size_t max_bytes, uint8_t **out, size_t *n);

#endif /* HYDRA_FILEIO_H */

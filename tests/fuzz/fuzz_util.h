/* fuzz_util.h — helpers shared by the fuzz harnesses (tests/fuzz/fuzz_*.c)
 * and the hostile-file regression tests (tests/test_hostile.c). */
#ifndef HYDRA_FUZZ_UTIL_H
#define HYDRA_FUZZ_UTIL_H
#include <stddef.h>
#include <stdint.h>

#include "hydralm.h"

/* State, bank and vector-memory files all end in a u64 FNV-1a of every byte
 * before it: rewrite it so that a mutated file reaches the checks behind the
 * checksum. No-op for n < 8. */
void fz_fix_fnv_trailer(uint8_t *buf, size_t n);
void fz_put_u64(uint8_t *p, uint64_t v);
void fz_put_u32(uint8_t *p, uint32_t v);

/* A malloc'ed per-process scratch path for `tag`, in /dev/shm when present
 * (a harness writes every input there, since the loaders take paths). */
char *fz_scratch_path(const char *tag);
/* Write data[n] to path (replacing it); 0 on success. */
int fz_write_file(const char *path, const void *data, size_t n);
/* Read a whole file into a malloc'ed buffer; NULL on failure. */
uint8_t *fz_read_file(const char *path, size_t *n);

/* The small models the harnesses run inputs against (seeded, so the
 * fingerprint a seed file carries is the same on every machine): d_model 8,
 * 2 heads x 4, vocab 256 (bytes), window 4, the given layer pattern. */
hydra_config fz_model_config(const char *pattern);
#define FZ_MODEL_SEED 21u

#endif

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
/* Copy file src to dst with the u32 / u64 (width 4 or 8) at byte `off` set to
 * v and the FNV trailer fixed: a hostile field behind a valid checksum.
 * 0 on success. */
int fz_patch_field(const char *src, const char *dst, size_t off, int width, uint64_t v);

/* A malloc'ed per-process scratch path for `tag`, in /dev/shm when present
 * (a harness writes every input there, since the loaders take paths). */
char *fz_scratch_path(const char *tag);
/* Write data[n] to path (replacing it); 0 on success. */
int fz_write_file(const char *path, const void *data, size_t n);
/* Read a whole file into a malloc'ed buffer; NULL on failure. */
uint8_t *fz_read_file(const char *path, size_t *n);

/* Defect 2's reproducer: a checkpoint whose config describes `layers`
 * conv-heavy DeltaNet layers (1 head x 4096, conv width 64: 3.2 MB of
 * weights each, mostly the conv weights the old size estimate left out)
 * while its tensor table holds one wrong-shaped tensor and 4 bytes of data.
 * 0 on success. */
int fz_conv_heavy_checkpoint(const char *path, int layers);

/* The small models the harnesses run inputs against (seeded, so the
 * fingerprint a seed file carries is the same on every machine): d_model 8,
 * 2 heads x 4, vocab 256 (bytes), window 4, the given layer pattern. */
hydra_config fz_model_config(const char *pattern);
#define FZ_MODEL_SEED 21u
/* That model, created once per process (one thread: the harness runs one
 * input at a time); aborts if it cannot be made. */
const hydra_model *fz_model(const char *pattern);

/* Write the input to this harness's scratch file and return its path. */
const char *fz_input_file(const uint8_t *data, size_t size);
/* The same, with the FNV trailer of the written copy fixed up. */
const char *fz_input_file_fixed(const uint8_t *data, size_t size);
/* Feed two tokens to s (logits of the last): what a loaded state or a
 * loaded model must survive. Skips models whose state is over 64 MiB (a
 * big but well-formed file: loading it was the point). */
void fz_feed(const hydra_model *m, hydra_state *s);
/* A harness's invariant broke: print why and abort (libFuzzer saves the input). */
void fz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif

/* The contract between a fuzz harness (fuzz_*.c) and its drivers: libFuzzer, or
 * standalone.c when the compiler has no libFuzzer (gcc) and in `make check`. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Runs one input; aborts on a bug. Always returns 0 (libFuzzer's convention). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional: a harness may define this to hand the standalone driver valid inputs built with
 * its encoders, which the driver mutates and can write out as a seed corpus. */
typedef void (*fuzz_add_fn)(const uint8_t *data, size_t size, void *userdata);
void fuzz_seeds(fuzz_add_fn add, void *userdata);

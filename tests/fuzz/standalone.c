/* Drives any fuzz harness (fuzz_*.c, see fuzz.h) without libFuzzer, so gcc builds and
 * `make check` exercise the decoders under ASan/UBSan too. Deterministic: the same
 * arguments run the same inputs, so a failure in CI reproduces locally.
 *
 *   fuzz-X-standalone [-runs=N] [-seed=S] [-write_seeds=DIR] [DIR|FILE]...
 *
 * Runs every file given (directories: every regular file in them), then the harness's own
 * seeds, then N inputs (default 20000) derived from a fixed seed: random bytes, and
 * mutations of the files and seeds (bit flips, truncations, extensions, and big-endian
 * length-like values written near the start, where frame headers sit). -write_seeds
 * writes the harness's seeds to DIR (to refresh a seed corpus) and exits. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define FUZZ_MAX_INPUT (1024 * 1024)

struct pool {
	uint8_t **data;
	size_t *size;
	size_t n;
};

/* Harnesses without seeds simply do not define fuzz_seeds. */
extern void fuzz_seeds(fuzz_add_fn add, void *userdata) __attribute__((weak));

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: tiny, fast and good enough to pick mutations. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rng() % n) : 0;
}

/* Runs one input from an exactly sized heap copy, so ASan sees any read past its end. */
static void run(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		abort();
	if (size)
		memcpy(copy, data, size);
	LLVMFuzzerTestOneInput(copy, size);
	free(copy);
}

static void pool_add(const uint8_t *data, size_t size, void *userdata)
{
	struct pool *p = userdata;
	uint8_t *copy = malloc(size ? size : 1);

	p->data = realloc(p->data, (p->n + 1) * sizeof(*p->data));
	p->size = realloc(p->size, (p->n + 1) * sizeof(*p->size));
	if (!copy || !p->data || !p->size)
		abort();
	if (size)
		memcpy(copy, data, size);
	p->data[p->n] = copy;
	p->size[p->n++] = size;
}

static void pool_free(struct pool *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->data[i]);
	free(p->data);
	free(p->size);
}

static int load_file(struct pool *p, const char *path)
{
	static uint8_t buf[FUZZ_MAX_INPUT];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	run(buf, n);
	pool_add(buf, n, p);
	return 0;
}

static int load_path(struct pool *p, const char *path)
{
	struct dirent *de;
	struct stat st;
	char sub[4096];
	DIR *d;
	int r = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return load_file(p, path);
	d = opendir(path);
	if (!d)
		return -1;
	while (r == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (stat(sub, &st) == 0 && S_ISREG(st.st_mode))
			r = load_file(p, sub);
	}
	closedir(d);
	return r;
}

static void put_be(uint8_t *p, size_t width, uint64_t v)
{
	while (width--) {
		p[width] = (uint8_t)v;
		v >>= 8;
	}
}

/* One mutation of buf[0..*len) in place; buf has room for cap bytes. */
static void mutate_once(uint8_t *buf, size_t *len, size_t cap)
{
	const uint64_t interesting[] = { 0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000,
					 0x7fffffff, 0x80000000, 0xffffffff, *len, *len - 1, *len + 1,
					 *len - 16, *len + 16 };
	size_t n = *len, width, off;

	switch (below(6)) {
	case 0: /* bit flip */
		if (n)
			buf[below(n)] ^= (uint8_t)(1u << below(8));
		break;
	case 1: /* random byte */
		if (n)
			buf[below(n)] = (uint8_t)rng();
		break;
	case 2: /* truncate */
		*len = below(n + 1);
		break;
	case 3: /* append random bytes */
		for (width = 1 + below(16); width-- && *len < cap;)
			buf[(*len)++] = (uint8_t)rng();
		break;
	default: /* length-like value, big-endian, mostly near the start where headers sit */
		width = below(2) ? 2 : 4;
		if (n < width)
			break;
		off = below(2) ? below(n - width + 1 < 32 ? n - width + 1 : 32) : below(n - width + 1);
		put_be(buf + off, width, interesting[below(sizeof(interesting) / sizeof(interesting[0]))]);
		break;
	}
}

static size_t make_input(const struct pool *p, uint8_t *buf, size_t cap)
{
	size_t len, i, k;

	if (!p->n || below(8) == 0) {
		len = below(8) == 0 ? below(4096) : below(128);
		for (i = 0; i < len; i++)
			buf[i] = (uint8_t)rng();
		return len;
	}
	k = below(p->n);
	len = p->size[k] < cap - 64 ? p->size[k] : cap - 64;
	memcpy(buf, p->data[k], len);
	for (i = 1 + below(4); i--;)
		mutate_once(buf, &len, cap);
	return len;
}

static void write_seed(const uint8_t *data, size_t size, void *userdata)
{
	static unsigned seq;
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%02u", (const char *)userdata, seq++);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static uint8_t buf[FUZZ_MAX_INPUT];
	struct pool p = { 0 };
	unsigned long runs = 20000, i;
	size_t files;
	int a;

	rng_state = 0x6e65747874ULL; /* "netxt" */
	for (a = 1; a < argc; a++) {
		if (strncmp(argv[a], "-runs=", 6) == 0)
			runs = strtoul(argv[a] + 6, NULL, 10);
		else if (strncmp(argv[a], "-seed=", 6) == 0)
			rng_state = strtoull(argv[a] + 6, NULL, 0) | 1;
		else if (strncmp(argv[a], "-write_seeds=", 13) == 0) {
			if (!fuzz_seeds)
				return 1;
			fuzz_seeds(write_seed, argv[a] + 13);
			return 0;
		} else if (argv[a][0] == '-') {
			fprintf(stderr, "unknown option %s\n", argv[a]);
			return 2;
		} else if (load_path(&p, argv[a]) < 0)
			return 1;
	}
	files = p.n;
	if (fuzz_seeds)
		fuzz_seeds(pool_add, &p);
	for (i = files; i < p.n; i++)
		run(p.data[i], p.size[i]);
	for (i = 0; i < runs; i++)
		run(buf, make_input(&p, buf, sizeof(buf)));
	printf("%zu files, %zu seeds, %lu generated inputs: no failure\n", files, p.n - files, runs);
	pool_free(&p);
	return 0;
}

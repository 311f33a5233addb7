/*
 * vector_stress: threads that copy and compare memory at once, to catch a
 * guest kernel that loses vector register state across thread switches.
 *
 * Each thread fills a 1 MiB source with a pattern of its own that changes
 * every round, copies it with libc's memcpy (AVX, AVX-512 or EVEX code on
 * hosts that have them, using the upper halves of the vector registers and
 * ymm16-31) and compares with memcmp.  Threads of one process share one
 * host process under UML, so every timer tick that switches threads
 * restores a thread's registers from what UML saved: if UML saved too
 * little (the FXSAVE fallback keeps only the low 128 bits), a copy resumes
 * with another thread's register contents and the comparison fails.
 *
 *   vector_stress [THREADS [ROUNDS [MIB]]]   defaults 4 3000 1
 *
 * Prints "vector_stress: T threads x R rounds x M MiB: N mismatches" and
 * exits 0 only if N is 0; 2 on bad arguments or no memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct worker {
	pthread_t tid;
	unsigned id;
	unsigned rounds;
	size_t len;
	unsigned long mismatches;
	int error;
};

/* Through a volatile pointer, so the compiler cannot inline or elide the
 * library's vector code. */
static void *(*volatile copy_fn)(void *, const void *, size_t) = memcpy;
static int (*volatile cmp_fn)(const void *, const void *, size_t) = memcmp;

static void fill(uint64_t *p, size_t words, uint64_t seed)
{
	for (size_t i = 0; i < words; i++)
		p[i] = seed ^ (i * 0x9e3779b97f4a7c15ULL);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t *src = malloc(w->len);
	uint64_t *dst = malloc(w->len);
	size_t words = w->len / sizeof(uint64_t);

	if (!src || !dst) {
		w->error = ENOMEM;
		goto out;
	}
	for (unsigned r = 0; r < w->rounds; r++) {
		uint64_t seed = ((uint64_t)w->id << 48) ^ ((uint64_t)r << 16) ^
				0x5a5a5a5aULL;

		/* A cheap refresh: a few words per page change every round,
		 * so a stale vector copied from another thread differs. */
		if (r == 0)
			fill(src, words, seed);
		else
			for (size_t i = 0; i < words; i += 509)
				src[i] = seed ^ i;
		copy_fn(dst, src, w->len);
		if (cmp_fn(dst, src, w->len) != 0)
			w->mismatches++;
	}
out:
	free(src);
	free(dst);
	return NULL;
}

static int parse(const char *s, unsigned long max, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(s, &end, 10);
	return errno || *end || *v == 0 || *v > max ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	unsigned long threads = 4, rounds = 3000, mib = 1;
	unsigned long total = 0;
	struct worker *w;

	if (argc > 4 || (argc > 1 && parse(argv[1], 64, &threads) < 0) ||
	    (argc > 2 && parse(argv[2], 1000000, &rounds) < 0) ||
	    (argc > 3 && parse(argv[3], 64, &mib) < 0)) {
		fprintf(stderr,
			"usage: vector_stress [THREADS [ROUNDS [MIB]]]\n");
		return 2;
	}
	w = calloc(threads, sizeof(*w));
	if (!w)
		return 2;
	for (unsigned i = 0; i < threads; i++) {
		w[i].id = i;
		w[i].rounds = (unsigned)rounds;
		w[i].len = mib << 20;
		if (pthread_create(&w[i].tid, NULL, work, &w[i]) != 0) {
			fprintf(stderr,
				"vector_stress: pthread_create failed\n");
			return 2;
		}
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(w[i].tid, NULL);
		if (w[i].error) {
			fprintf(stderr, "vector_stress: thread %u: %s\n", i,
				strerror(w[i].error));
			return 2;
		}
		total += w[i].mismatches;
	}
	printf("vector_stress: %lu threads x %lu rounds x %lu MiB: %lu "
	       "mismatches\n",
	       threads, rounds, mib, total);
	free(w);
	return total ? 1 : 0;
}

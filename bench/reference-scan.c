/*
 * The reference first stage of `npm run bench:search`: a plain C scan, one core, of packed
 * binary codes with a popcount per 8-byte word and a histogram top-k (Hamming distances are
 * small integers, so the k-th smallest distance is found by counting, and only documents at
 * or under it are kept). Compiled by the benchmark with the machine's C compiler
 * (cc -O3 -march=native) and run on the very codes qembed scans.
 *
 *   reference-scan CODES QUERIES CODE_BYTES K SEARCHES
 *
 * CODES and QUERIES hold codes of CODE_BYTES bytes (a multiple of 8) back to back. Prints
 * JSON: the milliseconds of each of SEARCHES searches (the queries in turn) and the sorted
 * top-K distances of the first 10 queries, to check that both scans agree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint8_t *read_file(const char *path, long *size) {
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); exit(2); }
  fseek(f, 0, SEEK_END);
  *size = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *data = aligned_alloc(64, (*size + 63) / 64 * 64);
  if (!data || fread(data, 1, *size, f) != (size_t)*size) { fprintf(stderr, "cannot read %s\n", path); exit(2); }
  fclose(f);
  return data;
}

typedef struct { uint32_t id; uint32_t d; } pair_t;

static int by_distance(const void *a, const void *b) {
  const pair_t *x = a, *y = b;
  return x->d != y->d ? (x->d < y->d ? -1 : 1) : (x->id < y->id ? -1 : x->id > y->id);
}

/* Every document at or under the running threshold, in *kept; returns how many. */
static inline __attribute__((always_inline)) long scan(const uint64_t *codes, long n, const uint64_t *q, const int words, int k,
                                                       uint32_t *hist, pair_t **kept, long *cap) {
  const uint32_t dim = words * 64;
  memset(hist, 0, (dim + 1) * sizeof *hist);
  uint32_t thr = dim, have = 0;
  long m = 0;
  for (long j = 0; j < n; j++) {
    const uint64_t *c = codes + j * words;
    uint32_t d = 0;
    for (int w = 0; w < words; w++) d += __builtin_popcountll(c[w] ^ q[w]);
    if (d > thr) continue;
    if (m == *cap) {
      *cap *= 2;
      *kept = realloc(*kept, *cap * sizeof **kept);
    }
    (*kept)[m++] = (pair_t){ (uint32_t)j, d };
    hist[d]++;
    if (++have >= (uint32_t)k) {
      uint32_t acc = 0, v = 0;
      while (acc + hist[v] < (uint32_t)k) acc += hist[v++];
      thr = v;
    }
  }
  return m;
}

int main(int argc, char **argv) {
  if (argc != 6) { fprintf(stderr, "usage: reference-scan CODES QUERIES CODE_BYTES K SEARCHES\n"); return 2; }
  long codes_size, queries_size;
  const uint64_t *codes = (const uint64_t *)read_file(argv[1], &codes_size);
  const uint64_t *queries = (const uint64_t *)read_file(argv[2], &queries_size);
  const int bytes = atoi(argv[3]), k = atoi(argv[4]), searches = atoi(argv[5]);
  const int words = bytes / 8, dim = bytes * 8;
  const long n = codes_size / bytes;
  const int nq = queries_size / bytes;
  if (bytes % 8 != 0 || k < 1) { fprintf(stderr, "CODE_BYTES must be a multiple of 8 and K positive\n"); return 2; }
  uint32_t *hist = malloc((dim + 1) * sizeof *hist);
  long cap = 1 << 20;
  pair_t *kept = malloc(cap * sizeof *kept);
  printf("{\"ms\": [");
  for (int s = 0; s < searches; s++) {
    const uint64_t *q = queries + (long)(s % nq) * words;
    double t0 = now_ms();
    long m;
    /* The code size as a constant, so that the compiler unrolls the words of a code. */
    switch (words) {
      case 2: m = scan(codes, n, q, 2, k, hist, &kept, &cap); break;
      case 4: m = scan(codes, n, q, 4, k, hist, &kept, &cap); break;
      case 6: m = scan(codes, n, q, 6, k, hist, &kept, &cap); break;
      case 8: m = scan(codes, n, q, 8, k, hist, &kept, &cap); break;
      case 12: m = scan(codes, n, q, 12, k, hist, &kept, &cap); break;
      case 16: m = scan(codes, n, q, 16, k, hist, &kept, &cap); break;
      default: m = scan(codes, n, q, words, k, hist, &kept, &cap);
    }
    qsort(kept, m, sizeof *kept, by_distance);
    double ms = now_ms() - t0;
    printf(s ? ", %.4f" : "%.4f", ms);
    if (s < 10 && s < nq) {
      fprintf(stderr, "%s[", s ? ", " : "");
      for (int i = 0; i < k && i < m; i++) fprintf(stderr, i ? ", %u" : "%u", kept[i].d);
      fprintf(stderr, "]");
    }
  }
  printf("]}\n");
  return 0;
}

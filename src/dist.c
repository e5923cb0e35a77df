// Data-parallel plumbing over Open MPI; see dist.h. Built without MPI
// (NO_MPI=1, RLHF_MPI undefined) every function is the one-process case.
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#ifdef RLHF_MPI
#include <mpi.h>
#endif

static int g_size = 1, g_rank = 0, g_joined = 0;
static double g_bytes = 0.0, g_seconds = 0.0;

// Floats per bucket of dist_sum_f32: bounds its scratch (size x bucket / size
// floats received) whatever the model.
#define DIST_BUCKET (1 << 22)

int dist_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

#ifdef RLHF_MPI
// A process that ends by exit(0) on its own (--help) leaves the job too.
static void finalize_at_exit(void) { dist_finalize(); }
#endif

int dist_init(void) {
    if (g_joined || !dist_launched()) return 0;
#ifdef RLHF_MPI
    // OpenMP threads run the math; only the main thread calls MPI
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return rlhf_fail("MPI_Init_thread failed; hint: start the job with mpirun (see README, "
                         "Data-parallel training)");
    g_joined = 1;
    atexit(finalize_at_exit);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    if (g_rank != 0) {
        fflush(stdout);
        if (!freopen("/dev/null", "w", stdout)) {
            // stdout stays as it was: a second copy of rank 0's lines
        }
    }
    return 0;
#else
    return rlhf_fail("this rlhf was built without MPI (NO_MPI=1) but was started by mpirun; "
                     "hint: rebuild without NO_MPI, or run it as one process");
#endif
}

void dist_finalize(void) {
#ifdef RLHF_MPI
    if (g_joined) MPI_Finalize();
#endif
    g_joined = 0;
}

int dist_size(void) { return g_size; }
int dist_rank(void) { return g_rank; }

void dist_share_of(long n, int size, int rank, long *lo, long *hi) {
    const long base = n / size, extra = n % size;
    *lo = rank * base + (rank < extra ? rank : extra);
    *hi = *lo + base + (rank < extra);
}

void dist_share(long n, long *lo, long *hi) { dist_share_of(n, g_size, g_rank, lo, hi); }

double dist_bytes_sent(void) { return g_bytes; }
double dist_seconds(void) { return g_seconds; }

void dist_exit(int code) {
#ifdef RLHF_MPI
    if (g_joined) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
#endif
    exit(code);
}

#ifdef RLHF_MPI
// One bucket x[0..n) of dist_sum_f32. Rank k owns slice k (dist_share of
// n); every rank sends each owner its slice (MPI_Alltoallv), owners add the
// size copies in rank order, and the sums are gathered back everywhere.
static void sum_bucket(float *x, int n, float *recv, int *counts, int *displs, int *rdispls,
                       int *rcounts) {
    const int N = g_size;
    for (int k = 0; k < N; k++) {
        long lo, hi;
        dist_share_of(n, N, k, &lo, &hi);
        displs[k] = (int)lo;
        counts[k] = (int)(hi - lo);
    }
    const int mine = counts[g_rank];
    for (int k = 0; k < N; k++) {
        rcounts[k] = mine;
        rdispls[k] = k * mine;
    }
    MPI_Alltoallv(x, counts, displs, MPI_FLOAT, recv, rcounts, rdispls, MPI_FLOAT,
                  MPI_COMM_WORLD);
    float *out = x + displs[g_rank];
    for (int i = 0; i < mine; i++) {
        float s = recv[i];
        for (int k = 1; k < N; k++) s += recv[(size_t)k * mine + i];
        out[i] = s;
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, x, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    // reduce-scatter: everything but this rank's slice leaves; all-gather:
    // counted as a ring moves it, (N-1)/N of the bucket per rank
    g_bytes += 4.0 * (n - mine) + 4.0 * n * (N - 1) / N;
}
#endif

void dist_sum_f32(float *x, size_t n) {
    if (g_size == 1 || n == 0) return;
#ifdef RLHF_MPI
    const double t0 = now_seconds();
    const int N = g_size;
    const size_t bucket = n < DIST_BUCKET ? n : DIST_BUCKET;
    float *recv = mallocCheck(((bucket + N - 1) / N) * N * sizeof(float));
    int *ints = mallocCheck((size_t)4 * N * sizeof(int));
    for (size_t off = 0; off < n; off += bucket) {
        const int len = (int)(n - off < bucket ? n - off : bucket);
        sum_bucket(x + off, len, recv, ints, ints + N, ints + 2 * N, ints + 3 * N);
    }
    free(recv);
    free(ints);
    g_seconds += now_seconds() - t0;
#endif
}

void dist_sum_f64(double *x, size_t n) {
    if (g_size == 1 || n == 0) return;
#ifdef RLHF_MPI
    double *all = mallocCheck(n * g_size * sizeof(double));
    MPI_Allgather(x, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, MPI_COMM_WORLD);
    for (size_t i = 0; i < n; i++) {
        double s = all[i];
        for (int k = 1; k < g_size; k++) s += all[(size_t)k * n + i];
        x[i] = s;
    }
    free(all);
#endif
}

void dist_sum_i32(int *x, size_t n) {
    if (g_size == 1 || n == 0) return;
#ifdef RLHF_MPI
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
#endif
}

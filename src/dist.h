// Data-parallel training across processes (Open MPI): the world size, this
// process's rank, its share of a batch, and reductions whose order is fixed,
// so that the same world size, seed and thread count give the same bits.
// The only file that includes mpi.h. A process that mpirun did not start
// never calls into MPI (dist_size() is 1 and every function below is a
// no-op); a NO_MPI=1 build has no MPI at all.
//
// Collective: every rank calls these at the same points, in the same order
// (as the trainer and the objectives do): dist_sum_*, and so
// lm_accumulate, groups_accumulate, dpo_accumulate, ptx_accumulate,
// ppo_generate, ppo_score, ppo_minibatch_grads, evaluate_lm_loss,
// evaluate_sft_loss, evaluate_tasks, evaluate_pairs, evaluate_policy and
// trainer_update, which work on this rank's share of their rows and sum
// (or gather) across ranks. Nothing that only rank 0 runs (a checkpoint's writing, a
// stage's save) may call them.
#ifndef RLHF_DIST_H
#define RLHF_DIST_H

#include <stddef.h>

// Whether mpirun (or another PMIx/PMI launcher) started this process, of any
// world size; reads the environment only.
int dist_launched(void);

// Joins the job when mpirun started this process (MPI_Init); else nothing.
// On ranks other than 0, stdout goes to /dev/null: rank 0 alone prints.
// Returns -1 with a reason when MPI cannot start or the build has no MPI.
int dist_init(void);
// Leaves the job (MPI_Finalize) after a normal end; nothing if not joined.
void dist_finalize(void);

int dist_size(void);
int dist_rank(void);
static inline int dist_is_root(void) { return dist_rank() == 0; }

// This rank's share [*lo, *hi) of n items: consecutive blocks in rank
// order, the first n % size ranks one item more (a rank may get none).
void dist_share(long n, long *lo, long *hi);
// The same for any world size and rank (dist_share is this process's).
void dist_share_of(long n, int size, int rank, long *lo, long *hi);

// x <- the sum over ranks of every rank's x, the same bits on every rank:
// each element is added in rank order (x_0 + x_1 + ... + x_{N-1}).
// dist_sum_f32 is for large buffers (gradients): a reduce-scatter
// (MPI_Alltoallv, then the ordered sum of this rank's slice) and an
// all-gather of the summed slices, in buckets; dist_sum_f64 for a few
// values (losses, statistics): an all-gather and the ordered sum.
void dist_sum_f32(float *x, size_t n);
void dist_sum_f64(double *x, size_t n);
// Integers add exactly in any order: MPI_Allreduce.
void dist_sum_i32(int *x, size_t n);

// Payload bytes this rank has sent in dist_sum_f32, and seconds spent in it.
double dist_bytes_sent(void);
double dist_seconds(void);

// Ends every rank of the job (MPI_Abort) with status code; a process not
// in a job just exits.
void dist_exit(int code) __attribute__((noreturn));

#endif

/* Worker threads for the chunks of one step, in place of OpenMP: a wait that sleeps, and chunks
 * that any thread may take.
 *
 * A job is `threads` chunks (the kernel splits every layer's units, the dense layer's columns
 * and the rows to sample into that many).  The caller takes chunk 0 and each worker its own
 * chunk first, so that a thread keeps reading the same slice of the weights, from its own L2;
 * then every thread takes whatever chunk nobody has claimed.  The caller returns once every
 * chunk is done.  So a worker that the OS has not scheduled never holds the caller up: its
 * chunk is done by the caller, and a step runs at one core's speed instead of waiting.  What is
 * left is a worker preempted inside a chunk, which the caller waits for, asleep.  So when a job
 * shows the workers are not keeping up (the caller waited for them longer than its own work took
 * plus MGF_POOL_LATE_NS), the caller runs the next jobs alone, twice as many after each such job
 * in a row (up to MGF_POOL_MAX_ALONE), and then tries the workers again: with the other core
 * busy, a step costs about what it costs on one thread.  A chunk the caller took from a worker
 * that had not started it is no such sign: the job was short, or the worker was asleep (waking a
 * halted virtual CPU takes tens of microseconds); it costs no waiting.  The last job run alone
 * wakes the workers, so that they are spinning when the next job comes.
 *
 * Waiting: spin for MGF_POOL_SPIN_NS (the gap between the phases of a step is well under a
 * microsecond), then sleep on a futex.  libgomp's default spin of about 300,000 iterations is
 * what made a 2-thread step take 48 ms instead of 17 us with both cores busy.
 *
 * Chunk c of job g is claimed by moving claims[c] from g - 1 to g (every chunk of job g - 1 was
 * claimed before job g began), so a worker that wakes late, holding an old job number, can never
 * run a chunk of a newer job.  Linux only (futex); elsewhere, and in a child after fork() (where
 * the workers are gone), the caller runs every chunk itself.
 */
#ifndef MGF_POOL_H
#define MGF_POOL_H

#include <stdlib.h>

typedef void (*mgf_chunk_fn)(void *job, int chunk);

#if defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define MGF_POOL_THREADS 1
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MGF_PAUSE() _mm_pause()
#else
#define MGF_PAUSE() ((void)0)
#endif

#define MGF_POOL_SPIN_NS 50000L /* 50 us: longer than any gap inside a generation loop */
#define MGF_POOL_LATE_NS 50000L
#define MGF_POOL_MAX_ALONE 4096  /* jobs: tens of milliseconds of steps between two tries */

typedef struct mgf_pool mgf_pool;

typedef struct {
    mgf_pool *pool;
    int index;
} mgf_worker;

struct mgf_pool {
    int threads;
    unsigned forks;                /* mgf_forks when the workers started */
    pthread_t *handles;            /* [threads - 1] */
    mgf_worker *workers;           /* [threads - 1] */
    atomic_flag busy;              /* held by the thread running a job */
    _Atomic unsigned generation;   /* number of the current job; workers sleep on it */
    _Atomic unsigned done;         /* chunks finished, all jobs together; the caller sleeps on it */
    _Atomic int sleepers;          /* workers asleep on generation */
    _Atomic int caller_asleep;
    _Atomic int stop;
    int alone;                     /* jobs the caller still runs by itself */
    int backoff;                   /* how many the next slow job makes it run alone */
    mgf_chunk_fn fn;
    void *job;
    _Atomic unsigned *claims;      /* [threads]: number of the last job whose chunk c was claimed */
};

/* fork() calls in this process's line, counted in the child: a pool started before a fork has no
 * workers in the child (getpid() would cost a system call per job). */
static _Atomic unsigned mgf_forks;
static pthread_once_t mgf_fork_hook = PTHREAD_ONCE_INIT;
static void mgf_count_fork(void) { atomic_fetch_add(&mgf_forks, 1); }
static void mgf_hook_forks(void) { pthread_atfork(NULL, NULL, mgf_count_fork); }

static long mgf_futex(_Atomic unsigned *word, int op, unsigned value)
{
    return syscall(SYS_futex, (unsigned *)word, op | FUTEX_PRIVATE_FLAG, value, NULL, NULL, 0);
}

static long mgf_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* Spins while *word == value, for up to MGF_POOL_SPIN_NS; returns the value it saw last. */
static unsigned mgf_spin_while(_Atomic unsigned *word, unsigned value)
{
    unsigned seen;
    long deadline = 0;
    for (int i = 0;; i++) {
        seen = atomic_load_explicit(word, memory_order_acquire);
        if (seen != value)
            return seen;
        MGF_PAUSE();
        if ((i & 255) == 255) {
            long now = mgf_now_ns();
            if (!deadline)
                deadline = now + MGF_POOL_SPIN_NS;
            else if (now > deadline)
                return seen;
        }
    }
}

/* Takes and runs every chunk of job `g` still unclaimed, starting with `first`; returns how many it ran. */
static int mgf_pool_work(mgf_pool *pool, unsigned g, int first)
{
    int ran = 0;
    for (int i = 0; i < pool->threads; i++) {
        int c = (first + i) % pool->threads;
        unsigned expected = g - 1;
        if (!atomic_compare_exchange_strong_explicit(&pool->claims[c], &expected, g, memory_order_acq_rel,
                                                     memory_order_relaxed))
            continue;
        pool->fn(pool->job, c);  /* read after the claim: job g cannot end, nor g + 1 begin, before c is done */
        ran++;
        atomic_fetch_add(&pool->done, 1);
        if (atomic_load(&pool->caller_asleep))
            mgf_futex(&pool->done, FUTEX_WAKE, 1);
    }
    return ran;
}

static void *mgf_pool_main(void *arg)
{
    mgf_worker *self = (mgf_worker *)arg;
    mgf_pool *pool = self->pool;
    unsigned seen = 0; /* the generation at the start: a job published before this thread ran is still its to take */
    for (;;) {
        unsigned g = mgf_spin_while(&pool->generation, seen);
        if (g == seen && !atomic_load(&pool->stop)) {
            /* asleep until a job, or a wake ahead of one (then spin again, as after a job) */
            atomic_fetch_add(&pool->sleepers, 1);
            if (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                mgf_futex(&pool->generation, FUTEX_WAIT, seen);
            atomic_fetch_sub(&pool->sleepers, 1);
            continue;
        }
        if (atomic_load(&pool->stop))
            return NULL;
        seen = g;
        mgf_pool_work(pool, g, self->index);
    }
}

static void mgf_pool_stop(mgf_pool *pool);

/* A pool of `threads` (>= 2): the caller and threads - 1 workers.  NULL if threads < 2 or on failure. */
static mgf_pool *mgf_pool_start(int threads)
{
    if (threads < 2)
        return NULL;
    mgf_pool *pool = (mgf_pool *)calloc(1, sizeof(mgf_pool));
    if (!pool)
        return NULL;
    pthread_once(&mgf_fork_hook, mgf_hook_forks);
    pool->threads = threads;
    pool->backoff = 1;
    pool->forks = atomic_load(&mgf_forks);
    atomic_flag_clear(&pool->busy);
    pool->claims = (_Atomic unsigned *)calloc(threads, sizeof(_Atomic unsigned));
    pool->handles = (pthread_t *)calloc(threads - 1, sizeof(pthread_t));
    pool->workers = (mgf_worker *)calloc(threads - 1, sizeof(mgf_worker));
    if (!pool->claims || !pool->handles || !pool->workers) {
        mgf_pool_stop(pool);
        return NULL;
    }
    for (int w = 0; w < threads - 1; w++) {
        pool->workers[w].pool = pool;
        pool->workers[w].index = w + 1;
        if (pthread_create(&pool->handles[w], NULL, mgf_pool_main, &pool->workers[w]) != 0) {
            pool->threads = w + 1; /* the workers started so far, for mgf_pool_stop to join */
            mgf_pool_stop(pool);
            return NULL;
        }
    }
    return pool;
}

/* Stops and joins the workers and frees the pool (NULL: nothing).  Not while a job runs. */
static void mgf_pool_stop(mgf_pool *pool)
{
    if (!pool)
        return;
    if (pool->handles && pool->forks == atomic_load(&mgf_forks)) {
        atomic_store(&pool->stop, 1);
        atomic_fetch_add(&pool->generation, 1);
        mgf_futex(&pool->generation, FUTEX_WAKE, pool->threads);
        for (int w = 0; w < pool->threads - 1; w++)
            pthread_join(pool->handles[w], NULL);
    }
    free(pool->claims);
    free(pool->handles);
    free(pool->workers);
    free(pool);
}

/* fn(job, c) for every chunk c < threads, on the pool's threads; returns when all are done.
 * Run by the caller alone when there is no pool, when another thread is running a job on it,
 * in a child process, and while the workers are not keeping up. */
static void mgf_pool_run(mgf_pool *pool, int threads, mgf_chunk_fn fn, void *job)
{
    if (!pool || pool->forks != atomic_load_explicit(&mgf_forks, memory_order_relaxed)
        || atomic_flag_test_and_set_explicit(&pool->busy, memory_order_acquire)) {
        for (int c = 0; c < threads; c++)
            fn(job, c);
        return;
    }
    if (pool->alone > 0) {
        if (--pool->alone == 0 && atomic_load(&pool->sleepers) > 0)
            mgf_futex(&pool->generation, FUTEX_WAKE, pool->threads);  /* spinning by the next job */
        for (int c = 0; c < threads; c++)
            fn(job, c);
        atomic_flag_clear_explicit(&pool->busy, memory_order_release);
        return;
    }
    pool->fn = fn;
    pool->job = job;
    unsigned g = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
    unsigned target = atomic_load_explicit(&pool->done, memory_order_relaxed) + (unsigned)pool->threads;
    atomic_store(&pool->generation, g);
    if (atomic_load(&pool->sleepers) > 0)
        mgf_futex(&pool->generation, FUTEX_WAKE, pool->threads);
    long start = mgf_now_ns(), deadline = 0;
    mgf_pool_work(pool, g, 0);
    unsigned done;
    while ((done = atomic_load_explicit(&pool->done, memory_order_acquire)) != target) {
        if (!deadline) {
            long now = mgf_now_ns();
            deadline = now + (now - start) + MGF_POOL_LATE_NS;
        }
        if (mgf_spin_while(&pool->done, done) != done)
            continue;  /* a chunk finished: look again */
        atomic_store(&pool->caller_asleep, 1);  /* a worker preempted inside its chunk: sleep until it is done */
        while ((done = atomic_load(&pool->done)) != target)
            mgf_futex(&pool->done, FUTEX_WAIT, done);
        atomic_store(&pool->caller_asleep, 0);
    }
    if (deadline && mgf_now_ns() > deadline) {
        pool->alone = pool->backoff;
        pool->backoff = pool->backoff < MGF_POOL_MAX_ALONE ? 2 * pool->backoff : MGF_POOL_MAX_ALONE;
    } else {
        pool->backoff = 1;
    }
    atomic_flag_clear_explicit(&pool->busy, memory_order_release);
}

#else /* no threads: the caller runs every chunk */
#define MGF_POOL_THREADS 0
typedef struct mgf_pool mgf_pool;
static mgf_pool *mgf_pool_start(int threads) { (void)threads; return NULL; }
static void mgf_pool_stop(mgf_pool *pool) { (void)pool; }
static void mgf_pool_run(mgf_pool *pool, int threads, mgf_chunk_fn fn, void *job)
{
    (void)pool;
    for (int c = 0; c < threads; c++)
        fn(job, c);
}
#endif

#endif

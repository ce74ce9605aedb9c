# cython: language_level=3
"""Native forward step of a stacked LSTM or GRU language model (bundle format v1), for fast sampling.

Work done once, at load:
  * layer 0's input projection of every token, plus its input bias, is a table [V, G H] (G = 4
    gates for an LSTM, 3 for a GRU): a step gathers one row per sequence instead of multiplying
    by the embedding and the kernel;
  * LSTM: each upper layer's kernel and recurrent kernel are stacked into one [H_below + H, 4H]
    matrix, read by one product against the row [x | h] kept contiguous in the state.  GRU
    (Keras reset_after=True): the reset gate scales the recurrent part alone, so the two
    products stay apart, each over its part of the same row;
  * gate columns are regrouped by chunk ([i f g o] or [z r h] for units u0..u1), and each
    chunk's columns become a matrix of their own, so that the thread computing a chunk touches
    contiguous memory, and its weights only;
  * with precision bf16 or int8, those matrices (not the table, a lookup) are converted to
    packed reduced-precision panels (see dispatch.h).

Threads: a step runs each layer, then the dense layer, as one job of `threads` chunks on the
kernel's pool (pool.h); the generation loop adds a job that samples the rows.

Prefill (Kernel.prime) feeds a primer in blocks of tokens, layer by layer: a GRU's input gates of
a whole block are one matrix product, the recurrence runs token by token in C, and the dense
layer runs for the last token alone.  Each number is computed as the step computes it (the same
products, their additions in the same order), so the logits and states are the step's, bit for
bit; an LSTM's [x | h] product and bf16's one-row tile (which adds in another order than its
four-row tile) keep their per-token products.

The module is split by role: weights.pxi (checking and packing tensors), step.pxi (one step), prime.pxi
(prefill), kernel.pxi (the Python objects), rules.pxi and choose.pxi (the rules and the choice), generate.pxi
(the loop in C).  It is compiled without bounds checks: every function reachable from Python checks its
arguments (layer indices, shapes, dtypes, sizes) with the GIL held, raising InputError, before
any pointer is taken.  A step then runs without the GIL, allocating nothing: all buffers live
in the state, which belongs to one sequence batch.  The state keeps two copies of each layer's
[x | h] row and alternates between them, so that a thread writing its new h never races with
another still reading the old one.
"""

from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.math cimport INFINITY
from libc.string cimport memcpy, memset

import operator
import os

import numpy as np

from mgf.errors import InputError
from mgf.contract.model import as_tokens


cdef extern from "dispatch.h" nogil:
    ctypedef struct mgf_isa:
        void (*lstm_cell)(int rows, int units, const float *gates, long gate_stride, float *c, long c_stride,
                          float *h, long h_stride, float *h_out, long out_stride) noexcept nogil
        void (*gru_cell)(int rows, int units, const float *x_gates, const float *h_gates, long gate_stride,
                         const float *h_old, float *h, long h_stride, float *h_out, long out_stride) noexcept nogil
        void (*layer_norm)(int rows, int width, const float *x, long ldx, const float *gamma, const float *beta,
                           float epsilon, float *y, long ldy) noexcept nogil
        void (*gelu)(int rows, int n, float *x, long ldx, int exact) noexcept nogil
        void (*attend)(int length, int size, const float *q, const float *keys_t, long ldk, const float *values,
                       float scale, float *scores, float *out) noexcept nogil
        void (*attend_bf16)(int count, int length0, int size, const float *q, long ldq, const uint16_t *keys_t,
                            long ldk, const uint16_t *values, float scale, float *scores, long lds, float *out,
                            long ldo, float *wide) noexcept nogil
    ctypedef struct mgf_matrix:
        int precision, k, n
        const float *w
        long ldw
        const float *tail
        const uint32_t *packed
        const float *scale
        const int32_t *col_sums
    int MGF_PANEL
    int MGF_TAIL
    uint16_t mgf_bf16_bits(float x)
    int mgf_cpu_level()
    const char *mgf_isa_for(int level, mgf_isa *table)
    long mgf_scratch_floats(int rows, int k)
    void mgf_product(const mgf_isa *isa, const mgf_matrix *m, int rows, const float *x, long ldx, float *c,
                     long ldc, float *scratch)


cdef extern from "pool.h" nogil:
    ctypedef struct mgf_pool:
        pass
    ctypedef void (*mgf_chunk_fn)(void *job, int chunk) noexcept nogil
    int MGF_POOL_THREADS
    mgf_pool *mgf_pool_start(int threads)
    void mgf_pool_stop(mgf_pool *pool)
    void mgf_pool_run(mgf_pool *pool, int threads, mgf_chunk_fn fn, void *job)


PRECISIONS = ("fp32", "bf16", "int8")
ISAS = ("baseline", "avx2", "avx512", "amx")
CELLS = ("lstm", "gru")
GATES = {"lstm": 4, "gru": 3}
_INT_MAX = 2**31 - 1


include "weights.pxi"
include "step.pxi"
include "prime.pxi"
include "kernel.pxi"
include "transformer.pxi"
include "rules.pxi"
include "choose.pxi"
include "generate.pxi"


"""The one scoring / top-k kernel: blocks of members x all courses, masked, best k per row.

Every ranked list the library produces (a member's menu, evaluation, the batch job) comes
from here, so they all share the same masking rules and the same tie-breaking: higher score
first, and among equal scores the lower course index first. ``-inf`` and NaN scores are
never returned; slots that cannot be filled hold course -1 and score ``-inf``.

How a block of members is processed, and why:

1. Score ``rows x courses`` into a reused float32 buffer: one SGEMM for factor models
   (``member_factors @ course_factors.T``), a caller-supplied ``score_block`` otherwise.
   Courses forbidden for everyone or outside a whitelist are never scored: the kernel
   works on the allowed columns only (factor rows gathered once per call).
2. Write ``-inf`` over the courses each member must not get (``exclude``, e.g. already
   seen), vectorised through the CSR indices of the block's rows.
3. Select. ``argpartition`` over 2*10^4 courses costs about seven times the GEMM of the
   row (it is single-threaded and not vectorised), so the kernel first bounds each row's
   k-th best score from below: split the row into ``2k`` groups of columns; the k-th
   largest group maximum is beaten or matched by k distinct scores, so it is at most the
   k-th best. One comparison pass then keeps the columns at or above the bound (a few
   times k on typical data), and only those are sorted, by an int64 key that encodes
   (score descending, course ascending) so ties resolve deterministically. Rows where the
   bound admits too many (massive ties, e.g. a member with no history) take an exact
   ``partition`` instead.

Blocks go to ``num_threads`` worker threads, each with its own buffers and single-threaded
BLAS: numpy releases the GIL in SGEMM and in its array loops, two single-threaded GEMMs
outrun one two-threaded GEMM of the same size, and the selection runs on all cores too.
A small request (one block, e.g. a single member's menu) runs in the calling thread.
Each thread keeps its buffers between calls (up to a 96 MB block), so a call pays no page
faults for them. A caller that needs per-member statistics of the full score rows (a group
menu's min-max normalisation) passes ``on_block``, which sees each raw block once before
it is masked.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import ThreadpoolController

from recommend.checks import positive_int
from recommend.errors import DataError

__all__ = ["TopK", "rank_keys", "topk_factors", "topk_scores"]

logger = logging.getLogger(__name__)

ScoreBlock = Callable[[NDArray[np.int64]], ArrayLike]
OnBlock = Callable[[int, int, NDArray[np.float32]], None]

# Bytes of float32 scores per worker block when ``block_size`` is not given. Each SGEMM
# call repacks all course factors, so blocks of many members amortise it (20k courses x 65
# factors, single core: 29.4 us/member at 200 rows, 28.5 at 400, 26.5 at 800, 26.0 at
# 1,200); at 96 MB a block of 20k courses holds about 1,200 members.
_BLOCK_BYTES = 96 << 20
_MIN_BLOCK_ROWS = 16
_MAX_BLOCK_ROWS = 4096
_COPY_COURSES_ROWS = 256

# Groups per row for the lower bound, as a multiple of k: more groups give a tighter bound
# (fewer candidates to sort) but a costlier partition of the group maxima.
_GROUPS_PER_K = 2
# Rows with more candidates than this take the exact partition fallback, so that a single
# degenerate row (all scores tied) cannot inflate the padded key sort of its whole block.
_MAX_CANDIDATES_PER_K = 8
_MIN_CANDIDATE_CAP = 256

# Scores per slice of rows for the bound and candidate passes (see _Selector._candidates):
# small enough to stay in the cache between the two passes.
_SCAN_BYTES = 3 << 20

_NEG_INF = np.float32(-np.inf)
# Candidates must be at least this: -inf (masked) and NaN are never returned.
_LOWEST = np.float32(np.finfo(np.float32).min)


@dataclass(frozen=True)
class TopK:
    """The best ``k`` courses per member.

    Attributes
    ----------
    indices : ndarray of int32, shape (n_members, k)
        Course indices, best first. Slots that cannot be filled (fewer than ``k`` courses
        allowed for that member) hold -1.
    scores : ndarray of float32, shape (n_members, k)
        The scores of ``indices``; ``-inf`` in unfilled slots.
    """

    indices: NDArray[np.int32]
    scores: NDArray[np.float32]

    @property
    def k(self) -> int:
        """Number of slots per member."""
        return int(self.indices.shape[1])

    def __len__(self) -> int:
        return int(self.indices.shape[0])


# --------------------------------------------------------------------------- public API


def topk_factors(
    member_factors: ArrayLike,
    course_factors: ArrayLike,
    k: int,
    *,
    course_bias: ArrayLike | None = None,
    exclude: sp.spmatrix | sp.sparray | None = None,
    forbid: ArrayLike | None = None,
    allow: ArrayLike | None = None,
    block_size: int | None = None,
    num_threads: int | None = None,
    on_block: OnBlock | None = None,
) -> TopK:
    """Best ``k`` courses per member for a factor model: ``member_factors @ course_factors.T``.

    Parameters
    ----------
    member_factors : array of float32, shape (n_members, n_factors)
        One row per requested member (select the rows before calling).
    course_factors : array of float32, shape (n_courses, n_factors)
        Best passed as the transpose of a C-contiguous (n_factors, n_courses) array: that
        is the layout BLAS reads fastest, and small requests then make no copy of it.
    k : int
        Number of courses per member, >= 1.
    course_bias : array of float32, shape (n_courses,), optional
        Added to every member's score of the course.
    exclude : sparse matrix, shape (n_members, n_courses), optional
        Rows aligned with ``member_factors``; every stored entry (whatever its value) is a
        course that member must not get, e.g. courses already completed.
    forbid : array of int, shape (n_forbidden,), optional
        Course indices no member may get.
    allow : array of int (course indices) or bool mask of shape (n_courses,), optional
        Whitelist: only these courses may be returned.
    block_size : int, optional
        Members per block; results do not depend on it. By default a block of float32
        scores is about 96 MB (1,200 members at 20k courses), so the kernel needs about
        ``120 MB x num_threads`` of working memory besides its inputs and outputs (and, from
        256 members on, a contiguous copy of the course factors, with the bias as one more
        factor, which then also takes a copy of the member factors with a column of ones).
    num_threads : int, optional
        Worker threads; by default all cores available to the process. BLAS is set
        single-threaded (``threadpoolctl``, process-wide) for the duration of the call,
        whatever limit the caller set: the workers supply the parallelism.
    on_block : callable, optional
        ``on_block(start, stop, scores)`` sees every block of raw scores once, right after
        it is scored and before anything is masked: rows ``start:stop`` of the request,
        ``scores`` a read-only (stop - start, n_scored) float32 array over the scored
        courses only (all courses, or the ascending allowed ones when ``allow``/``forbid``
        are given). It runs in the worker threads, so it must be thread-safe (writing to
        its own rows of a shared output array is); it lets a caller compute per-member
        statistics of the full score rows (e.g. their minimum and maximum) without a
        second scoring pass.

    Returns
    -------
    TopK
        ``indices`` (n_members, k) int32 and ``scores`` (n_members, k) float32, rows sorted
        by descending score, ties broken by lower course index.

    Raises
    ------
    ConfigError
        ``k``, ``block_size`` or ``num_threads`` is not a positive integer.
    DataError
        Shapes do not line up, or a course index is out of range.
    """
    users = np.ascontiguousarray(_as_matrix(member_factors, "member_factors"))
    items = _as_matrix(course_factors, "course_factors")
    if users.shape[1] != items.shape[1]:
        raise DataError(
            f"member_factors has {users.shape[1]} factors but course_factors has "
            f"{items.shape[1]}; both must come from the same model"
        )
    n_courses = items.shape[0]
    bias = None
    if course_bias is not None:
        bias = np.asarray(course_bias, dtype=np.float32)
        if bias.shape != (n_courses,):
            raise DataError(
                f"course_bias has shape {bias.shape}; expected ({n_courses},), one value per "
                "row of course_factors"
            )
    plan = _Plan.make(users.shape[0], n_courses, k, exclude, forbid, allow)
    items_t = items.T
    if plan.columns is not None:
        items_t = items_t[:, plan.columns]  # C-contiguous if items_t was
        bias = None if bias is None else bias[plan.columns]
    # OpenBLAS packs a C-contiguous (n_factors, n_courses) 10-60% faster than a transposed
    # view; copying costs about a 40-row GEMM, so it pays off on large requests only.
    if users.shape[0] >= _COPY_COURSES_ROWS:
        if bias is None:
            items_t = np.ascontiguousarray(items_t)
        else:
            # The bias as one more factor (1 for every member): the GEMM adds it at no
            # measurable cost, where adding it to every block is a pass over the scores
            # (15% of the GEMM at 64 factors). Accumulated last, it gives the same float32
            # scores as the separate addition (bit for bit with OpenBLAS).
            n_factors = users.shape[1]
            folded = np.empty((n_factors + 1, items_t.shape[1]), dtype=np.float32)
            folded[:n_factors] = items_t
            folded[n_factors] = bias
            with_one = np.empty((users.shape[0], n_factors + 1), dtype=np.float32)
            with_one[:, :n_factors] = users
            with_one[:, n_factors] = 1.0
            items_t, users, bias = folded, with_one, None

    def score(start: int, stop: int, out: NDArray[np.float32]) -> None:
        np.matmul(users[start:stop], items_t, out=out)
        if bias is not None:
            np.add(out, bias, out=out)

    return _run(plan, score, block_size, num_threads, on_block)


def topk_scores(
    score_block: ScoreBlock,
    members: ArrayLike,
    n_courses: int,
    k: int,
    *,
    exclude: sp.spmatrix | sp.sparray | None = None,
    forbid: ArrayLike | None = None,
    allow: ArrayLike | None = None,
    block_size: int | None = None,
    num_threads: int | None = None,
    on_block: OnBlock | None = None,
) -> TopK:
    """Best ``k`` courses per member for any model that can score a block of members.

    Used by models that are not factorised, e.g. EASE (``X[rows] @ B``) or item-kNN
    (``X[rows] @ S``).

    Parameters
    ----------
    score_block : callable
        ``score_block(rows)`` gets an int64 array of member indices (a contiguous slice of
        ``members``) and returns their scores for all courses, shape
        ``(len(rows), n_courses)``, any real dtype (dense, or sparse which is densified).
        It may be called from several threads at once (with BLAS single-threaded), so it
        must not mutate shared state; pass ``num_threads=1`` if it cannot run concurrently.
        The returned array is only read.
    members : array of int, shape (n_members,)
        The members to rank for, passed through to ``score_block`` in blocks.
    n_courses : int
        Number of columns ``score_block`` returns.
    k, exclude, forbid, allow, block_size, num_threads, on_block
        As in :func:`topk_factors`; ``exclude`` rows are aligned with ``members``.

    Returns
    -------
    TopK
        ``indices`` (n_members, k) int32 and ``scores`` (n_members, k) float32.
    """
    member_ids = np.asarray(members)
    if member_ids.ndim != 1 or not (
        member_ids.size == 0 or np.issubdtype(member_ids.dtype, np.integer)
    ):
        raise DataError(
            f"members must be a 1-d array of integer indices, got dtype {member_ids.dtype} "
            f"and shape {member_ids.shape}"
        )
    member_ids = member_ids.astype(np.int64, copy=False)
    n_courses = positive_int(n_courses, "n_courses")
    plan = _Plan.make(member_ids.shape[0], n_courses, k, exclude, forbid, allow)
    columns = plan.columns

    def score(start: int, stop: int, out: NDArray[np.float32]) -> None:
        raw = score_block(member_ids[start:stop])
        block = np.asarray(raw.toarray() if sp.issparse(raw) else raw)  # type: ignore[union-attr]
        if block.shape != (stop - start, n_courses) or block.dtype.kind not in "biuf":
            raise DataError(
                f"score_block returned {block.dtype} scores of shape {block.shape} for "
                f"{stop - start} members; expected real numbers, shape "
                f"({stop - start}, {n_courses})"
            )
        # Copied (and cast) into the kernel's own buffer, so the callable may return a
        # view of cached data: it is never written to.
        out[...] = block if columns is None else block[:, columns]

    return _run(plan, score, block_size, num_threads, on_block)


# --------------------------------------------------------------------------- validation


def _as_matrix(values: ArrayLike, name: str) -> NDArray[np.float32]:
    """A 2-d float32 array (C- or Fortran-ordered as given; copied only to convert)."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise DataError(f"{name} must be 2-d (rows, factors), got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise DataError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array.astype(np.float32, order="K", copy=False)


def _course_indices(values: ArrayLike, n_courses: int, name: str) -> NDArray[np.int64]:
    """Validated course indices from an index array or a bool mask of length ``n_courses``."""
    array = np.asarray(values)
    if array.dtype == np.bool_:
        if array.shape != (n_courses,):
            raise DataError(
                f"{name} as a bool mask must have shape ({n_courses},), got {array.shape}"
            )
        return np.flatnonzero(array)
    array = array.reshape(-1)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{name} must hold course indices (integers), got dtype {array.dtype}")
    bad = (array < 0) | (array >= n_courses)
    if bad.any():
        shown = ", ".join(str(v) for v in array[bad][:5])
        raise DataError(
            f"{name} holds {int(bad.sum())} course indices outside [0, {n_courses}): {shown}"
        )
    return array.astype(np.int64, copy=False)


@dataclass(frozen=True)
class _Plan:
    """What to score: sizes, the scored columns, and the exclusions mapped onto them."""

    n_rows: int
    n_courses: int
    k: int
    columns: NDArray[np.int64] | None  # sorted allowed course indices; None = all
    exclude_indptr: NDArray[np.int64] | None
    exclude_indices: NDArray[np.int64] | None  # positions within the scored columns

    @property
    def width(self) -> int:
        return self.n_courses if self.columns is None else int(self.columns.shape[0])

    @classmethod
    def make(
        cls,
        n_rows: int,
        n_courses: int,
        k: int,
        exclude: sp.spmatrix | sp.sparray | None,
        forbid: ArrayLike | None,
        allow: ArrayLike | None,
    ) -> _Plan:
        k = positive_int(k, "k")
        columns = None
        if allow is not None or forbid is not None:
            keep = np.ones(n_courses, dtype=bool)
            if allow is not None:
                keep[:] = False
                keep[_course_indices(allow, n_courses, "allow")] = True
            if forbid is not None:
                keep[_course_indices(forbid, n_courses, "forbid")] = False
            if not keep.all():
                columns = np.flatnonzero(keep)

        indptr = indices = None
        if exclude is not None:
            if not sp.issparse(exclude):
                raise DataError(
                    f"exclude must be a scipy sparse matrix (CSR), got {type(exclude).__name__}"
                )
            if exclude.shape != (n_rows, n_courses):
                raise DataError(
                    f"exclude has shape {exclude.shape}; expected ({n_rows}, {n_courses}): "
                    "one row per requested member (in request order), one column per course"
                )
            csr = exclude.tocsr()
            indptr = csr.indptr.astype(np.int64, copy=False)
            indices = csr.indices.astype(np.int64, copy=False)
            if columns is not None:
                # Re-express the exclusions as positions among the scored columns; entries
                # for courses that are not scored at all need no mask.
                position = np.full(n_courses, -1, dtype=np.int64)
                position[columns] = np.arange(columns.shape[0])
                mapped = position[indices]
                kept = mapped >= 0
                kept_before = np.concatenate(([0], np.cumsum(kept)))
                indptr = kept_before[indptr]
                indices = mapped[kept]
        return cls(n_rows, n_courses, k, columns, indptr, indices)


# --------------------------------------------------------------------------- the loop


_BLAS_LOCK = threading.Lock()
_blas_controller: ThreadpoolController | None = None
_blas_modules = 0  # len(sys.modules) when the controller scanned the loaded libraries
_blas_users = 0
_blas_restore: Callable[[], None] | None = None


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run BLAS single-threaded while any kernel call is in flight.

    The limit is process-wide, so concurrent kernel calls share it through a counter: the
    first one in sets it, the last one out restores the caller's setting; BLAS already at
    one thread (a serving process) is left as it is, for a thread-count read per library. The
    controller is reused while no module has been imported since it scanned the loaded
    libraries (a scan costs about a millisecond, too much for every call).

    Known limit: numpy's OpenBLAS (0.3.31) ignores a raise of its thread count made by a
    thread other than the one that lowered it while that thread lives, so when concurrent
    calls from several threads end on another thread than the first one in, BLAS can stay
    at one thread after them (what a serving process wants; a notebook calling from one
    thread is unaffected).
    """
    global _blas_controller, _blas_modules, _blas_users, _blas_restore
    with _BLAS_LOCK:
        if _blas_users == 0:
            # BLAS libraries arrive with imports (scipy's with implicit, say): rescan when
            # modules were imported since the last scan, so no library escapes the limit.
            if _blas_controller is None or len(sys.modules) != _blas_modules:
                _blas_controller = ThreadpoolController().select(user_api="blas")
                _blas_modules = len(sys.modules)
            # Already single-threaded (a serving process): nothing to set or restore.
            if any(lib.get_num_threads() != 1 for lib in _blas_controller.lib_controllers):
                limiter = _blas_controller.limit(limits=1, user_api="blas")
                _blas_restore = limiter.restore_original_limits
        _blas_users += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_users -= 1
            if _blas_users == 0 and _blas_restore is not None:
                _blas_restore()
                _blas_restore = None


#: :func:`_single_threaded_blas` for other modules: small products of their own (a group's
#: pool matrix, a GEMV) that should not wake BLAS threads, which cost more than they save at
#: that size and spin against the kernel's workers on a busy machine.
single_threaded_blas = _single_threaded_blas


_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """The process-wide pool of kernel helper threads, created on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_default_threads(), thread_name_prefix="recommend-topk")
        return _POOL


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _run(
    plan: _Plan,
    score: Callable[[int, int, NDArray[np.float32]], None],
    block_size: int | None,
    num_threads: int | None,
    on_block: OnBlock | None = None,
) -> TopK:
    """Score and select block by block; every entry point ends here."""
    n, k, width = plan.n_rows, plan.k, plan.width
    threads = (
        _default_threads() if num_threads is None else positive_int(num_threads, "num_threads")
    )
    if block_size is not None:
        block_size = positive_int(block_size, "block_size")
    indices = np.full((n, k), -1, dtype=np.int32)
    scores = np.full((n, k), _NEG_INF, dtype=np.float32)
    if n == 0 or width == 0:
        return TopK(indices, scores)

    rows = block_rows(n, width, threads) if block_size is None else block_size
    rows = min(rows, n)
    n_blocks = -(-n // rows)
    threads = min(threads, n_blocks)
    logger.debug(
        "topk: %d members x %d courses, k=%d, %d blocks of %d rows, %d threads",
        n,
        width,
        k,
        n_blocks,
        rows,
        threads,
    )

    selector = _Selector(plan)
    blocks = _Blocks(n_blocks)

    def work() -> None:
        buffer, flags = _Scratch.take(rows, width)
        try:
            # Blocks are handed out on demand, so a worker slowed down by other load on
            # the machine simply takes fewer of them.
            while (block := blocks.take()) is not None:
                start = block * rows
                stop = min(start + rows, n)
                r = stop - start
                score(start, stop, buffer[:r])
                if on_block is not None:
                    view = buffer[:r].view()
                    view.flags.writeable = False
                    on_block(start, stop, view)
                selector.select(buffer[:r], flags, start, indices[start:stop], scores[start:stop])
        except BaseException:
            blocks.stop()  # the other workers need not finish a failed call
            raise
        finally:
            _Scratch.give_back(buffer, flags)

    # Multi-threaded OpenBLAS loses to one thread on these short, wide GEMMs (2-3x slower
    # below 64 rows), and on large requests to one single-threaded GEMM per worker.
    with _single_threaded_blas():
        if threads == 1:
            work()
        else:
            # Helpers come from a pool kept for the process (starting threads costs
            # milliseconds per call); the caller works too, so a call always progresses
            # even when every pool thread is busy, e.g. with a nested call.
            futures = [_pool().submit(work) for _ in range(threads - 1)]
            try:
                work()
            finally:
                for future in futures:
                    # A helper that has not started yet would find no block left.
                    if not future.cancel():
                        future.result()
    if plan.columns is not None:
        filled = indices >= 0
        indices[filled] = plan.columns[indices[filled]]
    return TopK(indices, scores)


def block_rows(n_rows: int, width: int, threads: int) -> int:
    """Members per block by default: about ``_BLOCK_BYTES`` of scores, in blocks of equal
    size whose number is a multiple of ``threads``, so that no worker is left alone with a
    short last block while the others wait."""
    rows = min(max(_BLOCK_BYTES // (4 * max(width, 1)), _MIN_BLOCK_ROWS), _MAX_BLOCK_ROWS)
    n_blocks = -(-n_rows // rows)
    n_blocks = -(-n_blocks // threads) * threads
    return max(-(-n_rows // n_blocks), _MIN_BLOCK_ROWS)


class _Scratch:
    """Each thread's score buffer and flags, kept between calls.

    Allocating them per call costs page faults on every call (about a millisecond for a
    small request, more than its GEMM); a thread keeps the largest pair it has used, up to
    ``_BLOCK_BYTES`` of scores. A pair is taken out while in use, so a nested call in the
    same thread (a ``score_block`` that calls the kernel) gets a fresh one.
    """

    _local = threading.local()

    @classmethod
    def take(cls, rows: int, width: int) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """A (rows, width) float32 buffer and a flat bool buffer of at least ``rows *
        width`` elements rounded up to a multiple of 8 (its tail beyond that is False)."""
        size = rows * width
        padded = -(-size // 8) * 8
        kept = getattr(cls._local, "pair", None)
        cls._local.pair = None
        if kept is not None and kept[0].size >= size and kept[1].size >= padded:
            scores, flags = kept
        else:
            scores = np.empty(size, dtype=np.float32)
            flags = np.zeros(padded, dtype=bool)
        return scores[:size].reshape(rows, width), flags

    @classmethod
    def give_back(cls, buffer: NDArray[np.float32], flags: NDArray[np.bool_]) -> None:
        base = buffer.base if buffer.base is not None else buffer
        if base.size * 4 > _BLOCK_BYTES:
            return
        kept = getattr(cls._local, "pair", None)
        if kept is None or kept[0].size < base.size:
            cls._local.pair = (base, flags)


class _Blocks:
    """Hands out block numbers 0..n-1 to worker threads, once each."""

    def __init__(self, n: int) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._n = n

    def take(self) -> int | None:
        with self._lock:
            if self._next >= self._n:
                return None
            self._next += 1
            return self._next - 1

    def stop(self) -> None:
        with self._lock:
            self._next = self._n


class _Selector:
    """Masks a scored block and writes its best ``k`` per row, best first."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.k = k = plan.k
        self.width = width = plan.width
        groups = _GROUPS_PER_K * k
        # The bound pays off only when groups hold a few columns each.
        self.groups = groups if width >= 4 * groups else 0
        self.cap_limit = max(_MAX_CANDIDATES_PER_K * k, _MIN_CANDIDATE_CAP)

    def select(
        self,
        block: NDArray[np.float32],
        flags: NDArray[np.bool_],
        start: int,
        out_indices: NDArray[np.int32],
        out_scores: NDArray[np.float32],
    ) -> None:
        """Select into ``out_*`` (rows of the block); ``block`` and ``flags`` are overwritten.

        ``block`` is (r, width) float32 C-contiguous, ``flags`` a flat bool buffer of at
        least ``r * width`` elements rounded up to a multiple of 8.
        """
        self._mask(block, start)
        rows, cols, values = self._candidates(block, flags)
        counts = np.bincount(rows, minlength=block.shape[0])
        crowded = counts > self.cap_limit
        if crowded.any():
            rows, cols, values = self._exact_candidates(block, rows, cols, values, crowded)
            counts = np.bincount(rows, minlength=block.shape[0])
        self._sort_candidates(rows, cols, values, counts, out_indices, out_scores)

    def _mask(self, block: NDArray[np.float32], start: int) -> None:
        plan = self.plan
        if plan.exclude_indptr is None or plan.exclude_indices is None:
            return
        r, width = block.shape
        indptr = plan.exclude_indptr[start : start + r + 1]
        cols = plan.exclude_indices[indptr[0] : indptr[-1]]
        if cols.size == 0:
            return
        row_offsets = np.repeat(np.arange(r, dtype=np.int64) * width, np.diff(indptr))
        block.reshape(-1)[row_offsets + cols] = _NEG_INF

    def _lower_bound(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        """Per row, a value <= the k-th best finite score, and >= the float32 minimum."""
        r, width = block.shape
        groups, k = self.groups, self.k
        if groups == 0:
            return np.full(r, _LOWEST, dtype=np.float32)
        # Contiguous groups, the last one taking the remainder; reduceat covers the block in
        # one call, far cheaper than a reduction per group.
        edges = np.arange(groups, dtype=np.intp) * (width // groups)
        maxima = np.maximum.reduceat(block, edges, axis=1)
        # A NaN maximum hides its group's real maximum; -inf under-estimates it safely.
        maxima[np.isnan(maxima)] = _NEG_INF
        bound = np.partition(maxima, groups - k, axis=1)[:, groups - k]
        return np.maximum(bound, _LOWEST)

    def _candidates(
        self, block: NDArray[np.float32], flags: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """Every (row, column, score) that may be in its row's top k, in row-major order.

        A superset of each row's top k, including all ties with the k-th score; -inf and NaN
        are never candidates.
        """
        r, width = block.shape
        step = max(1, _SCAN_BYTES // (4 * width))
        if r <= step:
            return self._slice_candidates(block, flags)
        # Slice by slice, so that the comparison pass reads the rows the bound's pass has
        # just brought into the cache instead of the whole block again from memory.
        parts = [self._slice_candidates(block[lo : lo + step], flags) for lo in range(0, r, step)]
        rows = np.concatenate([p[0] + lo for p, lo in zip(parts, range(0, r, step), strict=True)])
        cols = np.concatenate([p[1] for p in parts])
        values = np.concatenate([p[2] for p in parts])
        return rows, cols, values

    def _slice_candidates(
        self, block: NDArray[np.float32], flags: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """:meth:`_candidates` of a C-contiguous (r, width) block in one go."""
        r, width = block.shape
        bound = self._lower_bound(block)
        size = r * width
        padded = -(-size // 8) * 8
        np.greater_equal(block, bound[:, None], out=flags[:size].reshape(r, width))
        flags[size:padded] = False  # left over from a larger block
        # Candidates are sparse (a few per thousand), so find the 8-byte words holding any
        # first: np.flatnonzero on the bools costs 2.5x as much as this whole two-step.
        packed = flags[:padded].view(np.uint64)
        words = np.flatnonzero(packed != 0)
        within = np.flatnonzero(packed[words].view(np.bool_))
        flat = words[within >> 3] * 8 + (within & 7)
        rows, cols = np.divmod(flat, width)
        return rows, cols, block.reshape(-1)[flat]

    def _exact_candidates(
        self,
        block: NDArray[np.float32],
        rows: NDArray[np.int64],
        cols: NDArray[np.int64],
        values: NDArray[np.float32],
        crowded: NDArray[np.bool_],
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """Replace the candidates of crowded rows by exactly their top k (ties: low index)."""
        width = self.width
        crowded_rows = np.flatnonzero(crowded)
        sub = block[crowded_rows]
        sub[np.isnan(sub)] = _NEG_INF
        k = min(self.k, width)
        kth = np.partition(sub, width - k, axis=1)[:, width - k]
        kth = np.maximum(kth, _LOWEST)[:, None]
        better = sub > kth
        tied = sub == kth
        # Among the scores tied with the k-th best, take the lowest course indices.
        room = k - better.sum(axis=1, keepdims=True)
        take = better | (tied & (np.cumsum(tied, axis=1) <= room))
        sub_rows, sub_cols = np.divmod(np.flatnonzero(take), width)
        keep = ~crowded[rows]
        rows = np.concatenate((rows[keep], crowded_rows[sub_rows]))
        cols = np.concatenate((cols[keep], sub_cols))
        values = np.concatenate((values[keep], sub[sub_rows, sub_cols]))
        order = np.argsort(rows, kind="stable")
        return rows[order], cols[order], values[order]

    def _sort_candidates(
        self,
        rows: NDArray[np.int64],
        cols: NDArray[np.int64],
        values: NDArray[np.float32],
        counts: NDArray[np.int64],
        out_indices: NDArray[np.int32],
        out_scores: NDArray[np.float32],
    ) -> None:
        """Sort each row's candidates by (score desc, course asc) and keep the first k."""
        if rows.size == 0:
            return  # outputs are pre-filled with -1 / -inf
        r, k = counts.shape[0], self.k
        cap = max(int(counts.max()), k)
        starts = np.cumsum(counts) - counts
        slot = np.arange(rows.size, dtype=np.int64) - starts[rows]
        keys = np.full((r, cap), _NO_KEY, dtype=np.int64)
        keys[rows, slot] = rank_keys(values, cols)
        # Keys are unique, so an unstable (fast, vectorised) sort is deterministic.
        keys.sort(axis=1)
        best = keys[:, :k]
        filled = best != _NO_KEY
        out_indices[:] = np.where(filled, best & 0xFFFFFFFF, -1)
        out_scores[:] = np.where(filled, _key_scores(best), _NEG_INF)


_NO_KEY = np.iinfo(np.int64).max


def rank_keys(values: NDArray[np.float32], cols: NDArray[np.int64]) -> NDArray[np.int64]:
    """Int64 keys whose ascending order is (score descending, course index ascending).

    ``values`` are float32 scores (finite or infinite), ``cols`` course indices in
    [0, 2**32); equal scores (``-0.0`` and ``0.0`` included) give keys that differ by
    course only. The float32 bit pattern is made monotonic as a signed int32 (flip the
    magnitude bits of negatives), inverted for descending order, and placed above the
    32-bit course index.
    """
    bits = (values + np.float32(0.0)).view(np.int32)  # + 0.0 turns -0.0 into +0.0
    ascending = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))
    return ((~ascending).astype(np.int64) << 32) | cols


def _key_scores(keys: NDArray[np.int64]) -> NDArray[np.float32]:
    """The scores back from :func:`rank_keys` keys."""
    ascending = ~(keys >> 32).astype(np.int32)
    bits = ascending ^ ((ascending >> 31) & np.int32(0x7FFFFFFF))
    return bits.view(np.float32)

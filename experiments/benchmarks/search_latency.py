"""Red search at scale: BM25 index build, query latency, and re-ranking latency.

Generated catalogue of ``--courses`` courses (default 500k) in the four channels: titles
and tags from the simulator's party-building vocabulary (so queries hit long postings
lists, as real searches for 党史 or 三会一课 do) plus words drawn from jieba's dictionary,
so titles and descriptions are mostly unique text (segmentation cannot be skipped by
caching). A random factor model scores members.

Measured, side by side in the same run:

- build: time and peak memory (this process plus its segmentation workers) of
  ``build_index`` on the catalogue, next to the bare ``bm25s`` indexing of the already
  segmented tokens (the reference: what the BM25 library costs without Chinese
  segmentation);
- query: ``search(model, member, query, n=10)`` end to end (segmentation, BM25, filters,
  preference, blend, reasons) at p50/p99 over ``--queries`` warm calls, next to bare
  ``bm25s`` scoring of the same token ids;
- re-rank: ``rank_candidates`` for 200 external candidates, next to the bare GEMV that
  scores the candidates.

- the same ``search`` calls on the same index without its typing aids (pinyin, typos,
  title prefixes), when the library has them;
- suggest: ``suggest(model, member, prefix, n=8)`` for prefixes typed in Chinese, in
  pinyin and in initials (1 to 6 characters of the catalogue's titles), next to a bare
  ``bisect`` of the prefix in the sorted title keys (the reference).

Targets: build < 2 min and < 4 GB; query p99 < 20 ms; re-rank 200 p99 < 3 ms; suggestion
p99 < 5 ms. Run::

    python experiments/benchmarks/search_latency.py [--courses 500000] [--queries 1000]

The last line reads ``RESULT build_s=... build_peak_gb=... p99_ms_query500k=...
p99_ms_rerank200=... p99_ms_bm25_bare=... p99_ms_suggest500k=...
p99_cpu_ms_query500k=... p99_cpu_ms_rerank200=... p99_cpu_ms_suggest500k=...`` (wall-clock
p99s, then the p99s of the calling thread's CPU time, which a shared machine's load does
not inflate). ``suggest`` is measured when the library has it, so the same script runs
against an older checkout for a side-by-side comparison.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

# The benchmarks share one stand-in factor model (this folder is on sys.path when run).
from menu_latency import RandomFactors
from threadpoolctl import threadpool_limits

from recommend.data.dataset import Dataset
from recommend.data.synthetic import TOPICS
from recommend.schema import CHANNELS
from recommend.text import get_tokenizer

logger = logging.getLogger("search_latency")

QUERIES = (
    "党史",
    "三会一课 怎么开",
    "防诈骗",
    "主题党日",
    "两学一做 学习",
    "乡村振兴 政策解读",
    "电商直播 入门",
    "垃圾分类",
    "党章党规",
    "中医养生 方法",
    "安全生产",
    "新质生产力",
)


def make_courses(n: int, seed: int) -> pd.DataFrame:
    """A generated catalogue of ``n`` courses with mostly unique Chinese text."""
    rng = np.random.default_rng(seed)
    freq = get_tokenizer().FREQ
    words = np.array(
        sorted(w for w, f in freq.items() if f >= 50 and 2 <= len(w) <= 4 and w.isalpha()),
        dtype=object,
    )
    topic = rng.integers(0, len(TOPICS), n)
    sizes = np.array([len(t[2]) for t in TOPICS])
    term_a = (rng.random(n) ** 1.6 * sizes[topic]).astype(np.int64)
    term_b = (term_a + 1 + rng.integers(0, 100, n)) % sizes[topic]
    terms = [np.array(t[2], dtype=object) for t in TOPICS]
    a = np.array([terms[t][i] for t, i in zip(topic.tolist(), term_a.tolist(), strict=True)])
    b = np.array([terms[t][i] for t, i in zip(topic.tolist(), term_b.tolist(), strict=True)])
    topic_names = np.array([t[1] for t in TOPICS], dtype=object)
    channel = np.array([CHANNELS.index(t[0]) for t in TOPICS])[topic]
    w = words[rng.integers(0, words.size, (n, 14))]
    title = a + w[:, 0] + "：" + b + w[:, 1]
    description = (
        "本课程围绕“" + a + "”展开，" + w[:, 2] + w[:, 3] + w[:, 4] + w[:, 5] + "，"
        + w[:, 6] + w[:, 7] + w[:, 8] + w[:, 9] + "，" + w[:, 10] + w[:, 11] + w[:, 12]
        + w[:, 13] + "。"
    )  # fmt: skip
    tags = [[t, x, y] for t, x, y in zip(topic_names[topic], a, b, strict=True)]
    now = pd.Timestamp("2025-06-30")
    return pd.DataFrame(
        {
            "course_id": [f"c{i:07d}" for i in range(n)],
            "title": title,
            "category": np.array(CHANNELS, dtype=object)[channel],
            "tags": tags,
            "duration_seconds": np.round(np.exp(rng.normal(6.5, 0.9, n))),
            "lecturer_id": [f"l{i:05d}" for i in rng.integers(0, max(1, n // 100), n)],
            "published_at": now - pd.to_timedelta(rng.integers(0, 3 * 365 * 24, n), unit="h"),
            "description": description,
        }
    )


def make_model(courses: pd.DataFrame, n_members: int, seed: int) -> RandomFactors:
    """A random factor model over ``courses`` with ~10 events per member."""
    rng = np.random.default_rng(seed)
    n = len(courses)
    member_ids = np.array([f"m{i:07d}" for i in range(n_members)], dtype=object)
    per_member = rng.poisson(10, n_members) + 1
    who = np.repeat(np.arange(n_members), per_member)
    popularity = 1.0 / np.arange(1, n + 1) ** 0.8
    what = rng.choice(n, size=who.size, p=popularity / popularity.sum())
    now = pd.Timestamp("2025-06-30")
    events = pd.DataFrame(
        {
            "member_id": member_ids[who],
            "course_id": courses["course_id"].to_numpy()[what],
            "event": np.where(rng.random(who.size) < 0.4, "complete", "view"),
            "timestamp": now - pd.to_timedelta(rng.integers(0, 180 * 24 * 60, who.size), unit="m"),
        }
    )
    ds = Dataset.from_frames(events, courses=courses, now=now)
    return RandomFactors(64, seed).fit(ds)


def percentiles(call: Callable[[int], object], calls: int) -> tuple[float, float, float]:
    """(p50, p99) wall-clock latency in ms of ``call(i)`` over ``calls`` warm calls, and the
    p99 of the CPU time the calling thread spent (ms): on a shared machine the wall clock
    also counts waiting for a core, the thread's CPU time does not."""
    for i in range(min(50, calls)):
        call(i)
    times = np.empty(calls)
    cpu = np.empty(calls)
    for i in range(calls):
        start, start_cpu = time.perf_counter(), time.thread_time()
        call(i)
        times[i] = time.perf_counter() - start
        cpu[i] = time.thread_time() - start_cpu
    ms = times * 1e3
    return (
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        float(np.percentile(cpu * 1e3, 99)),
    )


def peak_gb() -> tuple[float, float]:
    """Peak resident memory (GB) of this process and of its largest finished child."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return own, child


def main() -> None:
    import bm25s

    from recommend.search import build_index, rank_candidates, search
    from recommend.search.index import _SEP, DEFAULT_FIELDS, _segment

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--courses", type=int, default=500_000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    start = time.perf_counter()
    courses = make_courses(args.courses, args.seed)
    logger.info("generated %d courses in %.1f s", len(courses), time.perf_counter() - start)
    base_gb, _ = peak_gb()

    start = time.perf_counter()
    index = build_index(courses)
    build_s = time.perf_counter() - start
    own_gb, child_gb = peak_gb()
    logger.info("built %r in %.1f s", index, build_s)

    # Reference: segmentation alone, then bm25s indexing of the segmented tokens alone.
    fields = {k: v for k, v in DEFAULT_FIELDS.items() if k in courses.columns}
    start = time.perf_counter()
    texts = _segment(courses, fields, os.cpu_count() or 1, False)
    segment_s = time.perf_counter() - start
    vocab: dict[str, int] = {}
    corpus = [[vocab.setdefault(t, len(vocab)) for t in x.split(_SEP)] for x in texts]
    del texts
    start = time.perf_counter()
    bare = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    bare.index((corpus, vocab), create_empty_token=False, show_progress=False)
    bm25_s = time.perf_counter() - start
    del corpus, bare

    start = time.perf_counter()
    model = make_model(courses, args.members, args.seed)
    logger.info("model over %d members in %.1f s", args.members, time.perf_counter() - start)
    rng = np.random.default_rng(args.seed + 1)
    members = model.member_ids_.external_ids[rng.integers(0, args.members, args.queries)]
    queries = [QUERIES[i] for i in rng.integers(0, len(QUERIES), args.queries)]
    parsed = [index.parse(q) for q in queries]

    # Candidates from an external engine: BM25's 200 best for the query.
    def candidates(q: str) -> pd.DataFrame:
        docs, scores = index.top(index.parse(q), 200)
        return pd.DataFrame({"course_id": index.course_ids[docs], "text_score": scores})

    pools = {q: candidates(q) for q in QUERIES}
    pool_idx = {q: model.course_ids_.to_index(p["course_id"]) for q, p in pools.items()}
    member_idx = model.member_ids_.to_index(members)
    f = model.factors()

    def bare_gemv(i: int) -> object:
        return f.members[member_idx[i : i + 1]] @ f.courses[pool_idx[queries[i]]].T

    suggest_fn = None
    prefixes: list[str] = []
    if getattr(index, "aids", None) is not None:
        import bisect

        from recommend.search import suggest as suggest_fn
        from recommend.text import initials, pinyin

        titles = courses["title"].to_numpy(dtype=object)
        picks = rng.integers(0, len(titles), args.queries)
        cut = rng.integers(1, 7, args.queries)
        for j, (t, c) in enumerate(zip(titles[picks], cut, strict=True)):
            form = j % 3
            text = t if form == 0 else (pinyin(t) if form == 1 else initials(t))
            prefixes.append(text[: int(c) + (form == 1) * 2])
        sorted_titles = sorted(titles.tolist())

        def bare_bisect(i: int) -> object:
            return bisect.bisect_left(sorted_titles, prefixes[i])

    results: dict[str, tuple[float, float, float]] = {}
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        results["bare bm25s scoring + top-200 (reference)"] = percentiles(
            lambda i: index.top(parsed[i], 200), args.queries
        )
        results["search n=10 (with reasons)"] = percentiles(
            lambda i: search(model, members[i], queries[i], n=10, index=index), args.queries
        )
        if getattr(index, "aids", None) is not None:
            plain = index.with_aids(None)
            results["search n=10, same index without typing aids"] = percentiles(
                lambda i: search(model, members[i], queries[i], n=10, index=plain), args.queries
            )
        results["search n=10 channel + max_minutes=15"] = percentiles(
            lambda i: search(
                model, members[i], queries[i], index=index, channel=CHANNELS[0], max_minutes=15
            ),
            args.queries,
        )
        results["search n=10 unknown member (cold start)"] = percentiles(
            lambda i: search(model, f"new-{i}", queries[i], n=10, index=index), args.queries
        )
        results["bare GEMV of 200 candidates (reference)"] = percentiles(bare_gemv, args.queries)
        results["rank_candidates 200 (all, with reasons)"] = percentiles(
            lambda i: rank_candidates(model, members[i], pools[queries[i]]), args.queries
        )
        results["rank_candidates 200 -> 20 (with reasons)"] = percentiles(
            lambda i: rank_candidates(model, members[i], pools[queries[i]], n=20), args.queries
        )
        if suggest_fn is not None:
            results["bare bisect in sorted titles (reference)"] = percentiles(
                bare_bisect, args.queries
            )
            results["suggest n=8 (Chinese, pinyin, initials)"] = percentiles(
                lambda i: suggest_fn(model, members[i], prefixes[i], 8, index=index),
                args.queries,
            )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.courses} courses, {index.vocabulary_size} words, {args.members} members, "
        f"{args.queries} warm calls, BLAS threads {args.blas_threads}, "
        f"load average {load:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"build: {build_s:.1f} s (segmentation alone {segment_s:.1f} s, bare bm25s index "
        f"{bm25_s:.1f} s; build / (segment + bm25s) = {build_s / (segment_s + bm25_s):.2f}); "
        f"peak RSS {own_gb:.2f} GB in this process (of which {base_gb:.2f} GB before the "
        f"build: catalogue and libraries), {child_gb:.2f} GB in the largest worker"
    )
    print(f"{'call':48s} {'p50 ms':>8s} {'p99 ms':>8s} {'p99 CPU ms':>11s}")
    for name, (p50, p99, c99) in results.items():
        print(f"{name:48s} {p50:8.3f} {p99:8.3f} {c99:11.3f}")
    q_ref = results["bare bm25s scoring + top-200 (reference)"][1]
    q99 = results["search n=10 (with reasons)"][1]
    r_ref = results["bare GEMV of 200 candidates (reference)"][1]
    r99 = results["rank_candidates 200 (all, with reasons)"][1]
    print(
        f"ratios p99: search / bare bm25s {q99 / q_ref:.1f}x, rerank / bare GEMV {r99 / r_ref:.1f}x"
    )
    nan3 = (float("nan"),) * 3
    s99 = results.get("suggest n=8 (Chinese, pinyin, initials)", nan3)[1]
    s_ref = results.get("bare bisect in sorted titles (reference)", nan3)[1]
    s99_cpu = results.get("suggest n=8 (Chinese, pinyin, initials)", nan3)[2]
    q99_cpu = results["search n=10 (with reasons)"][2]
    r99_cpu = results["rank_candidates 200 (all, with reasons)"][2]
    if suggest_fn is not None:
        print(f"suggest p99 / bare bisect p99 = {s99 / s_ref:.0f}x")
    print(
        f"RESULT build_s={build_s:.1f} build_peak_gb={own_gb + child_gb:.2f} "
        f"p99_ms_query500k={q99:.2f} p99_ms_rerank200={r99:.3f} "
        f"p99_ms_bm25_bare={q_ref:.2f} p99_ms_suggest500k={s99:.3f} "
        f"p99_cpu_ms_query500k={q99_cpu:.2f} p99_cpu_ms_rerank200={r99_cpu:.3f} "
        f"p99_cpu_ms_suggest500k={s99_cpu:.3f}"
    )


if __name__ == "__main__":
    main()

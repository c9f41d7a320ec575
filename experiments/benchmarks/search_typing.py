"""How members type: hit@10 of the intended course for course names typed six ways.

Real course names from MOOCCubeX (``course_profiles.jsonl``: name, description, fields,
key concepts) are indexed with ``build_index``; then, for each course whose name has at
least two Chinese characters (``--courses`` of them at most, seeded sample), its name is
typed as:

- **clean**: the name as it is;
- **traditional**: the name in traditional characters (OpenCC ``s2t``);
- **pinyin**: the full pinyin of the name, letters and digits only (``shehuibaoxian``);
- **initials**: the first letter of each pinyin syllable (``shbx``);
- **prefix**: the first half of the name (rounded up);
- **homophone**: one Chinese character replaced by another with the same pinyin (as an
  input method offers it), position and character drawn with a seeded generator from the
  characters of jieba's dictionary.

Each query is ranked by text only (``SearchIndex.parse`` + ``SearchIndex.top``, no member
preference) and counts a hit when the intended course is in the top 10. The figures are
reported side by side with the clean ones (the reference: what a member who types the
exact name gets); the target is every variant >= 0.9x clean. A second table shows the same
without the title-prefix lift (words only), to show what the word-level reading (pinyin,
initials, typo correction) achieves on its own.

Run on any ``course_profiles.jsonl``::

    python experiments/benchmarks/search_typing.py [PATH] [--courses 400] [--seed 0]

``PATH`` is the folder (or the file itself); default ``../shared/data/mooccubex-courses``.
Skips cleanly when absent. The last line reads ``RESULT hit10_clean=...
hit10_traditional=... hit10_pinyin=... hit10_initials=... hit10_prefix=...
hit10_homophone=... worst_ratio=...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT.parent / "shared" / "data" / "mooccubex-courses"
VARIANTS = ("clean", "traditional", "pinyin", "initials", "prefix", "homophone")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_NOT_LATIN = re.compile(r"[^a-z0-9]+")


def homophone_pool() -> dict[str, list[str]]:
    """Pinyin (no tone) -> single characters with it, from jieba's dictionary (sorted)."""
    from recommend.text import get_tokenizer, syllables

    pool: dict[str, set[str]] = defaultdict(set)
    for word, freq in get_tokenizer().FREQ.items():
        if len(word) == 1 and _HAN.fullmatch(word) and freq >= 20:
            pool[syllables(word)[0]].add(word)
    return {k: sorted(v) for k, v in pool.items()}


def with_homophone(name: str, rng: np.random.Generator, pool: dict[str, list[str]]) -> str | None:
    """``name`` with one Chinese character swapped for another of the same pinyin."""
    from recommend.text import syllables

    spots = []
    for i, ch in enumerate(name):
        if _HAN.fullmatch(ch):
            others = [c for c in pool.get(syllables(ch)[0], []) if c != ch]
            if others:
                spots.append((i, others))
    if not spots:
        return None
    i, others = spots[int(rng.integers(0, len(spots)))]
    return name[:i] + others[int(rng.integers(0, len(others)))] + name[i + 1 :]


def variants(
    name: str, rng: np.random.Generator, pool: dict[str, list[str]], s2t: object
) -> dict[str, str] | None:
    from recommend.text import initials, pinyin

    typo = with_homophone(name, rng, pool)
    if typo is None:
        return None
    lowered = name.lower()
    return {
        "clean": name,
        "traditional": s2t.convert(name),  # type: ignore[attr-defined]
        "pinyin": _NOT_LATIN.sub("", pinyin(lowered)),
        "initials": _NOT_LATIN.sub("", initials(lowered)),
        "prefix": name[: (len(name) + 1) // 2],
        "homophone": typo,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT), help="course_profiles.jsonl")
    parser.add_argument("--courses", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    path = Path(args.path)
    if path.is_dir():
        path = path / "course_profiles.jsonl"
    if not path.is_file():
        print(f"SKIP: no course_profiles.jsonl at {args.path}")
        print("RESULT skipped=1")
        return

    import opencc

    from recommend.data.loaders import read_mooccubex_courses
    from recommend.search import build_index

    courses = read_mooccubex_courses(path).reset_index(drop=True)
    start = time.perf_counter()
    index = build_index(courses)
    build_s = time.perf_counter() - start
    names = courses["title"].fillna("").astype(str).str.strip().to_numpy(dtype=object)
    han = np.array([len(_HAN.findall(n)) >= 2 for n in names])
    rng = np.random.default_rng(args.seed)
    picked = np.flatnonzero(han)
    if picked.size > args.courses:
        picked = np.sort(rng.choice(picked, args.courses, replace=False))
    pool = homophone_pool()
    s2t = opencc.OpenCC("s2t")
    doc_of = {cid: i for i, cid in enumerate(index.course_ids.tolist())}

    hits = {v: [] for v in VARIANTS}
    words_only = {v: [] for v in VARIANTS}
    examples: list[str] = []
    skipped = 0
    latency: list[float] = []
    for row in picked.tolist():
        typed = variants(names[row], rng, pool, s2t)
        if typed is None:
            skipped += 1
            continue
        target = doc_of[courses["course_id"].iloc[row]]
        for variant, query in typed.items():
            t0 = time.perf_counter()
            parsed = index.parse(query)
            docs, _ = index.top(parsed, 10)
            latency.append(time.perf_counter() - t0)
            hits[variant].append(target in docs.tolist())
            bare = dataclasses.replace(parsed, prefix_docs=np.empty(0, np.int64))
            docs_w, _ = index.top(bare, 10)
            words_only[variant].append(target in docs_w.tolist())
            if len(examples) < 12 and variant in ("pinyin", "homophone", "initials"):
                note = "; ".join(n.text("zh") for n in parsed.notes)
                examples.append(f"  {variant:11s} {query!r} -> {note or '(no note)'}")

    rate = {v: float(np.mean(hits[v])) for v in VARIANTS}
    bare_rate = {v: float(np.mean(words_only[v])) for v in VARIANTS}
    clean = rate["clean"]
    print(
        f"{len(courses)} courses indexed in {build_s:.1f} s; {len(hits['clean'])} names with "
        f">= 2 Chinese characters queried ({skipped} without a homophone skipped); text-only "
        f"ranking; query p50 {np.percentile(latency, 50) * 1e3:.2f} ms, p99 "
        f"{np.percentile(latency, 99) * 1e3:.2f} ms"
    )
    print(f"{'variant':12s} {'hit@10':>7s} {'x clean':>8s} {'words only':>11s} {'x clean':>8s}")
    for v in VARIANTS:
        print(
            f"{v:12s} {rate[v]:7.3f} {rate[v] / clean:8.3f} {bare_rate[v]:11.3f} "
            f"{bare_rate[v] / max(bare_rate['clean'], 1e-9):8.3f}"
        )
    print("examples:")
    print("\n".join(examples))
    worst = min(rate[v] / clean for v in VARIANTS[1:]) if clean > 0 else 0.0
    print(
        "RESULT "
        + " ".join(f"hit10_{v}={rate[v]:.3f}" for v in VARIANTS)
        + f" worst_ratio={worst:.3f}"
    )


if __name__ == "__main__":
    main()

"""Real text check: text-only vs personalised search ranking on MOOCCubeX (real courses).

``mooccubex-courses`` holds real Chinese course names, descriptions, discipline fields and
key concepts, and learners' enrolments split 80/20 at random per learner. For each held-out
(learner, course) pair whose course lists a discipline field, the learner "searches" for
it with a topic query: the course's first discipline field (e.g. 计算机科学与技术, shared by
up to ~50 courses, so the query names a subject, not the course). Key concepts are not
used: in this release almost every concept belongs to a single course, so a concept query
would name the course itself. Pairs of courses without a field are skipped (counted).

Every query retrieves its BM25 candidates (top 200 over name, fields and key concepts,
teacher pseudonym and description) from the embedded index; they are then ranked by text
only, and by the personalised blend (hand-set ``BlendWeights()``: text, the learner's EASE
score fitted on the training enrolments, popularity). Reported: MRR and hit@10 of the
held-out course. At most ``--pairs`` pairs (seeded sample). Skips cleanly when the data is
absent. Run::

    python experiments/benchmarks/search_mooccubex.py [--data DIR] [--pairs 3000]

The last line reads ``RESULT mrr_text=... mrr_personalised=... hit10_text=...
hit10_personalised=...``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with mooccubex-courses")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    folder = Path(args.data) / "mooccubex-courses"
    if not (folder / "course_profiles.jsonl").exists():
        folder = Path(args.data)
    if not (folder / "course_profiles.jsonl").exists() or not (folder / "train.txt").exists():
        print(f"SKIP: no MOOCCubeX course profiles under {args.data}")
        print("RESULT skipped=1")
        return

    import json

    import recommend as rc
    from recommend.data.idmap import IdMap
    from recommend.data.loaders import load_mooccubex, read_item_map
    from recommend.search import TEXT_ONLY, BlendWeights, build_index
    from recommend.search.blend import evaluate_search

    start = time.perf_counter()
    data = load_mooccubex(folder)
    courses = data.courses
    assert courses is not None
    members = IdMap.from_values(pd.concat([data.train["member_id"], data.test["member_id"]]))
    known = IdMap.from_values(
        pd.concat([data.train["course_id"], data.test["course_id"], courses["course_id"]])
    )
    courses = courses[courses["course_id"].isin(known.external_ids)]
    train = rc.Dataset.from_frames(
        data.train, courses=courses, member_ids=members, course_ids=known, on_unknown="drop"
    )
    model = rc.EASE(l2=200.0).fit(train)
    index = build_index(model)

    # The query of a course: its first discipline field, read from the raw profiles.
    mapping = read_item_map(folder / "item_map.txt")
    field: dict[str, str] = {}
    with open(folder / "course_profiles.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            cid = mapping.get(str(rec.get("original_id")))
            if cid is not None and rec.get("fields"):
                field[str(cid)] = str(rec["fields"][0])
    test = data.test[data.test["member_id"].isin(members.external_ids)]
    query = test["course_id"].astype(str).map(field)
    usable = test[query.notna()].assign(query=query[query.notna()])
    skipped = len(test) - len(usable)
    sample = usable.sample(n=min(args.pairs, len(usable)), random_state=args.seed)
    searches = pd.DataFrame(
        {
            "member_id": sample["member_id"].to_numpy(),
            "query": sample["query"].to_numpy(),
            "shown": [[] for _ in range(len(sample))],
            "clicked": [[c] for c in sample["course_id"].tolist()],
        }
    )
    methods = {"text_only": TEXT_ONLY, "personalised": BlendWeights()}
    table = evaluate_search(model, searches, methods, index=index, k=10)
    n_courses = sample.groupby("query").size()
    print(
        f"MOOCCubeX: {len(courses)} courses, {train.n_members} learners, EASE on "
        f"{train.interactions.nnz} training enrolments; {len(searches)} held-out pairs "
        f"sampled of {len(usable)} with a field ({skipped} without a field skipped), "
        f"{n_courses.size} distinct field queries ({time.perf_counter() - start:.1f} s)"
    )
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    t, p = table.loc["text_only"], table.loc["personalised"]
    print(
        f"RESULT mrr_text={t['mrr']:.4f} mrr_personalised={p['mrr']:.4f} "
        f"hit10_text={t['hit@10']:.4f} hit10_personalised={p['hit@10']:.4f}"
    )


if __name__ == "__main__":
    sys.exit(main())

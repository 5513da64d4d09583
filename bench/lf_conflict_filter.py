#!/usr/bin/env python
"""The `lf_conflict` filter (a class's active LFs disagree on the sample) on 500,000 samples, against bare SQL.

Reuses (or seeds) bench/samples_list_latency.py's dataset and gives its first class three pattern LFs once
(`zebra` PRESENT on ~1% of captions, `score >= 0.5` else ABSENT on half the samples, `dog` PRESENT): about 20,000
samples are in conflict, more than the list's exact count cap (10,000), so the count stops early; `--split dev`
narrows to ~2,000, fewer than the cap, so the count reads them all.

Each side runs alone in a process of its own, one after the other: a warm-up, then --rounds timed rounds.
- service: `datasets.selectors.sample_page(spec=filter_parse({"lf_conflict": [class]}), limit=100)`, what
  `GET .../samples/?lf_conflict=<class>` runs (page ids, the rows and their tags, the capped count);
- bare: the same three reads as hand-written SQL through psycopg, the class's active LF ids known in advance:
  the first 101 ids in id order with both votes present (EXISTS over `lf_id IN (...)`), the rows of 100 of them
  with their tag ids, and the count of at most 10,001 ids.

    .venv/bin/python bench/lf_conflict_filter.py                  # and --split dev
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

LFS = (("bench conflict: zebra", {"field": "caption", "builder": "keyword", "words": ["zebra"]}, None, 1),
       ("bench conflict: score", {"field": "score", "builder": "numeric", "op": ">=", "value": 0.5}, 0, None),
       ("bench conflict: dog", {"field": "caption", "builder": "keyword", "words": ["dog"]}, None, 1))


def setup(samples):
    """(dataset id, class id, the class's active LF ids), seeding what is missing."""
    import samples_list_latency

    from imagestudio.datasets.models import LabelClass
    from imagestudio.labeling.models import LabelingFunction
    from imagestudio.labeling.services import lf_create

    dataset = samples_list_latency.seeded_dataset(samples)
    if dataset is None:
        dataset = samples_list_latency.seed(samples)
        samples_list_latency.vacuum_analyze()
    label_class = LabelClass.objects.filter(dataset=dataset).order_by("id").first()
    for name, config, low, high in LFS:
        if not LabelingFunction.objects.filter(dataset=dataset, name=name).exists():
            lf_create(dataset=dataset, user=None, label_class=label_class, name=name, type="pattern", config=config,
                      low=low, high=high)
    lf_ids = list(LabelingFunction.objects.filter(label_class=label_class, active=True).values_list("id", flat=True))
    return dataset.id, label_class.id, lf_ids


def service_round(dataset, class_id, split):
    from imagestudio.datasets.filters import filter_parse
    from imagestudio.datasets.selectors import sample_page

    values = {"lf_conflict": [str(class_id)], **({"split": split} if split else {})}
    page = sample_page(dataset=dataset, spec=filter_parse(dataset=dataset, values=values), limit=100)
    return len(page.samples), page.count


def bare_round(cursor, dataset_id, lf_ids, split):
    where = ("s.dataset_id = %(d)s" + (" AND s.split = %(split)s" if split else "")
             + " AND EXISTS (SELECT 1 FROM labeling_lfvote v WHERE v.lf_id = ANY(%(lfs)s) AND v.sample_id = s.id"
               " AND v.vote = 1) AND EXISTS (SELECT 1 FROM labeling_lfvote v WHERE v.lf_id = ANY(%(lfs)s)"
               " AND v.sample_id = s.id AND v.vote = -1)")
    params = {"d": dataset_id, "lfs": lf_ids, "split": split}
    cursor.execute(f"SELECT s.id FROM datasets_sample s WHERE {where} ORDER BY s.id LIMIT 101", params)  # noqa: S608
    ids = [row[0] for row in cursor.fetchall()][:100]
    cursor.execute("SELECT s.*, ARRAY(SELECT t.tag_id FROM datasets_sample_tags t WHERE t.sample_id = s.id) "
                   "FROM datasets_sample s WHERE s.id = ANY(%s)", [ids])
    rows = cursor.fetchall()
    cursor.execute(f"SELECT count(*) FROM (SELECT s.id FROM datasets_sample s WHERE {where} LIMIT 10001) c",  # noqa: S608
                   params)
    return len(rows), min(cursor.fetchone()[0], 10_000)


def child(side, rounds, split):
    _common.configure_environment()
    _common.setup_django()
    from django.db import connection

    from imagestudio.datasets.models import Dataset

    dataset_id, class_id, lf_ids = setup(500_000)
    dataset = Dataset.objects.get(pk=dataset_id)
    if side == "service":
        run = lambda: service_round(dataset, class_id, split)  # noqa: E731
    else:
        connection.ensure_connection()
        cursor = connection.connection.cursor()
        run = lambda: bare_round(cursor, dataset_id, lf_ids, split)  # noqa: E731
    answer = run()  # warm-up
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = run()
        seconds.append(time.perf_counter() - started)
    print(json.dumps({"seconds": seconds, "answer": answer, "load": os.getloadavg()[0]}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--split", choices=("train", "dev", "valid", "test"))
    parser.add_argument("--child", choices=("service", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rounds, args.split)
        return
    env = _common.configure_environment()
    _common.setup_django()
    dataset_id, class_id, lf_ids = setup(500_000)
    print(f"dataset {dataset_id}, class {class_id}, active LFs {lf_ids} (set up before timing)")
    results = {}
    for side in ("bare", "service"):
        command = [sys.executable, "-W", "ignore", __file__, "--child", side, "--rounds", str(args.rounds)]
        command += ["--split", args.split] if args.split else []
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
        results[side] = json.loads(out.strip().splitlines()[-1])
    print(f"lf_conflict page of 100 + capped count{' in split ' + args.split if args.split else ''}, "
          f"median of {args.rounds} rounds, each side in its own process")
    for side, result in results.items():
        print(f"  {side:<8} {statistics.median(result['seconds']) * 1000:8.1f} ms  (min "
              f"{min(result['seconds']) * 1000:.1f})  rows {result['answer'][0]}, count {result['answer'][1]}  "
              f"load {result['load']:.2f}")
    assert results["bare"]["answer"] == results["service"]["answer"], "the two sides answered differently"
    ratio = statistics.median(results["service"]["seconds"]) / statistics.median(results["bare"]["seconds"])
    print(f"  service / bare: {ratio:.2f}x")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""The metadata field catalogue (GET datasets/{id}/fields/) at scale, next to baselines measured in the same run
(medians over repeats; no assertions on times).

A dataset of --samples samples (seeded with one INSERT ... SELECT generate_series when missing, reused
otherwise; 70 % train) with 6 metadata fields: a caption of samples / 10 distinct texts, a colour of 3 values,
a number of 1,000 values, a boolean, a field on 1 % of the samples, a field mixing numbers and texts.

1. `field_catalogue` cold (its one SQL statement: kinds, exact fill, exact distinct, top-5 examples), for the
   dataset and for split=train, against the bare scan it cannot avoid: SELECT count(*) over the samples'
   jsonb_each pairs, and against the Python path (`_catalogue_in_python`, what SQLite runs) over the same rows.
   Target: cold <= 3 x the bare scan.
2. Warm (cached until the samples change): target <= 5 ms.

    .venv/bin/python bench/catalogue_bench.py                      # 500,000 samples, 3 repeats
    .venv/bin/python bench/catalogue_bench.py --samples 100000 --repeats 5
"""

import argparse
import statistics
import time

from _common import configure_environment, print_environment, setup_django

NAME = "catalogue bench"


def seeded_dataset(count):
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from imagestudio.datasets.models import Dataset, Sample
    from imagestudio.datasets.services import dataset_recount_splits

    dataset = Dataset.objects.filter(name=f"{NAME} {count}").first()
    if dataset is not None:
        return dataset
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        user, _ = get_user_model().objects.get_or_create(username="catalogue-bench")
        dataset = Dataset.objects.create(name=f"{NAME} {count}", created_by=user)
        cursor.execute(f"""
            INSERT INTO {Sample._meta.db_table} (dataset_id, split, external_id, file_name, original, thumbnail,
                width, height, format, bytes, sha256, metadata, search_text, created_at)
            SELECT %s, CASE WHEN i %% 10 < 7 THEN 'train' WHEN i %% 10 < 9 THEN 'valid' ELSE 'dev' END,
                'e' || i, 'f' || i, '', '', 1, 1, 'PNG', 1, md5(i::text),
                jsonb_strip_nulls(jsonb_build_object(
                    'caption', 'a photo number ' || (i %% (%s / 10)),
                    'colour', (ARRAY['red', 'green', 'blue'])[i %% 3 + 1],
                    'n', i %% 1000, 'flag', i %% 2 = 0,
                    'rare', CASE WHEN i %% 100 = 0 THEN 'yes' END,
                    'mixed', CASE WHEN i %% 2 = 0 THEN to_jsonb(i %% 7) ELSE to_jsonb('t' || (i %% 5)) END)),
                '', now()
            FROM generate_series(1, %s) AS i""", [dataset.id, count, count])  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Sample._meta.db_table}")
    dataset_recount_splits(dataset=dataset)
    Dataset.objects.filter(pk=dataset.pk).update(samples_version=1)
    print(f"seeded {count:,} samples in {time.perf_counter() - started:.1f} s")
    return dataset


def timed(run, repeats):
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000, result


def bare_scan(dataset_id, split):
    from django.db import connection

    from imagestudio.datasets.models import Sample

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {Sample._meta.db_table} s CROSS JOIN LATERAL jsonb_each(s.metadata) "  # noqa: S608
                       f"WHERE s.dataset_id = %s {'AND s.split = %s' if split else ''}",
                       [dataset_id] + ([split] if split else []))
        return cursor.fetchone()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_environment()
    setup_django()
    from imagestudio.common.cache import clear_database_caches
    from imagestudio.datasets.selectors import _catalogue_in_python, field_catalogue

    print_environment(NAME, {"samples": f"{args.samples:,}", "repeats": args.repeats})
    dataset = seeded_dataset(args.samples)
    for split in (None, "train"):
        def cold(split=split):
            clear_database_caches()
            return field_catalogue(dataset=dataset, split=split)

        bare_ms, pairs = timed(lambda split=split: bare_scan(dataset.id, split), args.repeats)
        cold_ms, rows = timed(cold, args.repeats)
        warm_ms, _ = timed(lambda split=split: field_catalogue(dataset=dataset, split=split), args.repeats)
        python_ms, reference = timed(lambda split=split: _catalogue_in_python(dataset.id, split), 1)
        print(f"split={split or 'all'}: {len(rows)} fields over {rows[0]['samples']:,} samples ({pairs:,} field values)")
        print(f"  bare jsonb_each scan   {bare_ms:9.1f} ms")
        print(f"  field_catalogue cold   {cold_ms:9.1f} ms   {cold_ms / bare_ms:5.2f} x bare   (target <= 3 x)")
        print(f"  field_catalogue warm   {warm_ms:9.3f} ms   (target <= 5 ms)")
        print(f"  python path (SQLite's) {python_ms:9.1f} ms   {python_ms / cold_ms:5.2f} x cold SQL; "
              f"same result: {reference == rows}")


if __name__ == "__main__":
    main()

"""Real images for label_quality.py's digits section: scikit-learn's `load_digits` made multi-label, imported,
embedded and labeled through the service code, as a user's requests would do it.

Data (seeded by --seed, deterministic):
- the 1,797 8x8 digit images of `sklearn.datasets.load_digits` (ink 0..16 on white), upscaled to 64x64 with
  nearest-neighbour, grey to RGB (ink dark on white), PNG;
- classes of the digit d: even (d % 2 == 0), gt4 (d > 4), loop (d in 0, 6, 8, 9: the closed loop of the usual
  handwriting; this set's 4s are drawn open), prime (d in 2, 3, 5, 7);
- splits by a seeded permutation, independent of the digit: train 1,000 / dev 200 / valid 597; ground truth of
  every class on dev and valid, none on train;
- metadata a user could write pattern rules on: `caption`, one of four templates naming the digit ("a
  handwritten seven", ...) with the right name 70% of the time and one of the nine wrong names uniformly
  otherwise; `ink`, the number of the 64 source pixels at least half dark (>= 8 of 16).

LFs per class (6; thresholds from dev only, never valid):
- caption keyword: the names of the class's digits; a match votes PRESENT, a miss ABSENT;
- ink numeric: `ink >= t` or `ink <= t` (the direction and t with the better dev F1 among the service's
  suggested best-F1 cuts), a match PRESENT, a miss ABSENT;
- two image exemplars and one patch exemplar (EXEMPLARS: digits a user would pick for the class, one random
  train image of each, seeded), visual space; `high` and `low` are lf_preview's suggested best-recall cuts at
  precision >= 0.9 on dev (a side without one stays open);
- a model LF: a fast model on the visual vectors trained on the ground truth of dev
  (`model_start(label_source="ground_truth", ground_truth_splits=["dev"])`), PRESENT at P >= 2/3, ABSENT at
  P <= 1/3. Its dev rows are its training rows, so dev cannot pick its thresholds: a fixed margin instead.
"""

import io
import json
import math
import time
import zipfile

CLASSES = ("even", "gt4", "loop", "prime")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LOOP_DIGITS = frozenset({0, 6, 8, 9})
PRIME_DIGITS = frozenset({2, 3, 5, 7})
SPLIT_SIZES = (("train", 1000), ("dev", 200), ("valid", 597))
CAPTION_ACCURACY = 0.7
CAPTION_TEMPLATES = ("a handwritten {}", "scan of the digit {}", "{} written in pen", "looks like a {} to me")
INK_LEVEL = 8  # of 16: a source pixel at least half dark counts as ink
IMAGE_SIDE = 64
ENCODER = "conse-offline"
GENERATOR_VERSION = 1  # bump when the generated images, splits or metadata change: it names the cached dataset
USERNAME = "bench-digits"
TOP_HALF, BOTTOM_HALF = [0, 0, IMAGE_SIDE, IMAGE_SIDE // 2], [0, IMAGE_SIDE // 2, IMAGE_SIDE, IMAGE_SIDE]
# What a user looking at the images would pick: two whole digits of the class and one telling part of a third.
EXEMPLARS = {
    "even": {"images": (0, 4), "patch": (2, BOTTOM_HALF)},  # the flat stroke a 2 ends on
    "gt4": {"images": (7, 9), "patch": (5, TOP_HALF)},  # the flag of a 5
    "loop": {"images": (0, 8), "patch": (6, BOTTOM_HALF)},  # the loop of a 6
    "prime": {"images": (3, 7), "patch": (2, TOP_HALF)},  # the hook of a 2
}
MIN_PRECISION = 0.9  # of a similarity LF's suggested cuts on dev
MODEL_MARGIN = math.log(2)  # the model LF's logit cut either way: P >= 2/3 votes PRESENT, P <= 1/3 ABSENT


def digit_classes(digit):
    return {"even": digit % 2 == 0, "gt4": digit > 4, "loop": digit in LOOP_DIGITS, "prime": digit in PRIME_DIGITS}


def generate(seed):
    """The rows of the manifest (without images) and the PNG of each, in load_digits order."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    split_of = np.empty(len(digits.target), dtype=object)
    order = rng.permutation(len(digits.target))
    start = 0
    for split, size in SPLIT_SIZES:
        split_of[order[start:start + size]] = split
        start += size
    rows, images = [], []
    for index, (pixels, digit) in enumerate(zip(digits.images, digits.target, strict=True)):
        digit = int(digit)
        said = digit if rng.random() < CAPTION_ACCURACY else int(rng.choice([d for d in range(10) if d != digit]))
        caption = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))].format(DIGIT_NAMES[said])
        grey = (255 - pixels * 255 / 16).round().astype(np.uint8)  # ink dark on white
        big = grey.repeat(IMAGE_SIDE // 8, axis=0).repeat(IMAGE_SIDE // 8, axis=1)
        out = io.BytesIO()
        Image.fromarray(big, mode="L").convert("RGB").save(out, format="PNG")
        images.append(out.getvalue())
        split = str(split_of[index])
        truth = {} if split == "train" else {
            name: "PRESENT" if present else "ABSENT" for name, present in digit_classes(digit).items()}
        rows.append({"file": f"digit-{index:04d}.png", "split": split, "external_id": f"digit-{index:04d}",
                     "metadata": {"caption": caption, "ink": int((pixels >= INK_LEVEL).sum())},
                     "ground_truth": truth, "digit": digit})
    return rows, images


def _archive(rows, images):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for row, data in zip(rows, images, strict=True):
            archive.writestr(row["file"], data)
    manifest = "\n".join(json.dumps({k: v for k, v in row.items() if k != "digit"}) for row in rows)
    return out.getvalue(), manifest.encode()


def _complete(dataset, expected):
    """True when the dataset holds every image and a vector of each in every space of the encoder."""
    from _common import vector_set_state

    from imagestudio.datasets.models import Sample
    from imagestudio.embeddings.store import encoder_records

    if Sample.objects.filter(dataset=dataset).count() != expected:
        return False
    _, records = encoder_records(ENCODER)
    return all(vector_set_state(dataset, record)[1] == expected for record in records.values())


def _clear_previous_run(dataset):
    """A cached dataset keeps its images and vectors; the LFs, training sets and models of an earlier run go."""
    from imagestudio.labeling.selectors import lf_list
    from imagestudio.labeling.services import lf_delete
    from imagestudio.training.models import FastModel, TrainingSet

    for lf in lf_list(dataset=dataset):
        lf_delete(lf=lf)
    # No service deletes models or training sets; these rows are the bench's own.
    FastModel.objects.filter(dataset=dataset).delete()
    TrainingSet.objects.filter(dataset=dataset).delete()


def succeeded(job, what):
    from imagestudio.jobs.models import JobStatus

    job.refresh_from_db()
    if job.status != JobStatus.SUCCEEDED:
        raise SystemExit(f"the {what} job {job.id} ended {job.status}: {job.error}")
    return job.result or {}


def dataset_ready(seed, load):
    """(user, dataset, rows): the cached dataset when complete, else imported and embedded now."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from imagestudio.datasets.imports import import_start
    from imagestudio.datasets.models import Dataset
    from imagestudio.datasets.services import dataset_create, dataset_delete
    from imagestudio.embeddings.services import embeddings_start

    rows, images = generate(seed)
    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    name = f"bench-digits-v{GENERATOR_VERSION}-seed{seed}"
    dataset = Dataset.objects.filter(name=name, created_by=user).first()
    if dataset is not None and _complete(dataset, len(rows)):
        _clear_previous_run(dataset)
        print(f"dataset {name} (id {dataset.id}): cached in the bench database, {len(rows)} images with vectors "
              f"in both spaces; import and embedding skipped (--reset-db to redo them)")
        return user, dataset, rows
    if dataset is not None:
        print(f"dataset {name}: incomplete (an interrupted run), deleting it")
        dataset_delete(dataset=dataset)
    dataset = dataset_create(user=user, name=name, classes=CLASSES)
    archive, manifest = _archive(rows, images)
    started = time.perf_counter()
    # The jobs run eagerly when their transaction commits, i.e. before these calls return.
    job = import_start(dataset=dataset, user=user, split="train",
                       archive=SimpleUploadedFile("digits.zip", archive, content_type="application/zip"),
                       manifest=SimpleUploadedFile("digits.jsonl", manifest))
    result = succeeded(job, "import")
    if result.get("created") != len(rows):
        raise SystemExit(f"the import created {result.get('created')} of {len(rows)} samples: {result}")
    print(f"imported {len(rows)} images with import_start in {time.perf_counter() - started:.1f} s (load {load():.2f})")
    started = time.perf_counter()
    result = succeeded(embeddings_start(dataset=dataset, user=user, encoder=ENCODER), "embeddings")
    spaces = ", ".join(f"{space} {entry['dim']}-d" for space, entry in result.get("spaces", {}).items())
    print(f"embedded with {ENCODER} ({spaces}) in {time.perf_counter() - started:.1f} s (load {load():.2f})")
    if not _complete(dataset, len(rows)):
        raise SystemExit("the embeddings job left images without a vector")
    return user, dataset, rows


def _exemplar_ids(rows, id_of, seed):
    """One random train image of each digit an exemplar needs (the same image wherever the digit is used)."""
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    wanted = sorted({d for spec in EXEMPLARS.values() for d in (*spec["images"], spec["patch"][0])})
    return {digit: id_of[rng.choice([r["external_id"] for r in rows if r["split"] == "train" and r["digit"] == digit])]
            for digit in wanted}


def _suggested_cuts(dataset, label_class, lf_type, config):
    """(low, high) of a similarity rule from lf_preview's suggestions on dev; a side without one is None."""
    from imagestudio.labeling.services import Rule, lf_preview, validate_rule

    # As the preview view does: the normalized config, as lf_create will save it. The placeholder `high` only
    # satisfies validation; suggestions ignore it.
    config = validate_rule(dataset=dataset, label_class=label_class, type=lf_type, config=config, low=None, high=1.0)
    rule = Rule(label_class=label_class, type=lf_type, config=config)
    suggested = lf_preview(dataset=dataset, rule=rule, split="dev", min_precision=MIN_PRECISION)["suggested"]
    high, low = (suggested[side]["best_recall_at_precision"] for side in ("high", "low"))
    high = high["threshold"] if high else suggested["high"]["best_f1"]["threshold"]  # never leave both open
    low = low["threshold"] if low and low["threshold"] < high else None
    return low, high


def _ink_rule(dataset, label_class):
    """The ink comparison with the better dev F1: `ink >= t` or `ink <= t` at the suggested best-F1 cut."""
    import numpy as np

    from imagestudio.annotations.selectors import ground_truth_for
    from imagestudio.datasets.models import SPLIT_CODES
    from imagestudio.datasets.selectors import field_column
    from imagestudio.labeling.metrics import suggest_thresholds

    ids, splits, values = field_column(dataset=dataset, field="ink")
    dev = splits == SPLIT_CODES["dev"]
    ink, truth = values[dev].astype(np.float64), ground_truth_for(dataset=dataset, label_class=label_class,
                                                                  sample_ids=ids)[dev]
    # invert=False: the "high" side votes PRESENT on score >= t; invert=True: the "low" side on score <= t.
    at_least = suggest_thresholds(ink, truth)["high"]["best_f1"]
    at_most = suggest_thresholds(ink, truth, invert=True)["low"]["best_f1"]
    op, cut = (">=", at_least) if at_least["f1"] >= at_most["f1"] else ("<=", at_most)
    return {"field": "ink", "builder": "numeric", "op": op, "value": cut["threshold"]}


def create_lfs(user, dataset, rows, seed, load):
    """Every class's LFs through lf_create (see the module docstring); returns {class name: [LF]}."""
    from imagestudio.datasets.models import LabelClass, Sample
    from imagestudio.labeling.services import lf_create
    from imagestudio.training.services import model_start

    started = time.perf_counter()
    id_of = dict(Sample.objects.filter(dataset=dataset).values_list("external_id", "id"))
    exemplars = _exemplar_ids(rows, id_of, seed)
    classes = {c.name: c for c in LabelClass.objects.filter(dataset=dataset)}
    model = model_start(dataset=dataset, user=user, label_source="ground_truth", ground_truth_splits=["dev"],
                        space="visual", seed=seed, encoder=ENCODER)
    succeeded(model.job, "dev ground-truth model")
    lfs = {}
    for name in CLASSES:
        label_class = classes[name]
        digits = [d for d in range(10) if digit_classes(d)[name]]
        specs = [(f"{name}: caption names {'/'.join(DIGIT_NAMES[d] for d in digits)}", "pattern",
                  {"field": "caption", "builder": "keyword", "words": [DIGIT_NAMES[d] for d in digits]}, 0, 1)]
        ink = _ink_rule(dataset, label_class)
        specs.append((f"{name}: ink {ink['op']} {ink['value']:g}", "pattern", ink, 0, 1))
        spec = EXEMPLARS[name]
        similar = [(f"{name}: like this {DIGIT_NAMES[d]}", "similarity_image", {"encoder": ENCODER, "sample_id": exemplars[d]})
                   for d in spec["images"]]
        digit, box = spec["patch"]
        half = "top" if box == TOP_HALF else "bottom"
        similar.append((f"{name}: like the {half} of this {DIGIT_NAMES[digit]}", "similarity_patch",
                        {"encoder": ENCODER, "sample_id": exemplars[digit], "box": box}))
        for lf_name, lf_type, config in similar:
            low, high = _suggested_cuts(dataset, label_class, lf_type, config)
            specs.append((lf_name, lf_type, config, low, high))
        specs.append((f"{name}: dev ground-truth model v{model.version}", "model", {"model_id": model.id},
                      -MODEL_MARGIN, MODEL_MARGIN))
        lfs[name] = [lf_create(dataset=dataset, user=user, label_class=label_class, name=lf_name, type=lf_type,
                               config=config, low=low, high=high) for lf_name, lf_type, config, low, high in specs]
    count = sum(len(v) for v in lfs.values())
    print(f"created {count} LFs with lf_create in {time.perf_counter() - started:.1f} s, the dev model included "
          f"(load {load():.2f})")
    return lfs

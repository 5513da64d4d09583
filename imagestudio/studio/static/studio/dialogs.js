// Dialogs reachable from several screens: import, export (with download) and resample.

import { SAMPLE_COLUMNS, SPLITS, datasets, exports_, fieldCatalogue, models, trainingSets } from "./api.js";
import { attempt, clear, dialog, field, h, jobProgress, saveBlob, select } from "./ui.js";

const ARCHIVE = /\.(zip|tar|tgz|tar\.gz|tar\.bz2|tar\.xz)$/i;

function checkboxes(name, values, checked, labels = {}) {
  const boxes = values.map((value) => h("input", { type: "checkbox", name, value, checked: checked.includes(value) }));
  const group = h("fieldset", { class: "checks" }, h("legend", {}, labels.legend || name),
                  boxes.map((box) => h("label", { class: "check" }, box, ` ${labels[box.value] || box.value}`)));
  group.values = () => boxes.filter((box) => box.checked).map((box) => box.value);
  return group;
}

export function importDialog(dataset, go) {
  const errors = h("div", { class: "form-errors", role: "alert" });
  const files = h("input", { type: "file", name: "files", multiple: true,
                             accept: "image/*,.zip,.tar,.tgz,.gz,.bz2,.xz" });
  const split = select(SPLITS, "train", { name: "split" });
  const progress = h("div", { class: "progress-area" });
  const submit = h("button", { class: "primary", type: "submit" }, "Import");
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const chosen = [...files.files];
      const archive = chosen.length === 1 && ARCHIVE.test(chosen[0].name) ? chosen[0] : null;
      clear(progress);
      submit.disabled = true;
      const job = await attempt(() => datasets.importFiles(dataset.id, { files: archive ? [] : chosen, archive,
                                                                        split: split.value }), errors);
      submit.disabled = false;
      if (!job) return;
      const done = await attempt(() => jobProgress(progress, job, "Import"), errors);
      if (done?.status === "succeeded") {
        const result = done.result || {};
        const files = (title, list) => (list?.length
          ? [h("h3", {}, title), h("ul", {}, list.map((f) => h("li", {}, `${f.file}: ${f.reason}`)))] : null);
        progress.append(h("div", { class: "import-report" },
          h("p", {}, `Created ${result.created ?? 0}, duplicates ${result.duplicates ?? 0}, `
                     + `refused ${result.errors ?? (result.error_files || []).length}, `
                     + `skipped ${result.skipped ?? (result.skipped_files || []).length}.`),
          files("Refused", result.error_files), files("Skipped", result.skipped_files),
          result.truncated ? h("p", { class: "muted" }, "The lists hold their first entries only: the job keeps the full report.") : null,
          h("button", { type: "button", onclick: () => { box.close(); go(`/d/${dataset.id}/grid`); } }, "Open the grid")));
      }
    },
  }, field("Images, or one archive (zip / tar with an optional manifest.csv)", files),
     field("Split of files the manifest does not place", split), errors, submit, progress);
  const box = dialog(`Import into ${dataset.name}`, form);
}

export async function exportDialog(dataset) {
  const errors = h("div", { class: "form-errors", role: "alert" });
  const [catalogue, modelList, sets, previous] = await Promise.all([
    fieldCatalogue(dataset.id), models.list(dataset.id), trainingSets.list(dataset.id), exports_.list(dataset.id)]);
  const kind = select([["dataset", "Dataset (columns, fields, ground truth, predictions)"],
                       ["training_labels", "Training-set labels"]], "dataset", { name: "kind" });
  const columns = checkboxes("columns", SAMPLE_COLUMNS, ["id", "external_id", "file_name", "split"],
                             { legend: "Sample columns" });
  const fields = checkboxes("fields", catalogue.map((f) => f.name), [], { legend: "Metadata fields" });
  const splits = checkboxes("splits", SPLITS, SPLITS, { legend: "Splits" });
  const groundTruth = h("input", { type: "checkbox", name: "ground_truth", checked: true });
  const raw = h("input", { type: "checkbox", name: "raw" });
  const ready = modelList.filter((m) => m.status === "ready");
  const model = select([["", "no predictions"], ...ready.map((m) => [m.id, `model ${m.id} (v${m.version})`])], "",
                       { name: "model" });
  const readySets = sets.filter((s) => s.status === "ready");
  const trainingSet = select([["", "the latest ready one"], ...readySets.map((s) => [s.id, `training set ${s.id}`])],
                             "", { name: "training_set" });
  const datasetOnly = h("div", {}, columns, h("label", { class: "check" }, groundTruth, " Ground-truth columns"),
                        field("Model predictions", model));
  const labelsOnly = h("div", { hidden: true }, field("Training set", trainingSet));
  kind.addEventListener("change", () => {
    datasetOnly.hidden = kind.value !== "dataset";
    labelsOnly.hidden = kind.value === "dataset";
  });
  const progress = h("div", { class: "progress-area" });
  const download = async (record) => {
    const file = await attempt(() => exports_.download(record), errors);
    if (file) saveBlob(file.blob, file.filename);
  };
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      clear(progress);
      const params = kind.value === "dataset"
        ? { kind: "dataset", columns: columns.values(), fields: fields.values(), splits: splits.values(),
            ground_truth: groundTruth.checked, model: model.value ? Number(model.value) : null, raw: raw.checked }
        : { kind: "training_labels", fields: fields.values(), splits: splits.values(),
            training_set: trainingSet.value ? Number(trainingSet.value) : null, raw: raw.checked };
      const job = await attempt(() => exports_.create(dataset.id, params), errors);
      if (!job) return;
      const done = await attempt(() => jobProgress(progress, job, "Export"), errors);
      if (done?.status !== "succeeded") return;
      const record = await attempt(() => exports_.ofJob(dataset.id, done), errors);
      if (record) {
        progress.append(h("p", {}, `${record.rows} rows, ${record.bytes} bytes. `),
                        h("button", { type: "button", class: "primary", "data-export": record.id,
                                      onclick: () => download(record) }, "Download CSV"));
      }
    },
  }, field("Kind", kind), datasetOnly, labelsOnly, fields, splits,
     h("label", { class: "check" }, raw, " Raw text (no protection against spreadsheet formulas)"), errors,
     h("button", { class: "primary", type: "submit" }, "Export"), progress);
  const earlier = previous.filter((e) => e.ready).slice(0, 5);
  dialog(`Export ${dataset.name}`, form,
         earlier.length ? h("h3", {}, "Earlier exports") : null,
         earlier.length ? h("ul", {}, earlier.map((e) => h("li", {}, `#${e.id} ${e.kind}, ${e.rows} rows `,
           h("button", { type: "button", class: "link", onclick: () => download(e) }, "Download")))) : null);
}

export function resampleDialog(dataset, go) {
  const errors = h("div", { class: "form-errors", role: "alert" });
  const split = select(SPLITS, "train", { name: "split" });
  const size = h("input", { type: "number", name: "sample_size", min: 1, value: 1000, required: true });
  const maxLabeled = h("input", { type: "number", name: "max_labeled", min: 0 });
  const minPerClass = h("input", { type: "number", name: "min_per_class", min: 0, value: 0 });
  const seed = h("input", { type: "number", name: "seed", min: 0, value: 0 });
  const result = h("div", {});
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const params = { split: split.value, sample_size: Number(size.value), min_per_class: Number(minPerClass.value),
                       seed: Number(seed.value), max_labeled: maxLabeled.value === "" ? null : Number(maxLabeled.value) };
      clear(result);
      const made = await attempt(() => datasets.resample(dataset.id, params), errors);
      if (!made) return;
      const r = made.realized;
      clear(result, h("p", {}, `Sampled ${r.total} of ${r.available} (${r.labeled} labeled, ${r.unlabeled} unlabeled).`),
            h("button", { type: "button", onclick: () => { box.close(); go(`/d/${dataset.id}/grid?split=${made.split}&in_sample=true`); } },
              "Show the sample in the grid"));
    },
  }, field("Split", split), field("Sample size", size), field("At most this many labeled (empty: no limit)", maxLabeled),
     field("At least per class", minPerClass), field("Seed", seed), errors,
     h("button", { class: "primary", type: "submit" }, "Resample"), result);
  const box = dialog(`Resample ${dataset.name}`, form);
}

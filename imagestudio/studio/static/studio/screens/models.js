// Fast models: train one (classes, negative / positive ratio, label source), the auto-train switch, metrics on
// valid per class with the PR curve and the confusion matrix, whose cells open the grid on that bucket.

import { classMetrics, datasets, modelCharts, models, trainingSets } from "../api.js";
import { curveChart } from "../charts.js";
import { queryString } from "../filters.js";
import { announce, attempt, clear, field, h, jobProgress, link, num, pct, select } from "../ui.js";

function confusion(dataset, model, name, matrix) {
  if (!matrix) return h("p", { class: "muted" }, "No confusion matrix.");
  const cell = (bucket, text) => h("td", {}, link(`/d/${dataset.id}/grid${queryString({ split: "valid", prediction: [`${model.id}:${name}:${bucket}`] })}`,
                                                  `${text} ${matrix[bucket.toLowerCase()]}`, { "data-bucket": bucket }));
  return h("table", { class: "confusion", "aria-label": `Confusion of ${name} on valid` },
    h("thead", {}, h("tr", {}, h("td", {}), h("th", { scope: "col" }, "predicted PRESENT"), h("th", { scope: "col" }, "predicted ABSENT"))),
    h("tbody", {},
      h("tr", {}, h("th", { scope: "row" }, "truly PRESENT"), cell("TP", "TP"), cell("FN", "FN")),
      h("tr", {}, h("th", { scope: "row" }, "truly ABSENT"), cell("FP", "FP"), cell("TN", "TN"))));
}

function drawCurves(box, curves, name) {
  if (!curves?.pr.length) return clear(box, h("p", { class: "muted" }, curves?.reason || "No curve: no labeled valid sample."));
  return clear(box,
    curveChart(curves.pr, { label: `Precision-recall curve of ${name} on valid`, x: "recall", y: "precision" }),
    curveChart(curves.roc, { label: `ROC curve of ${name} on valid`, x: "false-positive rate", y: "recall", diagonal: true }));
}

/** A class's figures on valid: `now` (the charts', against the current ground truth) or, until then, those of
 * training time from `m`; the confusion's cells open the grid on their bucket. */
function figures(dataset, model, name, m, now) {
  const f = now || m;
  return [
    h("p", { class: "muted" }, now ? "On valid, against the current ground truth:"
      : "On valid at training (the ground truth may have changed since):"),
    h("dl", { class: "metrics" },
      ["precision", "recall", "f1"].flatMap((k) => [h("dt", {}, k), h("dd", {}, pct(f[k]))]),
      h("dt", {}, "PR-AUC"), h("dd", {}, num(f.prAuc)), h("dt", {}, "ROC-AUC"), h("dd", {}, num(f.rocAuc)),
      h("dt", {}, "labeled on valid"), h("dd", {}, String(f.labeled ?? "–")),
      h("dt", {}, "ceiling F1"), h("dd", { title: "the same features trained on the ground truth, at training" }, pct(m.ceilingF1)),
      m.trainedOn ? [h("dt", {}, "trained on"), h("dd", {}, `${m.trainedOn.positives} positives, ${m.trainedOn.negatives} negatives`)] : null,
      m.targets ? [h("dt", {}, "fitted"), h("dd", { title: "what the regression fitted, chosen on dev for a training set: "
        + "its labels, or its probabilities by cross-entropy" }, m.targets)] : null),
    confusion(dataset, model, name, f.confusion),
  ];
}

/** A model's card; `withCharts`: its figures and curves against the current ground truth now, else on request. */
function modelCard(dataset, model, withCharts) {
  const boxes = Object.keys(model.metrics || {}).map((name) => {
    const m = classMetrics(model, name);
    const atTraining = () => (m ? figures(dataset, model, name, m, null) : h("p", { class: "muted" }, "No metrics."));
    return { name, m, atTraining, figures: h("div", { class: "figures" }, withCharts && m ? h("p", { class: "muted" }, "Reading the current figures…") : atTraining()),
             curve: h("div", { class: "curve-box" }) };
  });
  const more = h("button", { type: "button", class: "link", onclick: () => showCharts() }, "Current figures and curves");
  function showCharts() {
    // the button gives way to a status line that keeps the keyboard focus where the button was
    const status = h("p", { class: "muted", tabindex: "-1", role: "status" }, "Current figures and curves:");
    const focused = document.activeElement === more;
    more.replaceWith(status);
    if (focused) status.focus();
    modelCharts(dataset.id, model.id).then((charts) => boxes.forEach(({ name, m, atTraining, figures: box, curve }) => {
      clear(box, m && charts[name] ? figures(dataset, model, name, m, charts[name].figures) : atTraining());
      drawCurves(curve, charts[name], name);
    }), (error) => boxes.forEach(({ atTraining, figures: box, curve }) => {
      clear(box, atTraining());
      clear(curve, h("p", { class: "error" }, error.message));
    }));
  }
  if (withCharts) showCharts();
  return h("article", { class: "card model", dataset: { model: model.id } },
    h("h2", {}, `Model ${model.id} (v${model.version})`),
    h("p", { class: "muted" }, `${model.status}${model.error ? ` — ${model.error}` : ""} · labels from ${model.label_source}`
      + `${model.training_set ? ` (training set ${model.training_set})` : ""} · ${model.created_at}`
      + `${model.stale ? ` · stale: ${model.stale_reasons.join("; ")}` : ""}`),
    model.status === "ready" && !withCharts ? more : null,
    h("div", { class: "class-grid" }, boxes.map(({ name, figures: box, curve }) =>
      h("section", { class: "class-metrics", dataset: { class: name } }, h("h3", {}, name), box, curve))));
}

export async function render(root, { dataset, go, refreshDataset }) {
  const [list, sets] = await Promise.all([models.list(dataset.id), trainingSets.list(dataset.id)]);
  const errors = h("div", { class: "form-errors", role: "alert" });
  const progress = h("div", { class: "progress-area" });
  const classBoxes = dataset.classes.map((c) => h("input", { type: "checkbox", name: "model-class", value: c.name, checked: true }));
  const ratio = h("input", { type: "number", name: "negative_ratio", min: 0, step: "any", value: 3 });
  const source = select([["training_set", "training set (LF labels)"], ["ground_truth", "ground truth"]], "training_set", { name: "label_source" });
  const set = select([["", "the latest ready"], ...sets.filter((s) => s.status === "ready").map((s) => [s.id, `training set ${s.id}`])], "",
                     { name: "training_set" });
  const autoTrain = h("input", { type: "checkbox", name: "auto_train", checked: dataset.auto_train, onchange: async (e) => {
    const saved = await attempt(() => datasets.update(dataset.id, { autoTrain: e.target.checked }), errors);
    if (saved) { announce(`Auto-train ${saved.auto_train ? "on" : "off"}.`); await refreshDataset(); }
    else e.target.checked = !e.target.checked;
  } });
  const train = h("form", {
    class: "card",
    onsubmit: async (event) => {
      event.preventDefault();
      clear(progress);
      const job = await attempt(() => models.train(dataset.id, {
        classes: classBoxes.filter((b) => b.checked).map((b) => b.value), negativeRatio: ratio.value ? Number(ratio.value) : null,
        labelSource: source.value, trainingSet: source.value === "training_set" && set.value ? Number(set.value) : null }), errors);
      if (!job) return;
      const done = await attempt(() => jobProgress(progress, job, "Training"), errors);
      if (done?.status === "succeeded") go(`/d/${dataset.id}/models`);
    },
  }, h("h2", {}, "Train a fast model"),
     h("fieldset", { class: "checks" }, h("legend", {}, "Classes"), classBoxes.map((b) => h("label", { class: "check" }, b, ` ${b.value}`))),
     field("Negatives per positive (at most)", ratio), field("Labels from", source), field("Training set", set),
     h("button", { type: "submit", class: "primary", id: "train-model" }, "Train"),
     h("label", { class: "check" }, autoTrain, " Auto-train: retrain a class's model when its active LFs change"),
     errors, progress);
  clear(root, h("h1", {}, "Models"), train,
        list.length ? list.map((model, index) => modelCard(dataset, model, index === 0 && model.status === "ready"))
          : h("p", { class: "muted" }, "No model yet."));
}

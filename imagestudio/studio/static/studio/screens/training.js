// Training sets: build one from the active LFs (a job), the label model's choice per class, the labels.

import { SPLITS, trainingSets } from "../api.js";
import { queryString } from "../filters.js";
import { announce, attempt, clear, field, h, jobProgress, link, num, select } from "../ui.js";

function reportTable(report) {
  const rows = Object.entries(report || {}).map(([name, entry]) => h("tr", {},
    h("th", { scope: "row" }, name), h("td", {}, entry.chosen || "–"), h("td", {}, entry.reason || ""),
    h("td", {}, String(entry.covered ?? "–")), h("td", {}, `${entry.present ?? 0} / ${entry.absent ?? 0}`)));
  return h("table", { class: "data" }, h("thead", {}, h("tr", {}, ["class", "label model", "why", "covered",
                                                                   "labels P / A"].map((t) => h("th", { scope: "col" }, t)))),
           h("tbody", {}, rows));
}

async function labelsTable(dataset, set, split, offset, go) {
  const page = await trainingSets.labels(dataset.id, set.id, { split: split === "all" ? undefined : split, offset });
  const classes = dataset.classes.map((c) => c.name);
  const route = (extra) => go(`/d/${dataset.id}/training${queryString({}, { split, offset, ...extra })}`);
  return h("section", { "aria-labelledby": "labels-title" }, h("h2", { id: "labels-title" }, `Labels of training set ${set.id}`),
    field("Split", select([["all", "all splits"], ...SPLITS], split, { name: "labels-split", onchange: (e) => route({ split: e.target.value, offset: 0 }) })),
    h("table", { class: "data", id: "labels-table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "sample"), h("th", { scope: "col" }, "split"),
                     classes.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, page.results.map((row) => h("tr", {}, h("td", {}, link(`/d/${dataset.id}/sample/${row.sample_id}`, String(row.sample_id))),
        h("td", {}, row.split), classes.map((c) => {
          const entry = row.classes[c];
          return h("td", {}, entry ? `${entry.label} ${entry.probability === null ? "" : num(entry.probability, 2)}` : "");
        }))))),
    h("div", { class: "pager" },
      h("button", { type: "button", disabled: offset === 0, onclick: () => route({ offset: Math.max(0, offset - 50) }) }, "Previous"),
      h("button", { type: "button", disabled: offset + 50 >= page.count, onclick: () => route({ offset: offset + 50 }) }, "Next"),
      h("span", { class: "muted" }, `${page.count} samples`)));
}

export async function render(root, { dataset, query, go }) {
  const sets = await trainingSets.list(dataset.id);
  const errors = h("div", { class: "form-errors", role: "alert" });
  const progress = h("div", { class: "progress-area" });
  const splitBoxes = SPLITS.map((s) => h("input", { type: "checkbox", name: "ts-split", value: s, checked: true }));
  const seed = h("input", { type: "number", name: "seed", min: 0, value: 0 });
  const build = h("form", {
    class: "card",
    onsubmit: async (event) => {
      event.preventDefault();
      clear(progress);
      const outcome = await attempt(() => trainingSets.build(dataset.id, {
        splits: splitBoxes.filter((b) => b.checked).map((b) => b.value), seed: Number(seed.value) }), errors);
      if (!outcome) return;
      if (outcome.trainingSet) {
        announce(`Nothing changed since training set ${outcome.trainingSet.id}: it is reused.`);
        return go(`/d/${dataset.id}/training`);
      }
      const done = await attempt(() => jobProgress(progress, outcome.job, "Training set"), errors);
      if (done?.status === "succeeded") go(`/d/${dataset.id}/training`);
    },
  }, h("h2", {}, "Build a training set"), h("p", { class: "muted" }, "The label model aggregates the votes of the active LFs."),
     h("fieldset", { class: "checks" }, h("legend", {}, "Splits"), splitBoxes.map((b) => h("label", { class: "check" }, b, ` ${b.value}`))),
     field("Seed", seed), errors, h("button", { type: "submit", class: "primary", id: "build-training-set" }, "Build"), progress);

  // the dataset's latest set, which models, analysis and exports default to: the ready one asked for last
  const latest = sets.filter((s) => s.status === "ready")
    .reduce((best, s) => (!best || s.requested_at > best.requested_at ? s : best), undefined);
  const list = h("table", { class: "data", id: "training-sets" },
    h("thead", {}, h("tr", {}, ["id", "status", "samples", "stale", "created"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, sets.map((s) => h("tr", {}, h("td", {}, String(s.id)), h("td", {}, s.status, s.error ? ` — ${s.error}` : ""),
      h("td", {}, String(s.samples ?? "")), h("td", {}, s.stale ? `yes: ${s.stale_reasons.join("; ")}` : "no"), h("td", {}, s.created_at)))));
  const split = query.get("split") || "train";
  const offset = Number(query.get("offset")) || 0;
  clear(root, h("h1", {}, "Training sets"), build,
        sets.length ? list : h("p", { class: "muted" }, "No training set yet."),
        latest ? h("section", {}, h("h2", {}, `Label model of training set ${latest.id}`), reportTable(latest.report)) : null,
        latest ? await labelsTable(dataset, latest, split, offset, go) : null);
}

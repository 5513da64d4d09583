// The analysis pane: per class, LF coverage and conflicts, the label model's choice, the model's metrics on valid,
// guidance whose links open the grid with the filter of each case, and the samples to annotate next.

import { SPLITS, datasets, filterFromSamplesUrl } from "../api.js";
import { queryString } from "../filters.js";
import { clear, field, h, link, num, pct, select } from "../ui.js";
import { thumbnailStrip } from "./grid.js";

function classCard(dataset, entry) {
  const model = entry.model;
  const chosen = entry.label_model?.chosen;
  return h("article", { class: "card analysis", dataset: { class: entry.label_class } },
    h("h2", {}, entry.label_class),
    h("dl", { class: "metrics" },
      h("dt", {}, "active LFs"), h("dd", {}, String(entry.lfs?.active ?? 0)),
      h("dt", {}, "LF coverage"), h("dd", {}, pct(entry.lfs?.coverage)),
      h("dt", {}, "LF conflicts"), h("dd", {}, pct(entry.lfs?.conflicts)),
      h("dt", {}, "label model"), h("dd", {}, chosen ? `${chosen}${entry.label_model.reason ? ` — ${entry.label_model.reason}` : ""}` : "–"),
      h("dt", {}, "model on valid"), h("dd", {}, model?.valid ? `v${model.version}: P ${pct(model.valid.precision)}, R ${pct(model.valid.recall)}, F1 ${num(model.valid.f1, 2)}` : "–"),
      h("dt", {}, "valid labels"), h("dd", {}, String(entry.valid_labels))),
    h("h3", {}, "Guidance"),
    entry.guidance.length ? h("ul", { class: "guidance" }, entry.guidance.map((tip) => h("li", { dataset: { kind: tip.kind } },
      tip.message, " ",
      link(`/d/${dataset.id}/grid${queryString(filterFromSamplesUrl(tip.samples))}`, "Show these samples",
           { class: "guidance-link", "aria-label": `Show the samples of: ${tip.message}` }))))
      : h("p", { class: "muted" }, "Nothing to suggest."),
    entry.next_to_annotate.length ? [h("h3", {}, "Annotate next"), h("ul", { class: "strip" },
      thumbnailStrip(dataset, entry.next_to_annotate.map((n) => [n.sample_id, `${num(n.priority, 2)} ${n.reasons.join(", ")}`])))] : null);
}

export async function render(root, { dataset, query, go }) {
  const split = query.get("split") || "train";
  const labelClass = query.get("class") || "";
  const result = await datasets.analysis(dataset.id, { labelClass, split });
  const route = (extra) => go(`/d/${dataset.id}/analysis${queryString({}, { split, class: labelClass, ...extra })}`);
  clear(root, h("h1", {}, "Analysis"),
    h("div", { class: "row" },
      field("Split", select(SPLITS, split, { name: "split", onchange: (e) => route({ split: e.target.value }) })),
      field("Class", select([["", "all"], ...dataset.classes.map((c) => c.name)], labelClass,
                            { name: "class", onchange: (e) => route({ class: e.target.value }) }))),
    h("p", { class: "muted" }, `Training set ${result.training_set ?? "none"}, model ${result.model ?? "none"}.`
      + (result.training_set_stale_reasons.length
        ? ` The training set's label-model figures are of its build; stale: ${result.training_set_stale_reasons.join("; ")}.`
        : "")),
    h("div", { class: "cards" }, result.classes.map((entry) => classCard(dataset, entry))));
}

// The LF composer: a rule (similarity to a text, an image or a patch; a model's score; a pattern on a field), its
// score histogram by ground truth with two draggable thresholds and an invert switch, precision / recall /
// coverage of both sides recomputed locally on every move (no request), suggestions, top samples; create or save.

import { SPLITS, fieldCatalogue, lfTypes, lfs, models as modelApi, thresholdCurves } from "../api.js";
import { histogramChart } from "../charts.js";
import { announce, attempt, clear, field, h, num, pct, select } from "../ui.js";
import { thumbnailStrip } from "./grid.js";

const SHORTCUTS = [["Ctrl + Enter", "Preview the rule"], ["← → on a threshold", "Move it one bin"],
                   ["Page Up / Down", "Move it five bins"], ["/ in the builder box", "Choose a pattern builder"]];

/**
 * Precision, recall and coverage of both sides with the handles on edges `low` (0: no low side) and `high`
 * (bins: no high side), read from the preview's sweep (see api.thresholdCurves): PRESENT is the high side, or
 * the low one when inverted.
 */
export function thresholdMetrics(curves, low, high, invert) {
  const at = (side, index, off) => {
    const point = curves[side][index];
    return off ? { ...point, voted: 0, labeled: 0, correct: 0 } : point;
  };
  const present = invert ? at("present", low, low === 0) : at("present", high, high === curves.bins);
  const absent = invert ? at("absent", high, high === curves.bins) : at("absent", low, low === 0);
  return { present, absent, voted: present.voted + absent.voted, population: curves.population };
}

const ratio = (part, whole) => `${pct(whole ? part / whole : null)} (${part}/${whole})`;

/** Snap threshold values onto edge indices: high includes the bin holding it, low the bins below it. */
function snap(edges, lowValue, highValue) {
  const bins = edges.length - 1;
  let high = bins;
  if (highValue !== null && highValue !== undefined) {
    high = 0;
    for (let i = 0; i < bins; i += 1) if (edges[i] <= highValue) high = i;
  }
  let low = 0;
  if (lowValue !== null && lowValue !== undefined) {
    low = bins;
    for (let i = bins; i >= 1; i -= 1) if (edges[i] >= lowValue) low = i;
  }
  if (low > 0 && high < bins && low >= high) low = Math.max(0, high - 1);
  return [low, high];
}

function patternEditor(config, fields, builders) {
  const fieldSelect = select(fields, config.field || fields[0]?.[0], { name: "pattern-field" });
  const builderSelect = select(builders.map((b) => [b.builder, b.label]), config.builder || builders[0]?.builder,
                               { name: "builder" });
  const command = h("input", { name: "builder-command", list: "builder-commands", placeholder: "/keyword cat, kitten",
                               "aria-describedby": "builder-help" });
  const params = h("div", { class: "params" });
  const controls = {};
  const drawParams = () => {
    const builder = builders.find((b) => b.builder === builderSelect.value);
    clear(params);
    for (const param of builder?.params || []) {
      const given = config.builder === builderSelect.value ? config[param.name] : undefined;
      let control;
      if (param.kind === "boolean") control = h("input", { type: "checkbox", name: param.name, checked: Boolean(given ?? param.default) });
      else if (param.kind === "choice") control = select(param.choices, given ?? param.default ?? param.choices[0], { name: param.name });
      else if (param.kind === "words") control = h("input", { name: "words", value: (given || []).join(", "), placeholder: "cat, kitten" });
      else control = h("input", { name: param.name, value: Array.isArray(given) ? given.join(", ") : given ?? "" });
      controls[param.name] = { control, param };
      const label = param.name.replaceAll("_", " ");
      params.append(param.kind === "boolean" ? h("label", { class: "check", title: param.description }, control, ` ${label}`)
        : field(label, control, param.description));
    }
  };
  builderSelect.addEventListener("change", drawParams);
  // "/keyword cat, kitten", "/regex ^a", "/numeric >= 3", "/empty": the builder, then its first parameters.
  command.addEventListener("change", () => {
    const match = /^\/(\w+)\s*(.*)$/.exec(command.value.trim());
    if (!match || !builders.some((b) => b.builder === match[1])) return;
    builderSelect.value = match[1];
    drawParams();
    const rest = match[2].trim();
    if (match[1] === "keyword" && rest) controls.words.control.value = rest;
    if (match[1] === "regex" && rest) controls.pattern.control.value = rest;
    const comparison = /^(<=|>=|<|>|=|between)\s*(.*)$/.exec(rest);
    if (["numeric", "length"].includes(match[1]) && comparison) {
      controls.op.control.value = comparison[1];
      controls.value.control.value = comparison[2];
    }
    command.value = "";
    command.dispatchEvent(new Event("input", { bubbles: true }));
  });
  drawParams();
  const element = h("div", { class: "pattern" }, field("Field", fieldSelect),
    field("Builder command", command),
    h("small", { id: "builder-help", class: "muted" }, "Type / to pick a builder, e.g. /keyword cat, kitten"),
    h("datalist", { id: "builder-commands" }, builders.map((b) => h("option", { value: `/${b.builder} `, label: b.label }))),
    field("Builder", builderSelect), params);
  element.config = () => {
    const out = { field: fieldSelect.value, builder: builderSelect.value };
    for (const [name, { control, param }] of Object.entries(controls)) {
      if (!params.contains(control)) continue;
      if (param.kind === "boolean") out[name] = control.checked;
      else if (param.kind === "words") out[name] = control.value.split(",").map((w) => w.trim()).filter(Boolean);
      else if (param.kind === "number") {
        const parts = control.value.split(",").map((v) => Number(v.trim()));
        out[name] = out.op === "between" || parts.length > 1 ? parts : parts[0];
      } else out[name] = control.value;
    }
    return out;
  };
  return element;
}

function configEditor(type, config, { catalogue, menu, modelList }) {
  if (type === "similarity_text") {
    const text = h("input", { name: "text", value: config.text || "", placeholder: "a photo of a cat", required: true });
    return Object.assign(h("div", {}, field("Text", text)), { config: () => ({ text: text.value }) });
  }
  if (type === "similarity_image" || type === "similarity_patch") {
    const sample = h("input", { name: "sample_id", type: "number", min: 1, value: config.sample_id || "" });
    const box = h("input", { name: "box", value: (config.box || []).join(", "), placeholder: "x0, y0, x1, y1" });
    return Object.assign(h("div", {}, field("Sample id", sample), type === "similarity_patch" ? field("Box (pixels)", box) : null), {
      config: () => ({ sample_id: Number(sample.value),
                       ...(type === "similarity_patch" ? { box: box.value.split(",").map((v) => Number(v.trim())) } : {}) }),
    });
  }
  if (type === "model") {
    const ready = modelList.filter((m) => m.status === "ready");
    const model = select(ready.map((m) => [m.id, `model ${m.id} v${m.version}`]), config.model_id, { name: "model_id" });
    return Object.assign(h("div", {}, field("Model", model)), { config: () => ({ model_id: Number(model.value) }) });
  }
  // Metadata fields from the dataset's catalogue, then the sample columns a pattern may read too.
  const fields = [...catalogue.map((f) => [f.name, `${f.name} (${f.type})`]),
                  ...menu.builtinFields.map((name) => [name, `${name} (sample column)`])];
  const builders = menu.types.find((t) => t.type === "pattern")?.builders || [];
  return patternEditor(config, fields, builders);
}

function statsTable() {
  const cells = {};
  const row = (side) => h("tr", {}, h("th", { scope: "row" }, side),
    ["threshold", "precision", "recall", "coverage"].map((metric) => {
      cells[`${side}-${metric}`] = h("td", { id: `stat-${side.toLowerCase()}-${metric}` }, "–");
      return cells[`${side}-${metric}`];
    }));
  const total = h("td", { id: "stat-coverage", colspan: 4 }, "–");
  const table = h("table", { class: "stats", "aria-live": "off" },
    h("thead", {}, h("tr", {}, ["votes", "threshold", "precision", "recall", "coverage"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, row("PRESENT"), row("ABSENT"), h("tr", {}, h("th", { scope: "row" }, "either"), total)));
  table.cells = cells;
  table.total = total;
  return table;
}

export async function render(root, { dataset, args, query, go }) {
  const editing = args[0] && args[0] !== "new" ? await lfs.get(dataset.id, Number(args[0])) : null;
  const [menu, catalogue, modelList] = await Promise.all([lfTypes(), fieldCatalogue(dataset.id), modelApi.list(dataset.id)]);
  const initial = editing || {
    type: query.get("type") || "similarity_text", label_class: query.get("class") || dataset.classes[0]?.name,
    config: { text: query.get("text") || "", sample_id: Number(query.get("sample_id")) || undefined,
              box: query.get("box") ? query.get("box").split(",").map(Number) : undefined },
    low: null, high: null, invert: false, active: true, name: "",
  };
  const errors = h("div", { class: "form-errors", role: "alert" });
  const name = h("input", { name: "name", value: initial.name, required: true });
  const labelClass = select(dataset.classes.map((c) => c.name), initial.label_class, { name: "label_class" });
  const type = select(menu.types.map((t) => [t.type, t.label]), initial.type, { name: "type" });
  const split = select([["", "all splits"], ...SPLITS], query.get("split") ?? "dev", { name: "split" });
  const bins = h("input", { name: "bins", type: "number", min: 5, max: 200, value: 40 });
  const invert = h("input", { type: "checkbox", name: "invert", checked: initial.invert });
  const active = h("input", { type: "checkbox", name: "active", checked: initial.active });
  const configArea = h("div", {});
  const typeHint = h("small", { class: "muted", id: "type-help" });
  type.setAttribute("aria-describedby", "type-help");
  let editor = null;
  const drawEditor = (config) => {
    editor = configEditor(type.value, config, { catalogue, menu, modelList });
    typeHint.textContent = menu.types.find((t) => t.type === type.value)?.description || "";
    clear(configArea, editor);
  };
  drawEditor(initial.config || {});

  const intro = "Preview the rule to see its scores, then set its thresholds on the histogram.";
  const chartArea = h("div", { class: "chart-area", id: "histogram-area" }, h("p", { class: "muted" }, intro));
  const saveButton = h("button", { type: "button", class: "primary", id: "save-lf", onclick: save, disabled: true,
                                   "aria-describedby": "save-note" }, editing ? "Save LF" : "Create LF");
  const saveNote = h("small", { class: "muted", id: "save-note" }, "Save waits for a preview of the rule: its thresholds are set on it.");
  const stats = statsTable();
  const suggestions = h("div", { class: "suggestions" });
  const topArea = h("section", { "aria-label": "Top samples" });
  // The thresholds are values (null: off) and edge indices of the preview's histogram (`low`, `high`). One still as
  // saved (`kept`) is shown, figured and saved exactly, even between two edges or beyond the scores; one the user
  // moves takes the bin edge it is on.
  const state = { preview: null, curves: null, low: 0, high: 0, chart: null,
                  lowValue: initial.low ?? null, highValue: initial.high ?? null,
                  kept: { low: (initial.low ?? null) !== null, high: (initial.high ?? null) !== null } };

  const rule = () => ({ labelClass: labelClass.value, type: type.value, config: editor.config(), invert: invert.checked,
                        split: split.value || null, bins: Number(bins.value), top: 24 });
  const keptValues = () => ({ low: state.kept.low ? state.lowValue : null, high: state.kept.high ? state.highValue : null });
  /** Put threshold `which` on edge `index` (0 for low, bins for high: off). */
  const onEdge = (which, index) => {
    state[which] = index;
    state[`${which}Value`] = index === (which === "low" ? 0 : state.curves.bins) ? null : state.curves.edges[index];
    state.kept[which] = false;
  };

  function showStats() {
    const m = thresholdMetrics(state.curves, state.low, state.high, invert.checked);
    const lowSide = invert.checked ? "PRESENT" : "ABSENT";
    let voted = 0;
    for (const side of ["PRESENT", "ABSENT"]) {
      const which = side === lowSide ? "low" : "high";
      // A threshold as saved may lie between edges: its side's figures are the API's for it (`given`).
      const data = state.kept[which] ? state.curves.given[side.toLowerCase()] : m[side.toLowerCase()];
      const threshold = state[`${which}Value`];
      stats.cells[`${side}-threshold`].textContent = threshold === null ? "off"
        : `${which === "low" ? "≤" : "≥"} ${state.kept[which] ? `${threshold} (as saved)` : num(threshold, 4)}`;
      stats.cells[`${side}-precision`].textContent = ratio(data.correct, data.labeled);
      stats.cells[`${side}-recall`].textContent = ratio(data.correct, data.total);
      stats.cells[`${side}-coverage`].textContent = ratio(data.voted, m.population);
      voted += data.voted;
    }
    stats.total.textContent = `coverage ${ratio(voted, m.population)}`;
  }

  function showSuggestions(preview) {
    const entries = [];
    for (const [which, label] of [["high", "High"], ["low", "Low"]]) {
      for (const [kind, text] of [["best_f1", "best F1"], ["best_recall_at_precision", `best recall at precision ≥ ${preview.suggested.min_precision}`]]) {
        const cut = preview.suggested[which]?.[kind];
        if (!cut) continue;
        entries.push(h("li", {}, `${label}: ${num(cut.threshold, 4)} — ${text} (P ${pct(cut.precision)}, R ${pct(cut.recall)}) `,
          h("button", { type: "button", class: "link", "data-suggestion": `${which}-${kind}`, onclick: () => {
            const [low, high] = which === "high" ? snap(state.curves.edges, state.lowValue, cut.threshold)
              : snap(state.curves.edges, cut.threshold, state.highValue);
            if (which === "high" || high !== state.high) onEdge("high", high);
            if (which === "low" || low !== state.low) onEdge("low", low);
            state.chart.setHandles(state.low, state.high, keptValues());
            showStats();
          } }, "Use")));
      }
    }
    clear(suggestions, h("h3", {}, "Suggested thresholds"), entries.length ? h("ul", {}, entries)
      : h("p", { class: "muted" }, "No suggestion: the split has no ground truth for this class."));
  }

  let previewing = 0; // the latest preview asked for: an older answer, or one for a rule changed since, is dropped

  /** No preview (the rule changed, or its preview failed): the chart, figures, suggestions and top samples go, and
   * Save waits for a new one. `forget`: the thresholds go too (they were set for another rule). */
  function dropPreview(message, { forget = false } = {}) {
    previewing += 1;
    Object.assign(state, { preview: null, curves: null, chart: null });
    if (forget) Object.assign(state, { lowValue: null, highValue: null, kept: { low: false, high: false } });
    clear(chartArea, message);
    [...Object.values(stats.cells), stats.total].forEach((cell) => { cell.textContent = "–"; });
    clear(suggestions);
    clear(topArea);
    delete root.dataset.state;
    saveButton.disabled = true;
    saveNote.hidden = false;
  }
  // What the preview shown (or asked for) scored: an input that leaves it as it was (a key that changes nothing, an
  // edit undone) keeps the preview; another config keeps the thresholds, another class or type drops them too.
  let previewed = null;
  const scored = () => ({ labelClass: labelClass.value, type: type.value, config: JSON.stringify(editor.config()) });
  const ruleChanged = () => {
    const now = scored();
    const same = previewed && ["labelClass", "type", "config"].every((key) => previewed[key] === now[key]);
    if (same && (state.preview || root.dataset.state === "loading")) return;
    const forget = !previewed || previewed.labelClass !== now.labelClass || previewed.type !== now.type;
    dropPreview(h("p", { class: "muted" }, state.preview || root.dataset.state === "loading"
      ? "The rule changed since its preview: preview it again to set its thresholds." : intro), { forget });
  };

  async function preview() {
    clear(errors);
    const asked = ++previewing;
    previewed = scored();
    root.dataset.state = "loading";
    saveButton.disabled = true; // until this preview is in (an invert re-previews a rule already shown)
    const result = await attempt(() => lfs.preview(dataset.id, { ...rule(), ...keptValues() }), errors);
    if (asked !== previewing) return; // the rule changed, or another preview was asked for, meanwhile
    const curves = result && thresholdCurves(result);
    if (!curves) {
      dropPreview(h("p", { class: "error" }, result ? "This server's preview carries no histogram by ground truth."
        : "No preview: the rule could not be scored (see the error). Save waits for a preview that succeeds."));
      root.dataset.state = "error";
      return;
    }
    state.preview = result;
    state.curves = curves;
    const edges = result.histogram.edges;
    const suggestedHigh = result.suggested?.high?.best_f1?.threshold;
    const suggestedLow = result.suggested?.low?.best_f1?.threshold;
    const fresh = state.lowValue === null && state.highValue === null;
    [state.low, state.high] = fresh
      ? snap(edges, suggestedLow ?? edges[Math.round(edges.length / 4)], suggestedHigh ?? edges[Math.round((3 * edges.length) / 4)])
      : snap(edges, state.lowValue, state.highValue);
    for (const which of ["low", "high"]) if (!state.kept[which]) onEdge(which, state[which]);
    state.chart = histogramChart({ edges, counts: result.histogram.counts, low: state.low, high: state.high,
                                   invert: invert.checked, values: keptValues(),
                                   onMove: (low, high, which) => { onEdge(which, which === "low" ? low : high); showStats(); } });
    clear(chartArea, h("p", { class: "muted" }, `${result.population} samples scored${result.encoder ? ` with ${result.encoder}` : ""}`
      + ` in ${num(result.seconds, 3)} s. Green: ground truth PRESENT, red: ABSENT, grey: unlabeled.`), state.chart,
          result.message ? h("p", { class: "muted" }, result.message) : null,
          result.not_numbers ? h("p", { class: "error", role: "status" },
                                 `${result.not_numbers} values of this field are not numbers: a numeric rule misses them.`) : null);
    showStats();
    showSuggestions(result);
    const strip = thumbnailStrip(dataset, result.top.map((t) => [t.sample_id, `${num(t.score)} · ${t.ground_truth}`]));
    clear(topArea, h("h3", {}, "Top samples"), h("ul", { class: "strip" }, strip));
    saveButton.disabled = false;
    saveNote.hidden = true;
    root.dataset.state = "ready";
  }

  async function save() {
    clear(errors);
    if (!state.preview) return clear(errors, "Preview the rule first, then set its thresholds.");
    const body = { ...rule(), name: name.value, active: active.checked, low: state.lowValue, high: state.highValue };
    delete body.split;
    delete body.bins;
    delete body.top;
    try {
      const saved = editing ? await lfs.update(dataset.id, editing.id, body, editing.version) : await lfs.create(dataset.id, body);
      announce(`LF "${saved.name}" ${editing ? "saved" : "created"}: ${saved.votes.present} PRESENT, ${saved.votes.absent} ABSENT votes.`);
      go(`/d/${dataset.id}/lfs`);
    } catch (error) {
      clear(errors, error.isVersionConflict ? `Not saved: someone changed this LF since you opened it. ${error.message}` : error.message);
    }
  }

  invert.addEventListener("change", () => { if (state.preview) preview(); });
  // The class, the type or the config changed: the preview and its thresholds were another rule's.
  labelClass.addEventListener("change", ruleChanged);
  type.addEventListener("change", () => { drawEditor({}); ruleChanged(); });
  configArea.addEventListener("input", ruleChanged);
  configArea.addEventListener("change", ruleChanged);
  // Enter (or Ctrl + Enter) in the form previews; only the button creates or saves.
  const form = h("form", { class: "composer-form", novalidate: true, onsubmit: (event) => { event.preventDefault(); preview(); },
                           onkeydown: (event) => { if (event.ctrlKey && event.key === "Enter") { event.preventDefault(); preview(); } } },
    field("Name", name), field("Class", labelClass), field("Type", type), typeHint, configArea,
    h("div", { class: "row" }, field("Preview on", split), field("Bins", bins)),
    h("button", { type: "submit", class: "primary" }, "Preview"),
    h("label", { class: "check" }, active, " Active (votes count in training sets)"),
    saveButton, saveNote, errors);

  clear(root, h("h1", {}, editing ? `Edit LF ${editing.name}` : "New labeling function"),
    h("div", { class: "composer" }, form,
      h("div", { class: "composer-chart" }, chartArea,
        h("label", { class: "check" }, invert, " Invert (high scores vote ABSENT, low scores PRESENT)"),
        stats, suggestions, topArea)));
  if (editing || (initial.type !== "similarity_text" && initial.config.sample_id) || initial.config.text) preview();
  return {
    shortcuts: SHORTCUTS,
    onKey(event) {
      if (event.ctrlKey && event.key === "Enter") { event.preventDefault(); preview(); }
    },
  };
}

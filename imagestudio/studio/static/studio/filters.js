// The samples filter shared by the grid and the data view. It lives in the route's query string, so a filtered
// view is a link (the analysis pane opens the grid with a guidance filter this way).

import { MULTI_VALUED, SPLITS, lfs, models, tags } from "./api.js";
import { field, h, select } from "./ui.js";

export const FILTER_KEYS = ["split", "tag", "search", "gt", "lf_vote", "lf_conflict", "prediction", "in_sample", "ids"];
const GT_WORDS = ["PRESENT", "ABSENT", "ABSTAIN", "LABELED"];
const PREDICTION_WORDS = ["PRESENT", "ABSENT", "TP", "FP", "FN", "TN"];

/** The filter object of a route query: {split, tag: [], gt: [], ...}. */
export function filterFromQuery(query) {
  const filter = {};
  for (const key of FILTER_KEYS) {
    const values = query.getAll(key).flatMap((value) => (MULTI_VALUED.has(key) ? value.split(",") : [value]))
      .filter(Boolean);
    if (!values.length) continue;
    filter[key] = MULTI_VALUED.has(key) ? values : values[0];
  }
  if (filter.in_sample) filter.in_sample = filter.in_sample === "true";
  return filter;
}

/** A route query string for a filter plus view options (limit, ordering, fields...). */
export function queryString(filter, options = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...filter, ...options })) {
    if (value === undefined || value === null || value === "" || value === false) continue;
    if (Array.isArray(value)) value.forEach((item) => params.append(key, item));
    else params.set(key, value === true ? "true" : value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** What the filter bar offers: the dataset's tags, LFs and models. */
export async function filterSources(datasetId) {
  const [tagList, lfList, modelList] = await Promise.all([tags.list(datasetId), lfs.list(datasetId), models.list(datasetId)]);
  return { tags: tagList, lfs: lfList, models: modelList };
}

const PAGE_SIZES = [25, 50, 100, 200, 500];

/** A page token of the route for the API's next link, which names `after` (keyset) or `offset`. */
function tokenOf(url) {
  if (!url) return null;
  const params = new URL(url).searchParams;
  if (params.has("after")) return `a${params.get("after")}`;
  return params.has("offset") ? `o${params.get("offset")}` : null;
}

/**
 * Paging through a samples list in the route: `page` is this page's token, `trail` the tokens of the pages
 * before it ("-" for the first), so Previous needs no request. `params` are the list request's paging options.
 */
export function paging(query) {
  const token = query.get("page") || "";
  const trail = (query.get("trail") || "").split(",").filter(Boolean);
  const params = !token ? {} : token.startsWith("a") ? { after: Number(token.slice(1)) } : { offset: Number(token.slice(1)) };
  return { token, trail, params };
}

/** Page size, Previous, Next and the count; `onRoute(options)` gets the route options of the page asked for. */
export function pagerControls({ state, page, limit, onRoute }) {
  const next = tokenOf(page.next);
  const previous = state.trail.at(-1);
  return [
    field("Page size", select(PAGE_SIZES, limit, { name: "limit", onchange: (e) => onRoute({ limit: e.target.value }) })),
    h("button", { type: "button", disabled: !state.trail.length, onclick: () => onRoute({
      page: previous === "-" ? "" : previous, trail: state.trail.slice(0, -1).join(",") }) }, "Previous"),
    h("button", { type: "button", disabled: !next, onclick: () => onRoute({
      page: next, trail: [...state.trail, state.token || "-"].join(",") }) }, "Next"),
    h("span", { class: "muted" }, `${page.count}${page.countExact === false ? "+" : ""} samples`),
  ];
}

function conditionOf(values, prefix) {
  return (values || []).find((value) => value.startsWith(prefix));
}

/**
 * The filter bar. `onChange(filter)` gets a new filter object. Conditions the controls do not show (a second
 * LF vote from an analysis link, explicit ids) are listed as removable chips, so nothing filters unseen.
 */
export function filterBar({ filter, dataset, tags, lfs, models, onChange }) {
  const classes = dataset.classes.map((c) => c.name);
  const set = (key, value) => onChange({ ...filter, [key]: value });
  const replaceCondition = (key, prefix, value) => {
    const rest = (filter[key] || []).filter((item) => !item.startsWith(prefix));
    onChange({ ...filter, [key]: value ? [...rest, value] : rest });
  };
  const shown = new Set();
  const controls = [];

  controls.push(field("Split", select([["", "all"], ...SPLITS], filter.split || "",
                                      { name: "split", onchange: (e) => set("split", e.target.value) })));
  for (const name of classes) {
    const current = conditionOf(filter.gt, `${name}:`);
    if (current) shown.add(`gt=${current}`);
    controls.push(field(`Ground truth: ${name}`, select([["", "any"], ...GT_WORDS], current ? current.split(":").pop() : "", {
      name: `gt-${name}`, onchange: (e) => replaceCondition("gt", `${name}:`, e.target.value && `${name}:${e.target.value}`),
    })));
  }
  const tag = (filter.tag || [])[0] || "";
  if (tag) shown.add(`tag=${tag}`);
  controls.push(field("Tag", select([["", "any"], ...tags.map((t) => [t.name, `${t.name} (${t.sample_count})`])], tag,
                                    { name: "tag", onchange: (e) => set("tag", e.target.value ? [e.target.value] : []) })));
  const search = h("input", { type: "search", name: "search", value: filter.search || "", placeholder: "metadata, id, file",
                              onchange: (e) => set("search", e.target.value) });
  controls.push(field("Search", search));

  const vote = (filter.lf_vote || [])[0] || "";
  if (vote) shown.add(`lf_vote=${vote}`);
  const [voteLf, voteWord] = vote ? vote.split(":") : ["", "PRESENT"];
  const lfSelect = select([["", "any"], ...lfs.map((lf) => [lf.id, `${lf.name} (${lf.label_class})`])], voteLf, { name: "lf" });
  const wordSelect = select(["PRESENT", "ABSENT", "ABSTAIN"], voteWord, { name: "lf-vote" });
  const applyVote = () => set("lf_vote", lfSelect.value ? [`${lfSelect.value}:${wordSelect.value}`, ...(filter.lf_vote || []).slice(1)]
    : (filter.lf_vote || []).slice(1));
  lfSelect.addEventListener("change", applyVote);
  wordSelect.addEventListener("change", applyVote);
  controls.push(h("div", { class: "pair" }, field("LF", lfSelect), field("votes", wordSelect)));

  const conflict = (filter.lf_conflict || [])[0] || "";
  if (conflict) shown.add(`lf_conflict=${conflict}`);
  controls.push(field("LF conflicts on", select([["", "none"], ...classes], conflict, {
    name: "lf_conflict", onchange: (e) => set("lf_conflict", e.target.value ? [e.target.value] : []) })));

  const prediction = (filter.prediction || [])[0] || "";
  if (prediction) shown.add(`prediction=${prediction}`);
  const [pModel, pClass, pWord] = prediction ? prediction.split(":") : ["", classes[0] || "", "FP"];
  const modelSelect = select([["", "none"], ...models.filter((m) => m.status === "ready").map((m) => [m.id, `model ${m.id}`])],
                             pModel, { name: "prediction-model" });
  const classSelect = select(classes, pClass, { name: "prediction-class" });
  const bucketSelect = select(PREDICTION_WORDS, pWord, { name: "prediction-bucket" });
  const applyPrediction = () => set("prediction", modelSelect.value
    ? [`${modelSelect.value}:${classSelect.value}:${bucketSelect.value}`] : []);
  [modelSelect, classSelect, bucketSelect].forEach((control) => control.addEventListener("change", applyPrediction));
  controls.push(h("div", { class: "pair" }, field("Prediction of", modelSelect), field("class", classSelect),
                  field("bucket", bucketSelect)));

  controls.push(h("label", { class: "check" }, h("input", {
    type: "checkbox", name: "in_sample", checked: Boolean(filter.in_sample),
    onchange: (e) => set("in_sample", e.target.checked),
  }), " In the resample only"));

  const chips = [];
  if (filter.ids?.length) {
    chips.push(h("span", { class: "chip" }, `${filter.ids.length} chosen samples`, h("button", {
      type: "button", class: "link", "aria-label": "Remove the chosen samples", onclick: () => set("ids", []),
    }, "×")));
  }
  for (const key of FILTER_KEYS.filter((k) => MULTI_VALUED.has(k) && k !== "ids")) {
    for (const value of filter[key] || []) {
      if (shown.has(`${key}=${value}`)) continue;
      const label = `${key} ${value}`;
      chips.push(h("span", { class: "chip" }, label, h("button", {
        type: "button", class: "link", "aria-label": `Remove ${label}`,
        onclick: () => set(key, filter[key].filter((item) => item !== value)),
      }, "×")));
    }
  }
  return h("form", { class: "filters", role: "search", "aria-label": "Sample filters",
                     onsubmit: (e) => { e.preventDefault(); set("search", search.value); } },
           controls, chips.length ? h("div", { class: "chips" }, chips) : null,
           h("button", { type: "button", class: "link", onclick: () => onChange({}) }, "Clear filters"));
}

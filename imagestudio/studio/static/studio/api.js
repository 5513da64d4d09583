// Every call the studio makes to the Image Studio REST API, as a third party would make them (public API only).
// Nothing else in the studio calls fetch() or knows a path or a status code of the API; the payload shapes that
// move (image URLs, threshold curves, catalogues, list envelopes, version conflicts) are adapted here too, so a
// change of the API is adapted in one place.

const TOKEN_KEY = "imagestudio.token";
const BASE_KEY = "imagestudio.api";
const JOB_WAIT_SECONDS = 20;
const JOB_RETRY_MS = 250; // between long polls that came back with no change
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

let unauthorizedHandler = () => {};

export class ApiError extends Error {
  /** An answer of the API other than 2xx; `message` is the API's own text (detail or field messages). */
  constructor(status, body, fallback) {
    super(errorText(body) || fallback);
    this.status = status;
    this.body = body;
  }

  /** A stale version: 409 today, 412 (RFC 9110) once If-Match mismatches answer that. */
  get isVersionConflict() {
    return this.status === 412 || (this.status === 409 && this.body?.code === "version_conflict");
  }
}

/** DRF's error shapes as one line: {"detail"} or {field: [messages]} (nested: "filter.gt: ..."). */
export function errorText(body, prefix = "") {
  if (body == null) return "";
  if (typeof body === "string") return prefix ? `${prefix}: ${body}` : body;
  if (Array.isArray(body)) {
    const parts = body.map((item) => errorText(item)).filter(Boolean);
    return parts.length ? (prefix ? `${prefix}: ${parts.join(" ")}` : parts.join(" ")) : "";
  }
  if (typeof body.detail === "string") return prefix ? `${prefix}: ${body.detail}` : body.detail;
  return Object.entries(body)
    .filter(([key]) => key !== "code")
    .map(([key, value]) => errorText(value, prefix ? `${prefix}.${key}` : key === "non_field_errors" ? "" : key))
    .join("; ");
}

// ------------------------------------------------------------------------------------------ session

function defaultBase() {
  const meta = document.querySelector('meta[name="imagestudio-api"]');
  return meta ? meta.content : "/api/";
}

export function apiBase() {
  return sessionStorage.getItem(BASE_KEY) || defaultBase();
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/** Point the studio at an API (this origin's by default) and remember it for this browser tab. */
export function setApiBase(base) {
  const clean = (base || "").trim();
  if (!clean || clean === defaultBase()) sessionStorage.removeItem(BASE_KEY);
  else sessionStorage.setItem(BASE_KEY, clean.endsWith("/") ? clean : `${clean}/`);
}

/** Check a pasted token by one authenticated read, then keep it for this tab (sessionStorage). */
export async function useToken(key) {
  const clean = (key || "").trim();
  await request("GET", "datasets/", { query: { limit: 1 }, token: clean, quiet: true });
  sessionStorage.setItem(TOKEN_KEY, clean);
}

export async function signIn(username, password) {
  const body = await request("POST", "auth/token/", { json: { username, password }, token: null, quiet: true });
  sessionStorage.setItem(TOKEN_KEY, body.token);
}

/** Revoke the token on the server and forget it here. Resolves null, or the error when the server did not revoke
 * it (unreachable, failing): forgotten here all the same, the token then stays valid on the server. */
export async function signOut() {
  let failure = null;
  if (token()) {
    failure = await request("POST", "auth/logout/", { quiet: true })
      .then(() => null, (error) => (error.status === 401 ? null : error)); // 401: no longer valid anyway
  }
  sessionStorage.removeItem(TOKEN_KEY);
  return failure;
}

/** Forget a token the server refused (it cannot be used to revoke itself). */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// ------------------------------------------------------------------------------------------ transport

/** An absolute URL for a path under the API (`datasets/1/`), a site path the API returned (`/api/...`) or a URL. */
export function apiUrl(path, query) {
  const base = new URL(apiBase(), window.location.href);
  const url = new URL(path, base);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null) continue; // "" is sent: `fields=` asks for no metadata
    if (Array.isArray(value)) value.forEach((item) => url.searchParams.append(key, item));
    else url.searchParams.set(key, value);
  }
  return url.toString();
}

async function send(method, path, { json, form, query, headers = {}, token: key = token() } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (key) init.headers.Authorization = `Token ${key}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(apiUrl(path, query), init);
  } catch (error) {
    throw new ApiError(0, null, `The API at ${apiBase()} cannot be reached (${error.message}).`);
  }
  return response;
}

async function bodyOf(response) {
  const type = response.headers.get("Content-Type") || "";
  if (response.status === 204) return null;
  if (type.includes("json")) return response.json().catch(() => null);
  return response.text();
}

async function request(method, path, options = {}) {
  const response = await send(method, path, options);
  const body = await bodyOf(response);
  if (!response.ok) {
    const error = new ApiError(response.status, body, `${method} ${path} answered ${response.status}.`);
    if (response.status === 401 && !options.quiet) unauthorizedHandler(error);
    throw error;
  }
  return options.withResponse ? { body, response } : body;
}

/** A list answer as {count, next, previous, results}, whatever shape this server gives (array or page). */
export function asPage(body) {
  if (Array.isArray(body)) return { count: body.length, next: null, previous: null, results: body };
  return { count: body.count ?? body.results.length, next: body.next ?? null, previous: body.previous ?? null,
           results: body.results, countExact: body.count_exact ?? true };
}

async function list(path, query) {
  return asPage(await request("GET", path, { query }));
}

/** Every item of a list, page after page (for short lists: classes, LFs, models, tags). */
async function all(path, query = {}) {
  let page = await list(path, { limit: 500, ...query });
  const items = [...page.results];
  while (page.next && items.length < 10_000) {
    page = asPage(await request("GET", page.next));
    items.push(...page.results);
  }
  return items;
}

// ------------------------------------------------------------------------------------------ jobs

/**
 * A job (the 202 body) followed until it finishes; `onUpdate(job)` sees every state on the way. Each read is a
 * long poll (`?wait=&since=`): the server answers as soon as the job changes.
 */
export async function followJob(job, onUpdate = () => {}) {
  let current = job;
  onUpdate(current);
  while (!FINISHED.has(current.status)) {
    const next = await request("GET", current.url, { query: { wait: JOB_WAIT_SECONDS, since: current.updated_at } });
    if (next.updated_at === current.updated_at) await new Promise((resolve) => setTimeout(resolve, JOB_RETRY_MS));
    current = next;
    onUpdate(current);
  }
  return current;
}

export const jobs = {
  cancel: (job) => request("POST", `jobs/${job.id}/cancel/`),
};

// ------------------------------------------------------------------------------------------ datasets

export const datasets = {
  list: () => all("datasets/"),
  get: (id) => request("GET", `datasets/${id}/`),
  create: ({ name, description, classes, autoEmbed }) =>
    request("POST", "datasets/", { json: { name, description, classes, auto_embed: autoEmbed } }),
  update: (id, { autoTrain, autoEmbed, name, description }) => request("PATCH", `datasets/${id}/`, {
    json: Object.fromEntries(Object.entries({ auto_train: autoTrain, auto_embed: autoEmbed, name, description })
      .filter(([, value]) => value !== undefined)),
  }),
  addClass: (id, name) => request("POST", `datasets/${id}/classes/`, { json: { name } }),
  /** Upload images (several files) or one archive; answers the import job. */
  importFiles: (id, { files, archive, split }) => {
    const form = new FormData();
    if (archive) form.append("archive", archive);
    for (const file of files || []) form.append("files", file);
    form.append("split", split);
    return request("POST", `datasets/${id}/imports/`, { form });
  },
  embeddings: (id) => all(`datasets/${id}/embeddings/`),
  computeEmbeddings: (id) => request("POST", `datasets/${id}/embeddings/`, { json: {} }),
  resources: (id) => all(`datasets/${id}/resources/`),
  allocate: (id) => request("POST", `datasets/${id}/resources/`, { json: {} }),
  release: (id) => request("DELETE", `datasets/${id}/resources/`),
  resample: (id, params) => request("POST", `datasets/${id}/samples/resample/`, { json: params }),
  analysis: (id, { labelClass, split }) =>
    request("GET", `datasets/${id}/analysis/`, { query: { label_class: labelClass || undefined, split: split || undefined } }),
};

/** The metadata field catalogue: [{name, type, fillRate, distinct, examples}] (`GET datasets/{id}/fields/`). */
export async function fieldCatalogue(datasetId) {
  const fields = await all(`datasets/${datasetId}/fields/`);
  return fields.map((field) => ({ name: field.name, type: field.type, fillRate: field.fill_rate,
                                  distinct: field.distinct, examples: field.examples }));
}

// ------------------------------------------------------------------------------------------ samples

/** The grid's filter (an object of query parameters: split, gt, tag, search, lf_vote, ...) as list params. */
function filterQuery(filter) {
  const query = {};
  for (const [key, value] of Object.entries(filter || {})) {
    if (value === undefined || value === null || value === "" || value === false) continue;
    if (Array.isArray(value) && !value.length) continue;
    query[key] = value === true ? "true" : value;
  }
  return query;
}

/** The filter a samples-list URL of the API names (an analysis guidance link), as the grid's filter object. */
export function filterFromSamplesUrl(url) {
  const params = new URL(url, apiUrl("")).searchParams;
  const filter = {};
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key);
    filter[key] = MULTI_VALUED.has(key) ? values : values[0];
  }
  return filter;
}

export const MULTI_VALUED = new Set(["tag", "gt", "lf_vote", "prediction", "lf_conflict", "ids"]);
export const SAMPLE_ORDERINGS = ["id", "external_id", "created_at", "width", "height", "bytes", "split"];
export const SPLITS = ["train", "dev", "valid", "test"];
export const VALUES = ["PRESENT", "ABSENT", "ABSTAIN"];

export const samples = {
  /** One page: {count, countExact, next, previous, results}; `after`/`offset` page, `fields` picks metadata. */
  list: (datasetId, filter, { limit = 50, after, offset, ordering, fields } = {}) =>
    list(`datasets/${datasetId}/samples/`, { ...filterQuery(filter), limit, after, offset, ordering,
                                             fields: fields === undefined ? undefined : fields.join(",") }),
  page: (url) => request("GET", url).then(asPage),
  /** The payloads of these samples (for their image URLs), in the order given. */
  byIds: async (datasetId, ids) => {
    if (!ids.length) return [];
    const page = await samples.list(datasetId, { ids }, { limit: Math.min(ids.length, 500), fields: [] });
    const byId = new Map(page.results.map((sample) => [sample.id, sample]));
    return ids.map((id) => byId.get(id)).filter(Boolean);
  },
  get: (datasetId, sampleId, { model } = {}) =>
    request("GET", `datasets/${datasetId}/samples/${sampleId}/`, { query: { model: model || undefined } }),
  update: (datasetId, sampleId, changes) =>
    request("PATCH", `datasets/${datasetId}/samples/${sampleId}/`, { json: changes }),
  similar: (datasetId, { sampleId, box, text, split, limit = 24 }) =>
    request("POST", `datasets/${datasetId}/embeddings/search/`, {
      json: Object.fromEntries(Object.entries({ sample_id: sampleId, box, text, split, limit })
        .filter(([, value]) => value !== undefined && value !== null && value !== "")),
    }),
  comment: (datasetId, sampleId, body) =>
    request("POST", `datasets/${datasetId}/samples/${sampleId}/comments/`, { json: { body } }),
};

/** A sample's ground truth per class name: {circle: "PRESENT", ...} (ABSTAIN is absent from the map). */
export function groundTruth(sample) {
  return sample.ground_truth || {};
}

/** Per class, the label and its version from the image view's payload: {name: {value, version}}. */
export function labelVersions(detail) {
  const out = {};
  for (const entry of detail.annotations || []) out[entry.class_name] = { value: entry.value, version: entry.version };
  return out;
}

/**
 * What an <img src> needs to show a sample's image (`size` "image") or thumbnail ("thumbnail"): the payload's
 * signed URL, which carries its own credential (no token: the browser loads and caches it like any image).
 */
export function imageSrc(sample, size = "thumbnail") {
  return apiUrl(sample[`${size}_url`]);
}

// ------------------------------------------------------------------------------------------ annotations, tags

export const annotations = {
  /** Set one label, refused (error.isVersionConflict) when it changed since `version`. */
  set: (datasetId, { sample, labelClass, value, version }) =>
    request("PUT", `datasets/${datasetId}/annotations/`, {
      json: { sample, label_class: labelClass, value },
      headers: version === undefined ? {} : { "If-Match": `"${version}"` },
    }),
  bulk: (datasetId, { sampleIds, filter, classes, value }) =>
    request("POST", `datasets/${datasetId}/annotations/bulk/`, {
      json: sampleIds ? { sample_ids: sampleIds, classes, value } : { filter: filterQuery(filter), classes, value },
    }),
  undo: (datasetId) => request("POST", `datasets/${datasetId}/annotations/bulk/undo/`),
  history: (datasetId, sampleId) => list(`datasets/${datasetId}/annotations/history/`, { sample: sampleId, limit: 20 }),
};

export const tags = {
  list: (datasetId) => all(`datasets/${datasetId}/tags/`),
  create: (datasetId, name) => request("POST", `datasets/${datasetId}/tags/`, { json: { name } }),
  apply: (datasetId, tagId, sampleIds) =>
    request("POST", `datasets/${datasetId}/tags/${tagId}/apply/`, { json: { sample_ids: sampleIds } }),
  remove: (datasetId, tagId, sampleIds) =>
    request("POST", `datasets/${datasetId}/tags/${tagId}/remove/`, { json: { sample_ids: sampleIds } }),
};

// ------------------------------------------------------------------------------------------ labeling functions

export const lfs = {
  list: (datasetId) => all(`datasets/${datasetId}/lfs/`),
  get: (datasetId, id) => request("GET", `datasets/${datasetId}/lfs/${id}/`),
  create: (datasetId, rule) => request("POST", `datasets/${datasetId}/lfs/`, { json: ruleBody(rule) }),
  update: (datasetId, id, rule, version) => request("PATCH", `datasets/${datasetId}/lfs/${id}/`, {
    json: ruleBody(rule), headers: version === undefined ? {} : { "If-Match": `"${version}"` },
  }),
  remove: (datasetId, id) => request("DELETE", `datasets/${datasetId}/lfs/${id}/`),
  summary: (datasetId, { split, labelClass } = {}) =>
    request("GET", `datasets/${datasetId}/lfs/summary/`, { query: { split: split || undefined,
                                                                   label_class: labelClass || undefined } }),
  preview,
};

function ruleBody(rule) {
  const body = {};
  const names = { labelClass: "label_class", type: "type", config: "config", low: "low", high: "high",
                  invert: "invert", name: "name", active: "active", split: "split", bins: "bins", top: "top" };
  for (const [key, name] of Object.entries(names)) if (rule[key] !== undefined) body[name] = rule[key];
  return body;
}

/** Score a rule on a split without saving it: histogram by ground truth, the threshold sweep, suggestions, top
 * samples. The sweep gives every edge's figures; thresholds (`low`, `high`) are sent only for figures at a value
 * between edges (an LF's threshold as saved): see `given` in thresholdCurves. */
function preview(datasetId, rule) {
  return request("POST", `datasets/${datasetId}/lfs/preview/`, { json: ruleBody(rule) });
}

/**
 * What the histogram's thresholds need to move without a request, from the preview's sweep: per side ("present",
 * "absent"), at every bin edge j, the samples its rule votes on (`voted`), the labeled ones among them
 * (`labeled`), those whose ground truth is that side (`correct`), and the side's ground-truth total (`total`).
 * A threshold on edge j has exactly these figures (the API's own); `given` has them at the thresholds sent with the
 * preview. Null for a preview without a sweep.
 */
export function thresholdCurves(preview) {
  const sweep = preview?.sweep;
  if (!sweep || !preview.histogram?.edges) return null;
  const side = (name) => {
    const rule = sweep[name];
    const total = preview.metrics[name].recall.trials; // the population's samples whose ground truth is this side
    return rule.votes.map((voted, j) => ({ voted, labeled: rule.labeled[j], correct: rule.correct[j], total }));
  };
  // The same figures at the thresholds the preview was sent (a side without one votes on nothing).
  const given = (name) => ({ voted: preview.metrics.votes[name], labeled: preview.metrics[name].precision.trials,
                             correct: preview.metrics[name].precision.successes, total: preview.metrics[name].recall.trials });
  return { edges: preview.histogram.edges, bins: preview.histogram.edges.length - 1, population: preview.population,
           present: side("present"), absent: side("absent"), given: { present: given("present"), absent: given("absent") } };
}

/**
 * The composer's menu from `GET lf-types/`: {types: [{type, label, description, builders}], builtinFields}, where
 * a pattern builder's params come from its config's JSON Schema (everything but `field` and `builder`).
 */
export async function lfTypes() {
  const catalogue = await request("GET", "lf-types/");
  const builders = catalogue.builders.map((entry) => ({
    builder: entry.builder, label: entry.title, description: entry.description,
    params: schemaParams(entry.config_schema, ["field", "builder"]),
  }));
  return {
    builtinFields: catalogue.builtin_fields || [],
    types: catalogue.types.map((entry) => ({ type: entry.type, label: entry.title, description: entry.description,
                                             builders: entry.type === "pattern" ? builders : undefined })),
  };
}

/** A JSON Schema object's properties as editor params: {name, kind, choices, default, description}. */
function schemaParams(schema, skip) {
  return Object.entries(schema.properties || {}).filter(([name]) => !skip.includes(name)).map(([name, property]) => {
    const kind = property.enum ? "choice" : property.type === "boolean" ? "boolean"
      : property.type === "array" ? "words" : property.type === "string" ? "text" : "number";
    return { name, kind, choices: property.enum?.filter((value) => value !== null), default: property.default,
             description: property.description || "" };
  });
}

// ------------------------------------------------------------------------------------------ training, models

export const trainingSets = {
  list: (datasetId) => all(`datasets/${datasetId}/training-sets/`),
  /** {job} while it is built, or {trainingSet} when the same inputs were built before. */
  build: async (datasetId, { splits, seed }) => {
    const { body, response } = await request("POST", `datasets/${datasetId}/training-sets/`,
                                             { json: { splits, seed }, withResponse: true });
    return response.status === 202 ? { job: body } : { trainingSet: body };
  },
  labels: (datasetId, id, { split, limit = 50, offset = 0 } = {}) =>
    list(`datasets/${datasetId}/training-sets/${id}/labels/`, { split: split || undefined, limit, offset }),
};

export const models = {
  list: (datasetId) => all(`datasets/${datasetId}/models/`),
  train: (datasetId, { classes, negativeRatio, labelSource, trainingSet }) =>
    request("POST", `datasets/${datasetId}/models/`, {
      json: Object.fromEntries(Object.entries({ classes, negative_ratio: negativeRatio, label_source: labelSource,
                                                training_set: trainingSet })
        .filter(([, value]) => value !== undefined && value !== null && value !== "")),
    }),
  predictions: (datasetId, id, { labelClass, limit = 500, offset = 0 }) =>
    list(`datasets/${datasetId}/models/${id}/predictions/`, { label_class: labelClass, limit, offset }),
};

/** A model's metrics on valid for one class: {precision, recall, f1, prAuc, rocAuc, confusion, ceilingF1, trainedOn,
 * targets ("labels" or "probabilities": what the regression fitted)}. */
export function classMetrics(model, className) {
  const entry = model.metrics?.[className];
  if (!entry) return null;
  const valid = entry.valid || {};
  return {
    precision: valid.precision ?? null, recall: valid.recall ?? null, f1: valid.f1 ?? null,
    prAuc: valid.pr_auc ?? null, rocAuc: valid.roc_auc ?? null, labeled: valid.labeled ?? null,
    confusion: valid.confusion || null, ceilingF1: entry.ceiling?.valid?.f1 ?? null, trainedOn: entry.trained_on || null,
    targets: entry.targets ?? null,
  };
}

/**
 * Per class name, a model's charts on a split, against the current ground truth: {reason, pr: [{x: recall,
 * y: precision}], roc: [{x: fpr, y: recall}], figures} where figures has the shape of classMetrics' precision,
 * recall, f1, prAuc, rocAuc, labeled and confusion (at the model's threshold).
 */
export async function modelCharts(datasetId, modelId, { split = "valid", points = 101 } = {}) {
  const charts = await request("GET", `datasets/${datasetId}/models/${modelId}/charts/`, { query: { split, points } });
  const ratio = (part, whole) => (whole ? part / whole : null);
  const out = {};
  for (const entry of charts.classes) {
    const { precision, recall, fpr } = entry.curve;
    const { tp, fp, fn } = entry.confusion;
    const [p, r] = [ratio(tp, tp + fp), ratio(tp, tp + fn)];
    out[entry.label_class] = {
      reason: entry.reason || "",
      pr: recall ? recall.map((value, k) => ({ x: value, y: precision[k] })) : [],
      roc: recall && fpr ? [{ x: 0, y: 0 }, ...fpr.map((f, k) => ({ x: f, y: recall[k] }))] : [],
      figures: { precision: p, recall: r, f1: p === null || r === null ? null : p + r ? (2 * p * r) / (p + r) : 0,
                 prAuc: entry.pr_auc, rocAuc: entry.roc_auc, labeled: entry.labeled, confusion: entry.confusion },
    };
  }
  return out;
}

// ------------------------------------------------------------------------------------------ exports

export const SAMPLE_COLUMNS = ["id", "external_id", "file_name", "split", "width", "height", "format", "bytes",
                               "sha256", "created_at"];

export const exports_ = {
  list: (datasetId) => all(`datasets/${datasetId}/exports/`),
  create: (datasetId, params) => request("POST", `datasets/${datasetId}/exports/`, {
    json: Object.fromEntries(Object.entries(params).filter(([, value]) => value !== undefined && value !== null && value !== "")),
  }),
  /** The export a finished export job wrote. */
  ofJob: (datasetId, job) => request("GET", `datasets/${datasetId}/exports/${job.result.export}/`),
  /** The CSV as {blob, filename}, fetched with the token. */
  download: async (exportRecord) => {
    const response = await send("GET", exportRecord.download_url, { headers: { Accept: "*/*" } });
    if (!response.ok) throw new ApiError(response.status, await bodyOf(response), `Download ${response.status}.`);
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = /filename="?([^";]+)"?/.exec(disposition);
    return { blob: await response.blob(), filename: named ? named[1] : `export-${exportRecord.id}.csv` };
  },
};

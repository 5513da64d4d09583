// Every call the studio makes to the Image Studio REST API, as a third party would make them (public API only).
// Nothing else in the studio calls fetch() or knows a path or a status code of the API; the payload shapes that
// move (image URLs, threshold curves, catalogues, list envelopes, version conflicts) are adapted here too, so a
// change of the API is adapted in one place.

const TOKEN_KEY = "imagestudio.token";
const BASE_KEY = "imagestudio.api";
const JOB_POLL_MS = 400;
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

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  imageCache.clear();
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

/** A job (the 202 body) followed until it finishes; `onUpdate(job)` sees every state on the way. */
export async function followJob(job, onUpdate = () => {}) {
  let current = job;
  onUpdate(current);
  while (!FINISHED.has(current.status)) {
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    current = await request("GET", current.url || `jobs/${current.id}/`);
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

/**
 * The metadata field catalogue: [{name, type, fill_rate, distinct, examples}].
 * From `GET datasets/{id}/fields/` where the server has it, else inferred from the first page of samples.
 */
export async function fieldCatalogue(datasetId) {
  try {
    const body = await request("GET", `datasets/${datasetId}/fields/`, { quiet: true });
    return asPage(body).results.map((field) => ({
      name: field.name, type: field.type, fillRate: field.fill_rate ?? null,
      distinct: field.distinct ?? field.distinct_count ?? null, examples: field.examples || [],
    }));
  } catch (error) {
    if (error.status !== 404 && error.status !== 405) throw error;
  }
  const page = await samples.list(datasetId, {}, { limit: 200 });
  const seen = new Map();
  for (const sample of page.results) {
    for (const [name, value] of Object.entries(sample.metadata || {})) {
      const entry = seen.get(name) || { name, types: new Set(), filled: 0, values: new Set() };
      entry.types.add(value === null ? "null" : Array.isArray(value) ? "list" : typeof value);
      entry.filled += value === null || value === "" ? 0 : 1;
      if (entry.values.size < 50) entry.values.add(JSON.stringify(value));
      seen.set(name, entry);
    }
  }
  const total = page.results.length || 1;
  return [...seen.values()].sort((a, b) => a.name.localeCompare(b.name)).map((entry) => ({
    name: entry.name,
    type: entry.types.size === 1 ? [...entry.types][0] : "mixed",
    fillRate: entry.filled / total,
    distinct: entry.values.size,
    examples: [...entry.values].slice(0, 3).map((value) => JSON.parse(value)),
  }));
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

// Blob URLs of images fetched with the token, kept for reuse and revoked when evicted.
const imageCache = new Map();
imageCache.limit = 800;
imageCache.clear = function clearAll() {
  for (const url of this.values()) url.then((src) => src.startsWith("blob:") && URL.revokeObjectURL(src), () => {});
  Map.prototype.clear.call(this);
};

/**
 * What an <img src> needs to show a sample's image (`size` "image") or thumbnail ("thumbnail"): the signed URL of
 * the payload where the server gives one (it carries its own credentials, so the browser loads and caches it),
 * else the bytes fetched with the token, as a blob: URL.
 */
export function imageSrc(sample, size = "thumbnail") {
  const given = sample[`${size}_url`] || sample[size]?.url;
  if (!given) return Promise.reject(new Error(`The sample payload has no ${size} URL.`));
  const url = apiUrl(given);
  if (new URL(url).search) return Promise.resolve(url); // signed: its query string is the credential
  if (!imageCache.has(url)) {
    if (imageCache.size >= imageCache.limit) {
      const [oldest, src] = imageCache.entries().next().value;
      imageCache.delete(oldest);
      src.then((value) => URL.revokeObjectURL(value), () => {});
    }
    // Accept */*: the API negotiates its renderers and answers `Accept: image/*` alone with a 406.
    const loading = send("GET", url, { headers: { Accept: "*/*" } }).then(async (response) => {
      if (!response.ok) throw new ApiError(response.status, await bodyOf(response), `Image ${response.status}.`);
      return URL.createObjectURL(await response.blob());
    });
    loading.catch(() => imageCache.delete(url));
    imageCache.set(url, loading);
  }
  return imageCache.get(url);
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

// Far above any score, and still a float32 (scores are): asks today's preview for its histogram without voting
// (it refuses to run without a threshold); a server that previews without thresholds never sees it.
const NO_VOTE_HIGH = 1e38;

/** Score a rule on a split without saving it: histogram by ground truth, suggestions, top samples. */
async function preview(datasetId, rule) {
  const body = ruleBody({ ...rule, low: undefined, high: undefined });
  try {
    return await request("POST", `datasets/${datasetId}/lfs/preview/`, { json: body });
  } catch (error) {
    const refusedForThresholds = error.status === 400 && error.body && ("high" in error.body || "low" in error.body);
    if (!refusedForThresholds) throw error;
    return request("POST", `datasets/${datasetId}/lfs/preview/`, { json: { ...body, high: NO_VOTE_HIGH } });
  }
}

/**
 * What the histogram's thresholds need to move without a request: for every bin edge i (0..bins), the samples
 * by ground truth with a score at or above it (`above[i]`: bins i..) and below it (`below[i]`: bins 0..i-1;
 * below[bins] is everything), the ground-truth totals of the scored population and its size.
 * Built from the preview's per-bin counts by ground truth, so precision, recall and coverage of either side, inverted
 * or not, follow at each edge. Thresholds on edges give exactly the API's numbers (the browser tests compare them).
 * A preview shaped otherwise is adapted here; null when it has no counts by ground truth.
 */
export function thresholdCurves(preview) {
  const histogram = preview?.histogram;
  const edges = histogram?.edges;
  const counts = histogram?.counts;
  if (!edges || !counts?.present || !counts?.absent) return null;
  const bins = edges.length - 1;
  const kinds = ["present", "absent", "unlabeled"];
  const zero = () => ({ present: 0, absent: 0, unlabeled: 0 });
  const above = Array.from({ length: bins + 1 }, zero);
  const below = Array.from({ length: bins + 1 }, zero);
  for (const kind of kinds) {
    const bin = counts[kind] || new Array(bins).fill(0);
    for (let i = bins - 1; i >= 0; i -= 1) above[i][kind] = above[i + 1][kind] + bin[i];
    for (let i = 1; i <= bins; i += 1) below[i][kind] = below[i - 1][kind] + bin[i - 1];
  }
  const recall = preview.metrics || {};
  return {
    edges, bins, above, below,
    population: preview.population ?? (above[0].present + above[0].absent + above[0].unlabeled),
    // Recall counts every labeled sample of the population, scored or not (a sample without a vector abstains).
    totals: { present: recall.present?.recall?.trials ?? above[0].present,
              absent: recall.absent?.recall?.trials ?? above[0].absent },
  };
}

/**
 * The composer's menu: LF types and the pattern builders with their parameters. Where the server lists them
 * (`GET lf-types/`) the menu offers the types and builders it names, with the editors the studio has for them.
 */
export async function lfTypes() {
  let served;
  try {
    served = asPage(await request("GET", "lf-types/", { quiet: true })).results;
  } catch (error) {
    if (error.status !== 404 && error.status !== 405) throw error;
    return BUILT_IN_LF_TYPES;
  }
  const named = (entry) => entry.type ?? entry.name;
  const offered = new Map(served.map((entry) => [named(entry), entry]));
  return BUILT_IN_LF_TYPES.filter((type) => offered.has(type.type)).map((type) => {
    const entry = offered.get(type.type);
    const builders = (entry.builders || []).map(named);
    return { ...type, label: entry.label || entry.title || type.label,
             builders: type.builders && builders.length ? type.builders.filter((b) => builders.includes(b.builder)) : type.builders };
  });
}

const OPS = ["<", "<=", "=", ">=", ">", "between"];
const BUILT_IN_LF_TYPES = [
  { type: "similarity_text", label: "Similarity to a text", params: [{ name: "text", kind: "text" }] },
  { type: "similarity_image", label: "Similarity to an image", params: [{ name: "sample_id", kind: "integer" }] },
  { type: "similarity_patch", label: "Similarity to a patch",
    params: [{ name: "sample_id", kind: "integer" }, { name: "box", kind: "box" }] },
  { type: "model", label: "A fast model's score", params: [{ name: "model_id", kind: "model" }] },
  { type: "pattern", label: "A pattern on a metadata field", builders: [
    { builder: "keyword", params: [{ name: "words", kind: "words" }, { name: "mode", kind: "choice", choices: ["any", "all"] },
                                   { name: "case_sensitive", kind: "boolean" }, { name: "whole_word", kind: "boolean" }] },
    { builder: "regex", params: [{ name: "pattern", kind: "text" }, { name: "case_sensitive", kind: "boolean" }] },
    { builder: "numeric", params: [{ name: "op", kind: "choice", choices: OPS }, { name: "value", kind: "number" }] },
    { builder: "length", params: [{ name: "op", kind: "choice", choices: OPS }, { name: "value", kind: "number" }] },
    { builder: "empty", params: [] },
  ] },
];

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

/** A model's metrics on valid for one class: {precision, recall, f1, prAuc, rocAuc, confusion, ceilingF1, pr}. */
export function classMetrics(model, className) {
  const entry = model.metrics?.[className];
  if (!entry) return null;
  const valid = entry.valid || {};
  return {
    precision: valid.precision ?? null, recall: valid.recall ?? null, f1: valid.f1 ?? null,
    prAuc: valid.pr_auc ?? null, rocAuc: valid.roc_auc ?? null, labeled: valid.labeled ?? null,
    confusion: valid.confusion || null, ceilingF1: entry.ceiling?.valid?.f1 ?? null,
    trainedOn: entry.trained_on || null,
    // PR curve points [{recall, precision}] where the server gives them.
    pr: (valid.curves?.pr || valid.pr_curve || null),
  };
}

/**
 * A PR curve for a class from the model's predictions on valid and the valid ground truth, read through the
 * public lists (for servers whose model payload carries no curve). At most `cap` labeled samples.
 */
export async function prCurveFromPredictions(datasetId, model, className, cap = 2000) {
  const truth = new Map();
  let page = await samples.list(datasetId, { split: "valid", gt: [`${className}:LABELED`] }, { limit: 500, fields: [] });
  for (;;) {
    for (const sample of page.results) truth.set(sample.id, groundTruth(sample)[className] === "PRESENT");
    if (!page.next || truth.size >= cap) break;
    page = await samples.page(page.next);
  }
  const scored = [];
  for (let offset = 0; ; offset += 500) {
    const rows = await models.predictions(datasetId, model.id, { labelClass: className, offset });
    for (const row of rows.results) if (truth.has(row.sample_id)) scored.push([row.score, truth.get(row.sample_id)]);
    if (!rows.next || offset > 100_000) break;
  }
  return prPoints(scored);
}

function prPoints(scored) {
  const positives = scored.filter(([, present]) => present).length;
  if (!positives) return [];
  scored.sort((a, b) => b[0] - a[0]);
  const points = [];
  let tp = 0;
  scored.forEach(([score, present], index) => {
    if (present) tp += 1;
    if (index === scored.length - 1 || scored[index + 1][0] !== score) {
      points.push({ recall: tp / positives, precision: tp / (index + 1), threshold: score });
    }
  });
  return points;
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

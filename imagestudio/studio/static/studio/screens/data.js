// The data view: the filtered samples as a table, metadata columns chosen from the field catalogue, sorting on the
// columns the API orders by.

import { SAMPLE_ORDERINGS, fieldCatalogue, groundTruth, samples } from "../api.js";
import { filterBar, filterFromQuery, filterSources, pagerControls, paging, queryString } from "../filters.js";
import { clear, h, link, pct } from "../ui.js";

const BASE_COLUMNS = ["id", "external_id", "split", "file_name", "width", "height", "bytes", "created_at"];

export async function render(root, { dataset, query, go }) {
  const filter = filterFromQuery(query);
  const limit = Number(query.get("limit")) || 50;
  const ordering = query.get("ordering") || "id";
  const pages = paging(query);
  const [catalogue, sources] = await Promise.all([fieldCatalogue(dataset.id), filterSources(dataset.id)]);
  const chosen = query.has("fields") ? query.get("fields").split(",").filter(Boolean)
    : catalogue.slice(0, 3).map((f) => f.name);
  const page = await samples.list(dataset.id, filter, { limit, ordering, fields: chosen, ...pages.params });
  const options = { limit, ordering, fields: chosen.join(",") };
  const route = (newFilter, extra = {}) => {
    const { fields, ...rest } = { ...options, ...extra };
    const text = queryString(newFilter, rest); // drops empty values: `fields=` (no metadata column) is written here
    go(`/d/${dataset.id}/data${text || "?"}${text ? "&" : ""}fields=${encodeURIComponent(fields)}`);
  };
  const classes = dataset.classes.map((c) => c.name);

  const picker = h("fieldset", { class: "checks fields" }, h("legend", {}, "Metadata fields"),
    catalogue.map((f) => h("label", { class: "check", title: `${f.type}; filled ${pct(f.fillRate)}; ${f.distinct ?? "?"} distinct` },
      h("input", { type: "checkbox", name: "field", value: f.name, checked: chosen.includes(f.name),
                   onchange: (e) => route(filter, { fields: e.target.checked ? [...chosen, f.name].join(",")
                     : chosen.filter((name) => name !== f.name).join(",") }) }),
      ` ${f.name} `, h("small", { class: "muted" }, `${f.type}, ${pct(f.fillRate)}`))));

  const header = (column) => {
    if (!SAMPLE_ORDERINGS.includes(column)) return h("th", { scope: "col" }, column);
    const direction = ordering === column ? "ascending" : ordering === `-${column}` ? "descending" : "none";
    const next = ordering === column ? `-${column}` : column;
    return h("th", { scope: "col", "aria-sort": direction },
             h("button", { type: "button", class: "link sort", onclick: () => route(filter, { ordering: next }) },
               column, direction === "ascending" ? " ▲" : direction === "descending" ? " ▼" : ""));
  };
  const columns = [...BASE_COLUMNS, ...classes.map((c) => `gt:${c}`), "tags", ...chosen];
  const cell = (sample, column) => {
    if (column.startsWith("gt:")) return groundTruth(sample)[column.slice(3)] || "";
    if (column === "tags") return sample.tags.join(", ");
    if (column === "id") return link(`/d/${dataset.id}/sample/${sample.id}`, String(sample.id));
    if (column in sample && !chosen.includes(column)) return String(sample[column] ?? "");
    const value = sample.metadata?.[column];
    return value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);
  };
  const table = h("table", { class: "data", id: "data-table" },
    h("thead", {}, h("tr", {}, columns.map(header))),
    h("tbody", {}, page.results.map((sample) => h("tr", {}, columns.map((column) => h("td", {}, cell(sample, column)))))));

  clear(root, h("h1", { class: "visually-hidden" }, `Data view of ${dataset.name}`),
    filterBar({ filter, dataset, ...sources, onChange: (f) => route(f) }), picker,
    h("div", { class: "pager" }, pagerControls({ state: pages, page, limit, onRoute: (options) => route(filter, options) })),
    h("div", { class: "table-scroll" }, table));
}

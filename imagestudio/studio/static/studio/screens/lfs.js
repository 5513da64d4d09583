// The LF list with the summary on a split: coverage, overlaps, conflicts, precision with its interval; activate,
// edit, delete, and see where an LF is wrong.

import { SPLITS, lfs } from "../api.js";
import { queryString } from "../filters.js";
import { announce, attempt, clear, field, h, link, num, rateText, select } from "../ui.js";

export async function render(root, { dataset, query, go }) {
  const chosen = query.get("split") ?? "dev"; // "all": every split
  const split = chosen === "all" ? undefined : chosen;
  const [list, summary] = await Promise.all([lfs.list(dataset.id), lfs.summary(dataset.id, { split })]);
  const rows = new Map(summary.lfs.map((row) => [row.lf, row]));
  const errors = h("div", { class: "form-errors", role: "alert" });
  // Where an LF is wrong, one link per side it votes on (the grid's filter conditions all hold at once).
  const wrong = (lf) => [["PRESENT", "ABSENT", lf.invert ? lf.low : lf.high], ["ABSENT", "PRESENT", lf.invert ? lf.high : lf.low]]
    .filter(([, , threshold]) => threshold !== null)
    .map(([vote, truth]) => [link(`/d/${dataset.id}/grid${queryString({ split, lf_vote: [`${lf.id}:${vote}`], gt: [`${lf.label_class}:${truth}`] })}`,
                                  `wrong ${vote}`, { "data-wrong": vote, title: `its ${vote} votes on samples whose ground truth is ${truth}` }), " "]);
  const body = list.map((lf) => {
    const row = rows.get(lf.id);
    return h("tr", { dataset: { lf: lf.id } },
      h("td", {}, link(`/d/${dataset.id}/lfs/${lf.id}`, lf.name)), h("td", {}, lf.label_class), h("td", {}, lf.type),
      h("td", {}, h("input", { type: "checkbox", "aria-label": `${lf.name} active`, checked: lf.active, onchange: async (e) => {
        const saved = await attempt(() => lfs.update(dataset.id, lf.id, { active: e.target.checked }, lf.version), errors);
        if (saved) { lf.version = saved.version; announce(`${lf.name} ${saved.active ? "activated" : "deactivated"}.`); }
        else e.target.checked = !e.target.checked;
      } })),
      h("td", {}, `${lf.low === null ? "–" : num(lf.low)} / ${lf.high === null ? "–" : num(lf.high)}${lf.invert ? " (inverted)" : ""}`),
      h("td", { class: "coverage" }, row ? rateText(row.coverage) : "–"), h("td", {}, row ? rateText(row.overlaps) : "–"),
      h("td", {}, row ? rateText(row.conflicts) : "–"), h("td", { class: "precision" }, row ? rateText(row.precision) : "–"),
      h("td", {}, `${lf.votes.present} / ${lf.votes.absent}`,
        lf.refresh_error ? h("span", { class: "error" }, ` (not current: ${lf.refresh_error})`) : null),
      h("td", {}, wrong(lf),
        h("button", { type: "button", class: "link", onclick: async () => {
          if (!window.confirm(`Delete the LF "${lf.name}"?`)) return;
          if (await attempt(() => lfs.remove(dataset.id, lf.id), errors) !== undefined) go(`/d/${dataset.id}/lfs${queryString({}, { split: chosen })}`);
        } }, "Delete")));
  });
  clear(root, h("div", { class: "row spread" }, h("h1", {}, "Labeling functions"),
                h("button", { type: "button", class: "primary", onclick: () => go(`/d/${dataset.id}/lfs/new`) }, "New LF")),
    field("Summary on", select([["all", "all splits"], ...SPLITS], chosen, { name: "split",
      onchange: (e) => go(`/d/${dataset.id}/lfs${queryString({}, { split: e.target.value })}`) })),
    h("p", { class: "muted" }, `${summary.samples} samples in ${summary.split || "all splits"}.`), errors,
    list.length ? h("div", { class: "table-scroll" }, h("table", { class: "data", id: "lf-table" },
      h("thead", {}, h("tr", {}, ["name", "class", "type", "active", "low / high", "coverage", "overlaps", "conflicts",
                                   "precision (95% interval)", "votes P / A", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, body)))
      : h("p", { class: "muted" }, "No LF yet: write one in the composer."));
}

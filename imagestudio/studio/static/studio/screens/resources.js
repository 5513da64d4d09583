// Embeddings and dedicated resources: coverage per encoder and a job to compute what is missing; pin the
// dataset's matrices in memory (the "caching" phase is visible while the server loads them), release them.

import { datasets } from "../api.js";
import { announce, attempt, clear, h, jobProgress, pct } from "../ui.js";

const memory = (bytes) => (bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`);

export async function render(root, { dataset, go }) {
  const [coverage, allocations] = await Promise.all([datasets.embeddings(dataset.id), datasets.resources(dataset.id)]);
  const errors = h("div", { class: "form-errors", role: "alert" });
  const progress = h("div", { class: "progress-area" });
  const phase = h("p", { id: "resource-phase", role: "status" }, allocations.length ? "allocated" : "not allocated");
  const reload = () => go(`/d/${dataset.id}/resources`);

  const compute = async () => {
    clear(progress);
    const job = await attempt(() => datasets.computeEmbeddings(dataset.id), errors);
    if (job && (await attempt(() => jobProgress(progress, job, "Embeddings"), errors))?.status === "succeeded") reload();
  };
  const allocate = async (button) => {
    button.disabled = true;
    phase.textContent = "caching: loading the dataset's matrices into memory…";
    const made = await attempt(() => datasets.allocate(dataset.id), errors);
    button.disabled = false;
    if (!made) { phase.textContent = "not allocated"; return; }
    // The answer is one allocation (the joint space's): every matrix pinned is in the list.
    const pinned = await datasets.resources(dataset.id).catch(() => [made]);
    announce(`Pinned ${memory(pinned.reduce((sum, a) => sum + a.bytes, 0))} in ${pinned.length} ${pinned.length === 1 ? "matrix" : "matrices"}.`);
    reload();
  };
  const release = async () => {
    if (await attempt(() => datasets.release(dataset.id), errors) !== undefined) { announce("Released."); reload(); }
  };
  const total = allocations.reduce((sum, a) => sum + a.bytes, 0);
  clear(root, h("h1", {}, "Embeddings and resources"),
    h("section", { class: "card" }, h("h2", {}, "Embeddings"),
      coverage.length ? h("table", { class: "data" },
        h("thead", {}, h("tr", {}, ["encoder", "space", "dim", "vectors", "coverage", "updated"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, coverage.map((e) => h("tr", {}, h("td", {}, e.identity), h("td", {}, e.space), h("td", {}, String(e.dim)),
                                                    h("td", {}, `${e.count} / ${e.samples}`), h("td", {}, pct(e.coverage)), h("td", {}, e.updated_at)))))
        : h("p", { class: "muted" }, "No embeddings yet."),
      h("button", { type: "button", onclick: compute }, "Compute missing embeddings"), progress),
    h("section", { class: "card" }, h("h2", {}, "Dedicated resources"),
      h("p", { class: "muted" }, "Pinned matrices stay in the server's memory, so previews and searches never wait for a load."),
      phase,
      allocations.length ? h("table", { class: "data", id: "allocations" },
        h("thead", {}, h("tr", {}, ["encoder", "memory", "since", "last used"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, allocations.map((a) => h("tr", {}, h("td", {}, a.encoder), h("td", {}, memory(a.bytes)), h("td", {}, a.created_at),
                                                         h("td", {}, a.last_used_at)))),
        h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, "total"), h("td", { colspan: 3 }, memory(total))))) : null,
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "primary", onclick: (e) => allocate(e.target) }, allocations.length ? "Refresh allocation" : "Allocate"),
        allocations.length ? h("button", { type: "button", onclick: release }, "Release") : null),
      errors));
}

// The grid: thumbnails of a filtered page, ground-truth badges, multi-select (click, ctrl, shift, keyboard),
// bulk annotation of class x PRESENT / ABSENT / ABSTAIN with undo, tags.

import { VALUES, annotations, groundTruth, imageSrc, samples, tags as tagApi } from "../api.js";
import { filterBar, filterFromQuery, filterSources, pagerControls, paging, queryString } from "../filters.js";
import { announce, attempt, clear, field, h, select } from "../ui.js";

export const GRID_IDS_KEY = "imagestudio.gridIds";
export const GRID_ROUTE_KEY = "imagestudio.gridRoute"; // the grid page the image view goes back to

const SHORTCUTS = [
  ["← → ↑ ↓", "Move between images"], ["Shift + arrows", "Extend the selection"],
  ["Space / x", "Select or unselect the focused image"], ["Ctrl + click, Shift + click", "Add one, add a range"],
  ["a", "Select the whole page"], ["Esc", "Clear the selection"], ["Enter / o", "Open the focused image"],
  ["1 / 2 / 3", "Label the selection PRESENT / ABSENT / ABSTAIN for the chosen classes"],
  ["u / Ctrl + z", "Undo your last bulk label"], ["n / p", "Next / previous page"], ["/", "Search"],
];

function badges(sample, classes) {
  const truth = groundTruth(sample);
  return h("span", { class: "badges" }, classes.map((name) => {
    const value = truth[name];
    if (!value) return null;
    return h("span", { class: `badge ${value.toLowerCase()}`, title: `${name}: ${value}` },
             `${value === "PRESENT" ? "✓" : "✗"} ${name}`);
  }));
}

/** Small linked thumbnails of samples by id, each with a caption: [[id, caption], ...]. */
export function thumbnailStrip(dataset, entries) {
  const items = entries.map(([id, caption]) => {
    const thumb = h("img", { alt: `Sample ${id}`, width: 96, height: 96 });
    return { id, thumb, item: h("li", { dataset: { id } }, h("a", { href: `#/d/${dataset.id}/sample/${id}` }, thumb),
                                h("small", {}, caption)) };
  });
  samples.byIds(dataset.id, entries.map(([id]) => id)).then((found) => {
    const byId = new Map(found.map((sample) => [sample.id, sample]));
    for (const { id, thumb } of items) if (byId.has(id)) thumb.src = imageSrc(byId.get(id), "thumbnail");
  }, () => {});
  return items.map(({ item }) => item);
}

const MENUS_AFTER_MS = 1500;

export async function render(root, context) {
  const { dataset, query, go } = context;
  const filter = filterFromQuery(query);
  const limit = Number(query.get("limit")) || 50;
  const pages = paging(query);
  const classes = dataset.classes.map((c) => c.name);
  const route = (newFilter, options = {}) => go(`/d/${dataset.id}/grid${queryString(newFilter, { limit, ...options })}`);

  // The page of samples is asked for alone (the server answers it first) and its tiles start loading as soon as
  // it is listed; the filter bar's menus (tags, LFs, models) are asked for once the thumbnails are in (or after
  // MENUS_AFTER_MS), so they do not compete with them for the server.
  const page = await samples.list(dataset.id, filter, { limit, fields: [], ...pages.params });
  performance.mark("studio:grid-listed", { detail: { count: page.results.length } });
  let menusAsked = false;
  let menusReady;
  const sources = new Promise((resolve) => { menusReady = resolve; });
  const askMenus = () => {
    if (!menusAsked) { menusAsked = true; menusReady(filterSources(dataset.id)); }
  };
  setTimeout(askMenus, page.results.length ? MENUS_AFTER_MS : 0);
  sessionStorage.setItem(GRID_IDS_KEY, JSON.stringify(page.results.map((s) => s.id)));
  const here = `/d/${dataset.id}/grid${queryString(filter, { limit, page: pages.token, trail: pages.trail.join(",") })}`;
  sessionStorage.setItem(GRID_ROUTE_KEY, here);

  const selected = new Set();
  let anchor = 0;
  let focusIndex = 0;
  const errors = h("div", { class: "form-errors", role: "alert" });
  const count = h("span", { class: "muted", id: "selection-count" }, "");
  const tiles = h("ul", { class: "tiles", role: "listbox", "aria-multiselectable": "true", "aria-label": "Samples",
                          id: "grid" });

  const classBoxes = classes.map((name, i) => h("input", { type: "checkbox", name: "bulk-class", value: name,
                                                           checked: i === 0 }));
  const target = select([["selection", "the selected images"], ["filter", `all ${page.count} matching the filter`]],
                        "selection", { name: "bulk-target" });
  const tagSelect = select([], "", { name: "tag-choice" });
  const newTag = h("input", { name: "new-tag", placeholder: "new tag" });

  function updateSelection() {
    for (const tile of tiles.children) {
      const on = selected.has(Number(tile.dataset.id));
      tile.setAttribute("aria-selected", String(on));
      tile.classList.toggle("selected", on);
    }
    count.textContent = selected.size ? `${selected.size} selected` : "";
  }

  function focusTile(index) {
    const list = [...tiles.children];
    if (!list.length) return;
    focusIndex = Math.max(0, Math.min(list.length - 1, index));
    list.forEach((tile, i) => { tile.tabIndex = i === focusIndex ? 0 : -1; });
    list[focusIndex].focus();
  }

  function pick(index, { toggle = false, range = false } = {}) {
    const ids = page.results.map((s) => s.id);
    if (range) {
      const [from, to] = [Math.min(anchor, index), Math.max(anchor, index)];
      if (!toggle) selected.clear();
      ids.slice(from, to + 1).forEach((id) => selected.add(id));
    } else if (toggle) {
      if (selected.has(ids[index])) selected.delete(ids[index]);
      else selected.add(ids[index]);
      anchor = index;
    } else {
      selected.clear();
      selected.add(ids[index]);
      anchor = index;
    }
    updateSelection();
  }

  async function refresh() {
    const fresh = await samples.list(dataset.id, filter, { limit, fields: [], ...pages.params });
    const byId = new Map(fresh.results.map((s) => [s.id, s]));
    page.results.forEach((sample, i) => {
      const now = byId.get(sample.id);
      if (!now) return;
      page.results[i] = now;
      tiles.children[i].querySelector(".badges").replaceWith(badges(now, classes));
    });
  }

  async function bulk(value) {
    const chosen = classBoxes.filter((box) => box.checked).map((box) => box.value);
    if (!chosen.length) return announce("Choose at least one class to label.");
    if (target.value === "selection" && !selected.size) return announce("Select images first (click, Shift, Ctrl).");
    const request = target.value === "selection" ? { sampleIds: [...selected] } : { filter };
    const result = await attempt(() => annotations.bulk(dataset.id, { ...request, classes: chosen, value }), errors);
    if (!result) return;
    announce(`${value} for ${chosen.join(", ")}: ${result.changed} labels changed on ${result.samples} samples.`);
    await refresh();
  }

  async function undo() {
    const result = await attempt(() => annotations.undo(dataset.id), errors);
    if (!result) return;
    announce(`Undone: ${result.reverted} labels restored${result.skipped ? `, ${result.skipped} changed since were left` : ""}.`);
    await refresh();
  }

  async function tagSelection(remove) {
    if (!selected.size) return announce("Select images first.");
    let tagId = tagSelect.value;
    if (newTag.value.trim()) {
      const made = await attempt(() => tagApi.create(dataset.id, newTag.value.trim()), errors);
      if (!made) return;
      tagId = made.id;
    }
    if (!tagId) return announce("Choose or name a tag.");
    const action = remove ? tagApi.remove : tagApi.apply;
    const result = await attempt(() => action(dataset.id, tagId, [...selected]), errors);
    if (result) {
      announce(`${result.changed} samples ${remove ? "untagged" : "tagged"}.`);
      go(here);
    }
  }

  const open = (index) => go(`/d/${dataset.id}/sample/${page.results[index].id}`);

  // Thumbnails: the Performance API mark tells how long the page took to become a grid of loaded images.
  let pending = page.results.length;
  const loaded = () => {
    pending -= 1;
    if (pending === 0) {
      performance.mark("studio:grid-thumbnails", { detail: { count: page.results.length } });
      tiles.dataset.loaded = String(page.results.length);
      askMenus();
    }
  };
  page.results.forEach((sample, index) => {
    const img = h("img", { alt: `Sample ${sample.id}`, width: 160, height: 160, decoding: "async",
                           onload: loaded, onerror: loaded, src: imageSrc(sample, "thumbnail") });
    const tile = h("li", {
      role: "option", "aria-selected": "false", tabindex: index === 0 ? 0 : -1, dataset: { id: sample.id },
      class: "tile",
      onclick: (event) => { focusIndex = index; pick(index, { toggle: event.ctrlKey || event.metaKey, range: event.shiftKey }); },
      ondblclick: () => open(index),
    }, img, h("span", { class: "caption" }, sample.external_id || sample.file_name || `#${sample.id}`),
       h("span", { class: "split" }, sample.split), badges(sample, classes),
       sample.tags.length ? h("span", { class: "tags" }, sample.tags.join(", ")) : null);
    tiles.append(tile);
  });
  if (!page.results.length) tiles.dataset.loaded = "0";

  const columns = () => {
    const list = [...tiles.children];
    return Math.max(1, list.filter((tile) => tile.offsetTop === list[0]?.offsetTop).length);
  };
  tiles.addEventListener("keydown", (event) => {
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
    if (event.key in moves) {
      event.preventDefault();
      focusTile(focusIndex + moves[event.key]);
      if (event.shiftKey) pick(focusIndex, { range: true });
    } else if (event.key === " " || event.key === "x") {
      event.preventDefault();
      pick(focusIndex, { toggle: true });
    } else if (event.key === "Enter" || event.key === "o") {
      event.preventDefault();
      open(focusIndex);
    }
  });
  tiles.addEventListener("focusin", (event) => {
    const tile = event.target.closest(".tile");
    if (tile) focusIndex = [...tiles.children].indexOf(tile);
  });

  const bulkBar = h("section", { class: "bulk", "aria-label": "Bulk annotation" },
    h("fieldset", { class: "checks" }, h("legend", {}, "Classes"),
      classBoxes.map((box) => h("label", { class: "check" }, box, ` ${box.value}`))),
    field("Apply to", target),
    h("div", { class: "buttons" }, VALUES.map((value, i) => h("button", {
      type: "button", class: `value ${value.toLowerCase()}`, "data-value": value, onclick: () => bulk(value),
      title: `Shortcut ${i + 1}`,
    }, value)), h("button", { type: "button", onclick: undo, title: "Shortcut u" }, "Undo")),
    h("div", { class: "buttons" }, field("Tag", tagSelect), field("or a new tag", newTag),
      h("button", { type: "button", onclick: () => tagSelection(false) }, "Tag selected"),
      h("button", { type: "button", onclick: () => tagSelection(true) }, "Untag selected")));

  const pager = h("div", { class: "pager" },
    pagerControls({ state: pages, page, limit, onRoute: (options) => route(filter, options) }), count,
    h("button", { type: "button", class: "link", onclick: () => { page.results.forEach((s) => selected.add(s.id)); updateSelection(); } }, "Select page"),
    h("button", { type: "button", class: "link", onclick: () => { selected.clear(); updateSelection(); } }, "Clear selection"));

  const filters = h("div", { class: "filters-slot" });
  clear(root, h("h1", { class: "visually-hidden" }, `Grid of ${dataset.name}`), filters, bulkBar, errors, pager, tiles);
  sources.then((menus) => {
    clear(filters, filterBar({ filter, dataset, ...menus, onChange: (f) => route(f) }));
    clear(tagSelect, menus.tags.map((t) => h("option", { value: t.id }, t.name)));
  }, (error) => clear(errors, error.message));

  return {
    shortcuts: SHORTCUTS,
    onKey(event) {
      const key = event.key;
      if ((event.ctrlKey && key === "z") || key === "u") { event.preventDefault(); undo(); }
      else if (event.ctrlKey) return;
      else if (["1", "2", "3"].includes(key)) { event.preventDefault(); bulk(VALUES[Number(key) - 1]); }
      else if (key === "a") { event.preventDefault(); page.results.forEach((s) => selected.add(s.id)); updateSelection(); }
      else if (key === "Escape") { selected.clear(); updateSelection(); }
      else if (key === "n" || key === "p") pager.querySelectorAll("button")[key === "n" ? 1 : 0].click();
      else if (key === "/") { event.preventDefault(); root.querySelector('input[name="search"]')?.focus(); }
      else if (key.startsWith("Arrow") && !tiles.contains(document.activeElement)) { event.preventDefault(); focusTile(focusIndex); }
    },
  };
}

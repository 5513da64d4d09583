// The studio's shell: hash routes to screens, the dataset navigation, sign-in state and keyboard shortcuts.

import { datasets, forgetToken, onUnauthorized, signOut, token } from "./api.js";
import { exportDialog, resampleDialog } from "./dialogs.js";
import { clear, clearErrors, dialog, h, link, showError } from "./ui.js";

const SCREENS = {
  "": () => import("./screens/datasets.js"),
  signin: () => import("./screens/signin.js"),
  grid: () => import("./screens/grid.js"),
  sample: () => import("./screens/sample.js"),
  data: () => import("./screens/data.js"),
  lfs: () => import("./screens/lfs.js"),
  composer: () => import("./screens/composer.js"),
  training: () => import("./screens/training.js"),
  models: () => import("./screens/models.js"),
  analysis: () => import("./screens/analysis.js"),
  resources: () => import("./screens/resources.js"),
};

const TABS = [["grid", "Grid"], ["data", "Data"], ["lfs", "LFs"], ["training", "Training set"], ["models", "Models"],
              ["analysis", "Analysis"], ["resources", "Resources"]];

const GLOBAL_SHORTCUTS = [
  ["?", "Show this list"], ["g h", "Datasets"], ["g g", "Grid"], ["g d", "Data view"], ["g l", "LF list"],
  ["g c", "LF composer"], ["g t", "Training set"], ["g m", "Models"], ["g a", "Analysis"], ["g r", "Resources"],
  ["Esc", "Close a dialog"],
];
const CHORDS = { h: "/", g: "grid", d: "data", l: "lfs", c: "lfs/new", t: "training", m: "models", a: "analysis",
                 r: "resources" };

let current = null; // {screen, route, dataset}
let chordPending = false;
let notice = null; // an error for the next screen to show (it clears the errors of the one before)

/** Parse "#/d/3/grid?split=dev" into {screen, datasetId, args, query}. */
function parseRoute(hash) {
  const [path, search = ""] = hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  const query = new URLSearchParams(search);
  if (parts[0] === "signin") return { screen: "signin", args: [], query };
  if (parts[0] !== "d" || !parts[1]) return { screen: "", args: [], query };
  const datasetId = Number(parts[1]);
  let screen = parts[2] || "grid";
  const args = parts.slice(3);
  if (screen === "lfs" && args.length) screen = "composer"; // lfs/new, lfs/<id>
  return { screen, datasetId, args, query };
}

export function go(route) {
  const hash = `#${route.startsWith("/") ? route : `/${route}`}`;
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

let rendering = 0; // the latest route's render: an older one still loading stops at its next step

async function render() {
  const hash = window.location.hash || "#/";
  if (!hash.startsWith("#/")) return; // an in-page anchor
  const route = parseRoute(hash);
  if (!token() && route.screen !== "signin") {
    go(`/signin?next=${encodeURIComponent(hash.slice(1))}`);
    return;
  }
  const generation = ++rendering;
  const stale = () => generation !== rendering;
  current?.handle?.dispose?.();
  clearErrors();
  if (notice) showError(notice);
  notice = null;
  // A fresh <main> per route: a screen still loading for an older route writes into its own, no longer shown.
  const main = h("main", { id: "main", tabindex: "-1" }, h("p", { class: "muted" }, "Loading…"));
  document.getElementById("main").replaceWith(main);
  const loading = (SCREENS[route.screen] || SCREENS[""])();
  loading.catch(() => {}); // a module that cannot load is reported below, once the dataset is read
  let dataset = null;
  try {
    if (route.datasetId) dataset = await datasets.get(route.datasetId);
  } catch (error) {
    if (stale()) return;
    // The tabs follow the route even when the server is gone (the dataset as last read).
    renderChrome(route, current?.dataset?.id === route.datasetId ? current.dataset : null);
    clear(main);
    showError(error);
    return;
  }
  if (stale()) return;
  renderChrome(route, dataset);
  let module;
  try {
    module = await loading;
  } catch (error) {
    if (stale()) return;
    clear(main);
    const name = TABS.find(([screen]) => screen === route.screen)?.[1] || "This";
    showError(`The ${name} screen could not be loaded (${error.message}). Check the connection, then try again.`);
    return;
  }
  if (stale()) return;
  const context = {
    dataset, datasetId: route.datasetId, args: route.args, query: route.query, go,
    refreshDataset: async () => {
      context.dataset = await datasets.get(route.datasetId);
      renderChrome(route, context.dataset);
      return context.dataset;
    },
  };
  clear(main);
  current = { route, dataset, handle: null };
  try {
    const handle = (await module.render(main, context)) || null;
    if (stale()) return handle?.dispose?.();
    current.handle = handle;
  } catch (error) {
    if (stale()) return;
    showError(error);
  }
  main.dataset.screen = route.screen || "datasets";
}

function renderChrome(route, dataset) {
  const nav = document.getElementById("nav");
  const account = document.getElementById("account");
  clear(nav);
  if (dataset) {
    const base = `/d/${dataset.id}`;
    nav.append(h("span", { class: "dataset-name", title: dataset.description || "" }, dataset.name));
    for (const [screen, label] of TABS) {
      const active = route.screen === screen || (screen === "lfs" && route.screen === "composer");
      nav.append(link(`${base}/${screen}`, label, { class: active ? "tab active" : "tab",
                                                    "aria-current": active ? "page" : undefined }));
    }
    nav.append(h("button", { type: "button", onclick: () => resampleDialog(dataset, go) }, "Resample"),
               h("button", { type: "button", onclick: () => exportDialog(dataset) }, "Export"));
  }
  clear(account);
  if (token()) {
    account.append(h("button", { type: "button", class: "link", onclick: showShortcuts,
                                 "aria-label": "Keyboard shortcuts" }, "?"),
                   h("button", { type: "button", onclick: signOutClicked }, "Sign out"));
  }
}

async function signOutClicked() {
  const failure = await signOut();
  if (failure) {
    notice = `Signed out of this tab, but the token was not revoked on the server (${failure.message}): it stays `
      + "valid until it is revoked. Sign in and out again once the server answers.";
  }
  go("/signin");
}

function showShortcuts() {
  if (document.querySelector("dialog.shortcuts")) return;
  const rows = (list) => list.map(([key, text]) => h("tr", {}, h("th", { scope: "row" }, h("kbd", {}, key)), h("td", {}, text)));
  const screenKeys = current?.handle?.shortcuts || [];
  const box = dialog("Keyboard shortcuts",
                     screenKeys.length ? h("h3", {}, "This screen") : null,
                     screenKeys.length ? h("table", {}, h("tbody", {}, rows(screenKeys))) : null,
                     h("h3", {}, "Everywhere"), h("table", {}, h("tbody", {}, rows(GLOBAL_SHORTCUTS))));
  box.classList.add("shortcuts");
}

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable
    || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function onKey(event) {
  if (event.defaultPrevented || event.altKey || event.metaKey || typing(event.target)) return;
  if (document.querySelector("dialog[open]")) return;
  if (chordPending) {
    chordPending = false;
    const target = CHORDS[event.key];
    if (target && (target === "/" || current?.route?.datasetId)) {
      event.preventDefault();
      go(target === "/" ? "/" : `/d/${current.route.datasetId}/${target}`);
    }
    return;
  }
  if (event.key === "?") {
    event.preventDefault();
    showShortcuts();
    return;
  }
  if (event.key === "g" && !event.ctrlKey) {
    chordPending = true;
    setTimeout(() => { chordPending = false; }, 1500);
    return;
  }
  current?.handle?.onKey?.(event);
}

// Room for every image of a session in the resource timings, which tests and the curious read.
performance.setResourceTimingBufferSize(10_000);
onUnauthorized(() => {
  forgetToken();
  go(`/signin?next=${encodeURIComponent((window.location.hash || "#/").slice(1))}`);
});
window.addEventListener("hashchange", render);
document.addEventListener("keydown", onKey);
render();

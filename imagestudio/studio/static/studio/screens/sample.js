// The image view: the image (with a crop for patch LFs and searches), metadata, ground truth per class with the
// version check, predictions, LF votes, tags, comments, similar images.

import { SPLITS, VALUES, annotations, imageSrc, labelVersions, models as modelApi, samples, tags as tagApi }
  from "../api.js";
import { queryString } from "../filters.js";
import { announce, attempt, clear, field, h, link, num, select } from "../ui.js";
import { GRID_IDS_KEY, GRID_ROUTE_KEY, thumbnailStrip } from "./grid.js";

const SHORTCUTS = [["j / →", "Next image of the grid page"], ["k / ←", "Previous image"], ["b", "Back to the grid"],
                   ["s", "Find similar images"]];

function cropper(img, onBox) {
  const rect = h("div", { class: "crop", hidden: true });
  const stage = h("div", { class: "stage" }, img, rect);
  let start = null;
  const point = (event) => {
    const bounds = img.getBoundingClientRect();
    return [Math.max(0, Math.min(bounds.width, event.clientX - bounds.left)),
            Math.max(0, Math.min(bounds.height, event.clientY - bounds.top))];
  };
  const draw = (a, b) => {
    Object.assign(rect.style, { left: `${Math.min(a[0], b[0])}px`, top: `${Math.min(a[1], b[1])}px`,
                                width: `${Math.abs(a[0] - b[0])}px`, height: `${Math.abs(a[1] - b[1])}px` });
    rect.hidden = false;
  };
  stage.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    stage.setPointerCapture(event.pointerId);
    start = point(event);
  });
  stage.addEventListener("pointermove", (event) => { if (start) draw(start, point(event)); });
  stage.addEventListener("pointerup", (event) => {
    if (!start) return;
    const end = point(event);
    const scale = img.naturalWidth / img.clientWidth;
    const box = [Math.min(start[0], end[0]), Math.min(start[1], end[1]), Math.max(start[0], end[0]),
                 Math.max(start[1], end[1])].map((v) => Math.round(v * scale));
    start = null;
    if (box[2] - box[0] < 4 || box[3] - box[1] < 4) {
      rect.hidden = true;
      onBox(null);
    } else {
      onBox(box);
    }
  });
  stage.clearBox = () => { rect.hidden = true; onBox(null); };
  return stage;
}

function groundTruthTable(dataset, detail, reload, onChange) {
  const versions = labelVersions(detail);
  const message = h("div", { class: "form-errors", role: "alert", id: "gt-message" });
  const rows = dataset.classes.map(({ name }) => {
    const current = versions[name] || { value: "ABSTAIN", version: 0 };
    const show = () => { // the label the server holds (as last read), and its version
      radios.forEach((label) => { const radio = label.querySelector("input"); radio.checked = radio.value === current.value; });
      version.textContent = `v${current.version}`;
    };
    // One save at a time per class, each with the version the one before it left: a quick second click is the
    // user's own next change, not a conflict with someone else.
    let saving = Promise.resolve();
    const radios = VALUES.map((value) => h("label", { class: `check value ${value.toLowerCase()}` }, h("input", {
      type: "radio", name: `gt-${name}`, value, checked: current.value === value,
      onchange: () => { saving = saving.then(() => save(value)); },
    }), ` ${value}`));
    const save = async (value) => {
      clear(message);
      try {
        const result = await annotations.set(dataset.id, { sample: detail.id, labelClass: name, value,
                                                           version: current.version });
        Object.assign(current, { value: result.annotation.value, version: result.annotation.version });
        show();
        announce(`${name}: ${value} saved.`);
      } catch (error) {
        clear(message, error.isVersionConflict
          ? h("p", {}, h("strong", {}, "Not saved: "), `someone changed the ${name} label since you opened this image. `,
              error.message, " It shows the label now held. ", h("button", { type: "button", onclick: reload }, "Reload the labels"))
          : error.message);
        // Back to the server's label: read again (it may have changed), or the one last read.
        const fresh = await samples.get(dataset.id, detail.id).catch(() => null);
        if (fresh) Object.assign(current, labelVersions(fresh)[name] || { value: "ABSTAIN", version: 0 });
        show();
      }
      onChange();
    };
    const version = h("small", { class: "muted" }, `v${current.version}`);
    return h("tr", {}, h("th", { scope: "row" }, name),
             h("td", {}, h("fieldset", { class: "radios", "aria-label": `Ground truth for ${name}` }, radios)), h("td", {}, version));
  });
  return h("section", { "aria-labelledby": "gt-title" }, h("h2", { id: "gt-title" }, "Ground truth"),
           h("table", { class: "gt" }, h("tbody", {}, rows)), message);
}

function tagsPanel(dataset, detail, allTags, reload) {
  const errors = h("div", { class: "form-errors", role: "alert" });
  const name = h("input", { name: "tag", list: "tag-names", placeholder: "tag name" });
  const add = async (event) => {
    event.preventDefault();
    const wanted = name.value.trim();
    if (!wanted) return;
    const existing = allTags.find((t) => t.name === wanted);
    const tag = existing || await attempt(() => tagApi.create(dataset.id, wanted), errors);
    if (tag && await attempt(() => tagApi.apply(dataset.id, tag.id, [detail.id]), errors)) reload();
  };
  const remove = async (tagName) => {
    const tag = allTags.find((t) => t.name === tagName);
    if (tag && await attempt(() => tagApi.remove(dataset.id, tag.id, [detail.id]), errors)) reload();
  };
  return h("section", { "aria-labelledby": "tags-title" }, h("h2", { id: "tags-title" }, "Tags"),
           h("p", {}, detail.tags.length ? detail.tags.map((t) => h("span", { class: "chip" }, t,
             h("button", { type: "button", class: "link", "aria-label": `Remove tag ${t}`, onclick: () => remove(t) }, "×")))
             : h("span", { class: "muted" }, "none")),
           h("datalist", { id: "tag-names" }, allTags.map((t) => h("option", { value: t.name }))),
           h("form", { class: "inline", onsubmit: add }, field("Add a tag", name), h("button", { type: "submit" }, "Add")),
           errors);
}

/** The sample's label history; `refresh()` reads it again (after a label is saved or refused). */
function historyPanel(dataset, detail) {
  const list = h("ul", { class: "history" }, h("li", { class: "muted" }, "Loading…"));
  let latest = 0;  // quick saves refresh twice: only the last read renders, an earlier answer arriving after it is stale
  const refresh = () => {
    const asked = ++latest;
    const render = (...items) => { if (asked === latest) clear(list, ...items); };
    return annotations.history(dataset.id, detail.id).then((page) => render(page.results.length
      ? page.results.map((e) => h("li", {}, `${e.created_at}: ${e.user || "?"} set ${e.class_name} ${e.old_value} → ${e.new_value}`
                                         + ` (${e.source})`))
      : h("li", { class: "muted" }, "No change yet.")), (error) => render(h("li", { class: "error" }, error.message)));
  };
  refresh();
  return Object.assign(h("section", { "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, "Label history"), list),
                       { refresh });
}

function commentsPanel(dataset, detail, reload) {
  const errors = h("div", { class: "form-errors", role: "alert" });
  const body = h("textarea", { name: "comment", rows: 2 });
  return h("section", { "aria-labelledby": "comments-title" }, h("h2", { id: "comments-title" }, "Comments"),
           h("ul", { class: "comments" }, detail.comments.map((c) => h("li", {}, h("strong", {}, c.author || "?"), ": ",
                                                                       c.body, h("small", { class: "muted" }, ` ${c.created_at}`)))),
           h("form", { onsubmit: async (event) => {
             event.preventDefault();
             if (body.value.trim() && await attempt(() => samples.comment(dataset.id, detail.id, body.value), errors)) reload();
           } }, field("New comment", body), h("button", { type: "submit" }, "Comment")), errors);
}

export async function render(root, { dataset, args, query, go }) {
  const sampleId = Number(args[0]);
  const modelId = query.get("model") || "";
  const [detail, allTags, modelList] = await Promise.all([
    samples.get(dataset.id, sampleId, { model: modelId }), tagApi.list(dataset.id), modelApi.list(dataset.id)]);
  const reload = () => go(`/d/${dataset.id}/sample/${sampleId}${queryString({}, { model: modelId })}`);
  const ids = JSON.parse(sessionStorage.getItem(GRID_IDS_KEY) || "[]");
  const lastGrid = sessionStorage.getItem(GRID_ROUTE_KEY) || ""; // with its filter, page size and page
  const grid = lastGrid.startsWith(`/d/${dataset.id}/grid`) ? lastGrid : `/d/${dataset.id}/grid`;
  const position = ids.indexOf(sampleId);
  const step = (delta) => {
    const next = ids[position + delta];
    if (position >= 0 && next) go(`/d/${dataset.id}/sample/${next}`);
  };
  const errors = h("div", { class: "form-errors", role: "alert" });
  let box = null;
  const img = h("img", { alt: `Sample ${detail.id}: ${detail.file_name}`, class: "full", src: imageSrc(detail, "image") });
  const cropActions = h("div", { class: "buttons", hidden: true },
    h("button", { type: "button", onclick: () => go(`/d/${dataset.id}/lfs/new${queryString({}, {
      type: "similarity_patch", sample_id: detail.id, box: box.join(",") })}`) }, "Patch LF from the crop"),
    h("button", { type: "button", onclick: () => similar(box) }, "Find similar to the crop"));
  const stage = cropper(img, (chosen) => { box = chosen; cropActions.hidden = !chosen; });
  const similarArea = h("section", { "aria-label": "Similar images" });

  async function similar(crop = null) {
    const found = await attempt(() => samples.similar(dataset.id, { sampleId: detail.id, box: crop }), errors);
    if (!found) return;
    const tiles = thumbnailStrip(dataset, found.results.map((hit) => [hit.sample_id, num(hit.score)]));
    clear(similarArea, h("h2", {}, `Similar images (${found.encoder})`),
          h("ul", { class: "strip" }, tiles),
          h("button", { type: "button", onclick: () => go(`/d/${dataset.id}/grid${queryString({ ids: found.results.map((r) => r.sample_id) })}`) },
            "Show them in the grid"));
  }

  const predictions = h("section", { "aria-labelledby": "pred-title" }, h("h2", { id: "pred-title" }, "Predictions"),
    field("Model", select([["", "latest per class"], ...modelList.filter((m) => m.status === "ready").map((m) => [m.id, `model ${m.id} v${m.version}`])],
                          modelId, { name: "model", onchange: (e) => go(`/d/${dataset.id}/sample/${sampleId}${queryString({}, { model: e.target.value })}`) })),
    detail.predictions.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["class", "label", "probability", "score", "model"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, detail.predictions.map((p) => h("tr", {}, h("td", {}, p.label_class), h("td", {}, p.label),
                                                            h("td", {}, num(p.probability)), h("td", {}, num(p.score)), h("td", {}, p.model)))))
      : h("p", { class: "muted" }, "No prediction for this image."));

  const votes = h("section", { "aria-labelledby": "votes-title" }, h("h2", { id: "votes-title" }, "LF votes"),
    detail.votes.length ? h("ul", {}, detail.votes.map((v) => h("li", {}, link(`/d/${dataset.id}/lfs/${v.lf}`, v.name),
                                                                 ` (${v.label_class}): `, h("strong", {}, v.vote))))
      : h("p", { class: "muted" }, "No LF voted on this image."));

  const split = select(SPLITS, detail.split, { name: "split", onchange: async (e) => {
    if (await attempt(() => samples.update(dataset.id, detail.id, { split: e.target.value }), errors)) announce(`Moved to ${e.target.value}.`);
  } });
  const metadata = h("section", { "aria-labelledby": "meta-title" }, h("h2", { id: "meta-title" }, "Metadata"),
    h("table", { class: "meta" }, h("tbody", {},
      h("tr", {}, h("th", { scope: "row" }, "split"), h("td", {}, split)),
      ["external_id", "file_name", "width", "height", "format", "bytes", "sha256", "created_at"].map((key) =>
        h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, String(detail[key] ?? "")))),
      Object.entries(detail.metadata || {}).map(([key, value]) =>
        h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, typeof value === "string" ? value : JSON.stringify(value)))))));

  const history = historyPanel(dataset, detail);
  clear(root,
    h("div", { class: "sample-head" },
      h("h1", {}, `Sample ${detail.id}`, detail.external_id ? h("small", { class: "muted" }, ` ${detail.external_id}`) : null),
      h("div", { class: "buttons" },
        link(grid, "Back to the grid"),
        h("button", { type: "button", disabled: position <= 0, onclick: () => step(-1) }, "Previous"),
        h("button", { type: "button", disabled: position < 0 || position >= ids.length - 1, onclick: () => step(1) }, "Next"),
        h("button", { type: "button", onclick: () => similar() }, "Find similar"),
        h("button", { type: "button", onclick: () => go(`/d/${dataset.id}/lfs/new${queryString({}, { type: "similarity_image", sample_id: detail.id })}`) },
          "LF from this image"))),
    errors,
    h("div", { class: "sample-layout" },
      h("div", { class: "sample-image" }, stage, h("p", { class: "muted" }, "Drag on the image to crop a patch."), cropActions, similarArea),
      h("div", { class: "sample-panels" }, groundTruthTable(dataset, detail, reload, () => history.refresh()), predictions, votes,
        tagsPanel(dataset, detail, allTags, reload), commentsPanel(dataset, detail, reload), history, metadata)));

  return {
    shortcuts: SHORTCUTS,
    onKey(event) {
      if (event.ctrlKey) return;
      if (event.key === "j" || event.key === "ArrowRight") step(1);
      else if (event.key === "k" || event.key === "ArrowLeft") step(-1);
      else if (event.key === "b" || event.key === "Escape") go(grid);
      else if (event.key === "s") similar(box);
    },
  };
}

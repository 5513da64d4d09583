// The dataset picker: your datasets with their counts, a new dataset with its classes, imports.

import { datasets } from "../api.js";
import { importDialog } from "../dialogs.js";
import { attempt, field, h, link } from "../ui.js";

function addClassForm(dataset, go) {
  const errors = h("div", { class: "form-errors", role: "alert" });
  const name = h("input", { name: "class", required: true });
  return h("form", { class: "inline", onsubmit: async (event) => {
    event.preventDefault();
    if (await attempt(() => datasets.addClass(dataset.id, name.value.trim()), errors)) go("/");
  } }, field("New class", name), h("button", { type: "submit" }, "Add class"), errors);
}

function card(dataset, go) {
  const counts = Object.entries(dataset.split_counts || {}).map(([split, n]) => `${split} ${n}`).join(" · ");
  return h("li", { class: "card dataset" },
           h("h2", {}, link(`/d/${dataset.id}/grid`, dataset.name)),
           dataset.description ? h("p", {}, dataset.description) : null,
           h("p", { class: "muted" }, `${dataset.sample_count} samples (${counts}) · your role: ${dataset.role}`),
           h("p", {}, "Classes: ", dataset.classes.map((c) => c.name).join(", ") || "none yet"),
           addClassForm(dataset, go),
           h("div", { class: "row" },
             h("button", { type: "button", class: "primary", onclick: () => go(`/d/${dataset.id}/grid`) }, "Open"),
             h("button", { type: "button", onclick: () => importDialog(dataset, go) }, "Import images…")));
}

export async function render(root, { go }) {
  const items = await datasets.list();
  const errors = h("div", { class: "form-errors", role: "alert" });
  const name = h("input", { name: "name", required: true });
  const description = h("input", { name: "description" });
  const classes = h("input", { name: "classes", placeholder: "cat, dog" });
  const autoEmbed = h("input", { type: "checkbox", name: "auto_embed", checked: true });
  const create = h("form", {
    class: "card", "aria-labelledby": "new-dataset",
    onsubmit: async (event) => {
      event.preventDefault();
      const made = await attempt(() => datasets.create({
        name: name.value, description: description.value, autoEmbed: autoEmbed.checked,
        classes: classes.value.split(",").map((c) => c.trim()).filter(Boolean),
      }), errors);
      if (made) go(`/d/${made.id}/grid`);
    },
  }, h("h2", { id: "new-dataset" }, "New dataset"), field("Name", name), field("Description", description),
     field("Classes", classes, "Comma-separated; more can be added later."),
     h("label", { class: "check" }, autoEmbed, " Embed imported images automatically"), errors,
     h("button", { class: "primary", type: "submit" }, "Create"));
  root.append(h("h1", {}, "Datasets"),
              items.length ? h("ul", { class: "cards" }, items.map((d) => card(d, go)))
                : h("p", { class: "muted" }, "No dataset is shared with you yet."),
              create);
}

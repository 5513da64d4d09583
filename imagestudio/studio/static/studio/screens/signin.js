// Sign in with a user name and password (POST auth/token/) or a pasted token; the token lives in sessionStorage.

import { apiBase, setApiBase, signIn, useToken } from "../api.js";
import { attempt, field, h } from "../ui.js";

export function render(root, { query, go }) {
  const next = query.get("next") || "/";
  const errors = h("div", { class: "form-errors", role: "alert" });
  const base = h("input", { name: "api", value: apiBase(), autocomplete: "url", spellcheck: "false" });
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const pasted = h("input", { name: "token", autocomplete: "off", spellcheck: "false", required: true });
  const done = () => go(next.startsWith("/signin") ? "/" : next);

  const passwordForm = h("form", {
    class: "card", "aria-labelledby": "signin-password",
    onsubmit: async (event) => {
      event.preventDefault();
      setApiBase(base.value);
      if (await attempt(() => signIn(username.value, password.value).then(() => true), errors)) done();
    },
  }, h("h2", { id: "signin-password" }, "Sign in"), field("User name", username), field("Password", password),
     h("button", { class: "primary", type: "submit" }, "Sign in"));

  const tokenForm = h("form", {
    class: "card", "aria-labelledby": "signin-token",
    onsubmit: async (event) => {
      event.preventDefault();
      setApiBase(base.value);
      if (await attempt(() => useToken(pasted.value).then(() => true), errors)) done();
    },
  }, h("h2", { id: "signin-token" }, "Or use a token"), field("API token", pasted, "Sent as Authorization: Token …"),
     h("button", { type: "submit" }, "Use token"));

  root.append(h("section", { class: "signin" }, h("h1", {}, "Image Studio"),
                field("API address", base, "This server's API by default; another server must allow this origin (CORS)."),
                errors, h("div", { class: "row" }, passwordForm, tokenForm)));
  username.focus();
}

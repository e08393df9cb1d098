// The key/value browser: the keys under a prefix one level deep (folders end
// in "/"), kept live by a blocking `?keys&separator=/` query, and an editor
// that reads, creates, updates and deletes single keys.

import { watch, getJSON, put, del, kvPath, ApiError } from "./api.js";
import { h, fill } from "./dom.js";

/** A hash link to a prefix, each segment escaped. */
function prefixHref(prefix) {
  return "#/kv/" + prefix.split("/").map(encodeURIComponent).join("/");
}

/** Base64 to text; `null` when the bytes are not UTF-8. */
function decodeValue(base64) {
  if (base64 === null || base64 === undefined) return "";
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

function breadcrumbs(prefix) {
  const parts = prefix.split("/").filter(Boolean);
  const crumbs = [h("a", { href: "#/kv/" }, "(root)")];
  let path = "";
  for (const part of parts) {
    path += `${part}/`;
    crumbs.push(" / ", h("a", { href: prefixHref(path) }, part));
  }
  return h("nav", { className: "crumbs", "aria-label": "Prefix" }, crumbs);
}

export function renderKv(view, prefix) {
  document.title = "Key/Value · Sextant";
  const keyList = h("ul", { className: "keys", id: "kv-keys", "aria-label": "Keys" });
  const keyInput = h("input", {
    id: "kv-key",
    name: "key",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
  });
  const valueInput = h("textarea", { id: "kv-value", name: "value", spellcheck: "false" });
  const message = h("p", { className: "message", role: "status", id: "kv-message" });
  const deleteButton = h(
    "button",
    { type: "button", className: "danger", id: "kv-delete" },
    "Delete",
  );
  const form = h(
    "form",
    { "aria-label": "Edit key" },
    h("label", { for: "kv-key" }, "Key"),
    keyInput,
    h("label", { for: "kv-value" }, "Value"),
    valueInput,
    h(
      "div",
      { className: "actions" },
      h("button", { type: "submit", className: "primary", id: "kv-save" }, "Save"),
      deleteButton,
      h(
        "button",
        { type: "button", className: "plain", id: "kv-new", onclick: newKey },
        "New key",
      ),
    ),
    message,
  );
  view.append(
    h("h1", {}, "Key/Value"),
    breadcrumbs(prefix),
    h("div", { className: "kv" }, h("div", {}, keyList), form),
  );

  // The key shown in the editor (null for a new one), and whether the user
  // changed the form since it was loaded: live updates never overwrite edits.
  let selected = null;
  let dirty = false;
  // Bumped whenever the editor starts showing something else, so a read that
  // returns late cannot overwrite what came after it.
  let generation = 0;

  function say(text, isError = false) {
    message.textContent = text;
    message.classList.toggle("error", isError);
  }

  function newKey() {
    startNew();
    keyInput.focus();
  }

  function startNew() {
    generation += 1;
    selected = null;
    dirty = false;
    keyInput.value = prefix;
    keyInput.readOnly = false;
    valueInput.value = "";
    valueInput.readOnly = false;
    deleteButton.hidden = true;
    say("");
    markCurrent();
  }

  /** Shows `key`; `refresh` when a live update re-reads the key on show. */
  async function open(key, { refresh = false } = {}) {
    const mine = ++generation;
    let entries;
    try {
      entries = await getJSON(kvPath(key), { notFound: [] });
    } catch (error) {
      if (mine === generation) say(`Cannot read ${key}: ${error.message}`, true);
      return;
    }
    if (mine !== generation) return;
    if (entries.length === 0) {
      if (selected === key) {
        startNew();
        say(`${key} was deleted.`);
      }
      return;
    }
    const text = decodeValue(entries[0].Value);
    selected = key;
    dirty = false;
    keyInput.value = key;
    keyInput.readOnly = true;
    valueInput.value = text ?? entries[0].Value;
    valueInput.readOnly = text === null;
    deleteButton.hidden = false;
    if (text === null) say("A binary value, shown as base64; it cannot be edited here.");
    else if (!refresh) say("");
    markCurrent();
  }

  function markCurrent() {
    for (const button of keyList.querySelectorAll("button[data-key]")) {
      button.setAttribute("aria-current", button.dataset.key === selected ? "true" : "false");
    }
  }

  form.addEventListener("input", () => {
    dirty = true;
    generation += 1;
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (key === "" || key.startsWith("/")) {
      say("A key must not be empty or start with '/'.", true);
      return;
    }
    try {
      const stored = await put(kvPath(key), valueInput.value);
      if (stored !== true) throw new ApiError(409, "the server did not store it");
      selected = key;
      dirty = false;
      keyInput.readOnly = true;
      deleteButton.hidden = false;
      say(`Saved ${key}.`);
      markCurrent();
    } catch (error) {
      say(`Cannot save ${key}: ${error.message}`, true);
    }
  });

  deleteButton.addEventListener("click", async () => {
    const key = selected;
    if (key === null || !window.confirm(`Delete the key ${key}?`)) return;
    try {
      await del(kvPath(key));
      startNew();
      say(`Deleted ${key}.`);
    } catch (error) {
      say(`Cannot delete ${key}: ${error.message}`, true);
    }
  });

  startNew();

  return watch(
    `${kvPath(prefix)}?keys&separator=/`,
    (keys) => {
      const empty = h("li", { className: "empty" }, "No keys under this prefix.");
      fill(keyList, keys.length === 0 ? empty : keys.map(keyItem));
      markCurrent();
      if (selected !== null && !dirty) open(selected, { refresh: true });
    },
    { notFound: [] },
  );

  function keyItem(key) {
    const label = key === prefix ? key : key.slice(prefix.length);
    if (key.endsWith("/") && key !== prefix) {
      const icon = h("span", { "aria-hidden": "true" }, "📁 ");
      return h("li", {}, h("a", { href: prefixHref(key), "data-folder": key }, icon, label));
    }
    const button = h("button", { type: "button", "data-key": key, onclick: () => open(key) }, label);
    return h("li", {}, button);
  }
}

// polyrec web page: pick a user, see their history and recommendations (with the history
// items behind each one), search the catalog. Plain DOM code; all data comes from the JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const TITLE_KEYS = ["title", "name", "label"];
const state = { user: null, usersOffset: 0, titles: new Map() };

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function titleOf(id, metadata) {
  const key = TITLE_KEYS.find((k) => typeof (metadata || {})[k] === "string");
  return key ? metadata[key] : id;
}

function remember(id, metadata) {
  if (metadata && Object.keys(metadata).length) state.titles.set(id, titleOf(id, metadata));
}

function hue(text) {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

function thumbnail(id, metadata, media) {
  const url = Object.values(media || {})[0];
  if (url) {
    const img = el("img", "thumb");
    img.src = url;
    img.alt = titleOf(id, metadata);
    img.loading = "lazy";
    return img;
  }
  const box = el("div", "thumb placeholder", titleOf(id, metadata).slice(0, 1).toUpperCase());
  box.style.background = `hsl(${hue(id)} 45% 60%)`;
  return box;
}

function details(metadata) {
  return Object.entries(metadata || {})
    .filter(([key, value]) => !TITLE_KEYS.includes(key) && (typeof value !== "string" || value.length <= 40))
    .filter(([, value]) => typeof value !== "string" || !/\.(png|jpe?g|gif|webp|bmp|tiff?)$/i.test(value))
    .slice(0, 3)
    .map(([key, value]) => `${key}: ${Array.isArray(value) ? value.join(", ") : value}`)
    .join(" · ");
}

function explanation(items) {
  const box = el("div", "because");
  box.append(el("span", null, "because of"));
  const list = el("ul");
  const top = Math.max(...items.map((w) => w.weight), 1e-9);
  for (const weight of items) {
    const row = el("li");
    const bar = el("span", "bar");
    bar.style.width = `${Math.max(4, Math.round((weight.weight / top) * 40))}px`;
    row.append(bar, el("span", "name", state.titles.get(weight.item) || weight.item), el("span", "score", weight.weight.toFixed(2)));
    row.title = `${weight.item}: weight ${weight.weight.toFixed(3)}`;
    list.append(row);
  }
  box.append(list);
  return box;
}

function card(result, { showScore = true } = {}) {
  const node = el("article", "card");
  node.dataset.item = result.item;
  node.append(thumbnail(result.item, result.metadata, result.media));
  const body = el("div", "card-body");
  body.append(el("div", "title", titleOf(result.item, result.metadata)));
  const meta = details(result.metadata);
  body.append(el("div", "meta", meta ? `${result.item} · ${meta}` : result.item));
  if (showScore && typeof result.score === "number") {
    // a popularity fallback's score is the item's number of events, not a similarity
    const popular = (result.flags || []).includes("fallback:popularity");
    const count = Math.round(result.score);
    const text = popular ? `${count} event${count === 1 ? "" : "s"}` : `score ${result.score.toFixed(3)}`;
    body.append(el("div", "meta score", text));
  }
  const flags = (result.flags || []).filter((f) => !f.startsWith("field:"));
  if (flags.length) {
    const badges = el("div", "badges");
    for (const flag of flags) badges.append(el("span", flag.startsWith("fallback") ? "badge warn" : "badge", flag));
    body.append(badges);
  }
  if (result.explanation && result.explanation.length) body.append(explanation(result.explanation));
  node.append(body);
  return node;
}

// -- status and users ---------------------------------------------------------------------

async function loadStatus() {
  try {
    const health = await api("/health");
    $("status").textContent = `${health.items} items · ${health.events} events · store ${health.store} · v${health.version}`;
  } catch (error) {
    $("status").textContent = `unavailable: ${error.message}`;
  }
}

async function loadUsers(reset) {
  if (reset) {
    state.usersOffset = 0;
    $("user-list").replaceChildren();
  }
  try {
    const page = await api(`/users?offset=${state.usersOffset}&limit=${PAGE}`);
    for (const user of page.users) {
      const item = el("li", user === state.user ? "selected" : "", user);
      item.dataset.user = user;
      item.addEventListener("click", () => selectUser(user));
      $("user-list").append(item);
    }
    state.usersOffset += page.users.length;
    $("more-users").hidden = state.usersOffset >= page.total;
    $("user-count").textContent = `${page.total} users in the event log`;
  } catch (error) {
    showMessage(`Could not list users: ${error.message}`);
  }
}

// -- a user's page ------------------------------------------------------------------------

async function selectUser(user) {
  state.user = user;
  for (const item of $("user-list").children) item.classList.toggle("selected", item.dataset.user === user);
  $("user-name").textContent = user;
  $("history-user").textContent = user;
  $("user-section").hidden = false;
  $("empty").hidden = true;
  showMessage("");
  await loadHistory(user);
  await loadRecommendations(user);
}

async function loadHistory(user) {
  const strip = $("history");
  try {
    const data = await api(`/users/${encodeURIComponent(user)}/events?limit=50&include_items=true`);
    for (const [id, metadata] of Object.entries(data.items)) remember(id, metadata);
    const latest = [];
    for (const event of [...data.events].reverse()) {
      if (!latest.some((e) => e.item === event.item)) latest.push(event);
    }
    strip.replaceChildren(
      ...latest.slice(0, 12).map((event) =>
        card({ item: event.item, metadata: data.items[event.item] || {}, media: data.media[event.item] || {} }, { showScore: false })
      )
    );
    $("history-count").textContent = data.total ? `${data.total} events` : "no events yet";
  } catch (error) {
    strip.replaceChildren();
    showMessage(`Could not read the history: ${error.message}`);
  }
}

async function loadRecommendations(user) {
  const grid = $("recommendations");
  const params = new URLSearchParams({ k: $("k").value, diversity: $("diversity").value, explain: "true" });
  try {
    const data = await api(`/users/${encodeURIComponent(user)}/recommendations?${params}`);
    for (const result of data.results) remember(result.item, result.metadata);
    grid.replaceChildren(...data.results.map((result) => card(result)));
    const fallback = $("fallback");
    fallback.hidden = !data.fallback;
    fallback.textContent = data.fallback
      ? `${data.known_user ? "no usable history" : "new user"}: ${data.fallback === "popularity" ? "popular" : "typical"} items`
      : "";
    if (!data.results.length) grid.append(el("p", "muted", "No recommendations (is the catalog empty?)."));
  } catch (error) {
    grid.replaceChildren();
    showMessage(`Could not recommend: ${error.message}`);
  }
}

// -- search -------------------------------------------------------------------------------

async function search(event) {
  event.preventDefault();
  const text = $("search-input").value.trim();
  const file = $("search-file").files[0];
  if (!text && !file) return;
  let options;
  if (file) {
    const form = new FormData();
    form.append("file", file);
    form.append("k", "12");
    if (state.user) form.append("user", state.user);
    options = { method: "POST", body: form };
  } else {
    const body = { query: text, k: 12 };
    if (state.user) body.user = state.user;
    options = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  }
  showMessage("");
  try {
    const data = await api("/search", options);
    $("search-title").textContent = `Search results for “${data.query}”${data.slot ? ` (${data.slot})` : ""}`;
    $("search-results").replaceChildren(...data.results.map((result) => card(result)));
    if (!data.results.length) $("search-results").append(el("p", "muted", "Nothing found."));
    $("search-section").hidden = false;
    $("empty").hidden = true;
  } catch (error) {
    showMessage(`Search failed: ${error.message}`);
  }
}

function init() {
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("user-input").value.trim();
    if (user) selectUser(user);
  });
  $("more-users").addEventListener("click", () => loadUsers(false));
  $("search-form").addEventListener("submit", search);
  $("close-search").addEventListener("click", () => {
    $("search-section").hidden = true;
    $("search-file").value = "";
  });
  for (const id of ["k", "diversity"]) $(id).addEventListener("change", () => state.user && loadRecommendations(state.user));
  loadStatus();
  loadUsers(true);
}

document.addEventListener("DOMContentLoaded", init);

// polyrec web page: pick a user (history, recommendations and the history items behind each),
// search the catalog (the blend with the user's taste is visible and off unless asked), open an
// item (its fields, picture, sound, and more like it), browse the catalog page by page, filter
// everything with the API's filter language. What is on screen is in the URL, so a link shows
// the same view and Back works. Plain DOM code; all data comes from the JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const USERS_PAGE = 100;
const CATALOG_PAGE = 24;
const TITLE_KEYS = ["title", "name", "label"];
const TEXT_KEYS = ["description", "summary", "text", "overview", "caption"];
const IMAGE_FILE = /\.(png|jpe?g|gif|webp|bmp|tiff?)$/i;
const AUDIO_FILE = /\.(wav|mp3|flac|ogg|oga|m4a|aiff?)$/i;
const state = { usersOffset: 0, titles: new Map(), pending: 0, view: {} };

// -- requests, with a pending state for every one -------------------------------------------

// API keys: a server started with keys answers 401 without one. Ask once, keep the key in this
// browser (localStorage), send it as a header, and as a cookie so that <img> and <audio> tags,
// which cannot send headers, load too (the server takes the cookie for GET requests only).
const KEY_NAME = "polyrec_key";

function storeKey(key) {
  localStorage.setItem(KEY_NAME, key);
  document.cookie = `${KEY_NAME}=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
}

function withKey(options) {
  const key = localStorage.getItem(KEY_NAME);
  if (!key) return options;
  const headers = new Headers(options.headers || {});
  headers.set("Authorization", `Bearer ${key}`);
  return { ...options, headers };
}

async function fetchWithKey(path, options) {
  const used = localStorage.getItem(KEY_NAME);
  const response = await fetch(path, withKey(options));
  if (response.status !== 401) return response;
  if (localStorage.getItem(KEY_NAME) === used) {
    // nobody entered a key since this request left: ask (another request's answer is reused)
    const key = window.prompt("This polyrec server needs an API key (made with `polyrec keys create NAME`):");
    if (!key || !key.trim()) return response;
    storeKey(key.trim());
  }
  return fetch(path, withKey(options));
}

if (localStorage.getItem(KEY_NAME)) storeKey(localStorage.getItem(KEY_NAME)); // the cookie, for images

async function api(path, options = {}) {
  state.pending += 1;
  showPending();
  try {
    const response = await fetchWithKey(path, options);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
    return body;
  } finally {
    state.pending -= 1;
    showPending();
  }
}

function showPending() {
  const busy = state.pending > 0;
  $("pending").hidden = !busy;
  $("content").setAttribute("aria-busy", String(busy));
  $("search-button").disabled = busy && Boolean(state.searching);
  $("search-button").textContent = state.searching ? "Searching…" : "Search";
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

// -- the view in the URL --------------------------------------------------------------------

const VIEW_KEYS = ["user", "q", "item", "catalog", "filter", "blend", "seen"];

function readView() {
  const params = new URLSearchParams(location.search);
  const view = {};
  for (const key of VIEW_KEYS) if (params.has(key)) view[key] = params.get(key);
  return view;
}

function navigate(changes, { replace = false } = {}) {
  const view = { ...state.view, ...changes };
  for (const key of Object.keys(view)) if (view[key] === null || view[key] === undefined || view[key] === "") delete view[key];
  const params = new URLSearchParams();
  for (const key of VIEW_KEYS) if (key in view) params.set(key, view[key]);
  const url = params.toString() ? `?${params}` : location.pathname;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  return show(view);
}

async function show(view) {
  const before = state.view;
  state.view = view;
  $("filter-input").value = view.filter || "";
  $("search-input").value = view.q || "";
  $("personalise").checked = Boolean(view.blend);
  $("user-weight").disabled = !view.blend;
  if (view.blend) $("user-weight").value = view.blend;
  $("user-weight-value").textContent = $("user-weight").value;
  $("include-seen").checked = view.seen === "1";
  showUserOptions(view.user);
  showMessage("");
  const filterChanged = before.filter !== view.filter;
  const tasks = [];
  if (view.user && (view.user !== before.user || filterChanged)) tasks.push(selectUser(view.user));
  $("user-section").hidden = !view.user;
  if (!view.user) markSelected(null);
  const searchKeys = ["q", "user", "filter", "blend", "seen"];
  if (view.q && searchKeys.some((key) => before[key] !== view[key])) tasks.push(searchText(view.q));
  $("search-section").hidden = !view.q && !state.fileResults;
  if (view.item && (view.item !== before.item || filterChanged)) tasks.push(openItem(view.item));
  $("item-section").hidden = !view.item;
  if (view.catalog && (view.catalog !== before.catalog || filterChanged)) tasks.push(loadCatalog(Number(view.catalog) || 1));
  $("catalog-section").hidden = !view.catalog;
  $("empty").hidden = Boolean(view.user || view.q || view.item || view.catalog || state.fileResults);
  await Promise.all(tasks);
  if (view.item && view.item !== before.item) $("item-section").scrollIntoView({ block: "start" });
}

function filterParam() {
  const text = (state.view.filter || "").trim();
  if (!text) return null;
  try {
    const value = JSON.parse(text);
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not a JSON object");
    return value;
  } catch (error) {
    showMessage(`The filter is not a JSON object (${error.message}); showing results without it.`);
    return null;
  }
}

function withFilter(params) {
  const filter = filterParam();
  if (filter) params.set("filter", JSON.stringify(filter));
  return params;
}

// -- cards ----------------------------------------------------------------------------------

function titleOf(id, metadata) {
  const key = TITLE_KEYS.find((k) => typeof (metadata || {})[k] === "string");
  return key ? metadata[key] : id;
}

function remember(id, metadata) {
  if (metadata && Object.keys(metadata).length) state.titles.set(id, titleOf(id, metadata));
}

function isFile(value) {
  return typeof value === "string" && (IMAGE_FILE.test(value) || AUDIO_FILE.test(value));
}

function descriptionOf(metadata) {
  const key = TEXT_KEYS.find((k) => typeof (metadata || {})[k] === "string" && !isFile(metadata[k]));
  return key ? metadata[key] : "";
}

function hue(text) {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

function imageLinks(metadata, media) {
  return Object.entries(media || {}).filter(([field]) => IMAGE_FILE.test(String((metadata || {})[field] || "")));
}

function audioLinks(metadata, media) {
  return Object.entries(media || {}).filter(([field]) => AUDIO_FILE.test(String((metadata || {})[field] || "")));
}

function thumbnail(id, metadata, media) {
  const image = imageLinks(metadata, media)[0];
  if (image) {
    const img = el("img", "thumb");
    img.src = image[1];
    img.alt = titleOf(id, metadata);
    img.loading = "lazy";
    return img;
  }
  const box = el("div", "thumb placeholder", titleOf(id, metadata).slice(0, 1).toUpperCase());
  box.style.background = `hsl(${hue(id)} 45% 60%)`;
  box.setAttribute("aria-hidden", "true");
  return box;
}

function shortFields(metadata) {
  return Object.entries(metadata || {})
    .filter(([key, value]) => !TITLE_KEYS.includes(key) && !TEXT_KEYS.includes(key) && !isFile(value))
    .filter(([, value]) => typeof value !== "string" || value.length <= 40)
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
    row.title = `${weight.item}: attention weight ${weight.weight.toFixed(3)}`;
    list.append(row);
  }
  box.append(list);
  return box;
}

function visibleFlags(result) {
  // field:<slot> is in the section title; a fallback is said by the #fallback badge
  return (result.flags || []).filter((f) => !f.startsWith("field:") && !f.startsWith("fallback:"));
}

// flags every result of a list shares are shown once, in the list's header
function sharedFlags(results) {
  if (!results.length) return [];
  return visibleFlags(results[0]).filter((flag) => results.every((r) => visibleFlags(r).includes(flag)));
}

function badges(flags) {
  const box = el("span", "badges");
  for (const flag of flags) box.append(el("span", "badge", flag));
  return box;
}

function card(result, { showScore = true, shared = [] } = {}) {
  const node = el("article", "card");
  node.dataset.item = result.item;
  node.tabIndex = 0;
  node.setAttribute("role", "link");
  node.setAttribute("aria-label", `${titleOf(result.item, result.metadata)}: details`);
  node.addEventListener("click", (event) => {
    if (!event.target.closest("audio")) navigate({ item: result.item });
  });
  node.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      navigate({ item: result.item });
    }
  });
  node.append(thumbnail(result.item, result.metadata, result.media));
  const body = el("div", "card-body");
  body.append(el("div", "title", titleOf(result.item, result.metadata)));
  const text = descriptionOf(result.metadata);
  if (text) body.append(el("div", "description", text));
  const meta = shortFields(result.metadata);
  body.append(el("div", "meta", meta ? `${result.item} · ${meta}` : result.item));
  if (showScore && typeof result.score === "number") {
    // a popularity fallback's score is the item's number of events, not a similarity
    const popular = (result.flags || []).includes("fallback:popularity");
    const count = Math.round(result.score);
    const label = popular ? `${count} event${count === 1 ? "" : "s"}` : `score ${result.score.toFixed(3)}`;
    body.append(el("div", "meta score", label));
  }
  const own = visibleFlags(result).filter((flag) => !shared.includes(flag));
  if (own.length) body.append(badges(own));
  if (result.explanation && result.explanation.length) body.append(explanation(result.explanation));
  node.append(body);
  return node;
}

function fillGrid(grid, flagsBox, results, empty, options = {}) {
  const shared = sharedFlags(results);
  if (flagsBox) flagsBox.replaceChildren(...badges(shared).childNodes);
  grid.replaceChildren(...results.map((result) => card(result, { ...options, shared })));
  if (!results.length) grid.append(el("p", "muted", empty));
}

// -- status, query modalities and users -----------------------------------------------------

async function loadStatus() {
  try {
    const health = await api("/health");
    $("status").textContent = `${health.items} items · ${health.events} events · store ${health.store} · v${health.version}`;
  } catch (error) {
    $("status").textContent = `unavailable: ${error.message}`;
  }
}

// the file upload is offered only when a configured encoder takes image or audio queries
async function loadQueryModalities() {
  try {
    const plugins = await api("/plugins");
    const takes = new Set(Object.values(plugins.configured.encoders || {}).flatMap((e) => (e.usable === false ? [] : e.query_modalities || [])));
    const accept = [takes.has("image") ? "image/*" : null, takes.has("audio") ? "audio/*" : null].filter(Boolean);
    $("file-label").hidden = !accept.length;
    $("search-file").accept = accept.join(",");
    $("file-label").title = `search with ${accept.map((a) => a.split("/")[0]).join(" or ")} file`;
  } catch (error) {
    $("file-label").hidden = true;
  }
}

async function loadUsers(reset) {
  if (reset) {
    state.usersOffset = 0;
    $("user-list").replaceChildren();
  }
  try {
    const page = await api(`/users?offset=${state.usersOffset}&limit=${USERS_PAGE}`);
    for (const user of page.users) {
      const item = el("li");
      const button = el("button", "user", user);
      button.type = "button";
      button.dataset.user = user;
      button.addEventListener("click", () => navigate({ user }));
      item.append(button);
      $("user-list").append(item);
    }
    markSelected(state.view.user);
    state.usersOffset += page.users.length;
    $("more-users").hidden = state.usersOffset >= page.total;
    $("user-count").textContent = `${page.total} users in the event log`;
  } catch (error) {
    showMessage(`Could not list users: ${error.message}`);
  }
}

function markSelected(user) {
  for (const button of $("user-list").querySelectorAll("button.user")) {
    const selected = button.dataset.user === user;
    button.classList.toggle("selected", selected);
    button.setAttribute("aria-pressed", String(selected));
  }
}

function showUserOptions(user) {
  $("search-options").hidden = !user;
  $("blend-user").textContent = user || "";
  for (const node of document.querySelectorAll(".blend-user")) node.textContent = user || "";
}

// -- a user's page --------------------------------------------------------------------------

async function selectUser(user) {
  markSelected(user);
  $("user-name").textContent = user;
  $("history-user").textContent = user;
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
  const params = withFilter(new URLSearchParams({ k: $("k").value, diversity: $("diversity").value, explain: "true" }));
  try {
    const data = await api(`/users/${encodeURIComponent(user)}/recommendations?${params}`);
    for (const result of data.results) remember(result.item, result.metadata);
    const fallback = $("fallback");
    fallback.hidden = !data.fallback;
    fallback.textContent = data.fallback
      ? `${data.known_user ? "no usable history" : "new user"}: ${data.fallback === "popularity" ? "popular" : "typical"} items`
      : "";
    fillGrid(grid, $("recommendation-flags"), data.results, "No recommendations (is the catalog empty, or the filter too narrow?).");
  } catch (error) {
    grid.replaceChildren();
    showMessage(`Could not recommend: ${error.message}`);
  }
}

// -- search ---------------------------------------------------------------------------------

function searchBody() {
  const body = { k: 12 };
  const filter = filterParam();
  if (filter) body.filter = filter;
  if (state.view.user) {
    // the user is sent to leave out what they have seen; their taste counts only when asked
    body.user = state.view.user;
    body.user_weight = state.view.blend ? Number(state.view.blend) : 0;
    body.exclude_seen = state.view.seen !== "1";
  }
  return body;
}

async function runSearch(options, label) {
  state.searching = true;
  showPending();
  try {
    const data = await api("/search", options);
    const blend = state.view.user && state.view.blend ? ` · blended with ${state.view.user}'s taste (weight ${state.view.blend})` : "";
    $("search-title").textContent = `Search results for “${label || data.query}”${data.slot ? ` (${data.slot})` : ""}${blend}`;
    fillGrid($("search-results"), $("search-flags"), data.results, "Nothing found.");
    $("search-section").hidden = false;
    $("empty").hidden = true;
  } catch (error) {
    showMessage(`Search failed: ${error.message}`);
  } finally {
    state.searching = false;
    showPending();
  }
}

function searchText(text) {
  state.fileResults = false;
  const body = { ...searchBody(), query: text };
  return runSearch({ method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }, text);
}

function searchFile(file) {
  const form = new FormData();
  form.append("file", file);
  for (const [key, value] of Object.entries(searchBody())) form.append(key, typeof value === "object" ? JSON.stringify(value) : String(value));
  state.fileResults = true;
  return runSearch({ method: "POST", body: form }, file.name);
}

function submitSearch(event) {
  event.preventDefault();
  const text = $("search-input").value.trim();
  const file = $("search-file").files[0];
  if (file) {
    navigate({ q: null }, { replace: true });
    searchFile(file);
  } else if (text) {
    navigate({ q: text });
  }
}

// -- an item: details and more like this -----------------------------------------------------

function fieldValue(value) {
  if (Array.isArray(value)) return value.join(", ");
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function audioPlayer(url, field) {
  const figure = el("figure", "audio");
  const audio = el("audio");
  audio.controls = true;
  audio.preload = "metadata";
  audio.src = url;
  const caption = el("figcaption", "muted", field);
  audio.addEventListener("loadedmetadata", () => {
    if (Number.isFinite(audio.duration)) caption.textContent = `${field} · ${audio.duration.toFixed(1)} s`;
  });
  figure.append(audio, caption);
  return figure;
}

async function openItem(id) {
  const box = $("item-details");
  try {
    const item = await api(`/items/${encodeURIComponent(id)}`);
    remember(id, item.metadata);
    $("item-title").textContent = titleOf(id, item.metadata);
    const media = el("div", "item-media");
    for (const [, url] of imageLinks(item.metadata, item.media)) {
      const img = el("img", "picture");
      img.src = url;
      img.alt = titleOf(id, item.metadata);
      media.append(img);
    }
    for (const [field, url] of audioLinks(item.metadata, item.media)) media.append(audioPlayer(url, field));
    const table = el("dl", "fields");
    table.append(el("dt", null, "id"), el("dd", null, id));
    for (const [key, value] of Object.entries(item.metadata)) table.append(el("dt", null, key), el("dd", null, fieldValue(value)));
    const vectors = Object.entries(item.vectors || {}).map(([slot, v]) => `${slot} (${v.plugin}${v.has_vector ? "" : ", no vector"})`);
    table.append(el("dt", null, "vectors"), el("dd", null, vectors.join(", ") || "none"));
    box.replaceChildren(...(media.childNodes.length ? [media] : []), table);
  } catch (error) {
    box.replaceChildren(el("p", "muted", `Could not read item ${id}: ${error.message}`));
    $("similar").replaceChildren();
    return;
  }
  try {
    const data = await api(`/items/${encodeURIComponent(id)}/similar?${withFilter(new URLSearchParams({ k: "8" }))}`);
    fillGrid($("similar"), $("similar-flags"), data.results, "No similar items.");
  } catch (error) {
    $("similar").replaceChildren(el("p", "muted", `No similar items: ${error.message}`));
  }
}

// -- the catalog, page by page ---------------------------------------------------------------

async function loadCatalog(page) {
  const offset = (page - 1) * CATALOG_PAGE;
  try {
    const filter = filterParam();
    const data = await api(`/items?${withFilter(new URLSearchParams({ offset: String(offset), limit: String(CATALOG_PAGE) }))}`);
    for (const item of data.items) remember(item.item, item.metadata);
    const empty = filter ? "No item in the catalog passes the filter." : "The catalog is empty.";
    fillGrid($("catalog"), null, data.items, empty, { showScore: false });
    const last = Math.max(1, Math.ceil(data.total / CATALOG_PAGE));
    const passing = filter ? " passing the filter" : "";
    $("catalog-info").textContent = `page ${page} of ${last} · ${data.total} items${passing}`;
    $("catalog-prev").disabled = page <= 1;
    $("catalog-next").disabled = page >= last;
  } catch (error) {
    showMessage(`Could not list the catalog: ${error.message}`);
  }
}

function init() {
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("user-input").value.trim();
    if (user) navigate({ user });
  });
  $("more-users").addEventListener("click", () => loadUsers(false));
  $("search-form").addEventListener("submit", submitSearch);
  $("filter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    navigate({ filter: $("filter-input").value.trim() });
  });
  $("clear-filter").addEventListener("click", () => navigate({ filter: null }));
  $("personalise").addEventListener("change", () => navigate({ blend: $("personalise").checked ? $("user-weight").value : null }));
  $("user-weight").addEventListener("input", () => ($("user-weight-value").textContent = $("user-weight").value));
  $("user-weight").addEventListener("change", () => navigate({ blend: $("user-weight").value }));
  $("include-seen").addEventListener("change", () => navigate({ seen: $("include-seen").checked ? "1" : null }));
  $("close-search").addEventListener("click", () => {
    state.fileResults = false;
    $("search-file").value = "";
    navigate({ q: null });
  });
  $("close-item").addEventListener("click", () => navigate({ item: null }));
  $("browse").addEventListener("click", () => navigate({ catalog: "1" }));
  $("catalog-prev").addEventListener("click", () => navigate({ catalog: String(Math.max(1, Number(state.view.catalog) - 1)) }));
  $("catalog-next").addEventListener("click", () => navigate({ catalog: String(Number(state.view.catalog) + 1) }));
  for (const id of ["k", "diversity"]) $(id).addEventListener("change", () => state.view.user && loadRecommendations(state.view.user));
  window.addEventListener("popstate", () => show(readView()));
  loadStatus();
  loadQueryModalities();
  loadUsers(true);
  show(readView());
}

document.addEventListener("DOMContentLoaded", init);

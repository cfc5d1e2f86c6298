// fusionrec web page: plain ES2020, no framework, no build step, nothing loaded from outside this app.
// Talks to the JSON API on the page's own origin; write calls send the X-API-Key from the header field.
"use strict";

(() => {
  const K = 12;
  const HISTORY_LIMIT = 30;
  const KEY_STORAGE = "fusionrec.apiKey";
  const MODALITY_COLOURS = {
    text: "#3b6fd8", image: "#e07b28", audio: "#2f9e6e", attributes: "#8a4fd1",
    genres: "#8a4fd1", tabular: "#8a4fd1", interactions: "#6b7280", id: "#6b7280", fused: "#0f766e",
  };

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const params = new URLSearchParams(window.location.search);
  const state = {
    user: null,
    variant: params.get("variant") || null, // asked for in the URL
    servedVariant: null, // what the server said it served
    recIds: [],
    historyIds: [],
    seq: { recs: 0, history: 0, search: 0 },
    version: 0,
  };

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(method, path, status, detail) {
      const where = `${method} ${path.split("?")[0]}`;
      super(status ? `${where} failed (${status}): ${detail}` : `${where} failed: ${detail}`);
      this.status = status;
      this.detail = detail;
    }
  }

  function formatDetail(detail) {
    if (detail === null || detail === undefined) return "";
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => {
        if (d && typeof d === "object") {
          const loc = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body" && p !== "query").join(".") : "";
          const msg = d.msg !== undefined ? d.msg : JSON.stringify(d);
          return loc ? `${loc}: ${msg}` : String(msg);
        }
        return String(d);
      }).join("; ");
    }
    return JSON.stringify(detail);
  }

  function apiKey() {
    return $("api-key").value.trim();
  }

  async function api(method, path, { json, form, write = false } = {}) {
    const headers = { Accept: "application/json" };
    let body;
    if (write) {
      const key = apiKey();
      if (key) headers["X-API-Key"] = key;
    }
    if (form !== undefined) {
      body = form; // the browser sets the multipart boundary
    } else if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    let resp;
    try {
      resp = await fetch(path, { method, headers, body });
    } catch (err) {
      throw new ApiError(method, path, 0, `network error (${err.message}); is the server running?`);
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!resp.ok) {
      let detail = data && typeof data === "object" && "detail" in data ? formatDetail(data.detail) : text.slice(0, 300);
      if (!detail) detail = resp.statusText || "no detail";
      if ((resp.status === 401 || resp.status === 403) && write) detail += " (enter the API key in the header)";
      throw new ApiError(method, path, resp.status, detail);
    }
    if (data === null || typeof data !== "object") throw new ApiError(method, path, resp.status, "the response is not JSON");
    return data;
  }

  // ---------------------------------------------------------------- status line

  let statusTimer = null;

  function setStatus(message, kind = "info") {
    const el = $("status");
    el.textContent = "";
    const text = document.createElement("span");
    text.textContent = message;
    el.append(text);
    if (kind === "error") {
      const close = document.createElement("button");
      close.type = "button";
      close.className = "ghost";
      close.textContent = "✕";
      close.setAttribute("aria-label", "Dismiss the message");
      close.addEventListener("click", clearStatus);
      el.append(close);
    }
    el.className = `status ${kind}`;
    el.dataset.kind = kind;
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    clearTimeout(statusTimer);
    if (kind !== "error") statusTimer = setTimeout(clearStatus, 6000);
  }

  function clearStatus() {
    const el = $("status");
    el.textContent = "";
    el.className = "status idle";
    el.dataset.kind = "";
    el.setAttribute("role", "status");
  }

  function showError(err) {
    setStatus(err instanceof Error ? err.message : String(err), "error");
  }

  // ---------------------------------------------------------------- cards

  function hue(text) {
    let h = 0;
    for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  function placeholder(title) {
    const div = document.createElement("div");
    div.className = "placeholder";
    div.style.setProperty("--hue", String(hue(title || "?")));
    const span = document.createElement("span");
    span.textContent = title || "untitled";
    div.append(span);
    return div;
  }

  function fillPoster(box, item) {
    const title = item.title || item.item_id;
    if (item.poster_url) {
      const img = document.createElement("img");
      img.alt = `Poster of ${title}`;
      img.loading = "lazy";
      img.decoding = "async";
      img.src = item.poster_url;
      img.addEventListener("error", () => img.replaceWith(placeholder(title)), { once: true });
      box.prepend(img);
    } else {
      box.prepend(placeholder(title));
    }
  }

  function modalityColour(name) {
    return MODALITY_COLOURS[name] || `hsl(${hue(name)}, 55%, 45%)`;
  }

  function renderExplanation(box, ex, cold) {
    if (!ex) {
      box.classList.add("muted");
      box.textContent = cold ? "popular pick: no history to explain from yet" : "no explanation for this item";
      return;
    }
    const head = ex.headline || (ex.driver ? `mostly its ${ex.driver}` : null);
    if (head) {
      const p = document.createElement("p");
      p.className = "headline";
      p.dataset.testid = "explanation-headline";
      p.textContent = head;
      p.title = "why this item: the strongest evidence from the history";
      box.append(p);
    }
    const values = ex.contributions || ex.weights;
    if (values && Object.keys(values).length) {
      const entries = Object.entries(values).filter(([, v]) => Number.isFinite(v));
      const total = entries.reduce((s, [, v]) => s + Math.abs(v), 0) || 1;
      entries.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
      const list = document.createElement("ul");
      list.className = "bars";
      list.dataset.testid = "modality-bars";
      list.setAttribute("aria-label", ex.contributions ? "share of the score per modality" : "fuser weight per modality");
      for (const [name, value] of entries) {
        const share = Math.abs(value) / total;
        const li = document.createElement("li");
        li.className = value < 0 ? "neg" : "";
        if (name === ex.driver) li.classList.add("driver");
        li.title = ex.contributions
          ? `${name}: ${value >= 0 ? "+" : ""}${value.toFixed(4)} to the score (leave-${name}-out difference)`
          : `${name}: fuser weight ${value.toFixed(3)}`;
        const label = document.createElement("span");
        label.className = "bar-label";
        label.textContent = name;
        const track = document.createElement("span");
        track.className = "bar-track";
        const fill = document.createElement("span");
        fill.className = "bar-fill";
        fill.style.width = `${(share * 100).toFixed(1)}%`;
        fill.style.background = modalityColour(name);
        track.append(fill);
        const pct = document.createElement("span");
        pct.className = "bar-pct";
        const percent = Math.round(share * 100);
        pct.textContent = `${value < 0 && percent > 0 ? "−" : ""}${percent}%`;
        li.append(label, track, pct);
        list.append(li);
      }
      box.append(list);
    }
    const evidence = Array.isArray(ex.evidence) ? ex.evidence : [];
    const more = evidence.map((e) => e.phrase || `${e.modality} like ${e.title}`).filter((text) => text !== head);
    if (more.length) {
      const p = document.createElement("p");
      p.className = "evidence";
      p.textContent = `also: ${more.slice(0, 2).join(" · ")}`;
      box.append(p);
    }
    if (evidence.length) {
      box.title = evidence.map((e) => `${e.modality}: ${e.title} (similarity ${Number(e.similarity).toFixed(2)})`).join("\n");
    }
  }

  function renderCard(item, kind, cold = false) {
    const node = $("card-template").content.firstElementChild.cloneNode(true);
    const title = item.title || item.item_id;
    node.classList.add(`card-${kind}`);
    node.dataset.testid = `${kind}-card`;
    node.dataset.itemId = item.item_id;
    node.setAttribute("aria-label", title);
    const poster = node.querySelector(".poster");
    fillPoster(poster, item);
    const rank = node.querySelector(".rank");
    if (kind === "rec" && item.rank !== undefined) {
      rank.hidden = false;
      rank.textContent = `#${item.rank}`;
    }
    const h3 = node.querySelector(".title");
    h3.textContent = title;
    h3.title = `${title} (item ${item.item_id})`;
    const score = node.querySelector(".score");
    if (typeof item.score === "number") {
      score.textContent = Number.isInteger(item.score) || Math.abs(item.score) >= 100 ? String(Math.round(item.score)) : item.score.toFixed(3);
      score.title = kind === "rec" ? "model score" : "similarity";
    } else {
      score.remove();
    }
    node.querySelector(".genres").textContent = (item.genres || []).join(" · ");
    const explain = node.querySelector(".explain");
    if (kind === "rec") renderExplanation(explain, item.explanation, cold);
    else explain.remove();

    const like = node.querySelector(".like");
    const dislike = node.querySelector(".dislike");
    const similar = node.querySelector(".similar");
    like.setAttribute("aria-label", `Like ${title}`);
    like.title = "Like";
    dislike.setAttribute("aria-label", `Dislike ${title}`);
    dislike.title = "Dislike: never recommend it again";
    similar.setAttribute("aria-label", `Show items similar to ${title}`);
    if (kind === "history") {
      like.remove();
      dislike.remove();
    } else {
      like.addEventListener("click", () => feedback(item, "like", node));
      dislike.addEventListener("click", () => feedback(item, "dislike", node));
    }
    similar.addEventListener("click", () => showSimilar(item));
    return node;
  }

  function flash(node) {
    node.classList.remove("flash");
    void node.offsetWidth; // restart the animation
    node.classList.add("flash");
    node.addEventListener("animationend", () => node.classList.remove("flash"), { once: true });
  }

  // ---------------------------------------------------------------- loaders

  async function loadHealth() {
    const h = await api("GET", "/healthz");
    const el = $("health");
    el.textContent = `${h.model} · ${Number(h.n_users).toLocaleString("en")} users · ${Number(h.n_items).toLocaleString("en")} items`;
    el.classList.toggle("bad", h.status !== "ok");
    el.title = `status: ${h.status}`;
  }

  async function loadUsers() {
    const data = await api("GET", "/users?limit=50");
    const list = $("user-list");
    list.textContent = "";
    for (const u of data.users || []) {
      const opt = document.createElement("option");
      opt.value = u.user_id;
      opt.label = `${u.user_id} (${u.n_history} in history)`;
      list.append(opt);
    }
    return data.users || [];
  }

  async function loadHistory({ flashIds = [] } = {}) {
    const user = state.user;
    const seq = ++state.seq.history;
    const box = $("history");
    let items;
    try {
      const data = await api("GET", `/users/${enc(user)}/history?limit=${HISTORY_LIMIT}`);
      items = data.items || [];
    } catch (err) {
      if (err.status !== 404) throw err;
      items = []; // a user the server has never seen: no history yet
    }
    if (seq !== state.seq.history) return;
    box.textContent = "";
    const newestFirst = [...items].reverse();
    for (const item of newestFirst) {
      const card = renderCard(item, "history");
      box.append(card);
      if (flashIds.includes(item.item_id)) flash(card);
    }
    state.historyIds = items.map((i) => i.item_id);
    $("history-note").textContent = items.length ? `${items.length} shown` : "none yet";
    if (!items.length) {
      const empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "No history yet: like an item to start one.";
      box.append(empty);
    }
  }

  function diversityValue() {
    return Number($("diversity").value).toFixed(1);
  }

  async function loadRecs({ flashNew = false } = {}) {
    const user = state.user;
    const seq = ++state.seq.recs;
    const grid = $("recs");
    grid.setAttribute("aria-busy", "true");
    const qs = new URLSearchParams({ k: String(K), diversity: diversityValue(), explain: "true" });
    if (state.variant) qs.set("variant", state.variant);
    let data;
    try {
      data = await api("GET", `/users/${enc(user)}/recommendations?${qs}`);
    } finally {
      if (seq === state.seq.recs) grid.setAttribute("aria-busy", "false");
    }
    if (seq !== state.seq.recs) return null; // a newer request superseded this one
    const before = new Set(state.recIds);
    const items = data.items || [];
    grid.textContent = "";
    const added = [];
    for (const item of items) {
      const card = renderCard(item, "rec", Boolean(data.cold));
      grid.append(card);
      if (!before.has(item.item_id)) {
        added.push(item.item_id);
        if (flashNew) flash(card);
      }
    }
    if (!items.length) {
      const empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "No recommendations for this user.";
      grid.append(empty);
    }
    state.recIds = items.map((i) => i.item_id);
    state.servedVariant = data.variant || null;
    grid.dataset.version = String(++state.version);
    grid.dataset.user = user;
    grid.dataset.diversity = diversityValue();
    const notes = [];
    if (data.cold) notes.push("cold start: a user the model has not seen");
    if (data.variant) notes.push(`variant ${data.variant}`);
    notes.push(`diversity ${diversityValue()}`);
    $("recs-note").textContent = notes.join(" · ");
    $("recs-title").parentElement.classList.toggle("cold", Boolean(data.cold));
    postImpressions(user, items);
    return { added, removed: [...before].filter((id) => !state.recIds.includes(id)) };
  }

  function postImpressions(user, items) {
    // optional: only for A/B runs (a variant asked for or served) and with a key to write with
    const variant = state.servedVariant || state.variant;
    if (!variant || !apiKey() || !items.length) return;
    const events = items.map((i) => ({ user_id: user, item_id: i.item_id, type: "impression", value: null, variant }));
    api("POST", "/events", { json: { events, idempotency_key: newKey() }, write: true }).catch(showError);
  }

  async function loadUser() {
    const grid = $("recs");
    grid.dataset.user = state.user;
    await Promise.all([loadHistory(), loadRecs()]);
  }

  async function selectUser(userId) {
    const id = String(userId || "").trim();
    if (!id) {
      setStatus("Type or pick a user id.", "error");
      return;
    }
    state.user = id;
    state.recIds = [];
    $("user-input").value = id;
    const url = new URL(window.location.href);
    url.searchParams.set("user", id);
    window.history.replaceState(null, "", url);
    try {
      await loadUser();
    } catch (err) {
      showError(err);
    }
  }

  // ---------------------------------------------------------------- actions

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  async function feedback(item, type, node) {
    const user = state.user;
    if (!user) return;
    const title = item.title || item.item_id;
    const buttons = node.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    node.classList.add("pending");
    const event = { user_id: user, item_id: item.item_id, type, value: null, variant: state.servedVariant || state.variant };
    try {
      await api("POST", "/events", { json: { events: [event], idempotency_key: newKey() }, write: true });
    } catch (err) {
      node.classList.remove("pending");
      buttons.forEach((b) => { b.disabled = false; });
      showError(err);
      return;
    }
    node.classList.add(type === "like" ? "liked" : "disliked");
    try {
      const [, change] = await Promise.all([
        loadHistory({ flashIds: type === "like" ? [item.item_id] : [] }),
        loadRecs({ flashNew: true }),
      ]);
      const n = change ? change.added.length : 0;
      const what = type === "like" ? `Liked “${title}”: added to the history` : `Disliked “${title}”: it will not be recommended`;
      setStatus(`${what}; ${n} new recommendation${n === 1 ? "" : "s"}.`, "ok");
      if (state.searchShown) refreshSearch();
    } catch (err) {
      showError(err);
    }
  }

  function showResults(heading, items, emptyText) {
    const panel = $("search-panel");
    const grid = $("search-grid");
    $("search-title").textContent = heading;
    grid.textContent = "";
    for (const item of items) grid.append(renderCard(item, "search"));
    if (!items.length) {
      const empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = emptyText;
      grid.append(empty);
    }
    panel.hidden = false;
    panel.dataset.count = String(items.length);
    state.searchShown = true;
  }

  function hideResults() {
    $("search-panel").hidden = true;
    $("search-grid").textContent = "";
    state.searchShown = false;
    state.lastResults = null;
  }

  async function search(query) {
    const q = query.trim();
    const seq = ++state.seq.search;
    if (!q) {
      hideResults();
      return;
    }
    try {
      const data = await api("GET", `/search?q=${enc(q)}&k=${K}`);
      if (seq !== state.seq.search) return;
      state.lastResults = () => search(q);
      showResults(`Search: “${data.query ?? q}”`, data.items || [], "Nothing matches this search.");
    } catch (err) {
      if (seq === state.seq.search) showError(err);
    }
  }

  async function showSimilar(item) {
    const seq = ++state.seq.search;
    try {
      const data = await api("GET", `/items/${enc(item.item_id)}/similar?k=${K}&modality=fused`);
      if (seq !== state.seq.search) return;
      state.lastResults = () => showSimilar(item);
      showResults(`Similar to “${item.title || item.item_id}”`, data.items || [], "No similar items.");
      $("search-panel").scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (err) {
      if (seq === state.seq.search) showError(err);
    }
  }

  function refreshSearch() {
    if (state.lastResults) state.lastResults();
  }

  async function addItem(form) {
    const data = new FormData(form);
    const title = String(data.get("title") || "").trim();
    if (!title) {
      setStatus("A new item needs a title.", "error");
      return;
    }
    for (const name of ["item_id", "description", "genres"]) {
      if (!String(data.get(name) || "").trim()) data.delete(name);
    }
    const image = data.get("image");
    if (!(image instanceof File) || !image.size) data.delete("image");
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const out = await api("POST", "/items", { form: data, write: true });
      setStatus(`Added “${title}” as item ${out.item_id} (index ${out.index}).`, "ok");
      form.reset();
      loadHealth().catch(showError);
      if (state.user) await loadRecs({ flashNew: true });
    } catch (err) {
      showError(err);
    } finally {
      submit.disabled = false;
    }
  }

  // ---------------------------------------------------------------- wiring

  function debounce(fn, ms) {
    let t = null;
    return (...args) => {
      clearTimeout(t);
      t = setTimeout(() => fn(...args), ms);
    };
  }

  function initKey() {
    const input = $("api-key");
    const fromUrl = params.get("key");
    let stored = null;
    try {
      stored = window.localStorage.getItem(KEY_STORAGE);
    } catch (_) {
      stored = null; // storage disabled: the field still works for this visit
    }
    input.value = fromUrl || stored || "";
    const save = () => {
      try {
        if (input.value.trim()) window.localStorage.setItem(KEY_STORAGE, input.value.trim());
        else window.localStorage.removeItem(KEY_STORAGE);
      } catch (_) {
        /* storage disabled */
      }
    };
    if (fromUrl) {
      save();
      const url = new URL(window.location.href);
      url.searchParams.delete("key"); // keep the key out of the address bar and the browser history
      window.history.replaceState(null, "", url);
    }
    input.addEventListener("change", save);
  }

  function wire() {
    $("controls").addEventListener("submit", (e) => e.preventDefault());
    const userInput = $("user-input");
    userInput.addEventListener("change", () => {
      if (userInput.value.trim() && userInput.value.trim() !== state.user) selectUser(userInput.value);
    });
    userInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        selectUser(userInput.value);
      }
    });

    const slider = $("diversity");
    const reload = debounce(() => {
      if (state.user) loadRecs({ flashNew: true }).catch(showError);
    }, 250);
    slider.addEventListener("input", () => {
      $("diversity-value").textContent = diversityValue();
      reload();
    });

    const searchInput = $("search-input");
    const runSearch = debounce(() => search(searchInput.value), 300);
    searchInput.addEventListener("input", runSearch);
    searchInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        search(searchInput.value);
      } else if (e.key === "Escape") {
        searchInput.value = "";
        hideResults();
      }
    });
    $("search-close").addEventListener("click", () => {
      searchInput.value = "";
      ++state.seq.search;
      hideResults();
    });

    $("add-form").addEventListener("submit", (e) => {
      e.preventDefault();
      addItem(e.currentTarget);
    });
  }

  async function init() {
    initKey();
    wire();
    $("diversity-value").textContent = diversityValue();
    const [health, users] = await Promise.allSettled([loadHealth(), loadUsers()]);
    if (health.status === "rejected") {
      $("health").textContent = "server unreachable";
      $("health").classList.add("bad");
      showError(health.reason);
    }
    let first = params.get("user");
    if (users.status === "rejected") {
      showError(users.reason);
    } else if (!first && users.value.length) {
      first = users.value[0].user_id;
    }
    if (first) {
      await selectUser(first);
    } else {
      $("recs").setAttribute("aria-busy", "false");
      if (users.status === "fulfilled") setStatus("No known users yet: type any user id for cold-start recommendations.", "info");
    }
    document.body.dataset.ready = "true";
  }

  document.addEventListener("DOMContentLoaded", () => {
    init().catch(showError);
  });
})();

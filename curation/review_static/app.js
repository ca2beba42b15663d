// The review app's page (curation/review_app.py serves it). All text goes in with textContent: titles and
// notes scraped from the web or typed by anyone are never parsed as HTML.
"use strict";

const state = { token: "", works: [], shown: [], current: 0, artist: null, lost: [], said: 0 };
const $ = (id) => document.getElementById(id);

// The server puts the token in the page it serves (only to a request that has it), so a second tab opened at
// the app's address works too; the address bar loses the ?token= the printed URL carried.
function takeToken() {
  state.token = document.querySelector('meta[name="review-token"]').content;
  const url = new URL(window.location.href);
  if (url.searchParams.has("token")) {
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search);
  }
}

async function api(path, body) {
  const options = body === undefined ? { headers: { "X-Review-Token": state.token } } : {
    method: "POST", body: JSON.stringify(body),
    headers: { "X-Review-Token": state.token, "Content-Type": "application/json" },
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  return { status: response.status, data };
}

function say(text) { $("status").textContent = text; state.said += 1; }

function artistName(name) { return name || "(no artist)"; }

async function loadArtists(keep) {
  const { status, data } = await api("api/artists");
  if (status !== 200) { say(data.error); return; }
  $("file-name").textContent = data.file;
  const select = $("artist");
  const chosen = keep ?? select.value;
  select.replaceChildren(...data.artists.map((a) => {
    const option = document.createElement("option");
    option.value = a.artist;
    option.textContent = `${artistName(a.artist)} — ${a.works} works: ${a.kept} kept, ${a.dropped} dropped, ` +
      `${a.unreviewed} not yet reviewed`;
    return option;
  }));
  if (data.artists.some((a) => a.artist === chosen)) select.value = chosen;
  const mine = data.artists.find((a) => a.artist === select.value);
  $("counts").textContent = mine ? `${artistName(mine.artist)}: ${mine.kept} kept, ${mine.dropped} dropped, ` +
    `${mine.unreviewed} not yet reviewed of ${mine.works}` : "No works in the manifest.";
}

async function loadWorks() {
  state.artist = $("artist").value;
  const { status, data } = await api(`api/works?artist=${encodeURIComponent(state.artist)}`);
  if (status !== 200) { say(data.error); return; }
  state.works = data.works;
  const flags = new Set(state.works.flatMap((w) => w.flags.split(";").map((f) => f.trim()).filter(Boolean)));
  const flagSelect = $("flag-filter");
  const previous = flagSelect.value;
  flagSelect.replaceChildren(new Option("any", ""), ...[...flags].sort().map((f) => new Option(f, f)));
  if (flags.has(previous)) flagSelect.value = previous;
  render(0);
}

function decisionOf(work) { return work.decision.trim().toLowerCase(); }

function visible(work) {
  const flag = $("flag-filter").value, decision = $("decision-filter").value, reviewed = $("reviewed-filter").value;
  if (flag && !work.flags.split(";").map((f) => f.trim()).includes(flag)) return false;
  if (decision && decisionOf(work) !== decision) return false;
  const done = Boolean(work.reviewed_at && decisionOf(work));  // a work without a decision is not reviewed
  if (reviewed === "yes" && !done) return false;
  if (reviewed === "no" && done) return false;
  return true;
}

function render(focusIndex) {
  state.shown = state.works.filter(visible);
  $("grid").replaceChildren(...state.shown.map(card));
  focusCard(Math.min(focusIndex, state.shown.length - 1));
}

function card(work) {
  const article = document.createElement("article");
  article.className = "card";
  article.tabIndex = -1;
  article.dataset.lotKey = work.lot_key;
  const image = document.createElement("img");
  image.alt = work.title;
  image.loading = "lazy";
  image.src = `thumb?key=${encodeURIComponent(work.lot_key)}`;
  image.addEventListener("click", () => openViewer(work));
  const meta = document.createElement("div");
  const row = span("row", `row ${work._row}`);
  const title = span("title", ` ${work.title}`);
  meta.append(row, title);
  if (work.flags) meta.append(document.createElement("br"), span("flags", work.flags));
  const actions = document.createElement("div");
  actions.className = "actions";
  for (const [label, value] of [["Keep", "keep"], ["Drop", "drop"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.dataset.decision = value;
    button.addEventListener("click", () => decide(work, { decision: value }));
    actions.append(button);
  }
  const note = document.createElement("input");
  note.className = "note";
  note.setAttribute("aria-label", "Note");
  note.placeholder = "note";
  note.value = work.note;
  note.addEventListener("change", () => decide(work, { note: note.value }));
  note.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); note.blur(); article.focus(); }
    if (event.key === "Escape") { event.preventDefault(); note.value = work.note; article.focus(); }
    event.stopPropagation();
  });
  const conflict = document.createElement("div");
  conflict.className = "conflict";
  conflict.hidden = true;
  article.append(image, meta, actions, note, conflict);
  article.addEventListener("focus", () => { state.current = state.shown.indexOf(work); });
  paint(article, work);
  return article;
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

function paint(article, work) {
  const decision = decisionOf(work);
  article.classList.toggle("keep", decision === "keep");
  article.classList.toggle("drop", decision === "drop");
  for (const button of article.querySelectorAll("button[data-decision]")) {
    button.setAttribute("aria-pressed", String(button.dataset.decision === decision));
  }
  const note = article.querySelector(".note");
  if (document.activeElement !== note) note.value = work.note;
}

function cardOf(work) {
  return [...document.querySelectorAll(".card")].find((c) => c.dataset.lotKey === work.lot_key);
}

async function decide(work, changes, expected) {
  const shown = expected || { decision: work.decision, note: work.note };
  const sent = Object.fromEntries(Object.keys(changes).map((k) => [k, shown[k]]));
  const { status, data } = await api("api/decide", { lot_key: work.lot_key, changes, expected: sent });
  const article = cardOf(work);
  if (status === 200) {
    Object.assign(work, data.work);
    if (article) { article.querySelector(".conflict").hidden = true; paint(article, work); }
    say(`Saved: ${work.lot_key} ${Object.entries(changes).map(([k, v]) => `${k} = ${v || "(empty)"}`).join(", ")}`);
    loadArtists(state.artist);
  } else if (status === 409 && data.conflict) {
    showConflict(article, work, changes, data.conflict);
    loadLost();
  } else {
    say(`Not saved: ${data.error}`);
    if (status === 423) loadLost(); // kept in the journal: listed above, to restore once the file is free
  }
}

// Decisions the journal has and the file lost (a spreadsheet saved an older copy, a locked file), by work.
async function loadLost() {
  const { status, data } = await api("api/lost");
  if (status !== 200) { say(data.error); return; }
  state.lost = data.lost;
  const box = $("lost");
  box.hidden = !state.lost.length;
  $("restore-all").textContent = `Restore all ${state.lost.length}`;
  $("lost-summary").textContent = `${state.lost.length} work(s) in ${data.journal} have a decision or note that ` +
    "the file no longer holds (a spreadsheet saved an older copy, or the file was locked). Restore writes the " +
    "recorded value back; Keep the file's keeps what the file has now.";
  $("lost-list").replaceChildren(...state.lost.map(lostItem));
}

function lostItem(item) {
  const li = document.createElement("li");
  li.dataset.lotKey = item.lot_key;
  const changes = Object.entries(item.journal).map(([name, value]) =>
    `${name}: recorded ${value || "(empty)"}, the file has ${item[name] || "(empty)"}`).join("; ");
  li.append(span("", `row ${item._row} · ${item.lot_key} · ${artistName(item.artist)}: ${item.title} — ${changes} ` +
    `(${item.source}, ${item.time})`));
  for (const [label, keep] of [["Restore", "journal"], ["Keep the file's", "file"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.addEventListener("click", () => settle(keep, [item]));
    li.append(button);
  }
  return li;
}

async function settle(keep, items) {
  const works = Object.fromEntries(items.map((i) => [i.lot_key, { decision: i.decision, note: i.note }]));
  const { status, data } = await api("api/settle", { keep, works });
  if (status === 200) {
    say(`${keep === "journal" ? "Restored" : "Kept the file's value of"} ${data.settled.length} work(s).`);
  } else if (status === 409) {
    say("The file changed meanwhile: the list shows it as it is now.");
  } else {
    say(`Not saved: ${data.error}`);
  }
  await reload();
}

function showConflict(article, work, changes, current) {
  say(`Conflict on ${work.lot_key}: the file changed meanwhile. Choose below.`);
  if (!article) return;
  const box = article.querySelector(".conflict");
  box.replaceChildren(span("", `Changed in the file meanwhile: decision ${current.decision || "(empty)"}, ` +
    `note ${current.note || "(empty)"}. `));
  const theirs = document.createElement("button");
  theirs.type = "button";
  theirs.textContent = "Use the file's";
  theirs.addEventListener("click", () => {
    Object.assign(work, current);
    box.hidden = true;
    paint(article, work);
  });
  const mine = document.createElement("button");
  mine.type = "button";
  mine.textContent = "Use mine";
  mine.addEventListener("click", () => decide(work, changes, current));
  box.append(theirs, mine);
  box.hidden = false;
}

function focusCard(index) {
  if (index < 0 || index >= state.shown.length) return;
  state.current = index;
  const article = cardOf(state.shown[index]);
  if (article) { article.focus(); article.scrollIntoView({ block: "nearest" }); }
}

function openViewer(work) {
  $("viewer-image").src = `image?key=${encodeURIComponent(work.lot_key)}`;
  $("viewer-image").alt = work.title;
  $("viewer-title").textContent = work.title;
  const facts = [["Artist", artistName(work.artist)], ["Medium", work.medium], ["Dimensions", work.dimensions],
    ["Kind", work.kind], ["Sale", `${work.sale_title} (${work.sale_date})`], ["Flags", work.flags],
    ["Reasons", work.flag_reasons], ["Suggested", work.suggested_decision], ["Decision", work.decision],
    ["Row in the CSV", work._row], ["lot_key", work.lot_key]];
  $("viewer-facts").replaceChildren(...facts.flatMap(([name, value]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value || "—";
    return [dt, dd];
  }));
  const link = $("viewer-link");
  const safe = /^https?:\/\//i.test(work.lot_url);
  link.hidden = !safe;
  if (safe) link.href = work.lot_url; else link.removeAttribute("href");
  $("viewer").showModal();
}

function onKey(event) {
  if ($("viewer").open || event.target.tagName === "SELECT" || event.target.closest("#lost")) return;
  const work = state.shown[state.current];
  const keys = {
    ArrowRight: () => focusCard(state.current + 1), ArrowDown: () => focusCard(state.current + 1),
    ArrowLeft: () => focusCard(state.current - 1), ArrowUp: () => focusCard(state.current - 1),
    k: () => work && decide(work, { decision: "keep" }), d: () => work && decide(work, { decision: "drop" }),
    n: () => work && cardOf(work).querySelector(".note").focus(), Enter: () => work && openViewer(work),
  };
  if (keys[event.key] && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    keys[event.key]();
  }
}

// Back from the spreadsheet (the tab becomes visible again): show the file as it is now, on the same work, and
// what it lost.
async function reload() {
  const key = state.shown[state.current] && state.shown[state.current].lot_key;
  try {
    await loadArtists(state.artist);
    await loadWorks();
    const index = state.shown.findIndex((w) => w.lot_key === key);
    if (index >= 0) focusCard(index);
  } catch (error) {
    say(`Could not reload the works (${error}); the list of lost decisions is checked anyway.`);
  } finally {
    await loadLost(); // whatever else failed, lost decisions are shown
  }
}

function refresh() {
  if (document.visibilityState === "visible" && state.artist !== null) reload();
}

async function start() {
  takeToken();
  $("viewer-close").addEventListener("click", () => $("viewer").close());
  $("viewer").addEventListener("close", () => focusCard(state.current));
  $("artist").addEventListener("change", async () => { await loadArtists($("artist").value); await loadWorks(); });
  for (const id of ["flag-filter", "decision-filter", "reviewed-filter"]) {
    $(id).addEventListener("change", () => render(0));
  }
  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", refresh);
  window.addEventListener("focus", () => state.artist !== null && loadLost()); // a spreadsheet beside the window
  $("restore-all").addEventListener("click", () => settle("journal", state.lost));
  const said = state.said;
  await loadArtists();
  await loadWorks();
  await loadLost();
  // a decision saved (or an error) meanwhile keeps its message: the curator may have clicked already
  if (state.said === said) say(state.lost.length ? "Ready. The file lost decisions: see the list above." : "Ready.");
  document.body.dataset.started = "true";
}

start();

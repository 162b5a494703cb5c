// The Apex chat page: Firebase Auth sign-in, the relay's WebSocket protocol (DESIGN §3), and
// each run rendered as a live timeline. A plain ES module with no build step; the Firebase SDK
// is vendored under /static/vendor/ (see README.md here) because the page must work offline.
import { initializeApp } from "./vendor/firebase/firebase-app.js";
import {
  GoogleAuthProvider,
  connectAuthEmulator,
  getAuth,
  onAuthStateChanged,
  onIdTokenChanged,
  signInWithEmailAndPassword,
  signInWithPopup,
  signOut,
} from "./vendor/firebase/firebase-auth.js";

const REFRESH_BEFORE_EXP_MS = 5 * 60_000;
const MAX_BACKOFF_MS = 15_000;
const AUTH_CLOSE = 1008; // the relay's "bad or expired token": retrying the same token is futile

const $ = (id) => document.getElementById(id);
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const KIND_LABELS = {
  cheaper_model: "Cheaper model",
  prompt_caching: "Prompt caching",
  batch_api: "Batch API",
  trim_outputs: "Trim outputs",
  response_cache: "Response cache",
  failed_calls: "Failed calls",
  deprecated_model: "Deprecated model",
};

const state = {
  config: null,
  auth: null,
  ws: null,
  authed: false, // the current socket has had auth.ok
  attempts: 0, // reconnects since the last auth.ok, for the backoff
  retryTimer: 0,
  refreshTimer: 0,
  threadId: null, // the open thread; null for a new chat
  runs: new Map(), // run_id -> RunView, kept across thread switches so resumes find them
  early: new Map(), // run_id -> event frames that arrived before their chat.accepted
  pending: new Map(), // client_msg_id -> {frame, bubble}: sent, not yet accepted
};

// ---------------------------------------------------------------------------------------
// DOM helpers. Untrusted text only ever goes through textContent, never innerHTML.

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// `code` and **bold**, the only inline marks the answer writers use.
function inline(text) {
  const out = [];
  for (const part of text.split(/(`[^`]+`|\*\*[^*]+\*\*)/)) {
    if (!part) continue;
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) out.push(h("code", { text: part.slice(1, -1) }));
    else if (part.startsWith("**") && part.endsWith("**") && part.length > 3) out.push(h("strong", {}, ...inline(part.slice(2, -2))));
    else out.push(document.createTextNode(part));
  }
  return out;
}

// Markdown-ish text to DOM: ``` fences, "- " and "1. " lists, paragraphs, inline marks.
function renderText(text) {
  const root = h("div", { class: "prose" });
  const chunks = text.split(/^```[^\n]*\n([\s\S]*?)^```\s*$/m);
  chunks.forEach((chunk, i) => {
    if (i % 2 === 1) return root.append(h("pre", {}, h("code", { text: chunk.replace(/\n$/, "") })));
    for (const block of chunk.split(/\n\s*\n/)) {
      const lines = block.split("\n").filter((l) => l.trim());
      let list = null;
      let para = null;
      for (const line of lines) {
        const bullet = line.match(/^\s*[-*] (.*)$/);
        const numbered = line.match(/^\s*\d+[.)] (.*)$/);
        if (bullet || numbered) {
          const tag = bullet ? "ul" : "ol";
          if (!list || list.tagName.toLowerCase() !== tag) root.append((list = h(tag)));
          list.append(h("li", {}, ...inline((bullet || numbered)[1])));
          para = null;
        } else {
          list = null;
          if (para) para.append(h("br"));
          else root.append((para = h("p")));
          para.append(...inline(line));
        }
      }
    }
  });
  return root;
}

// A one-line taste of a tool's arguments, so the timeline reads without expanding anything.
function preview(args) {
  if (!args || typeof args !== "object") return "";
  const compact = (v) => (typeof v === "object" ? JSON.stringify(v).replace(/"/g, "").replace(/T00:00:00(\.0+)?Z/g, "") : v);
  const text = Object.entries(args).map(([k, v]) => `${k}=${compact(v)}`).join(", ");
  return text.length > 90 ? `${text.slice(0, 89)}…` : text;
}

function jsonBlock(label, value, testid) {
  return h("details", { class: "json", "data-testid": testid },
    h("summary", { text: label }),
    h("pre", {}, h("code", { text: JSON.stringify(value, null, 2) })));
}

function showAlert(message) {
  $("alert-text").textContent = message;
  $("alert").hidden = false;
}

function setConn(kind, label) {
  const conn = $("conn");
  conn.dataset.state = kind;
  conn.textContent = label;
  $("reconnect").hidden = kind !== "closed";
  $("send").disabled = !state.authed;
}

function scrollToEnd() {
  const c = $("conversation");
  // Follow the run only when the reader is already near the bottom.
  if (c.scrollHeight - c.scrollTop - c.clientHeight < 200) c.scrollTop = c.scrollHeight;
}

// ---------------------------------------------------------------------------------------
// A run: the live timeline (one row per event), then the answer and its recommendations.

class RunView {
  constructor(runId) {
    this.runId = runId;
    this.lastSeq = 0; // every seq <= lastSeq is rendered; nothing renders twice
    this.gapAsked = null;
    this.buffer = new Map(); // seq -> frame that arrived ahead of a gap
    this.done = false;
    this.tools = new Map(); // execution_id -> tool row
    this.startedAt = null;
    this.status = h("span", { class: "run-status", "data-testid": "run-status", text: "Queued" });
    this.rows = h("ol", { class: "timeline", "data-testid": "timeline" });
    this.details = h("details", { class: "run-details", open: true },
      h("summary", {}, h("span", { class: "spinner", "aria-hidden": "true" }), h("span", { text: "Agents working" }), this.status),
      this.rows);
    this.answer = h("div", { class: "answer", "data-testid": "answer" });
    this.el = h("section", { class: "run", "data-testid": "run", "data-run-id": runId, "aria-label": "Agent run" },
      this.details, this.answer);
  }

  // Frames may repeat (resume, a relay's gap fill) or, in principle, arrive out of order.
  accept(frame) {
    if (frame.seq <= this.lastSeq || this.buffer.has(frame.seq)) return;
    this.buffer.set(frame.seq, frame);
    if (frame.seq > this.lastSeq + 1) {
      // A gap: ask the relay once for what is missing; the replay's repeats are dropped above.
      if (this.gapAsked !== this.lastSeq) resume(this);
      this.gapAsked = this.lastSeq;
      return;
    }
    while (this.buffer.has(this.lastSeq + 1)) {
      const next = this.buffer.get(this.lastSeq + 1);
      this.buffer.delete(next.seq);
      this.lastSeq = next.seq;
      this.render(next);
    }
    scrollToEnd();
  }

  row(frame, icon, title, ...body) {
    const agent = frame.agent ? h("span", { class: `agent agent-${frame.agent}`, text: frame.agent }) : null;
    const when = this.startedAt ? `+${((Date.parse(frame.ts) - this.startedAt) / 1000).toFixed(2)} s` : "";
    const row = h("li", {
      class: `row row-${frame.event}`, "data-testid": "timeline-row", "data-event": frame.event,
      "data-agent": frame.agent, "data-seq": String(frame.seq),
    },
    h("span", { class: "row-icon", "aria-hidden": "true", text: icon }),
    h("div", { class: "row-main" }, h("div", { class: "row-head" }, agent, h("span", { class: "row-title" }, ...title),
      h("span", { class: "row-time", text: when })), ...body));
    this.rows.append(row);
    return row;
  }

  render(frame) {
    const d = frame.data || {};
    switch (frame.event) {
      case "run_started":
        this.startedAt = Date.parse(frame.ts);
        this.status.textContent = "Running";
        return this.row(frame, "▶", [document.createTextNode("Run started")]);
      case "agent_started":
        return this.row(frame, "●", [h("strong", { text: "Started" }), document.createTextNode(` · ${d.task_description}`)]);
      case "agent_thinking":
        return this.row(frame, "…", [h("em", { class: "thinking", text: d.reasoning })]);
      case "tool_executing": {
        const result = h("div", { class: "tool-result" }, h("span", { class: "muted", text: "running…" }));
        const row = this.row(frame, "⚙", [h("code", { class: "tool-name", "data-testid": "tool-name", text: d.tool_name }),
          h("span", { class: "tool-preview", text: preview(d.tool_args) })],
          jsonBlock("arguments", d.tool_args, "tool-args"), result);
        row.dataset.tool = d.tool_name;
        this.tools.set(d.execution_id, { row, result });
        return row;
      }
      case "tool_completed": {
        // One row per tool call: its completion fills in the row tool_executing opened.
        const tool = this.tools.get(d.execution_id) || { row: this.row(frame, "⚙", [h("code", { text: d.tool_name })]) };
        tool.row.classList.add(d.success ? "ok" : "failed");
        tool.row.dataset.completedSeq = String(frame.seq); // this event's row is the tool's row
        const ms = h("span", { class: "tool-ms", "data-testid": "tool-ms", text: `${Number(d.execution_time_ms).toFixed(1)} ms` });
        tool.row.querySelector(".row-time").replaceWith(ms);
        const results = jsonBlock(d.success ? "results" : "error", d.results, "tool-results");
        if (tool.result) tool.result.replaceWith(results);
        else tool.row.querySelector(".row-main").append(results);
        return tool.row;
      }
      case "agent_completed":
        return this.row(frame, d.status === "completed" ? "✓" : "✕",
          [h("strong", { text: d.status === "completed" ? "Completed" : `Ended: ${d.status}` })], jsonBlock("result", d.result, "agent-result"));
      case "message":
        this.answer.replaceChildren(renderText(d.text || ""), recommendationsTable(d.recommendations || []));
        return this.row(frame, "✎", [document.createTextNode(`Answer written${d.writer ? ` (${d.writer} writer)` : ""}`)]);
      case "run_completed": {
        const took = `${(d.duration_ms / 1000).toFixed(2)} s`;
        this.row(frame, "✓", [h("strong", { text: "Run completed" }), document.createTextNode(` in ${took}`)]);
        return this.finish("done", `Completed in ${took}`);
      }
      case "run_failed":
        this.row(frame, "✕", [h("strong", { text: "Run failed" }), document.createTextNode(` · ${d.reason}`)]);
        this.answer.append(h("p", { class: "form-error", "data-testid": "run-failed", text: `The run failed: ${d.reason}` }));
        return this.finish("failed", "Failed");
      case "run_cancelled":
        this.row(frame, "■", [h("strong", { text: "Run cancelled" })]);
        return this.finish("failed", "Cancelled");
      default:
        return this.row(frame, "·", [document.createTextNode(frame.event)], jsonBlock("data", d, "event-data"));
    }
  }

  finish(kind, label) {
    this.done = true;
    this.el.dataset.done = kind;
    this.status.textContent = label;
    const agents = this.rows.querySelectorAll('[data-event="agent_started"]').length;
    this.details.querySelector("summary > span:nth-child(2)").textContent =
      `${agents} agent${agents === 1 ? "" : "s"} · ${this.tools.size} tool call${this.tools.size === 1 ? "" : "s"}`;
    this.details.open = false; // the answer matters now; the steps stay one click away
  }
}

function recommendationsTable(recs) {
  if (!recs.length) return null;
  const totalCents = recs.reduce((sum, r) => sum + Math.round(r.monthly_savings_usd * 100), 0);
  const cell = (testid, ...content) => h("td", { "data-testid": testid }, ...content);
  const rows = recs.map((r, i) => h("tr", { "data-testid": "recommendation-row", "data-kind": r.kind },
    cell("rec-rank", String(i + 1)),
    h("td", { "data-testid": "rec-title" }, h("div", { class: "rec-title" }, ...inline(r.title)),
      r.detail ? h("details", { class: "rec-detail" }, h("summary", { text: "Why, and how" }),
        h("p", {}, ...inline(r.detail)), h("ol", {}, ...(r.steps || []).map((s) => h("li", {}, ...inline(s)))))
        : null),
    cell("rec-kind", h("span", { class: `kind kind-${r.kind}`, text: KIND_LABELS[r.kind] || r.kind })),
    h("td", { class: "num", "data-testid": "rec-savings", "data-usd": String(r.monthly_savings_usd), text: money.format(r.monthly_savings_usd) }),
    h("td", { class: "num", "data-testid": "rec-confidence", text: `${Math.round(r.confidence * 100)}%` }),
    cell("rec-model", h("code", { text: r.model }),
      r.target_model ? h("span", { class: "target" }, document.createTextNode(" → "), h("code", { text: r.target_model })) : null),
    cell("rec-feature", r.feature ? h("code", { text: r.feature }) : h("span", { class: "muted", text: "all" })),
  ));
  return h("div", { class: "table-wrap" }, h("table", { class: "recs", "data-testid": "recommendations" },
    h("caption", { text: "Recommendations, largest monthly saving first" }),
    h("thead", {}, h("tr", {}, ...["#", "Recommendation", "Kind", "Savings / month", "Confidence", "Model", "Feature"]
      .map((t, i) => h("th", { scope: "col", class: i === 3 || i === 4 ? "num" : null, text: t })))),
    h("tbody", {}, ...rows),
    h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: "3", text: "Total" }),
      h("td", { class: "num", "data-testid": "recommendations-total", text: money.format(totalCents / 100) }),
      h("td", { colspan: "3" })))));
}

// ---------------------------------------------------------------------------------------
// The conversation pane.

function userBubble(text, note) {
  return h("div", { class: "msg msg-user", "data-testid": "message-user" },
    h("div", { class: "bubble", text }), note ? h("div", { class: "msg-note", text: note }) : null);
}

function assistantBlock(text, recs) {
  return h("section", { class: "run", "data-testid": "message-assistant", "aria-label": "Answer" },
    h("div", { class: "answer", "data-testid": "answer" }, renderText(text), recommendationsTable(recs || [])));
}

function appendToConversation(node) {
  $("empty").hidden = true;
  $("conversation").append(node);
  scrollToEnd();
}

function clearConversation() {
  $("conversation").replaceChildren($("empty"));
  $("empty").hidden = false;
}

// The run's view, made once per run; `show` puts it in the open conversation.
function attachRun(runId, show = true) {
  let view = state.runs.get(runId);
  if (!view) {
    view = new RunView(runId);
    state.runs.set(runId, view);
    for (const frame of state.early.get(runId) || []) view.accept(frame);
    state.early.delete(runId);
  }
  if (show) appendToConversation(view.el);
  return view;
}

// ---------------------------------------------------------------------------------------
// Threads, over the threads_get function (DESIGN §2).

async function threadsGet(params = "") {
  const token = await state.auth.currentUser.getIdToken();
  const response = await fetch(state.config.threadsGetUrl + params, { headers: { Authorization: `Bearer ${token}` } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error?.message || `threads_get answered ${response.status}`);
  return body;
}

async function loadThreads() {
  try {
    const { threads } = await threadsGet();
    $("threads").replaceChildren(...threads.map((t) => h("li", {},
      h("button", {
        type: "button", class: "thread", "data-testid": "thread-item", "data-thread-id": t.thread_id,
        "aria-current": t.thread_id === state.threadId ? "page" : null, onclick: () => openThread(t.thread_id),
      }, h("span", { class: "thread-title", text: t.title || "Untitled" }),
      h("time", { class: "thread-time", datetime: t.updated_at, text: shortTime(t.updated_at) })))));
  } catch (e) {
    showAlert(`Could not load your conversations: ${e.message}`);
  }
}

async function openThread(threadId) {
  state.threadId = threadId;
  clearConversation();
  loadThreads(); // marks the current one
  try {
    const { messages } = await threadsGet(`?thread_id=${encodeURIComponent(threadId)}`);
    if (state.threadId !== threadId) return; // another thread was opened meanwhile
    const answered = new Set(messages.filter((m) => m.role === "assistant").map((m) => m.run_id));
    for (const m of messages) {
      if (m.role === "user") {
        appendToConversation(userBubble(m.text));
        // A question with no answer yet: its run is still going, so watch it live.
        if (m.run_id && !answered.has(m.run_id)) {
          const view = attachRun(m.run_id);
          if (state.authed && !view.done) resume(view);
        }
      } else {
        appendToConversation(assistantBlock(m.text, m.recommendations));
      }
    }
  } catch (e) {
    showAlert(`Could not load the conversation: ${e.message}`);
  }
}

function shortTime(iso) {
  const when = new Date(iso);
  const sameDay = when.toDateString() === new Date().toDateString();
  return sameDay
    ? when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : when.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

function newChat() {
  state.threadId = null;
  clearConversation();
  loadThreads();
  $("message").focus();
}

// ---------------------------------------------------------------------------------------
// The relay socket (DESIGN §3).

function send(frame) {
  if (state.ws?.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify(frame));
  return true;
}

function resume(view) {
  if (state.authed && !view.done) send({ type: "run.resume", run_id: view.runId, after_seq: view.lastSeq });
}

function connect() {
  clearTimeout(state.retryTimer);
  if (!state.auth.currentUser) return;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  state.ws = ws;
  state.authed = false;
  setConn("connecting", state.attempts ? "Reconnecting…" : "Connecting…");
  ws.addEventListener("open", async () => {
    const token = await state.auth.currentUser?.getIdToken();
    if (ws === state.ws && token) send({ type: "auth", token });
  });
  ws.addEventListener("message", (m) => {
    if (ws !== state.ws) return;
    let frame;
    try { frame = JSON.parse(m.data); } catch { return showAlert("The relay sent a frame that is not JSON."); }
    onFrame(frame);
  });
  ws.addEventListener("close", (e) => {
    if (ws !== state.ws) return;
    state.ws = null;
    state.authed = false;
    if (!state.auth.currentUser) return setConn("offline", "Offline"); // signed out
    if (e.code === AUTH_CLOSE) {
      setConn("closed", "Signed out by the relay");
      return showAlert(`The relay ended the session: ${e.reason || "sign-in expired or refused"}. Reconnect, or sign in again.`);
    }
    // A dropped socket: back off (with jitter, so a relay restart is not stampeded) and retry.
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** state.attempts) * (0.5 + Math.random() / 2);
    state.attempts += 1;
    setConn("connecting", `Reconnecting in ${Math.ceil(delay / 1000)} s…`);
    state.retryTimer = setTimeout(connect, delay);
  });
}

function onFrame(frame) {
  switch (frame.type) {
    case "auth.ok": {
      $("workspace").textContent = `workspace ${frame.workspace_id}`;
      if (state.authed) return; // the answer to a token refresh
      state.authed = true;
      state.attempts = 0;
      setConn("online", "Connected");
      // After a reconnect: pick up every unfinished run where it was, and resend what was not
      // yet accepted (chat.send is idempotent on client_msg_id, so nothing is sent twice).
      for (const view of state.runs.values()) resume(view);
      for (const { frame: pending } of state.pending.values()) send(pending);
      return;
    }
    case "chat.accepted": {
      const pending = state.pending.get(frame.client_msg_id);
      state.pending.delete(frame.client_msg_id);
      if (pending) pending.bubble.querySelector(".msg-note")?.remove();
      const isNew = state.threadId === null;
      // The reader may have opened another thread meanwhile: the run is tracked all the same.
      const show = isNew ? pending?.bubble.isConnected !== false : state.threadId === frame.thread_id;
      if (show) state.threadId = frame.thread_id;
      attachRun(frame.run_id, show);
      if (isNew) loadThreads();
      return;
    }
    case "event": {
      const view = state.runs.get(frame.run_id);
      if (view) return view.accept(frame);
      // Events can outrun chat.accepted; keep them for the view it creates.
      const early = state.early.get(frame.run_id) || [];
      early.push(frame);
      state.early.set(frame.run_id, early);
      return;
    }
    case "error": {
      const target = frame.client_msg_id ? [state.pending.get(frame.client_msg_id)] : [...state.pending.values()];
      for (const p of target.filter(Boolean)) {
        const note = p.bubble.querySelector(".msg-note");
        if (note) note.textContent = "Not sent";
        state.pending.delete(p.frame.client_msg_id);
      }
      return showAlert(`${frame.message} (${frame.code})`);
    }
    case "run.resumed": // the replay follows as event frames
    case "run.cancel.ok":
    case "pong":
      return;
    default:
      return console.warn("unknown frame", frame);
  }
}

function sendMessage(content) {
  const frame = { type: "chat.send", client_msg_id: crypto.randomUUID(), content };
  if (state.threadId) frame.thread_id = state.threadId;
  const bubble = userBubble(content, "Sending…");
  appendToConversation(bubble);
  state.pending.set(frame.client_msg_id, { frame, bubble });
  send(frame); // if the socket is down, auth.ok on the reconnect sends it
}

// ---------------------------------------------------------------------------------------
// Tokens: the relay closes a socket whose token expired, so refresh before exp and re-auth.

async function scheduleRefresh(user) {
  clearTimeout(state.refreshTimer);
  const { expirationTime } = await user.getIdTokenResult();
  const due = Date.parse(expirationTime) - REFRESH_BEFORE_EXP_MS - Date.now();
  // getIdToken(true) fires onIdTokenChanged, which sends the new token and reschedules.
  state.refreshTimer = setTimeout(() => user.getIdToken(true).catch((e) => showAlert(`Token refresh failed: ${e.message}`)),
    Math.max(due, 10_000));
}

// ---------------------------------------------------------------------------------------
// Start-up and wiring.

function bindUi() {
  $("alert-close").addEventListener("click", () => { $("alert").hidden = true; });
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("signin-error").textContent = "";
    const button = e.submitter;
    button.disabled = true;
    try {
      await signInWithEmailAndPassword(state.auth, $("email").value.trim(), $("password").value);
    } catch (err) {
      const wrong = ["auth/invalid-credential", "auth/wrong-password", "auth/user-not-found", "auth/invalid-email"];
      $("signin-error").textContent = wrong.includes(err.code) ? "Wrong email or password." : `Sign-in failed: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
  $("google").addEventListener("click", () => signInWithPopup(state.auth, new GoogleAuthProvider())
    .catch((err) => { $("signin-error").textContent = `Google sign-in failed: ${err.message}`; }));
  $("sign-out").addEventListener("click", () => signOut(state.auth));
  $("reconnect").addEventListener("click", async () => {
    $("alert").hidden = true;
    await state.auth.currentUser?.getIdToken(true);
    state.attempts = 0;
    connect();
  });
  $("new-chat").addEventListener("click", newChat);
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const content = $("message").value.trim();
    if (!content || !state.authed) return;
    $("message").value = "";
    sendMessage(content);
  });
  // Enter sends; Shift+Enter is a new line.
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  for (const button of document.querySelectorAll(".suggestion")) {
    button.addEventListener("click", () => { $("message").value = button.textContent; $("message").focus(); });
  }
}

function onSignedIn(user) {
  $("signin-view").hidden = true;
  $("app-view").hidden = false;
  $("session").hidden = false;
  $("user-email").textContent = user.email || user.displayName || user.uid;
  state.attempts = 0;
  connect();
  loadThreads();
}

function onSignedOut() {
  clearTimeout(state.retryTimer);
  clearTimeout(state.refreshTimer);
  const ws = state.ws;
  state.ws = null;
  state.authed = false;
  ws?.close(1000, "signed out");
  state.threadId = null;
  state.runs.clear();
  state.early.clear();
  state.pending.clear();
  clearConversation();
  $("threads").replaceChildren();
  $("app-view").hidden = true;
  $("session").hidden = true;
  $("signin-view").hidden = false;
  $("email").focus();
}

async function main() {
  bindUi();
  const response = await fetch("/config.json");
  if (!response.ok) throw new Error(`/config.json answered ${response.status}`);
  state.config = await response.json();
  state.auth = getAuth(initializeApp(state.config.firebase));
  if (state.config.authEmulatorHost) {
    // Our own badge replaces the SDK's banner, which would cover the composer.
    connectAuthEmulator(state.auth, `http://${state.config.authEmulatorHost}`, { disableWarnings: true });
    $("emulator-badge").hidden = false;
  } else {
    $("google-block").hidden = false; // the Auth emulator has no Google popup to offer
  }
  let signedIn = null;
  onAuthStateChanged(state.auth, (user) => {
    if (user?.uid === signedIn) return;
    signedIn = user?.uid ?? null;
    if (user) onSignedIn(user);
    else onSignedOut();
  });
  onIdTokenChanged(state.auth, async (user) => {
    if (!user) return;
    scheduleRefresh(user);
    // A refreshed token goes to the relay at once, before the old one's exp closes the socket.
    if (state.authed) send({ type: "auth", token: await user.getIdToken() });
  });
}

main().catch((e) => {
  document.body.dataset.failed = "true";
  showAlert(`The page could not start: ${e.message}`);
});

// The Apex chat page: Firebase Auth sign-in, the relay's WebSocket protocol (DESIGN §3), each
// run rendered as a live timeline, and the team views (DESIGN §9): the workspace switcher,
// members, invites and API keys. A plain ES module with no build step; the Firebase SDK is
// vendored under /static/vendor/ (see README.md here) because the page must work offline.
// What it shares with the dashboard (sign-in, function calls, the active workspace) is in
// common.js.
import { onIdTokenChanged } from "./vendor/firebase/firebase-auth.js";
import {
  $,
  KIND_LABELS,
  PRICES_NOTE,
  atYourPrices,
  basisLabel,
  bindSignIn,
  callFunction as call,
  h,
  listAlerts,
  listWorkspaces,
  loadConfig,
  money,
  onSession,
  rememberWorkspace,
  rememberedWorkspace,
  renderWorkspaceOptions,
  startAuth,
} from "./common.js";

const REFRESH_BEFORE_EXP_MS = 5 * 60_000;
const MAX_BACKOFF_MS = 15_000;
const AUTH_CLOSE = 1008; // a bad or expired token, or not a member: retrying as is is futile
const ROLES = ["owner", "admin", "member", "viewer"]; // each includes the ones after it
const RANK = { viewer: 0, member: 1, admin: 2, owner: 3 };
const atLeast = (role, needed) => (RANK[role] ?? -1) >= RANK[needed];
const INVITE_PARAM = "invite";
// /?ask=... (the dashboard's "Ask in chat" links): a question put in the composer, not sent.
const ASK_PARAM = "ask";

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
  workspaces: [], // [{workspace_id, name, role}]: GET / of the workspaces function
  workspaceId: null, // the active workspace: every function call and the socket's auth name it
  role: null, // the reader's role there, as the last auth.ok (or workspace list) said
  inviteId: new URLSearchParams(location.search).get(INVITE_PARAM), // ?invite= to offer after sign-in
  ask: new URLSearchParams(location.search).get(ASK_PARAM), // ?ask= to put in the composer after sign-in
  reauthFor: null, // the workspace an auth frame was re-sent for after a switch raced it
  teamTab: "members", // the team dialog's open tab
  teamRun: 0, // the team dialog's latest render; an older one's answers are dropped
  follow: true, // the view follows the newest message (false while the reader scrolls back)
  autoTop: null, // the scrollTop the page itself last set (its scroll events are not the reader's)
  unread: new Set(), // ids of the active workspace's unread alerts (GET /{ws}/notifications, live frames)
  alertsRun: 0, // the latest unread count asked for; an older one's answer is dropped
};

// ---------------------------------------------------------------------------------------
// DOM helpers (h, from common.js). Untrusted text only ever goes through textContent.

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

// Markdown-ish text to DOM: ``` fences, "- " and "1. " lists, paragraphs, a line in _italics_,
// inline marks.
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
          // A line wholly in _underscores_ is an aside (a what-if's caveat); underscores inside
          // a line stay as they are (feature names).
          const aside = line.match(/^_(\S(?:.*\S)?)_$/);
          para.append(...(aside ? [h("em", {}, ...inline(aside[1]))] : inline(line)));
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
  for (const button of document.querySelectorAll(".followup")) button.disabled = !state.authed;
}

// The view follows the newest message: each new row, question and answer is scrolled into
// view, however tall. A reader who scrolls back up to read stops the following; scrolling
// back to the bottom, sending, or opening a thread starts it again.
const FOLLOW_SLACK_PX = 48;

function setScroll(top) {
  const c = $("conversation");
  c.scrollTop = top;
  state.autoTop = c.scrollTop;
}

// Whether the reader scrolled since the page last did: then they follow only if they went back
// to the bottom. (Checked here as well as on scroll events, which may come a frame late, after
// the page has scrolled again. The conversation has no scroll anchoring, so only the reader
// and the browser's clamping move it.)
function readerScrolled() {
  const c = $("conversation");
  if (state.autoTop === null || Math.abs(c.scrollTop - state.autoTop) < 2) return;
  state.autoTop = null;
  state.follow = c.scrollHeight - c.scrollTop - c.clientHeight <= FOLLOW_SLACK_PX;
}

// Follow from now on, wherever the reader was (they asked something, or opened a thread).
function followAgain() {
  state.follow = true;
  state.autoTop = null;
}

function scrollToEnd() {
  readerScrolled();
  if (state.follow) setScroll($("conversation").scrollHeight);
}

// A finished answer: the whole run when it fits, else from its top (its first sentence
// answers the question); then the reader reads, and the view stays where it is.
function revealAnswer(run) {
  readerScrolled();
  if (!state.follow || !run.isConnected) return;
  const c = $("conversation");
  const box = c.getBoundingClientRect();
  const top = run.getBoundingClientRect().top - box.top + c.scrollTop - 8;
  if (c.scrollHeight - top <= c.clientHeight) return setScroll(c.scrollHeight);
  setScroll(top);
  state.follow = false;
}

function onConversationScroll() {
  const c = $("conversation");
  // The page's own scrolling is not the reader's choice.
  if (state.autoTop !== null && Math.abs(c.scrollTop - state.autoTop) < 2) return;
  state.autoTop = null;
  state.follow = c.scrollHeight - c.scrollTop - c.clientHeight <= FOLLOW_SLACK_PX;
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
    // The conversation is a live log; the steps' rows are not read out one by one, the
    // question, the answer and its follow-ups are.
    this.rows = h("ol", { class: "timeline", "data-testid": "timeline", "aria-live": "off" });
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
    if (this.done) revealAnswer(this.el);
    else scrollToEnd();
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
        // What the suggestions after the answer are made from: what triage read, what the
        // data step found.
        if (frame.agent === "triage") this.triage = d.result;
        if (frame.agent === "data") this.data = d.result;
        if (frame.agent === "optimization") this.optimization = d.result;
        return this.row(frame, d.status === "completed" ? "✓" : "✕",
          [h("strong", { text: d.status === "completed" ? "Completed" : `Ended: ${d.status}` })], jsonBlock("result", d.result, "agent-result"));
      case "message":
        this.recommendations = d.recommendations || [];
        this.answer.replaceChildren(pricesNote(this.data, this.optimization), renderText(d.text || ""),
          whatIfTable(this.optimization?.what_if), recommendationsTable(this.recommendations));
        return this.row(frame, "✎", [document.createTextNode(`Answer written${d.writer ? ` (${d.writer} writer)` : ""}`)]);
      case "run_completed": {
        const took = `${(d.duration_ms / 1000).toFixed(2)} s`;
        this.row(frame, "✓", [h("strong", { text: "Run completed" }), document.createTextNode(` in ${took}`)]);
        this.finish("done", `Completed in ${took}`);
        return this.offerFollowUps();
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

  // The natural next questions about this answer, as buttons that ask them. Only the newest
  // answer offers them: asking anything takes them away.
  offerFollowUps() {
    const questions = followUps(this.triage, this.data, this.recommendations || []);
    if (!questions.length) return;
    this.el.append(h("div", { class: "followups", "data-testid": "followups", role: "group", "aria-label": "Ask next" },
      ...questions.map((q) => h("button", {
        type: "button", class: "followup", "data-testid": "followup", disabled: !state.authed,
        onclick: () => sendMessage(q),
      }, q))));
  }
}

// ---------------------------------------------------------------------------------------
// Follow-ups. Each is worded the way the triage reads a follow-up or a reference to this
// answer (docs/triage.md, "Conversation"), so it continues the thread instead of starting over:
// a period or a breakdown alone inherits the rest of the question; "How?" and "#1 why?" are
// the steps and the evidence of a recommendation; "What caused it?" an anomaly's driver.

const BREAKDOWNS = [["feature", "features", "By feature"], ["model", "models", "By model"]];

function periodFollowUp(period) {
  const token = period?.token;
  if (token === "last_month") return "And the month before?";
  if (token === "last_week" || token === "last_7d") return "And the week before?";
  return "And last month?";
}

function followUps(triage, data, recs) {
  const answer = triage?.route?.answer;
  const entities = triage?.entities || {};
  const out = [];
  if (answer === "reference") {
    const ref = entities.reference;
    if (ref?.kind !== "recommendation" || ref.ranks?.length !== 1) return out;
    const rank = ref.ranks[0];
    out.push(ref.asks === "how" ? `#${rank} why?` : "How?");
    if (rank < ref.listed) out.push(`Tell me more about #${rank + 1}`);
    return out;
  }
  if (answer !== "findings") return out;
  const intents = entities.intents?.length ? entities.intents : [triage.intent];
  const anomaly = () => {
    if (data?.anomalies?.length) out.push("What caused it?");
    out.push(periodFollowUp(entities.period));
  };
  const measures = () => {
    out.push(periodFollowUp(entities.period));
    const by = BREAKDOWNS.find(([dim, list]) => !(entities.group_by || []).includes(dim) && !(entities[list] || []).length);
    if (by) out.push(by[2]);
  };
  const savings = () => {
    if (!recs.length) return;
    out.push("How?", "#1 why?");
    if (recs.length > 1) out.push("Tell me more about #2");
  };
  for (const intent of intents) {
    if (intent === "anomaly") anomaly();
    else if (intent === "optimization") savings();
    else if (intent === "cost_analysis" || intent === "usage_question") measures();
  }
  // A spend answer also priced the savings (the optimization agent runs for it).
  if (!intents.includes("optimization")) savings();
  return [...new Set(out)].slice(0, 4);
}

// "At your prices" above an answer whose figures the workspace's own prices made (the data or
// the optimization agent's report says `prices: "workspace"`; docs/prices.md).
function pricesNote(data, optimization) {
  if (!atYourPrices(data?.prices) && !atYourPrices(optimization?.prices)) return null;
  return h("p", { class: "prices-note", "data-testid": "answer-prices" },
    h("span", { class: "badge badge-prices", text: "At your prices" }),
    document.createTextNode(" Costs use the prices your workspace set, not the list prices."));
}

// A what-if (docs/prices.md): per model the usage ran on, its cost as it ran and its measured
// tokens at the target's prices, the difference (negative: cheaper), and the caveat.
function whatIfTable(w) {
  if (!w) return null;
  const signed = (usd) => `${usd > 0 ? "+" : usd < 0 ? "−" : ""}${money.format(Math.abs(usd))}`;
  const num = (testid, usd) => h("td", { class: "num", "data-testid": testid, "data-usd": String(usd), text: money.format(usd) });
  const diff = (testid, usd) => h("td", { class: `num ${usd < 0 ? "cheaper" : usd > 0 ? "dearer" : ""}`, "data-testid": testid, "data-usd": String(usd), text: signed(usd) });
  const scope = w.feature ? `feature ${w.feature}` : "the workspace";
  const at = atYourPrices(w.prices) ? PRICES_NOTE : "at list prices";
  const rows = w.sources.map((s) => h("tr", { "data-testid": "whatif-row", "data-model": s.model },
    h("td", {}, h("code", { text: s.model }), h("span", { class: "muted", text: ` · ${s.provider}` })),
    h("td", { class: "num", "data-testid": "whatif-requests", text: new Intl.NumberFormat("en-US").format(s.requests) }),
    num("whatif-current", s.current_cost_usd), num("whatif-cost", s.what_if_cost_usd), diff("whatif-diff", s.difference_usd)));
  const pct = w.difference_pct === null ? "" : ` (${w.difference_pct > 0 ? "+" : ""}${w.difference_pct}%)`;
  return h("div", { class: "whatif", "data-testid": "whatif" },
    h("div", { class: "table-wrap recs-wrap", "data-testid": "whatif-scroll", role: "region", tabindex: "0", "aria-label": "What-if table" },
      h("table", { class: "recs whatif-table", "data-testid": "whatif-table" },
        h("caption", { "data-testid": "whatif-caption", text: `What ${scope}'s measured tokens would have cost on ${w.model}, ${at}` }),
        h("thead", {}, h("tr", {}, ...["Ran on", "Requests", "Cost as it ran", `On ${w.model}`, "Difference"]
          .map((t, i) => h("th", { scope: "col", class: i ? "num" : null, text: t })))),
        h("tbody", {}, ...rows),
        h("tfoot", {}, h("tr", {}, h("th", { scope: "row", text: "Total" }),
          h("td", { class: "num", text: new Intl.NumberFormat("en-US").format(w.requests) }),
          num("whatif-total-current", w.current_cost_usd), num("whatif-total-cost", w.what_if_cost_usd),
          h("td", { class: `num ${w.difference_usd < 0 ? "cheaper" : w.difference_usd > 0 ? "dearer" : ""}`, "data-testid": "whatif-total-diff",
            "data-usd": String(w.difference_usd), text: `${signed(w.difference_usd)}${pct}` }))))),
    h("p", { class: "muted whatif-prices", "data-testid": "whatif-prices",
      text: `${w.model} (${w.provider}), ${at}: ${money.format(w.input_usd_per_mtok)} input, ${money.format(w.cached_input_usd_per_mtok)} cached input, ` +
        `${money.format(w.output_usd_per_mtok)} output per million tokens.` }),
    h("p", { class: "whatif-caveat", "data-testid": "whatif-caveat", text: w.caveat }));
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
    cell("rec-basis", h("span", { class: `basis basis-${r.basis ?? "unstated"}`, "data-basis": r.basis ?? "", text: basisLabel(r.basis) })),
    cell("rec-model", h("code", { text: r.model }),
      r.target_model ? h("span", { class: "target" }, document.createTextNode(" → "), h("code", { text: r.target_model })) : null,
      // A second model proposed (issue 14: up to two, each priced on the measured tokens).
      ...(r.targets || []).slice(1).map((t) => h("span", { class: "target", "data-testid": "rec-alt-target" },
        document.createTextNode(" or "), h("code", { text: t.model }), document.createTextNode(` (${money.format(t.monthly_savings_usd)}/mo)`)))),
    cell("rec-feature", r.feature ? h("code", { text: r.feature }) : h("span", { class: "muted", text: "all" })),
  ));
  // A wide table scrolls sideways in its own box (focusable, so the keyboard scrolls it too);
  // the page never does.
  return h("div", { class: "table-wrap recs-wrap", "data-testid": "recommendations-scroll", role: "region", tabindex: "0",
    "aria-label": "Recommendations table" }, h("table", { class: "recs", "data-testid": "recommendations" },
    h("caption", { text: "Recommendations, largest monthly saving first" }),
    h("thead", {}, h("tr", {}, ...["#", "Recommendation", "Kind", "Savings / month", "Confidence", "Basis", "Model", "Feature"]
      .map((t, i) => h("th", { scope: "col", class: i === 3 || i === 4 ? "num" : null, text: t })))),
    h("tbody", {}, ...rows),
    h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: "3", text: "Total" }),
      h("td", { class: "num", "data-testid": "recommendations-total", text: money.format(totalCents / 100) }),
      h("td", { colspan: "4" })))));
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
  followAgain();
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

// One call to a public function as the signed-in user (common.js; errors are ApiError with
// the HTTP status).
function callFunction(url, options) {
  return call(state.auth, url, options);
}

function threadsGet(params = "") {
  return callFunction(state.config.threadsGetUrl + params, { workspace: state.workspaceId });
}

async function loadThreads() {
  const workspace = state.workspaceId;
  try {
    const { threads } = await threadsGet();
    if (workspace !== state.workspaceId) return; // the reader switched workspaces meanwhile
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
  const workspace = state.workspaceId;
  clearConversation();
  loadThreads(); // marks the current one
  try {
    const { messages } = await threadsGet(`?thread_id=${encodeURIComponent(threadId)}`);
    // Another thread (or workspace) was opened meanwhile.
    if (state.threadId !== threadId || workspace !== state.workspaceId) return;
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
    if (ws === state.ws && token) send(authFrame(token));
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
    if (e.code === AUTH_CLOSE) return onAuthClose(e.reason);
    // A dropped socket: back off (with jitter, so a relay restart is not stampeded) and retry.
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** state.attempts) * (0.5 + Math.random() / 2);
    state.attempts += 1;
    setConn("connecting", `Reconnecting in ${Math.ceil(delay / 1000)} s…`);
    state.retryTimer = setTimeout(connect, delay);
  });
}

// Every auth frame names the active workspace, a token refresh's too: the socket's workspace
// never rests on the relay's default (DESIGN §3.2).
function authFrame(token) {
  return { type: "auth", token, workspace_id: state.workspaceId };
}

// 1008: a bad or expired token, or no longer a member of the active workspace. In the second
// case the page says so and falls back to the personal workspace; otherwise it stops.
async function onAuthClose(reason) {
  setConn("closed", "Signed out by the relay");
  if (state.workspaceId !== personalWorkspace()) {
    const ws = state.workspaceId;
    try {
      await loadWorkspaces();
    } catch (e) {
      return showAlert(`The relay ended the session (${reason || "refused"}), and your workspaces could not be listed: ${e.message}`);
    }
    if (ws === state.workspaceId && !state.workspaces.some((w) => w.workspace_id === ws)) {
      showAlert("You are no longer a member of that workspace: you are in your personal workspace now.");
      switchWorkspace(personalWorkspace());
      state.attempts = 0;
      return connect();
    }
  }
  showAlert(`The relay ended the session: ${reason || "sign-in expired or refused"}. Reconnect, or sign in again.`);
}

function onFrame(frame) {
  switch (frame.type) {
    case "auth.ok": {
      if (frame.workspace_id !== state.workspaceId) {
        // The reader switched while this socket's auth was on its way: once more, into the
        // workspace now active. Twice wrong is the relay's fault: say so rather than loop.
        if (state.reauthFor === state.workspaceId) {
          return showAlert(`The relay put this session in workspace ${frame.workspace_id}, not ${state.workspaceId}.`);
        }
        state.reauthFor = state.workspaceId;
        state.authed = false;
        state.auth.currentUser?.getIdToken().then((token) => send(authFrame(token)));
        return;
      }
      state.reauthFor = null;
      $("workspace").textContent = `workspace ${frame.workspace_id}`;
      noteRole(frame.role);
      if (state.authed) return; // the answer to a token refresh
      state.authed = true;
      loadUnread(); // a member of it, as the relay just checked
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
    case "notification":
      // The relay sends the socket's workspace's alerts; one that raced a switch is dropped.
      if (state.authed) showLiveAlert(frame.notification);
      return;
    case "run.resumed": // the replay follows as event frames
    case "run.cancel.ok":
    case "pong":
      return;
    default:
      return console.warn("unknown frame", frame);
  }
}

// ---------------------------------------------------------------------------------------
// Alerts (DESIGN §11): the active workspace's unread count in the top bar (the dashboard lists
// them and marks them read), and an alert pushed on the socket shown as it arrives.

const ALERT_KINDS = { budget: "Budget alert", anomaly: "Spend anomaly" };

function renderUnread() {
  const n = state.unread.size;
  const link = $("alerts-link");
  link.hidden = n === 0;
  $("alerts-count").textContent = String(n);
  link.setAttribute("aria-label", `${n} unread alert${n === 1 ? "" : "s"}: see them on the dashboard`);
}

async function loadUnread() {
  const run = ++state.alertsRun;
  const ws = state.workspaceId;
  let listed;
  try {
    listed = await listAlerts(state.auth, state.config, ws, 50);
  } catch (e) {
    return showAlert(`Could not read the workspace's alerts: ${e.message}`);
  }
  if (run !== state.alertsRun || ws !== state.workspaceId) return;
  // Frames that arrived meanwhile are unread too (a Set: one listed and pushed counts once).
  for (const n of listed.notifications) if (n.unread) state.unread.add(n.notification_id);
  renderUnread();
}

function clearAlerts() {
  state.alertsRun += 1;
  state.unread.clear();
  renderUnread();
  $("live-alert").hidden = true;
  $("live-alert-text").textContent = "";
}

function showLiveAlert(n) {
  if (n.unread) state.unread.add(n.notification_id);
  renderUnread();
  $("live-alert-kind").textContent = ALERT_KINDS[n.kind] || "Alert";
  $("live-alert-text").textContent = n.text;
  $("live-alert").dataset.notificationId = n.notification_id;
  $("live-alert").hidden = false;
}

function sendMessage(content) {
  for (const offered of $("conversation").querySelectorAll(".followups")) offered.remove();
  followAgain(); // the reader asked: the view goes to the question and its answer
  const frame = { type: "chat.send", client_msg_id: crypto.randomUUID(), content };
  if (state.threadId) frame.thread_id = state.threadId;
  const bubble = userBubble(content, "Sending…");
  appendToConversation(bubble);
  state.pending.set(frame.client_msg_id, { frame, bubble });
  send(frame); // if the socket is down, auth.ok on the reconnect sends it
}

// ---------------------------------------------------------------------------------------
// Workspaces (DESIGN §9): the switcher, the team dialog (members, invites, API keys), a new
// workspace, and accepting an invite. Controls follow the reader's role: what the role cannot
// do is never rendered (not merely disabled); the functions check every call regardless.

function personalWorkspace() {
  return state.auth.currentUser?.uid ?? null; // the personal workspace's id is the uid
}

function workspacesApi(path, options = {}) {
  return callFunction(state.config.workspacesUrl.replace(/\/+$/, "") + path, options);
}

// A call about one workspace names it in the path and in the header. Listing, creating and
// accepting an invite are about none, and must work even when the active one is gone.
function inWorkspace(ws, path, options = {}) {
  return workspacesApi(`/${encodeURIComponent(ws)}${path}`, { ...options, workspace: ws });
}

async function loadWorkspaces() {
  state.workspaces = await listWorkspaces(state.auth, state.config);
  const active = state.workspaces.find((w) => w.workspace_id === state.workspaceId);
  if (active) state.role = active.role;
  renderSwitcher();
  return state.workspaces;
}

// The remembered workspace if the reader is still a member of it; else the personal one
// (common.js: the dashboard chooses the same way).
function initialWorkspace(listed) {
  return rememberedWorkspace(personalWorkspace(), state.workspaces, listed);
}

function renderSwitcher() {
  renderWorkspaceOptions($("workspace-select"), state.workspaces, state.workspaceId, state.role);
}

// auth.ok's role for the active workspace is the freshest word on it.
function noteRole(role) {
  state.role = role;
  const entry = state.workspaces.find((w) => w.workspace_id === state.workspaceId);
  if (entry && entry.role !== role) {
    entry.role = role;
    renderSwitcher();
    if ($("team-dialog").open) renderTeam();
  }
}

function switchWorkspace(id) {
  if (id === state.workspaceId) return;
  state.workspaceId = id;
  state.role = state.workspaces.find((w) => w.workspace_id === id)?.role ?? null;
  rememberWorkspace(personalWorkspace(), id);
  // Threads, runs and unsent messages belong to the workspace they were made in.
  state.threadId = null;
  state.runs.clear();
  state.early.clear();
  state.pending.clear();
  clearConversation();
  clearAlerts();
  $("threads").replaceChildren();
  renderSwitcher();
  if (state.authed) {
    // The open socket re-authenticates into the new workspace; nothing is sent until its auth.ok.
    state.authed = false;
    setConn("connecting", "Switching…");
    state.auth.currentUser.getIdToken().then((token) => send(authFrame(token)));
  }
  loadThreads();
}

const noticeTimers = new Map();

// Success news, in a live region: the team dialog's own while it is open (the page behind a
// modal dialog is inert, and so is its region), the page's otherwise.
function notify(message) {
  const notice = $("team-dialog").open ? $("team-status") : $("notice");
  notice.textContent = message;
  clearTimeout(noticeTimers.get(notice));
  noticeTimers.set(notice, setTimeout(() => { notice.textContent = ""; }, 8000));
}

// ---- Dialogs: native <dialog> (modal, Esc closes, the page behind is inert); focus returns
// to what opened it.

const openers = new Map();

function openDialog(dialog, opener = document.activeElement) {
  openers.set(dialog, opener);
  if (!dialog.open) dialog.showModal();
}

function bindDialog(dialog, onClose) {
  dialog.addEventListener("click", (e) => {
    if (e.target.closest("[data-close]")) dialog.close("");
  });
  dialog.addEventListener("close", () => {
    onClose?.();
    const opener = openers.get(dialog);
    openers.delete(dialog);
    if (opener?.isConnected) opener.focus();
  });
}

function confirmAction(title, text, action) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = action;
  dialog.returnValue = "";
  openDialog(dialog);
  $("confirm-cancel").focus(); // the safe choice has the focus
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

async function copyText(text, button, done) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    return teamError(`Could not copy to the clipboard (${e.message}): select the text and copy it by hand.`);
  }
  button.textContent = "Copied";
  notify(done);
}

const shortDate = (iso) => (iso ? new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }) : "");
const field = (id, label, control, hint) => h("div", { class: "field" },
  h("label", { for: id, text: label }), control, hint ? h("span", { class: "hint", id: `${id}-hint`, text: hint }) : null);
const roleBadge = (role, testid) => h("span", { class: `role role-${role}`, "data-testid": testid, text: role });

// ---- The team dialog: tabs Members (everyone) and API keys (admins and owners).

function teamError(message) {
  $("team-error").textContent = message;
}

function openTeam() {
  $("team-error").textContent = "";
  $("team-panel").replaceChildren(h("p", { class: "muted", text: "Loading…" }));
  openDialog($("team-dialog"), $("open-team"));
  renderTeam({ refresh: true, focus: '[role="tab"][aria-selected="true"]' });
}

function selectTab(tab) {
  state.teamTab = tab;
  renderTeam({ focus: `#tab-${tab}` });
  // The tab takes the keyboard at once (its buttons are drawn before the panel's calls); the
  // panel fills in when they answer.
  $(`tab-${tab}`)?.focus();
}

function renderTabs(role) {
  const tabs = [["members", "Members"]];
  if (atLeast(role, "admin")) tabs.push(["keys", "API keys"]);
  if (!tabs.some(([id]) => id === state.teamTab)) state.teamTab = "members";
  $("team-tabs").replaceChildren(...tabs.map(([id, label]) => {
    const selected = id === state.teamTab;
    return h("button", {
      type: "button", role: "tab", id: `tab-${id}`, class: "tab", "data-tab": id, "data-testid": `tab-${id}`,
      "aria-selected": String(selected), "aria-controls": "team-panel", tabindex: selected ? "0" : "-1",
      onclick: () => selectTab(id),
    }, label);
  }));
  $("team-panel").setAttribute("aria-labelledby", `tab-${state.teamTab}`);
}

// Renders the dialog for the active workspace. `refresh` asks the reader's role again (an owner
// may have changed it since); `reveal` is a key just created, whose secret is shown this once;
// `focus` is where the keyboard goes after rendering (the panel if that is gone).
async function renderTeam({ refresh = false, reveal = null, focus = null } = {}) {
  const run = ++state.teamRun;
  const ws = state.workspaceId;
  const current = () => run === state.teamRun && ws === state.workspaceId && $("team-dialog").open;
  try {
    if (refresh) await loadWorkspaces();
    const me = state.workspaces.find((w) => w.workspace_id === ws);
    if (!me) throw new Error("you are not a member of this workspace any more");
    if (!current()) return;
    $("team-title").textContent = me.name;
    $("team-subtitle").textContent = `Your role: ${me.role}`;
    renderTabs(me.role);
    const content = state.teamTab === "keys" ? await keysView(ws, reveal) : await membersView(ws, me.role);
    if (!current()) return;
    $("team-panel").replaceChildren(...content.filter(Boolean));
  } catch (e) {
    if (!current()) return;
    $("team-panel").replaceChildren();
    return teamError(`Could not load the workspace: ${e.message}`);
  }
  const target = focus && $("team-dialog").querySelector(focus);
  (target || $("team-panel")).focus();
}

async function membersView(ws, role) {
  const manage = atLeast(role, "admin");
  const [{ members }, invites] = await Promise.all([
    inWorkspace(ws, "/members"),
    manage ? inWorkspace(ws, "/invites").then((body) => body.invites) : null,
  ]);
  // An invite never grants more than the inviter has; nor does a role change.
  const grantable = ROLES.filter((r) => atLeast(role, r));
  members.sort((a, b) => RANK[b.role] - RANK[a.role] || (a.email || a.uid).localeCompare(b.email || b.uid));
  return [
    manage ? inviteForm(ws, grantable) : null,
    h("section", { class: "block", "aria-labelledby": "members-title" },
      h("h3", { id: "members-title", text: `Members (${members.length})` }),
      h("ul", { class: "items", "data-testid": "member-list" }, ...members.map((m) => memberRow(ws, m, role, grantable)))),
    manage ? invitesSection(ws, invites) : null,
  ];
}

function memberRow(ws, m, role, grantable) {
  const self = m.uid === personalWorkspace();
  // Admins manage everyone below owner, owners everyone; nobody demotes or removes themselves here.
  const manageable = !self && atLeast(role, "admin") && (m.role !== "owner" || role === "owner");
  const name = m.email || m.uid;
  const roleControl = manageable
    ? h("select", { class: "compact", "aria-label": `Role of ${name}`, "data-testid": "member-role", onchange: (e) => changeRole(ws, m, e.target) },
      ...grantable.map((r) => h("option", { value: r, text: r, selected: r === m.role })))
    : roleBadge(m.role, "member-role-text");
  return h("li", { class: "item", "data-testid": "member-row", "data-uid": m.uid, "data-email": m.email, "data-role": m.role },
    h("div", { class: "item-main" },
      h("span", { class: "item-title" }, name, self ? h("span", { class: "tag", text: "you" }) : null),
      h("span", { class: "item-meta", text: m.added_at ? `joined ${shortDate(m.added_at)}` : "" })),
    h("div", { class: "item-actions" }, roleControl,
      manageable ? h("button", {
        type: "button", class: "secondary compact", "data-testid": "member-remove", "aria-label": `Remove ${name}`,
        onclick: () => removeMember(ws, m),
      }, "Remove") : null));
}

async function changeRole(ws, m, select) {
  const role = select.value;
  teamError("");
  try {
    await inWorkspace(ws, `/members/${encodeURIComponent(m.uid)}`, { method: "PATCH", body: { role } });
  } catch (e) {
    select.value = m.role;
    return teamError(`Could not make ${m.email || m.uid} ${role}: ${e.message}`);
  }
  notify(`${m.email || m.uid} is now ${role}.`);
  renderTeam({ focus: `[data-uid="${CSS.escape(m.uid)}"] [data-testid="member-role"]` });
}

async function removeMember(ws, m) {
  const name = m.email || m.uid;
  if (!(await confirmAction("Remove member", `Remove ${name} from this workspace? They lose access within 10 seconds.`, "Remove"))) return;
  teamError("");
  try {
    await inWorkspace(ws, `/members/${encodeURIComponent(m.uid)}`, { method: "DELETE" });
  } catch (e) {
    return teamError(`Could not remove ${name}: ${e.message}`);
  }
  notify(`${name} was removed.`);
  renderTeam({ focus: "#members-title" });
}

function inviteForm(ws, grantable) {
  const email = h("input", { id: "invite-email", type: "email", required: true, maxlength: "254", autocomplete: "off", "data-testid": "invite-email" });
  const role = h("select", { id: "invite-role", "data-testid": "invite-role" },
    ...grantable.map((r) => h("option", { value: r, text: r, selected: r === "member" })));
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "invite-submit" }, "Invite");
  return h("form", {
    class: "block inline-form", "data-testid": "invite-form", "aria-labelledby": "invite-form-title",
    onsubmit: async (e) => {
      e.preventDefault();
      teamError("");
      submit.disabled = true;
      let invite;
      try {
        invite = await inWorkspace(ws, "/invites", { method: "POST", body: { email: email.value.trim(), role: role.value } });
      } catch (err) {
        submit.disabled = false;
        return teamError(`Could not invite ${email.value.trim()}: ${err.message}`);
      }
      notify(`Invited ${invite.email} as ${invite.role}: send them the invitation link.`);
      renderTeam({ focus: `[data-invite-id="${CSS.escape(invite.invite_id)}"] [data-testid="invite-copy"]` });
    },
  },
  h("h3", { id: "invite-form-title", text: "Invite someone" }),
  h("div", { class: "fields" }, field("invite-email", "Email", email), field("invite-role", "Role", role), submit));
}

const inviteLink = (inviteId) => `${location.origin}/?${INVITE_PARAM}=${encodeURIComponent(inviteId)}`;

function invitesSection(ws, invites) {
  return h("section", { class: "block", "aria-labelledby": "invites-title" },
    h("h3", { id: "invites-title", text: `Pending invites (${invites.length})` }),
    invites.length
      ? h("ul", { class: "items", "data-testid": "invite-list" }, ...invites.map((invite) => {
        const link = inviteLink(invite.invite_id);
        const copy = h("button", {
          type: "button", class: "secondary compact", "data-testid": "invite-copy", "data-link": link,
          "aria-label": `Copy the invitation link for ${invite.email}`,
          onclick: () => copyText(link, copy, `The invitation link for ${invite.email} is on your clipboard.`),
        }, "Copy link");
        return h("li", { class: "item", "data-testid": "invite-row", "data-invite-id": invite.invite_id, "data-email": invite.email },
          h("div", { class: "item-main" },
            h("span", { class: "item-title" }, invite.email, roleBadge(invite.role, "invite-role-text")),
            h("span", { class: "item-meta", text: `expires ${shortDate(invite.expires_at)}` }),
            h("code", { class: "link-text", "data-testid": "invite-link", text: link })),
          h("div", { class: "item-actions" }, copy, h("button", {
            type: "button", class: "secondary compact", "data-testid": "invite-revoke", "aria-label": `Revoke the invite for ${invite.email}`,
            onclick: () => revokeInvite(ws, invite),
          }, "Revoke")));
      }))
      : h("p", { class: "muted", text: "No pending invites." }));
}

async function revokeInvite(ws, invite) {
  if (!(await confirmAction("Revoke invite", `Revoke the invite for ${invite.email}? Its link stops working.`, "Revoke invite"))) return;
  teamError("");
  try {
    await inWorkspace(ws, `/invites/${encodeURIComponent(invite.invite_id)}`, { method: "DELETE" });
  } catch (e) {
    return teamError(`Could not revoke the invite for ${invite.email}: ${e.message}`);
  }
  notify(`The invite for ${invite.email} was revoked.`);
  renderTeam({ focus: "#invites-title" });
}

// ---- API keys (admins and owners).

const SCOPES = {
  ingest: "ingest (send usage)",
  read: "read (usage and savings)",
};

async function keysView(ws, reveal) {
  const [{ keys }, { members }] = await Promise.all([inWorkspace(ws, "/keys"), inWorkspace(ws, "/members")]);
  const emails = new Map(members.map((m) => [m.uid, m.email]));
  return [
    reveal ? secretBox(reveal) : null,
    keyForm(ws),
    h("section", { class: "block", "aria-labelledby": "keys-title" },
      h("h3", { id: "keys-title", text: `Keys (${keys.length})` }),
      keys.length
        ? h("ul", { class: "items", "data-testid": "key-list" }, ...keys.map((k) => keyRow(ws, k, emails)))
        : h("p", { class: "muted", text: "No keys yet." })),
  ];
}

function keyForm(ws) {
  const name = h("input", { id: "key-name", required: true, maxlength: "100", autocomplete: "off", "data-testid": "key-name" });
  const scope = h("select", { id: "key-scope", "data-testid": "key-scope" },
    ...Object.entries(SCOPES).map(([value, text]) => h("option", { value, text })));
  const day = (days) => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
  // The functions take an expiry in the future and within two years.
  const expiry = h("input", { id: "key-expiry", type: "date", min: day(1), max: day(729), "data-testid": "key-expiry" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "key-create" }, "Create key");
  return h("form", {
    class: "block inline-form", "data-testid": "key-form", "aria-labelledby": "key-form-title", "aria-describedby": "key-form-hint",
    onsubmit: async (e) => {
      e.preventDefault();
      teamError("");
      const body = { name: name.value.trim(), scope: scope.value };
      // The end of the chosen day, in the reader's time zone.
      if (expiry.value) body.expires_at = new Date(`${expiry.value}T23:59:59`).toISOString();
      submit.disabled = true;
      let created;
      try {
        created = await inWorkspace(ws, "/keys", { method: "POST", body });
      } catch (err) {
        submit.disabled = false;
        return teamError(`Could not create the key: ${err.message}`);
      }
      renderTeam({ reveal: created, focus: '[data-testid="key-secret-copy"]' });
    },
  },
  h("h3", { id: "key-form-title", text: "Create an API key" }),
  h("div", { class: "fields" },
    field("key-name", "Name", name),
    field("key-scope", "Scope", scope),
    field("key-expiry", "Expires (optional)", expiry),
    submit),
  h("p", { class: "hint", id: "key-form-hint",
    text: "An ingest key sends usage (usage_ingest, otlp_ingest); a read key reads it (agents_data, agents_optimization). " +
      "Without an expiry date a key lasts until revoked." }));
}

// The whole key, this once: only a hash of it is stored, so it can never be shown again. It
// lives in this box alone, which "Done" (or closing the dialog) removes.
function secretBox(created) {
  const copy = h("button", {
    type: "button", class: "primary compact", "data-testid": "key-secret-copy", "aria-describedby": "secret-warning",
    onclick: () => copyText(created.secret, copy, `The key “${created.name}” is on your clipboard.`),
  }, "Copy");
  const box = h("section", { class: "block secret", "data-testid": "key-secret-box", "aria-labelledby": "secret-title" },
    h("h3", { id: "secret-title", text: `New ${created.scope} key “${created.name}”` }),
    h("p", { class: "warning", id: "secret-warning", "data-testid": "key-secret-warning",
      text: "Copy it now: you will not see it again. Apex keeps only a hash of it." }),
    h("div", { class: "secret-row" },
      h("input", { class: "mono", readonly: true, value: created.secret, "aria-label": `The key “${created.name}”`, "data-testid": "key-secret",
        onfocus: (e) => e.target.select() }),
      copy),
    h("button", {
      type: "button", class: "secondary compact", "data-testid": "key-secret-done",
      onclick: () => { box.remove(); $("key-name")?.focus(); },
    }, "Done: I have stored it"));
  return box;
}

function keyRow(ws, k, emails) {
  const revoked = Boolean(k.revoked_at);
  const expired = !revoked && k.expires_at && Date.parse(k.expires_at) <= Date.now();
  const status = revoked ? "revoked" : expired ? "expired" : "active";
  const meta = [
    `created by ${emails.get(k.created_by) || k.created_by} on ${shortDate(k.created_at)}`,
    `last used ${k.last_used_at ? shortDate(k.last_used_at) : "never"}`,
    revoked ? `revoked ${shortDate(k.revoked_at)}` : `expires ${k.expires_at ? shortDate(k.expires_at) : "never"}`,
  ].join(" · ");
  return h("li", { class: `item key-${status}`, "data-testid": "key-row", "data-key-id": k.key_id, "data-status": status },
    h("div", { class: "item-main" },
      h("span", { class: "item-title" }, k.name,
        h("span", { class: "tag", "data-testid": "key-scope-text", text: k.scope }),
        h("span", { class: `tag tag-${status}`, "data-testid": "key-status", text: status })),
      h("code", { class: "link-text", "data-testid": "key-prefix", text: `${k.prefix}…` }),
      h("span", { class: "item-meta", "data-testid": "key-meta", text: meta })),
    h("div", { class: "item-actions" }, revoked ? null : h("button", {
      type: "button", class: "secondary compact danger-text", "data-testid": "key-revoke", "aria-label": `Revoke ${k.name}`,
      onclick: () => revokeKey(ws, k),
    }, "Revoke")));
}

async function revokeKey(ws, k) {
  const ok = await confirmAction("Revoke API key",
    `Revoke “${k.name}” (${k.prefix}…)? Whatever uses it is refused within 10 seconds. This cannot be undone.`, "Revoke key");
  if (!ok) return;
  teamError("");
  try {
    await inWorkspace(ws, `/keys/${encodeURIComponent(k.key_id)}`, { method: "DELETE" });
  } catch (e) {
    return teamError(`Could not revoke “${k.name}”: ${e.message}`);
  }
  notify(`“${k.name}” was revoked.`);
  renderTeam({ focus: "#keys-title" });
}

// ---- A new workspace, and accepting an invite.

function openNewWorkspace() {
  const name = h("input", { id: "new-workspace-name", required: true, maxlength: "100", autocomplete: "off", "data-testid": "new-workspace-name" });
  const error = h("p", { class: "form-error", role: "alert", "data-testid": "new-workspace-error" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "new-workspace-submit" }, "Create workspace");
  const form = h("form", {
    "aria-labelledby": "new-workspace-title",
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      let created;
      try {
        created = await workspacesApi("/", { method: "POST", body: { name: name.value.trim() } });
        await loadWorkspaces();
      } catch (err) {
        submit.disabled = false;
        error.textContent = `Could not create the workspace: ${err.message}`;
        return;
      }
      $("new-workspace-dialog").close();
      switchWorkspace(created.workspace_id);
      notify(`Created “${created.name}”: you are its owner.`);
    },
  },
  field("new-workspace-name", "Name", name, "A team's workspace: invite colleagues and create API keys for it."),
  error,
  h("div", { class: "modal-actions" }, h("button", { type: "button", class: "secondary", "data-close": true }, "Cancel"), submit));
  $("new-workspace-body").replaceChildren(form);
  openDialog($("new-workspace-dialog"), $("new-workspace"));
  name.focus();
}

function offerInvite() {
  const user = state.auth.currentUser;
  $("invite-text").textContent = `You have been invited to join a workspace. Accept as ${user.email}? ` +
    "You join with the role the invitation gives.";
  $("invite-error").textContent = "";
  $("invite-accept").disabled = false;
  openDialog($("invite-dialog"), $("message"));
  $("invite-accept").focus();
}

const INVITE_REFUSALS = {
  403: "This invitation is for another email address, or yours is not verified.",
  404: "There is no such invitation.",
  409: "This invitation was already used, or you are already a member of that workspace.",
  410: "This invitation has expired: ask for a new one.",
};

async function acceptInvite() {
  const inviteId = state.inviteId;
  const button = $("invite-accept");
  $("invite-error").textContent = "";
  button.disabled = true;
  let joined;
  try {
    joined = await workspacesApi(`/invites/${encodeURIComponent(inviteId)}/accept`, { method: "POST", body: {} });
    await loadWorkspaces();
  } catch (e) {
    button.disabled = false;
    $("invite-error").textContent = `${INVITE_REFUSALS[e.status] || "Could not accept the invitation."} (${e.message})`;
    return;
  }
  // Used: the address no longer offers it (a reload would only get 409).
  state.inviteId = null;
  const url = new URL(location.href);
  url.searchParams.delete(INVITE_PARAM);
  history.replaceState(null, "", url);
  $("invite-dialog").close();
  switchWorkspace(joined.workspace_id);
  notify(`You joined “${joined.name}” as ${joined.role}.`);
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
  $("live-alert-close").addEventListener("click", () => { $("live-alert").hidden = true; $("message").focus(); });
  $("conversation").addEventListener("scroll", onConversationScroll, { passive: true });
  bindSignIn(state.auth);
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
  $("workspace-select").addEventListener("change", (e) => switchWorkspace(e.target.value));
  $("open-team").addEventListener("click", openTeam);
  $("new-workspace").addEventListener("click", openNewWorkspace);
  $("invite-accept").addEventListener("click", acceptInvite);
  $("confirm-ok").addEventListener("click", () => $("confirm-dialog").close("ok"));
  // Closing the team dialog drops its contents: a new key's secret goes with them.
  bindDialog($("team-dialog"), () => $("team-panel").replaceChildren());
  bindDialog($("new-workspace-dialog"));
  bindDialog($("invite-dialog"));
  bindDialog($("confirm-dialog"));
  $("team-tabs").addEventListener("keydown", (e) => {
    const tabs = [...$("team-tabs").querySelectorAll('[role="tab"]')];
    const index = tabs.indexOf(document.activeElement);
    const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (index < 0 || next === undefined) return;
    e.preventDefault();
    selectTab(tabs[(next + tabs.length) % tabs.length].dataset.tab);
  });
  for (const button of document.querySelectorAll(".suggestion")) {
    button.addEventListener("click", () => { $("message").value = button.textContent; $("message").focus(); });
  }
}

async function onSignedIn(user) {
  $("signin-view").hidden = true;
  $("app-view").hidden = false;
  $("session").hidden = false;
  $("workspace-bar").hidden = false;
  $("user-email").textContent = user.email || user.displayName || user.uid;
  state.attempts = 0;
  let listed = false;
  try {
    await loadWorkspaces();
    listed = true;
  } catch (e) {
    showAlert(`Could not list your workspaces (${e.message}): you are in your personal workspace.`);
  }
  if (state.auth.currentUser?.uid !== user.uid) return; // signed out meanwhile
  state.workspaceId = initialWorkspace(listed);
  state.role = state.workspaces.find((w) => w.workspace_id === state.workspaceId)?.role ?? null;
  renderSwitcher();
  connect();
  loadThreads();
  if (state.ask) askFromLink();
  if (state.inviteId) offerInvite();
}

// A question from a link (the dashboard's "Ask in chat"): into a new chat's composer for the
// reader to read and send. The address drops it, so a reload does not put it there again.
function askFromLink() {
  const question = state.ask.slice(0, 8000);
  state.ask = null;
  const url = new URL(location.href);
  url.searchParams.delete(ASK_PARAM);
  history.replaceState(null, "", url);
  $("message").value = question;
  $("message").focus();
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
  state.workspaces = [];
  state.workspaceId = null;
  state.role = null;
  state.reauthFor = null;
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close("");
  renderSwitcher();
  $("workspace").textContent = "";
  clearConversation();
  clearAlerts();
  $("threads").replaceChildren();
  $("app-view").hidden = true;
  $("session").hidden = true;
  $("workspace-bar").hidden = true;
  $("signin-view").hidden = false;
  $("email").focus();
}

async function main() {
  state.config = await loadConfig();
  $("signin-invite-note").hidden = !state.inviteId;
  state.auth = startAuth(state.config);
  bindUi();
  onSession(state.auth, { signedIn: onSignedIn, signedOut: onSignedOut });
  onIdTokenChanged(state.auth, async (user) => {
    if (!user) return;
    scheduleRefresh(user);
    // A refreshed token goes to the relay at once, before the old one's exp closes the socket.
    if (state.authed) send(authFrame(await user.getIdToken()));
  });
}

main().catch((e) => {
  document.body.dataset.failed = "true";
  showAlert(`The page could not start: ${e.message}`);
});

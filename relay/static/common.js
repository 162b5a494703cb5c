// What the relay's two pages share, the chat (app.js) and the dashboard (dashboard.js): the DOM
// helper, money, calls to the public functions, the Firebase sign-in form, and the active
// workspace (the list, the one remembered per user, the switcher's options). One module both
// import, so the pages cannot drift apart: a workspace chosen on one is the other's too.
import { initializeApp } from "./vendor/firebase/firebase-app.js";
import {
  GoogleAuthProvider,
  connectAuthEmulator,
  getAuth,
  onAuthStateChanged,
  signInWithEmailAndPassword,
  signInWithPopup,
  signOut,
} from "./vendor/firebase/firebase-auth.js";

export const $ = (id) => document.getElementById(id);

// DESIGN §8: money on the pages is written $1,234.56.
export const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

// A recommendation's kind (DESIGN §8), as both pages name it.
export const KIND_LABELS = {
  cheaper_model: "Cheaper model",
  prompt_caching: "Prompt caching",
  batch_api: "Batch API",
  trim_outputs: "Trim outputs",
  response_cache: "Response cache",
  failed_calls: "Failed calls",
  deprecated_model: "Deprecated model",
};

// What a recommendation's saving rests on (DESIGN §8, issue 14): measured from the records, or
// an upper bound the records cannot narrow. Findings stored before `basis` existed state none.
export const BASIS_LABELS = { measured: "Measured", upper_bound: "Upper bound" };
export const basisLabel = (basis) => (basis ? BASIS_LABELS[basis] ?? basis : "Not stated");
// A report's `prices` (docs/prices.md): "workspace" when the workspace set prices of its own,
// and every figure then says so.
export const atYourPrices = (prices) => prices === "workspace";
export const PRICES_NOTE = "at your prices";

// DOM helper. Untrusted text only ever goes through textContent, never innerHTML.
export function h(tag, attrs = {}, ...children) {
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

// A function's error, with its HTTP status and the body's {"error": {code, message}}.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One call to a public function: the user's ID token and, when the call acts in a workspace,
// `X-Apex-Workspace` naming it (DESIGN §9). JSON in, JSON out; 204 is null.
export async function callFunction(auth, url, { method = "GET", body, workspace } = {}) {
  const token = await auth.currentUser.getIdToken();
  const headers = { Authorization: `Bearer ${token}` };
  if (workspace) headers["X-Apex-Workspace"] = workspace;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const name = new URL(url).pathname;
    throw new ApiError(response.status, data?.error?.code, data?.error?.message || `${method} ${name} answered ${response.status}`);
  }
  return data;
}

export async function loadConfig() {
  const response = await fetch("/config.json");
  if (!response.ok) throw new Error(`/config.json answered ${response.status}`);
  return response.json();
}

// Firebase Auth for the page. On the Auth emulator the page shows its own badge (the SDK's
// banner would cover the page) and hides "Sign in with Google" (the emulator has no popup).
export function startAuth(config) {
  const auth = getAuth(initializeApp(config.firebase));
  if (config.authEmulatorHost) {
    connectAuthEmulator(auth, `http://${config.authEmulatorHost}`, { disableWarnings: true });
    $("emulator-badge").hidden = false;
  } else {
    $("google-block").hidden = false;
  }
  return auth;
}

// The sign-in form (#signin-form: #email, #password, #signin-error, #google) and #sign-out,
// which both pages carry with the same ids.
export function bindSignIn(auth) {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("signin-error").textContent = "";
    const button = e.submitter;
    button.disabled = true;
    try {
      await signInWithEmailAndPassword(auth, $("email").value.trim(), $("password").value);
    } catch (err) {
      const wrong = ["auth/invalid-credential", "auth/wrong-password", "auth/user-not-found", "auth/invalid-email"];
      $("signin-error").textContent = wrong.includes(err.code) ? "Wrong email or password." : `Sign-in failed: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
  $("google").addEventListener("click", () => signInWithPopup(auth, new GoogleAuthProvider())
    .catch((err) => { $("signin-error").textContent = `Google sign-in failed: ${err.message}`; }));
  $("sign-out").addEventListener("click", () => signOut(auth));
}

// `signedIn(user)` once per user who signs in (the SDK also reports token refreshes and
// repeats of the same user), `signedOut()` when nobody is.
export function onSession(auth, { signedIn, signedOut }) {
  let current;
  onAuthStateChanged(auth, (user) => {
    const uid = user?.uid ?? null;
    if (uid === current) return;
    current = uid;
    if (user) signedIn(user);
    else signedOut();
  });
}

// ---------------------------------------------------------------------------------------
// The active workspace (DESIGN §9). The personal workspace's id is the uid; the one chosen is
// remembered per user in localStorage, where either page finds it.

const rememberKey = (uid) => `apex.workspace.${uid}`;

// GET / of the workspaces function: the personal workspace first, then by name.
export async function listWorkspaces(auth, config) {
  const { workspaces } = await callFunction(auth, `${config.workspacesUrl.replace(/\/+$/, "")}/`);
  const personal = auth.currentUser?.uid;
  return [...workspaces].sort((a, b) =>
    (b.workspace_id === personal) - (a.workspace_id === personal) || a.name.localeCompare(b.name));
}

// The remembered workspace if the reader is still a member of it; else the personal one. With
// no list (it failed to load, and the page said so) the remembered choice is kept for later.
export function rememberedWorkspace(uid, workspaces, listed) {
  const remembered = localStorage.getItem(rememberKey(uid));
  if (!remembered || !listed) return uid;
  if (workspaces.some((w) => w.workspace_id === remembered)) return remembered;
  localStorage.removeItem(rememberKey(uid));
  return uid;
}

// The workspace last chosen, as remembered (it may be one the reader has left since).
export function rememberedChoice(uid) {
  return localStorage.getItem(rememberKey(uid));
}

export function rememberWorkspace(uid, workspaceId) {
  localStorage.setItem(rememberKey(uid), workspaceId);
}

export const workspaceLabel = (w) => `${w.name} · ${w.role}`;

// The switcher's options: every listed workspace as "Name · role", and the active one even
// when the list does not have it (it failed to load, or has not yet caught up).
export function renderWorkspaceOptions(select, workspaces, activeId, role) {
  const listed = workspaces.some((w) => w.workspace_id === activeId);
  const entries = listed || !activeId
    ? workspaces
    : [...workspaces, { workspace_id: activeId, name: activeId, role: role ?? "?" }];
  select.replaceChildren(...entries.map((w) => h("option", { value: w.workspace_id, text: workspaceLabel(w) })));
  select.value = activeId ?? "";
}

// ---------------------------------------------------------------------------------------
// Alerts (DESIGN §11): a workspace's notifications, newest first, each `unread` or not for the
// reader, who marks them read up to one (the server keeps the mark per member).

const notificationsUrl = (config, ws) =>
  `${config.workspacesUrl.replace(/\/+$/, "")}/${encodeURIComponent(ws)}/notifications`;

// GET /{ws}/notifications: {notifications: [...], unread}.
export function listAlerts(auth, config, ws, limit = 20) {
  return callFunction(auth, `${notificationsUrl(config, ws)}?limit=${limit}`, { workspace: ws });
}

// POST /{ws}/notifications/read: read, for the caller, up to `notificationId` (and so not one
// that arrived after the reader looked).
export function markAlertsRead(auth, config, ws, notificationId) {
  return callFunction(auth, `${notificationsUrl(config, ws)}/read`, {
    method: "POST", workspace: ws, body: { notification_id: notificationId },
  });
}

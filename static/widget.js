/*! chat-bff customer chat widget. No dependencies, no build step. */
/*
 * Embed with one tag (every data attribute is optional):
 *   <script src="https://chat.example.com/static/widget.js" defer
 *           data-server="https://chat.example.com" data-title="Support" data-lang="de"
 *           data-color="#1f5f4a" data-fields="email,order:Order number"></script>
 *
 * How it stays live, and why it looks like this:
 * - One chat per site and browser tab: the chat handle lives in sessionStorage, so a reload or
 *   a navigation within the site resumes the chat. A new tab asks the others over
 *   BroadcastChannel for a running chat and joins it.
 * - One stream for all tabs: the tab holding the chat's Web Lock is the leader. It alone opens
 *   the EventSource and relays every event, its connection state and, on request, the
 *   transcript so far to the other tabs. When it goes away, the next tab in the lock's queue
 *   takes over and resumes with ?lastEventId=<last index>. Without those APIs each tab
 *   streams for itself.
 * - Without EventSource, or when streams keep failing while plain requests work (proxies that
 *   break SSE), the leader long-polls the REST API instead.
 * - Every transcript entry is rendered once, in upstream index order, whatever the source.
 * - Safe by construction: data only ever reaches the page as text (textContent, text nodes);
 *   only http(s) links from the agent become anchors.
 */
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.ChatBff) return;

  // Every user-visible string, one table per language. {name} and {n} are filled in.
  const STRINGS = {
    en: {
      title: "Chat with us",
      open: "Open chat",
      minimise: "Minimise chat",
      intro: "Questions about an order or a product? Tell us who you are and someone from our team will be with you shortly.",
      name: "Your name",
      subject: "How can we help?",
      optional: "optional",
      email: "E-mail",
      phone: "Phone",
      order: "Order number",
      start: "Start chat",
      starting: "Starting…",
      connecting: "Connecting…",
      waiting: "Waiting for an agent…",
      chatting: "Chatting with {name}",
      ended: "This chat has ended",
      reconnecting: "Connection lost. Reconnecting…",
      degraded: "Our chat service is slow right now. Messages may arrive late.",
      log: "Conversation",
      you: "You",
      agent: "Agent",
      typing: "{name} is typing…",
      joined: "{name} joined the chat",
      left: "{name} left the chat",
      youLeft: "You left the chat",
      message: "Message",
      placeholder: "Write a message…",
      send: "Send",
      end: "End chat",
      again: "Start a new chat",
      failed: "Your message was not sent. Please try again.",
      error: "Something went wrong. Please try again.",
      busy: "Too many requests. Please wait a moment and try again.",
      tooLong: "This message is too long.",
      startFailed: "The chat could not be started. Please try again in a moment.",
      unread: "{n} new",
    },
    de: {
      title: "Chatten Sie mit uns",
      open: "Chat öffnen",
      minimise: "Chat minimieren",
      intro: "Fragen zu einer Bestellung oder einem Produkt? Sagen Sie uns, wer Sie sind, und gleich ist jemand aus unserem Team für Sie da.",
      name: "Ihr Name",
      subject: "Wobei können wir helfen?",
      optional: "optional",
      email: "E-Mail",
      phone: "Telefon",
      order: "Bestellnummer",
      start: "Chat starten",
      starting: "Wird gestartet…",
      connecting: "Verbinde…",
      waiting: "Gleich ist jemand für Sie da…",
      chatting: "Sie chatten mit {name}",
      ended: "Der Chat ist beendet",
      reconnecting: "Verbindung unterbrochen. Verbinde neu…",
      degraded: "Unser Chat ist gerade langsam. Nachrichten kommen eventuell verzögert an.",
      log: "Unterhaltung",
      you: "Sie",
      agent: "Kundenservice",
      typing: "{name} schreibt…",
      joined: "{name} ist dem Chat beigetreten",
      left: "{name} hat den Chat verlassen",
      youLeft: "Sie haben den Chat verlassen",
      message: "Nachricht",
      placeholder: "Nachricht schreiben…",
      send: "Senden",
      end: "Chat beenden",
      again: "Neuen Chat starten",
      failed: "Ihre Nachricht wurde nicht gesendet. Bitte versuchen Sie es erneut.",
      error: "Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut.",
      busy: "Zu viele Anfragen. Bitte warten Sie einen Moment.",
      tooLong: "Diese Nachricht ist zu lang.",
      startFailed: "Der Chat konnte nicht gestartet werden. Bitte versuchen Sie es gleich noch einmal.",
      unread: "{n} neu",
    },
  };

  // -- configuration -------------------------------------------------------------------------
  const ds = script.dataset;
  const base = (ds.server || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  const lang =
    [ds.lang, document.documentElement.lang, navigator.language]
      .map((l) => (l || "").slice(0, 2).toLowerCase())
      .find((l) => STRINGS[l]) || "en";
  const T = STRINGS[lang];
  const fmt = (s, v) => s.replace(/\{(\w+)\}/g, (_, k) => v[k]);
  const KEY = "chat-bff|" + base + "|";
  const store = (k, v) => {
    try {
      if (v === undefined) return sessionStorage.getItem(KEY + k);
      v === null ? sessionStorage.removeItem(KEY + k) : sessionStorage.setItem(KEY + k, v);
    } catch (e) {
      return null; // storage disabled: the chat still works, it just does not survive a reload
    }
  };
  const ENDED = new Set(["Idle", "Completed", "Disconnected"]);
  const backoff = (n) => Math.min(15000, 500 * 2 ** n) * (0.5 + Math.random() / 2);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function api(method, path, body, signal) {
    const res = await fetch(base + "/api/v2/chats" + path, {
      method,
      signal,
      cache: "no-store",
      credentials: "omit",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      /* not JSON: judged by the status alone */
    }
    if (!res.ok || !data) {
      const err = new Error("HTTP " + res.status);
      err.status = res.status;
      err.retry = +res.headers.get("Retry-After") || 0;
      throw err;
    }
    return data;
  }

  // -- one chat: its transcript and its connection ------------------------------------------
  const share = typeof BroadcastChannel === "function" ? new BroadcastChannel("chat-bff|" + base) : null;
  const locks = share && navigator.locks && navigator.locks.request ? navigator.locks : null;
  const tabId = Math.random().toString(36).slice(2);
  let chat = null;

  class Chat {
    constructor(handle) {
      this.h = handle;
      this.path = "/" + encodeURIComponent(handle);
      this.msgs = new Map(); // index -> transcript entry: what this tab has, for dedupe and replay
      this.last = 0;
      this.state = this.status = null;
      this.conn = "connecting";
      this.leader = !locks;
      this.ended = this.dead = this.completed = false;
      this.failures = 0;
      this.abort = new AbortController();
    }

    start() {
      if (!locks) return this.lead();
      locks
        .request("chat-bff|" + this.h, { signal: this.abort.signal }, () =>
          this.dead || this.ended ? null : new Promise((release) => ((this.release = release), this.lead())),
        )
        .catch(() => {});
      share.postMessage({ t: "sync", h: this.h, from: this.last, to: tabId });
    }

    stop() {
      this.dead = true;
      this.abort.abort();
      if (this.release) this.release();
      this.close();
    }

    close() {
      clearTimeout(this.timer);
      if (this.es) this.es.close();
      this.es = null;
    }

    later(fn, ms) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.dead || this.ended || fn(), ms);
    }

    lead() {
      this.leader = true;
      this.connect();
    }

    /** Every event, from the stream, the long-poll or another tab, comes through here. */
    take(kind, data, relayed) {
      if (this.dead) return;
      if (kind === "message") {
        if (!data || !(data.index > 0) || this.msgs.has(data.index)) return;
        this.msgs.set(data.index, data);
        this.last = Math.max(this.last, data.index);
      } else if (kind === "conn") {
        if (this.conn === data || this.ended) return;
        this.conn = data;
      } else if (kind === "end") {
        if (this.ended) return;
        this.ended = true;
        this.close();
        this.abort.abort();
      } else this[kind] = data;
      if (locks && this.leader && !relayed) share.postMessage({ t: "ev", h: this.h, kind, data });
      if (chat === this) ui[kind](data);
    }

    replay(from) {
      const out = [];
      if (this.state) out.push(["state", this.state]);
      if (this.status) out.push(["status", this.status]);
      [...this.msgs.values()]
        .filter((m) => m.index > from)
        .sort((a, b) => a.index - b.index)
        .forEach((m) => out.push(["message", m]));
      out.push(["conn", this.conn]);
      if (this.ended) out.push(["end", {}]);
      return out;
    }

    connect() {
      if (this.dead || this.ended || this.es || this.polling) return;
      if (typeof EventSource !== "function") return this.poll();
      const url = base + "/api/v2/chats" + this.path + "/events" + (this.last ? "?lastEventId=" + this.last : "");
      const es = (this.es = new EventSource(url));
      let live = false;
      const fail = () => {
        clearTimeout(watchdog);
        if (this.es !== es) return;
        this.close();
        this.take("conn", "reconnecting");
        if (live) return this.later(() => this.connect(), 300 + Math.random() * 1200);
        if (++this.failures < 3) return this.later(() => this.connect(), backoff(this.failures));
        // Streams keep failing. If plain requests work, it is SSE that is broken on the way
        // (some proxies do that): try once more, then long-poll.
        api("GET", this.path).then(
          () => {
            if (this.suspect) return this.poll();
            this.suspect = true;
            this.later(() => this.connect(), 0);
          },
          (err) => (err.status === 404 ? this.take("end", {}) : this.later(() => this.connect(), backoff(this.failures))),
        );
      };
      // A stream that opens but delivers nothing is as broken as one that fails (buffering proxy).
      const watchdog = setTimeout(fail, 15000);
      const on = (kind, fn) =>
        es.addEventListener(kind, (e) => {
          if (this.es !== es) return;
          let data;
          try {
            data = JSON.parse(e.data);
          } catch (err) {
            return;
          }
          fn(data);
        });
      on("state", (data) => {
        live = true;
        clearTimeout(watchdog);
        this.failures = 0;
        this.suspect = false;
        this.take("conn", "live");
        this.take("state", data);
      });
      on("message", (data) => this.take("message", data));
      on("status", (data) => this.take("status", data));
      on("end", () => this.take("end", {})); // closes the EventSource: a reconnect would replay
      es.onerror = fail;
    }

    async poll() {
      if (this.polling) return;
      this.polling = true;
      this.close();
      let stateAt = 0;
      let errors = 0;
      const signal = this.abort.signal;
      while (!this.dead && !this.ended) {
        try {
          if (Date.now() - stateAt > 30000) {
            const { chat: state } = await api("GET", this.path, null, signal);
            stateAt = Date.now();
            this.take("state", state);
            if (ENDED.has(state.state)) {
              const { messages } = await api("GET", this.path + "/messages?index=" + (this.last + 1), null, signal);
              messages.forEach((m) => this.take("message", m));
              this.take("end", {});
              break;
            }
          }
          const q = "/messages?index=" + (this.last + 1) + "&wait=25";
          const { messages } = await api("GET", this.path + q, null, signal);
          for (const m of messages) {
            this.take("message", m);
            if (/^Participant/.test(m.type)) stateAt = 0; // someone came or went: re-read state
          }
          errors = 0;
          this.take("conn", "live");
        } catch (err) {
          if (this.dead || this.ended) break;
          if (err.status === 404) this.take("end", {});
          else {
            this.take("conn", "reconnecting");
            await sleep(err.retry * 1000 || backoff(++errors));
          }
        }
      }
    }
  }

  function adopt(handle, fresh) {
    if (chat) chat.stop();
    chat = new Chat(handle);
    if (store("h") !== handle) store("seen", null); // what was read belongs to another chat
    store("h", handle);
    reset();
    show("chat");
    chat.start();
    if (fresh && share) share.postMessage({ t: "chat", h: handle });
  }

  if (share) {
    share.onmessage = ({ data: m }) => {
      if (!m || typeof m !== "object") return;
      if (m.t === "hello") {
        if (chat && chat.leader && !chat.ended) share.postMessage({ t: "chat", h: chat.h });
      } else if (m.t === "chat") {
        if (typeof m.h === "string" && (!chat || (chat.ended && chat.h !== m.h))) adopt(m.h, false);
      } else if (chat && m.h === chat.h) {
        if (m.t === "ev" && !chat.leader) chat.take(m.kind, m.data, true);
        else if (m.t === "sync" && chat.leader) share.postMessage({ t: "replay", h: chat.h, to: m.to, events: chat.replay(m.from) });
        else if (m.t === "replay" && m.to === tabId) m.events.forEach(([k, d]) => chat.take(k, d, true));
      }
    };
  }

  // -- the DOM: every piece of data goes in as text ------------------------------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (v !== false && v != null) el.setAttribute(k, v === true ? "" : v);
    }
    el.append(...kids.filter(Boolean));
    return el;
  }

  function icon(d, stroke) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    const path = document.createElementNS(ns, "path");
    const set = (el, attrs) => Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, v));
    set(svg, { viewBox: "0 0 24 24", "aria-hidden": "true", focusable: "false" });
    set(path, stroke ? { d, fill: "none", stroke: "currentColor", "stroke-width": 2.2, "stroke-linecap": "round", "stroke-linejoin": "round" } : { d, fill: "currentColor" });
    svg.append(path);
    return svg;
  }

  const wrap = h("div", { class: "cb", lang, hidden: true, "data-phase": "new" });
  const color = (v) => (/^#([0-9a-f]{3}){1,2}$/i.test(v || "") ? v : null);
  const accent = color(ds.color);
  if (accent) {
    // Text on the accent: white or near-black, whichever reaches WCAG AA (4.5:1).
    const hex = accent.length === 4 ? accent.replace(/\w/g, "$&$&") : accent;
    const lum = [1, 3, 5]
      .map((i) => parseInt(hex.substr(i, 2), 16) / 255)
      .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
      .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    wrap.style.setProperty("--cb-accent", accent);
    const light = 1.05 / (lum + 0.05) < 4.5;
    wrap.style.setProperty("--cb-on-accent", color(ds.colorText) || (light ? "#111" : "#fff"));
    if (light) wrap.style.setProperty("--cb-focus", "#1b2230"); // a light accent is no focus ring
  }

  const badge = h("span", { class: "cb-badge", hidden: true });
  const launcher = h(
    "button",
    { type: "button", class: "cb-launcher", "aria-label": T.open, "aria-expanded": "false", "aria-controls": "cb-panel" },
    icon("M6.5 4h11A3.5 3.5 0 0 1 21 7.5v7a3.5 3.5 0 0 1-3.5 3.5H11l-4.6 3.5c-.6.5-1.4 0-1.4-.7V18a3 3 0 0 1-2-2.8V7.5A3.5 3.5 0 0 1 6.5 4Z"),
    badge,
  );
  const sub = h("span", { class: "cb-sub-text", text: T.connecting });
  const endBtn = h("button", { type: "button", class: "cb-end", text: T.end, hidden: true });
  const minBtn = h("button", { type: "button", class: "cb-min", "aria-label": T.minimise }, icon("M6 9l6 6 6-6", true));
  const banner = h("p", { class: "cb-banner", role: "status", hidden: true });

  // The start form: nickname, subject, then the optional fields that go to userData.
  const field = (key, label, attrs, optional) => {
    const id = "cb-f-" + key;
    const input = key === "subject" ? h("textarea", { id, name: key, rows: 2, ...attrs }) : h("input", { id, name: key, ...attrs });
    return h(
      "div",
      { class: "cb-field" },
      h("label", { for: id, text: label }, optional && h("small", { text: " (" + T.optional + ")" })),
      input,
    );
  };
  const extras = (ds.fields || "")
    .split(",")
    .map((f) => f.trim().split(":"))
    .filter(([key]) => /^[\w.-]{1,64}$/.test(key || ""))
    .map(([key, label]) => {
      const type = { email: "email", phone: "tel" }[key] || "text";
      const auto = { email: "email", phone: "tel" }[key] || "off";
      return field(key, label || T[key] || key, { type, autocomplete: auto, maxlength: 1024, "data-extra": true }, true);
    });
  const startBtn = h("button", { type: "submit", class: "cb-primary", text: T.start });
  const formError = h("p", { class: "cb-error", role: "alert" });
  const form = h(
    "form",
    { class: "cb-start", onsubmit: startChat },
    h("p", { class: "cb-intro", text: T.intro }),
    field("nickname", T.name, { required: true, maxlength: 64, autocomplete: "name" }),
    field("subject", T.subject, { required: true, maxlength: 256 }),
    ...extras,
    formError,
    startBtn,
  );
  const nameInput = form.querySelector("input");

  // The conversation. The log is the live region; pending sends wait in the outbox after it.
  const log = h("ol", { class: "cb-log", role: "log", "aria-live": "polite" });
  const outbox = h("ol", { class: "cb-outbox", "aria-hidden": "true" });
  const typing = h("p", { class: "cb-typing", "aria-live": "polite" });
  const scroller = h("div", { class: "cb-scroll", role: "region", tabindex: "0", "aria-label": T.log }, log, outbox, typing);
  const chatError = h("p", { class: "cb-error", role: "alert" });
  const input = h("textarea", { rows: 1, maxlength: 4000, "aria-label": T.message, placeholder: T.placeholder });
  const composer = h(
    "form",
    { class: "cb-composer", onsubmit: (e) => (e.preventDefault(), sendText()) },
    input,
    h("button", { type: "submit", class: "cb-send", "aria-label": T.send }, icon("M4.4 19.6 20.5 12.7c.6-.3.6-1.1 0-1.4L4.4 4.4c-.6-.3-1.3.2-1.1.9L5 11l8 1-8 1-1.7 5.7c-.2.7.5 1.2 1.1.9Z")),
  );
  const againBtn = h("button", { type: "button", class: "cb-primary", text: T.again });
  const endBox = h("div", { class: "cb-endbox", hidden: true }, h("p", { text: T.ended }), againBtn);
  const chatView = h("div", { class: "cb-chat", hidden: true }, scroller, chatError, composer, endBox);

  const panel = h(
    "section",
    { id: "cb-panel", class: "cb-panel", role: "dialog", "aria-labelledby": "cb-title", hidden: true },
    h(
      "header",
      { class: "cb-head" },
      h("div", { class: "cb-titles" }, h("h2", { id: "cb-title", text: ds.title || T.title }), h("p", { class: "cb-sub" }, h("span", { class: "cb-dot" }), sub)),
      endBtn,
      minBtn,
    ),
    banner,
    form,
    chatView,
  );
  wrap.append(launcher, panel);

  const host = h("div", { id: "chat-bff-widget" });
  const root = host.attachShadow({ mode: "open" });
  const css = h("link", { rel: "stylesheet", href: ds.css || new URL("widget.css", script.src).href });
  css.onload = css.onerror = () => (wrap.hidden = false);
  root.append(css, wrap);

  // -- view state ----------------------------------------------------------------------------
  let phase = "new";
  let agentName = "";
  let pending = []; // own messages sent but not yet seen in the transcript: {text, el, sent}
  let unread = 0;
  let typingSent = false;
  let typingTimer = 0;
  let typingSafety = 0;

  const isOpen = () => !panel.hidden;
  const show = (view) => {
    form.hidden = view !== "form";
    chatView.hidden = view !== "chat";
  };
  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  const toBottom = () => (scroller.scrollTop = scroller.scrollHeight);

  function setPhase(p) {
    if (chat && chat.completed && p !== "ended") return;
    phase = p;
    wrap.dataset.phase = p;
    sub.textContent = { connecting: T.connecting, waiting: T.waiting, chatting: fmt(T.chatting, { name: agentName || T.agent }), ended: T.ended }[p];
    const ended = p === "ended";
    endBtn.hidden = ended;
    const hadFocus = root.activeElement === input;
    composer.hidden = ended;
    endBox.hidden = !ended;
    if (ended) {
      showTyping(false);
      stopTyping(true);
      if (hadFocus) againBtn.focus();
    }
  }

  function reset() {
    log.replaceChildren();
    outbox.replaceChildren();
    pending = [];
    agentName = "";
    unread = 0;
    badge.hidden = true;
    chatError.textContent = formError.textContent = "";
    showTyping(false);
    showBanner();
    setPhase("connecting");
  }

  function showBanner() {
    const degraded = chat && chat.status && chat.status.upstream === "degraded";
    const text = chat && chat.conn === "reconnecting" && !chat.ended ? T.reconnecting : degraded && !chat.ended ? T.degraded : "";
    banner.textContent = text;
    banner.hidden = !text;
  }

  function showTyping(on, name) {
    clearTimeout(typingSafety);
    typing.replaceChildren();
    typing.hidden = !on;
    if (!on) return;
    const follow = nearBottom();
    typing.append(h("span", { class: "cb-dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")), fmt(T.typing, { name: name || agentName || T.agent }));
    if (follow) toBottom();
    typingSafety = setTimeout(() => showTyping(false), 30000); // a lost TypingStopped
  }

  function timeOf(value) {
    const d = value == null ? null : new Date(value);
    return d && !isNaN(d) ? h("time", { datetime: d.toISOString(), text: d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" }) }) : null;
  }

  // http(s) URLs in agent text become anchors; everything else stays text.
  function linkify(el, text) {
    const re = /\bhttps?:\/\/[^\s<>"'`]+/gi;
    let at = 0;
    for (let m; (m = re.exec(text)); ) {
      const raw = m[0].replace(/[.,;:!?)\]}]+$/, "");
      let url = null;
      try {
        url = new URL(raw);
      } catch (e) {
        /* not a URL after all: stays text */
      }
      el.append(text.slice(at, m.index));
      el.append(url && /^https?:$/.test(url.protocol) ? h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer", text: raw }) : raw);
      at = re.lastIndex = m.index + raw.length;
    }
    el.append(text.slice(at));
  }

  function insert(el, index) {
    el.dataset.index = index;
    let next = null;
    for (let c = log.lastElementChild; c && +c.dataset.index > index; c = c.previousElementSibling) next = c;
    const follow = nearBottom();
    log.insertBefore(el, next);
    if (follow || el.classList.contains("cb-me")) toBottom();
  }

  function bubble(m, kind) {
    const text = String(m.text == null ? "" : m.text);
    const body = h("div", { class: "cb-bubble" });
    kind === "Agent" ? linkify(body, text) : body.append(text);
    const me = kind === "Customer";
    const who = me ? T.you : (m.from && m.from.nickname) || T.agent;
    return h("li", { class: "cb-msg " + (me ? "cb-me" : "cb-them") }, h("span", { class: "cb-who", text: who }), body, timeOf(m.utcTime));
  }

  const sys = (text) => h("li", { class: "cb-sys", text });

  const ui = {
    message(m) {
      const from = m.from || {};
      const kind = from.type;
      const name = from.nickname || T.agent;
      let el = null;
      if (m.type === "Text") {
        el = bubble(m, kind);
        if (kind === "Customer") settle(String(m.text).trim());
        else if (kind === "Agent") {
          showTyping(false);
          if (!isOpen() && m.index > (+store("seen") || 0)) {
            badge.textContent = ++unread;
            launcher.setAttribute("aria-label", T.open + " (" + fmt(T.unread, { n: unread }) + ")");
            badge.hidden = false;
          }
        }
      } else if (m.type === "ParticipantJoined") {
        if (kind === "Agent") {
          agentName = name;
          el = sys(fmt(T.joined, { name }));
          if (phase !== "ended") setPhase("chatting");
        }
      } else if (m.type === "ParticipantLeft") {
        el = sys(kind === "Customer" ? T.youLeft : fmt(T.left, { name }));
        if (kind !== "Customer") showTyping(false);
      } else if (m.type === "TypingStarted" || m.type === "TypingStopped") {
        if (kind !== "Customer") showTyping(m.type === "TypingStarted", name);
      } else if (m.text) el = sys(String(m.text)); // Notice and anything newer with a text
      if (el) insert(el, m.index);
    },
    state(s) {
      const agent = (s.participants || []).find((p) => p && p.type === "Agent");
      if (agent && agent.nickname) agentName = String(agent.nickname);
      if (ENDED.has(s.state)) setPhase("ended");
      else if (s.state === "Chatting" && agent) setPhase("chatting");
      else if (s.state === "WaitingForAgent" || phase === "connecting") setPhase("waiting");
    },
    status: showBanner,
    conn: showBanner,
    end() {
      setPhase("ended");
      showBanner();
    },
  };

  // An own message arrived in the transcript: its pending copy goes.
  function settle(text) {
    let i = pending.findIndex((p) => p.text === text);
    if (i < 0) i = pending.findIndex((p) => p.sent);
    if (i >= 0) pending.splice(i, 1)[0].el.remove();
  }

  function errorText(err) {
    return err.status === 429 ? T.busy : err.status === 413 ? T.tooLong : T.failed;
  }

  async function startChat(e) {
    e.preventDefault();
    if (!form.reportValidity()) return;
    const value = (name) => form.elements[name].value.trim();
    const userData = {};
    form.querySelectorAll("[data-extra]").forEach((f) => f.value.trim() && (userData[f.name] = f.value.trim()));
    startBtn.disabled = true;
    startBtn.textContent = T.starting;
    formError.textContent = "";
    try {
      const body = { operationName: "RequestChat", nickname: value("nickname"), subject: value("subject") };
      if (Object.keys(userData).length) body.userData = userData;
      const { id } = await api("POST", "", body);
      adopt(id, true);
      form.reset();
      input.focus();
    } catch (err) {
      formError.textContent = err.status === 429 ? T.busy : T.startFailed;
    } finally {
      startBtn.disabled = false;
      startBtn.textContent = T.start;
    }
  }

  const notify = (op) => chat && !chat.ended && api("POST", chat.path, { operationName: op }).catch(() => {});

  // The customer's typing: start on the first keystroke, stop after 3 s without one.
  function typed() {
    grow();
    if (!chat || chat.ended) return;
    if (!input.value.trim()) return stopTyping();
    if (!typingSent) {
      typingSent = true;
      notify("SendStartTypingNotification");
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 3000);
  }

  function stopTyping(silent) {
    clearTimeout(typingTimer);
    if (typingSent && silent !== true) notify("SendStopTypingNotification");
    typingSent = false;
  }

  function grow() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  }

  async function sendText() {
    const text = input.value.trim();
    if (!text || !chat || chat.ended) return;
    const target = chat;
    input.value = "";
    grow();
    stopTyping(true); // a message ends the typing on the agent's side
    chatError.textContent = "";
    const item = { text, sent: false, el: h("li", { class: "cb-msg cb-me cb-pending" }, h("div", { class: "cb-bubble", text })) };
    pending.push(item);
    outbox.append(item.el);
    toBottom();
    try {
      await api("POST", target.path, { operationName: "SendMessage", text });
      item.sent = true;
    } catch (err) {
      if (chat !== target) return;
      pending = pending.filter((p) => p !== item);
      item.el.remove();
      if (err.status === 409) return setPhase("ended");
      if (!input.value) input.value = text;
      grow();
      chatError.textContent = errorText(err);
    }
  }

  async function complete() {
    if (!chat) return;
    const target = chat;
    endBtn.disabled = true;
    stopTyping(true);
    try {
      await api("POST", target.path, { operationName: "Complete" });
    } catch (err) {
      if (err.status !== 409) {
        // 409: the chat was over already
        endBtn.disabled = false;
        chatError.textContent = err.status === 429 ? T.busy : T.error;
        return;
      }
    }
    endBtn.disabled = false;
    if (chat !== target) return;
    target.completed = true; // the stream's `end` follows with the last entries
    setPhase("ended");
    againBtn.focus();
  }

  function open(focus) {
    panel.hidden = false;
    wrap.classList.add("cb-open");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", T.open);
    store("open", "1");
    unread = 0;
    badge.hidden = true;
    if (chat) store("seen", String(chat.last));
    toBottom();
    if (focus !== false) (!chat ? nameInput : phase === "ended" ? againBtn : input).focus();
  }

  function close() {
    panel.hidden = true;
    wrap.classList.remove("cb-open");
    launcher.setAttribute("aria-expanded", "false");
    store("open", null);
    if (chat) store("seen", String(chat.last));
    launcher.focus();
  }

  launcher.addEventListener("click", () => (isOpen() ? close() : open()));
  minBtn.addEventListener("click", close);
  endBtn.addEventListener("click", complete);
  againBtn.addEventListener("click", () => {
    if (chat) chat.stop();
    chat = null;
    store("h", null);
    reset();
    setPhase("new");
    sub.textContent = "";
    show("form");
    nameInput.focus();
  });
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.stopPropagation();
      close();
    }
  });
  input.addEventListener("input", typed);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendText();
    }
  });

  // -- start ---------------------------------------------------------------------------------
  const saved = store("h");
  if (saved) adopt(saved, false);
  else {
    show("form");
    sub.textContent = "";
    if (share) share.postMessage({ t: "hello" });
  }
  if (store("open")) open(false);
  const mount = () => document.body.append(host);
  document.body ? mount() : document.addEventListener("DOMContentLoaded", mount);

  window.ChatBff = { open: () => open(), close };
})();

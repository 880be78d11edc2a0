/* chat-bff customer chat widget. No dependencies, no build step. */
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
 *   streams for itself. The leader is also the one tab that plays the new-message sound and
 *   shows system notifications, so the customer hears and sees each reply once.
 * - Without EventSource, or when streams keep failing while plain requests work (proxies that
 *   break SSE), the leader long-polls the REST API instead.
 * - Every transcript entry is rendered once, in upstream index order, whatever the source.
 * - Every POST carries an Idempotency-Key: one per message (or form submission), reused by
 *   its retry, so a send whose answer was lost is never delivered twice.
 * - Strings live in one JSON file per language beside this script (lang/<code>.json); a page
 *   downloads only its own language.
 * - Content-Security-Policy friendly: no inline script or style. The styles are widget.css,
 *   linked into the widget's shadow root; the only style writes are CSSOM properties (accent
 *   colour, composer height, the page's scroll lock behind the phone panel), which CSP does
 *   not govern.
 * - Safe by construction: data only ever reaches the page as text (textContent, text nodes);
 *   only http(s) links from the agent become anchors.
 */
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.ChatBff) return;
  let wanted = false; // ChatBff.open() called before the strings arrived
  const pub = (window.ChatBff = { open: () => (wanted = true), close() {} });

  // -- configuration -------------------------------------------------------------------------
  const ds = script.dataset;
  const base = (ds.server || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  const LANGS = ["en", "de", "fr", "es", "ar"];
  let locale = [ds.lang, document.documentElement.lang, navigator.language].find((l) => LANGS.includes((l || "").slice(0, 2).toLowerCase())) || "en";
  let lang = locale.slice(0, 2).toLowerCase();
  try {
    Intl.getCanonicalLocales(locale);
  } catch (e) {
    locale = lang; // a malformed tag such as "fr_FR": its language is still right
  }
  const fmt = (s, v) => s.replace(/\{(\w+)\}/g, (_, k) => v[k]);
  const KEY = "chat-bff|" + base + "|";
  // sessionStorage: this tab's chat (survives reloads); localStorage: the customer's choices.
  const keep = (area) => (k, v) => {
    try {
      const s = window[area];
      if (v === undefined) return s.getItem(KEY + k);
      v === null ? s.removeItem(KEY + k) : s.setItem(KEY + k, v);
    } catch (e) {
      return null; // storage disabled: the chat still works, it just does not survive a reload
    }
  };
  const store = keep("sessionStorage");
  const prefs = keep("localStorage");
  const ENDED = new Set(["Idle", "Completed", "Disconnected"]);
  const backoff = (n) => Math.min(15000, 500 * 2 ** n) * (0.5 + Math.random() / 2);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const newKey = () => Array.from(crypto.getRandomValues(new Uint32Array(4)), (n) => n.toString(36)).join("");

  async function api(method, path, body, key, signal) {
    const headers = body ? { "Content-Type": "application/json" } : {};
    if (key) headers["Idempotency-Key"] = '"' + key + '"'; // a Structured Field string
    const res = await fetch(base + "/api/v2" + path, {
      method,
      signal,
      cache: "no-store",
      credentials: "omit",
      headers,
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
      err.data = data || {};
      throw err;
    }
    return data;
  }

  // -- one chat: its transcript and its connection ------------------------------------------
  const share = typeof BroadcastChannel === "function" ? new BroadcastChannel("chat-bff|" + base) : null;
  const locks = share && navigator.locks && navigator.locks.request ? navigator.locks : null;
  const tabId = Math.random().toString(36).slice(2);
  let chat = null;
  let ui = null; // the view, once the strings are in

  class Chat {
    constructor(handle, info) {
      this.h = handle;
      this.info = info; // {s: subject, n: nickname, t: started at (ms), m: e-mail given, c: completed}
      this.path = "/chats/" + encodeURIComponent(handle);
      this.msgs = new Map(); // index -> transcript entry: what this tab has, for dedupe and replay
      this.last = 0;
      this.heard = +store("heard") || 0; // highest index this tab has been told of
      this.state = this.status = null;
      this.conn = "connecting";
      this.leader = !locks;
      this.ended = this.dead = false;
      this.completed = !!info.c; // the customer ended it (kept across reloads)
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
      let fresh = false;
      if (kind === "message") {
        if (!data || !(data.index > 0) || this.msgs.has(data.index)) return;
        this.msgs.set(data.index, data);
        this.last = Math.max(this.last, data.index);
        // New to this tab's session (not a replay after a reload or a takeover)?
        if ((fresh = data.index > this.heard)) store("heard", String((this.heard = data.index)));
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
      if (chat === this && ui) ui[kind](data, fresh && this.leader);
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
      const url = base + "/api/v2" + this.path + "/events" + (this.last ? "?lastEventId=" + this.last : "");
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
            const { chat: state } = await api("GET", this.path, null, null, signal);
            stateAt = Date.now();
            this.take("state", state);
            if (ENDED.has(state.state)) {
              const { messages } = await api("GET", this.path + "/messages?index=" + (this.last + 1), null, null, signal);
              messages.forEach((m) => this.take("message", m));
              this.take("end", {});
              break;
            }
          }
          const q = "/messages?index=" + (this.last + 1) + "&wait=25";
          const { messages } = await api("GET", this.path + q, null, null, signal);
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

  /** An icon: paths "d" or "class:d", separated by "|"; widget.css strokes `cb-line` ones. */
  function icon(paths, cls) {
    const ns = "http://www.w3.org/2000/svg";
    const set = (el, attrs) => (Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, v)), el);
    const svg = set(document.createElementNS(ns, "svg"), { viewBox: "0 0 24 24", "aria-hidden": "true", class: cls || "" });
    for (const p of paths.split("|")) {
      const [c, d] = p.includes(":") ? p.split(":") : ["", p];
      svg.append(set(document.createElementNS(ns, "path"), { d, class: c }));
    }
    return svg;
  }

  // The shadow root and its stylesheet load while the strings do.
  const host = h("div", { id: "chat-bff-widget" });
  const root = host.attachShadow({ mode: "open" });
  const css = h("link", { rel: "stylesheet", href: ds.css || new URL("widget.css", script.src).href });
  const styled = new Promise((done) => (css.onload = css.onerror = done));
  root.append(css);
  const mount = () => document.body.append(host);
  document.body ? mount() : document.addEventListener("DOMContentLoaded", mount);

  const strings = (code) =>
    fetch(new URL("lang/" + code + ".json", script.src), { credentials: "omit" }).then((r) => (r.ok ? r.json() : Promise.reject()));
  strings(lang)
    .catch(() => ((locale = lang = "en"), strings("en")))
    .then(boot, () => console.warn("chat-bff: the widget's strings could not be loaded"));

  function boot(T) {
    const title = ds.title || T.title;
    const num = (n) => new Intl.NumberFormat(locale).format(n);
    const clock = (v) => new Intl.DateTimeFormat(locale, { timeStyle: "short" }).format(new Date(v));
    const wrap = h("div", { class: "cb", lang, dir: T.dir, hidden: true, "data-phase": "new" });

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
    const sub = h("span", { class: "cb-sub-text" });
    const soundBtn = h(
      "button",
      { type: "button", class: "cb-icon", "aria-label": T.sound, title: T.sound, hidden: true },
      icon("M11 5 6 9H3v6h3l5 4Z|cb-on:M15.5 8.5a5 5 0 0 1 0 7M18.5 5.5a9 9 0 0 1 0 13|cb-off:M16 9l6 6m0-6-6 6", "cb-line"),
    );
    const endBtn = h("button", { type: "button", class: "cb-end", text: T.end, hidden: true });
    const minBtn = h("button", { type: "button", class: "cb-icon", "aria-label": T.minimise }, icon("M6 9l6 6 6-6", "cb-line"));
    const banner = h("p", { class: "cb-banner", role: "status", hidden: true });

    // The start form: nickname, subject, then the optional fields that go to userData. Outside
    // opening hours (or when no agent can be reached) the same form leaves a message instead:
    // an e-mail address becomes required and the subject is the message.
    const field = (key, label, attrs, optional) => {
      const id = "cb-f-" + key;
      const input = h(key === "subject" ? "textarea" : "input", { id, name: key, ...attrs });
      return h(
        "div",
        { class: key === "email" ? "cb-field cb-mail" : "cb-field" },
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
    const intro = h("p", { class: "cb-intro", text: T.intro });
    const startBtn = h("button", { type: "submit", class: "cb-primary", text: T.start });
    const formError = h("p", { class: "cb-error", role: "alert" });
    const subjectField = field("subject", T.subject, { required: true, maxlength: 256, rows: 3 });
    const form = h(
      "form",
      { class: "cb-form", onsubmit: submit },
      intro,
      field("nickname", T.name, { required: true, maxlength: 64, autocomplete: "name" }),
      subjectField,
      ...extras,
      formError,
      startBtn,
    );
    const mail = form.elements.email || h("input", { id: "cb-f-email", name: "email", type: "email", autocomplete: "email", maxlength: 254 });
    const mailField = mail.parentNode || field("email", T.email, {}, true);
    if (!mail.parentNode) (mailField.lastChild.replaceWith(mail), (mailField.hidden = true), subjectField.after(mailField));
    const thanks = h("p", { class: "cb-intro cb-thanks", tabindex: "-1", hidden: true });

    // The conversation. The log is the live region; pending sends wait in the outbox after it.
    const log = h("ol", { class: "cb-log" });
    const outbox = h("ol", { class: "cb-outbox" });
    const typing = h("p", { class: "cb-typing", "aria-live": "polite" });
    const waited = h("p", { class: "cb-waited" });
    const waitCard = h(
      "div",
      { class: "cb-wait", hidden: true },
      h("span", { class: "cb-live", "aria-hidden": "true" }),
      h("p", { class: "cb-wait-title", text: T.waitTitle }),
      waited,
      h("p", { text: T.browse }),
    );
    const scroller = h(
      "div",
      { class: "cb-scroll", role: "region", tabindex: "0", "aria-label": T.log },
      h("div", { role: "log", "aria-live": "polite" }, log),
      outbox,
      waitCard,
      typing,
    );
    const chatError = h("p", { class: "cb-error", role: "alert" });
    const input = h("textarea", { rows: 1, maxlength: 4000, "aria-label": T.message, placeholder: T.placeholder });
    const composer = h(
      "form",
      { class: "cb-composer", onsubmit: (e) => (e.preventDefault(), sendText()) },
      input,
      h("button", { type: "submit", class: "cb-send", "aria-label": T.send }, icon("M4.4 19.6 20.5 12.7c.6-.3.6-1.1 0-1.4L4.4 4.4c-.6-.3-1.3.2-1.1.9L5 11l8 1-8 1-1.7 5.7c-.2.7.5 1.2 1.1.9Z")),
    );
    const keepBtn = h("button", { type: "button", class: "cb-secondary", text: T.keep });
    const sureBtn = h("button", { type: "button", class: "cb-primary", text: T.end });
    const confirmBox = h("div", { class: "cb-box", role: "group", "aria-labelledby": "cb-ask", hidden: true }, h("p", { id: "cb-ask", text: T.endAsk }), h("div", { class: "cb-row" }, keepBtn, sureBtn));
    const endText = h("p", { class: "cb-ended" });
    const leaveBtn = h("button", { type: "button", class: "cb-secondary", text: T.leave });
    const saveBtn = h("button", { type: "button", class: "cb-secondary", text: T.download });
    const againBtn = h("button", { type: "button", class: "cb-primary", text: T.again });
    const endBox = h("div", { class: "cb-box", hidden: true }, endText, h("div", { class: "cb-row" }, saveBtn, leaveBtn), againBtn);
    const chatView = h("div", { class: "cb-chat", hidden: true }, scroller, chatError, composer, confirmBox, endBox);

    const panel = h(
      "section",
      { id: "cb-panel", class: "cb-panel", role: "dialog", "aria-labelledby": "cb-title", hidden: true },
      h(
        "div",
        { class: "cb-head" },
        h("div", { class: "cb-titles" }, h("h2", { id: "cb-title", text: title }), h("p", { class: "cb-sub" }, h("span", { class: "cb-dot" }), sub)),
        soundBtn,
        endBtn,
        minBtn,
      ),
      banner,
      form,
      thanks,
      chatView,
    );
    wrap.append(launcher, panel);
    root.append(wrap);
    styled.then(() => (wrap.hidden = false));

    // -- view state --------------------------------------------------------------------------
    let phase = "new";
    let agentName = "";
    let pending = []; // own messages sent but not yet seen in the transcript: {text, key, el, sent}
    let unread = 0;
    let typingSent = false;
    let typingTimer = 0;
    let typingSafety = 0;
    let waitTimer = 0;
    let hours = null; // the last answer of GET /availability
    let leaving = ""; // why the form leaves a message: "closed", "unavailable" (or not: "")
    let sentBody = "";
    let sentKey = "";

    const isOpen = () => !panel.hidden;
    const reading = () => isOpen() && !document.hidden;
    const views = { form, thanks, chat: chatView };
    const show = (view) => Object.entries(views).forEach(([k, el]) => (el.hidden = k !== view));
    const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    const toBottom = () => (scroller.scrollTop = scroller.scrollHeight);
    // One key per distinct submission: a retry of the same body reuses it.
    const once = (body) => {
      const s = JSON.stringify(body);
      if (s !== sentBody) (sentBody = s), (sentKey = newKey());
      return sentKey;
    };
    // The platform may promise a transcript by e-mail; only true when the customer gave one.
    const mailless = (text) => chat && !chat.info.m && /mail|courriel|correo/i.test(text);

    function setPhase(p) {
      if (chat && chat.completed && p !== "ended") return;
      phase = p;
      wrap.dataset.phase = p;
      sub.textContent = { connecting: T.connecting, waiting: T.waiting, chatting: fmt(T.chatting, { name: agentName || T.agent }) }[p] || "";
      const ended = p === "ended";
      endBtn.hidden = ended || !chat;
      soundBtn.hidden = ended || !chat;
      const hadFocus = root.activeElement;
      composer.hidden = ended || !confirmBox.hidden;
      if (ended) confirmBox.hidden = true;
      endBox.hidden = !ended;
      waitCard.hidden = p !== "waiting";
      clearInterval(waitTimer);
      if (p === "waiting") (waitTimer = setInterval(tick, 1000)), tick();
      if (ended) {
        // The wait ended without anyone: say so, and offer to leave a message instead.
        const none = !chat.completed && !agentName && ![...chat.msgs.values()].some((m) => m.from && m.from.type === "Agent");
        endText.textContent = none ? T.noAgent : T.ended;
        leaveBtn.hidden = !none;
        showTyping(false);
        stopTyping(true);
        if (hadFocus && hadFocus.closest(".cb-chat")) againBtn.focus();
      }
    }

    function tick() {
      if (!chat) return;
      const t0 = chat.info.t || Date.now();
      const s = Math.max(0, Math.round((Date.now() - t0) / 1000));
      const unit = s < 60 ? "second" : "minute";
      waited.textContent = fmt(T.waited, { t: new Intl.NumberFormat(locale, { style: "unit", unit, unitDisplay: "long" }).format(s < 60 ? s : Math.floor(s / 60)) });
    }

    function reset() {
      log.replaceChildren();
      outbox.replaceChildren();
      pending = [];
      agentName = "";
      unread = 0;
      showUnread();
      chatError.textContent = formError.textContent = "";
      confirmBox.hidden = true;
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

    // The unread count: on the launcher, and in the page's title while the customer is away.
    let ourTitle = document.title;
    let pageTitle = ourTitle;
    function showUnread() {
      badge.textContent = num(unread);
      badge.hidden = !unread;
      launcher.setAttribute("aria-label", unread ? T.open + " (" + fmt(T.unread, { n: num(unread) }) + ")" : T.open);
      if (document.title !== ourTitle) pageTitle = document.title; // the page retitled itself
      document.title = ourTitle = unread ? "(" + num(unread) + ") " + pageTitle : pageTitle;
    }

    function markRead() {
      unread = 0;
      if (chat) store("seen", String(chat.last));
      showUnread();
    }

    function timeOf(value) {
      const d = value == null ? null : new Date(value);
      return d && !isNaN(d) ? h("time", { datetime: d.toISOString(), text: clock(d) }) : null;
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

    /** What a transcript entry says: [who, text] for a message, [0, text] for a system line. */
    function entry(m) {
      const from = m.from || {};
      const k = from.type;
      const name = from.nickname || T.agent;
      if (m.type === "Text") return [k === "Customer" ? T.you : name, String(m.text == null ? "" : m.text)];
      if (m.type === "ParticipantJoined") return k === "Agent" && [0, fmt(T.joined, { name })];
      if (m.type === "ParticipantLeft") return [0, k === "Customer" ? T.youLeft : fmt(T.left, { name })];
      return !/^Typing/.test(m.type) && m.text && !mailless(m.text) && [0, String(m.text)];
    }

    function bubble(m, who, text, me, cls) {
      const body = h("div", { class: "cb-bubble" });
      me ? body.append(text) : linkify(body, text);
      return h("li", { class: "cb-msg " + (me ? "cb-me" : "cb-them") + (cls || "") }, h("span", { class: "cb-who", text: who }), body, timeOf(m.utcTime));
    }

    ui = {
      message(m, fresh) {
        const e = entry(m);
        const from = m.from || {};
        const kind = from.type;
        if (e) insert(e[0] ? bubble(m, e[0], e[1], kind === "Customer") : h("li", { class: "cb-sys", text: e[1] }), m.index);
        if (m.type === "Text") {
          if (kind === "Customer") settle(e[1].trim());
          else {
            showTyping(false);
            if (kind === "Agent") arrived(m, fresh);
          }
        } else if (m.type === "ParticipantJoined" && kind === "Agent") {
          agentName = from.nickname || T.agent;
          if (phase !== "ended") setPhase("chatting");
        } else if (m.type === "ParticipantLeft" && kind !== "Customer") showTyping(false);
        else if (/^Typing/.test(m.type) && kind !== "Customer") showTyping(m.type === "TypingStarted", from.nickname);
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

    // An agent's message: unread unless the customer is looking; the leader tab also chimes,
    // and notifies while its page is hidden.
    function arrived(m, fresh) {
      if (reading()) store("seen", String(m.index));
      else if (m.index > (+store("seen") || 0)) (unread += 1), showUnread();
      if (!fresh) return;
      if (prefs("mute") !== "1") chime();
      if (document.hidden && window.Notification && Notification.permission === "granted") {
        try {
          const note = new Notification(title, { body: (m.from.nickname || T.agent) + ": " + m.text, tag: KEY, lang, dir: T.dir });
          note.onclick = () => (window.focus(), open(), note.close());
        } catch (e) {
          /* some mobile browsers only notify from a service worker */
        }
      }
    }

    // The tone's audio context is made during the customer's click on Start (browsers only let
    // a page play sound after a gesture), and used for every new message after that.
    let audio = null;
    const hear = () => {
      try {
        audio = audio || new AudioContext();
        audio.resume().catch(() => {});
      } catch (e) {
        /* no audio here */
      }
    };
    function chime() {
      hear();
      try {
        const t = audio.currentTime;
        const tone = audio.createOscillator();
        const gain = audio.createGain();
        tone.frequency.value = 880;
        gain.gain.setValueAtTime(0.15, t);
        gain.gain.exponentialRampToValueAtTime(0.001, t + 0.4);
        tone.connect(gain).connect(audio.destination);
        tone.start(t);
        tone.stop(t + 0.4);
      } catch (e) {
        /* no audio here */
      }
    }

    const showMute = () => soundBtn.setAttribute("aria-pressed", String(prefs("mute") !== "1"));
    showMute();
    soundBtn.addEventListener("click", () => (prefs("mute", prefs("mute") === "1" ? null : "1"), showMute()));
    addEventListener("storage", (e) => e.key === KEY + "mute" && showMute());

    // System notifications are asked for once the customer has said something, never before.
    function askToNotify() {
      if (window.Notification && Notification.permission === "default" && !prefs("asked")) {
        prefs("asked", "1");
        try {
          Notification.requestPermission();
        } catch (e) {
          /* unsupported */
        }
      }
    }

    // An own message arrived in the transcript: its pending copy goes.
    function settle(text) {
      let i = pending.findIndex((p) => p.text === text);
      if (i < 0) i = pending.findIndex((p) => p.sent);
      if (i >= 0) pending.splice(i, 1)[0].el.remove();
    }

    const errorText = (err) => (err.status === 429 ? T.busy : err.status === 413 ? T.tooLong : T.error);

    function busy(btn, on, text) {
      btn.disabled = on;
      btn.textContent = text;
    }

    async function submit(e) {
      e.preventDefault();
      if (!form.reportValidity()) return;
      const value = (name) => form.elements[name].value.trim();
      const userData = {};
      form.querySelectorAll("[data-extra]").forEach((f) => f.value.trim() && (userData[f.name] = f.value.trim()));
      const body = { nickname: value("nickname") };
      busy(true);
      formError.textContent = "";
      try {
        if (leaving) {
          body.email = value("email");
          body.text = value("subject");
          delete userData.email;
          if (Object.keys(userData).length) body.userData = userData;
          await api("POST", "/offline-messages", body, once(body));
          form.reset();
          thanks.textContent = fmt(T.thanks, { email: body.email });
          show("thanks");
          thanks.focus();
        } else {
          body.operationName = "RequestChat";
          body.subject = value("subject");
          if (Object.keys(userData).length) body.userData = userData;
          askToNotify(); // the subject is the customer's first message
          hear();
          const { id } = await api("POST", "/chats", body, once(body));
          adopt(id, true, { s: body.subject, n: body.nickname, t: Date.now(), m: !!userData.email });
          form.reset();
          input.focus();
        }
        sentBody = "";
      } catch (err) {
        const closed = err.status === 409 && err.data.statusMessage === "closed";
        if (!leaving && (closed || err.status >= 500)) leave(closed ? "closed" : "unavailable");
        else formError.textContent = err.status === 400 && leaving ? T.check : err.status === 429 ? T.busy : leaving ? T.error : T.startFailed;
      } finally {
        busy(false);
      }
    }

    function busy(on) {
      startBtn.disabled = on;
      startBtn.textContent = on ? (leaving ? T.sending : T.starting) : leaving ? T.sendMessage : T.start;
    }

    /** Switch the form to leaving a message (with `reason`), or back to starting a chat. */
    function leave(reason) {
      leaving = reason || "";
      const next = reason === "closed" && hours && hours.nextOpen && new Date(hours.nextOpen);
      const when = next && !isNaN(next) && new Intl.DateTimeFormat(locale, { weekday: "long", day: "numeric", month: "long", hour: "numeric", minute: "2-digit" }).format(next);
      intro.textContent = !reason ? T.intro : (reason === "closed" ? (when ? fmt(T.closedUntil, { time: when }) : T.closed) : T.unavailable) + " " + T.leaveIntro;
      subjectField.firstChild.textContent = leaving ? T.yourMessage : T.subject;
      form.elements.subject.maxLength = leaving ? 4000 : 256;
      mail.required = !!leaving;
      mailField.hidden = !leaving && !mail.hasAttribute("data-extra");
      form.classList.toggle("cb-leave", !!leaving);
      formError.textContent = "";
      busy(false);
      show("form");
      const empty = [...form.elements].find((f) => f.required && !f.value);
      if (root.activeElement) (empty || startBtn).focus(); // never take focus from the page
    }

    // Opening hours are asked for whenever the panel opens without a chat.
    async function checkHours() {
      try {
        hours = await api("GET", "/availability");
      } catch (e) {
        hours = null; // unknown: offer the chat
      }
      if (chat || !isOpen() || !thanks.hidden) return;
      if (hours && hours.open === false) leaving || leave(hours.reason === "unavailable" ? "unavailable" : "closed");
      else if (hours && leaving === "closed") leave();
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

    function sendText() {
      const text = input.value.trim();
      if (!text || !chat || chat.ended) return;
      input.value = "";
      grow();
      stopTyping(true); // a message ends the typing on the agent's side
      chatError.textContent = "";
      askToNotify();
      const item = { text, key: newKey(), el: h("li", { class: "cb-msg cb-me cb-pending", "aria-hidden": "true" }, h("div", { class: "cb-bubble", text })) };
      pending.push(item);
      outbox.append(item.el);
      toBottom();
      deliver(item, chat);
    }

    /** Send (or send again, with the same Idempotency-Key) one of the customer's messages. */
    async function deliver(item, target) {
      item.el.classList.remove("cb-failed");
      item.el.setAttribute("aria-hidden", "true");
      if (item.note) item.note.remove();
      try {
        await api("POST", target.path, { operationName: "SendMessage", text: item.text }, item.key);
        item.sent = true;
      } catch (err) {
        if (chat !== target || !item.el.isConnected) return;
        if (err.status === 409 || err.status === 400 || err.status === 413) {
          // Refused for good: the text goes back to the composer (or the chat is over).
          pending = pending.filter((p) => p !== item);
          item.el.remove();
          if (err.status === 409) return setPhase("ended");
          if (!input.value) input.value = item.text;
          grow();
          chatError.textContent = errorText(err);
          return;
        }
        item.el.classList.add("cb-failed");
        item.el.removeAttribute("aria-hidden");
        item.note = h(
          "p",
          { class: "cb-note", role: "alert" },
          (err.status === 429 ? T.busy : T.notSent) + " ",
          h("button", { type: "button", class: "cb-link", onclick: () => deliver(item, target) }, T.retry),
        );
        item.el.append(item.note);
        toBottom();
      }
    }

    function askEnd(on) {
      confirmBox.hidden = !on;
      composer.hidden = on;
      (on ? keepBtn : input).focus();
    }

    async function complete() {
      if (!chat) return;
      const target = chat;
      sureBtn.disabled = true;
      stopTyping(true);
      try {
        await api("POST", target.path, { operationName: "Complete" });
      } catch (err) {
        if (err.status !== 409) {
          // 409: the chat was over already
          sureBtn.disabled = false;
          chatError.textContent = err.status === 429 ? T.busy : T.error;
          return;
        }
      } finally {
        sureBtn.disabled = false;
      }
      if (chat !== target) return;
      target.completed = target.info.c = 1; // the stream's `end` follows with the last entries
      store("i", JSON.stringify(target.info));
      if (share) share.postMessage({ t: "done", h: target.h });
      setPhase("ended");
      againBtn.focus();
    }

    /** The transcript as a text file, built from what this tab has. */
    function download() {
      const now = new Date();
      const lines = [title + " · " + new Intl.DateTimeFormat(locale, { dateStyle: "long", timeStyle: "short" }).format(now), ""];
      if (chat.info.s) lines.push(T.you + ": " + chat.info.s);
      [...chat.msgs.values()]
        .sort((a, b) => a.index - b.index)
        .forEach((m) => {
          const e = entry(m);
          if (e) lines.push((m.utcTime ? "[" + clock(m.utcTime) + "] " : "") + (e[0] ? e[0] + ": " : "· ") + e[1]);
        });
      const url = URL.createObjectURL(new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], { type: "text/plain;charset=utf-8" }));
      const a = h("a", { href: url, download: "chat-" + now.toISOString().slice(0, 10) + ".txt", hidden: true });
      root.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    }

    // Behind the full-screen phone panel the page must not scroll.
    const phone = matchMedia("(max-width: 480px)");
    let heldOverflow = null;
    function lockPage(on) {
      const s = document.documentElement.style;
      if (on && phone.matches && heldOverflow === null) (heldOverflow = s.overflow), (s.overflow = "hidden");
      else if (!on && heldOverflow !== null) (s.overflow = heldOverflow), (heldOverflow = null);
    }

    function open(focus) {
      panel.hidden = false;
      wrap.classList.add("cb-open");
      launcher.setAttribute("aria-expanded", "true");
      store("open", "1");
      lockPage(true);
      if (reading()) markRead();
      toBottom();
      if (!chat) checkHours();
      if (focus !== false) (!chat ? form.elements.nickname : phase === "ended" ? againBtn : input).focus();
    }

    function close() {
      panel.hidden = true;
      wrap.classList.remove("cb-open");
      launcher.setAttribute("aria-expanded", "false");
      store("open", null);
      lockPage(false);
      if (chat) store("seen", String(chat.last));
      launcher.focus();
    }

    function adopt(handle, fresh, info) {
      if (chat) chat.stop();
      if (store("h") !== handle) store("seen", null), store("heard", null); // another chat's
      store("h", handle);
      store("i", JSON.stringify(info || {}));
      chat = new Chat(handle, info || {});
      reset();
      if (chat.info.s) insert(bubble({}, T.you, chat.info.s, true, " cb-subject"), 0);
      show("chat");
      if (fresh) setPhase("waiting");
      chat.start();
      if (fresh && share) share.postMessage({ t: "chat", h: handle, i: info });
    }

    if (share) {
      share.onmessage = ({ data: m }) => {
        if (!m || typeof m !== "object") return;
        if (m.t === "hello") {
          if (chat && chat.leader && !chat.ended) share.postMessage({ t: "chat", h: chat.h, i: chat.info });
        } else if (m.t === "chat") {
          if (typeof m.h === "string" && (!chat || (chat.ended && chat.h !== m.h))) adopt(m.h, false, m.i);
        } else if (chat && m.h === chat.h) {
          if (m.t === "ev" && !chat.leader) chat.take(m.kind, m.data, true);
          else if (m.t === "sync" && chat.leader) share.postMessage({ t: "replay", h: chat.h, to: m.to, events: chat.replay(m.from) });
          else if (m.t === "replay" && m.to === tabId) m.events.forEach(([k, d]) => chat.take(k, d, true));
          else if (m.t === "done") chat.completed = true;
        }
      };
    }

    launcher.addEventListener("click", () => (isOpen() ? close() : open()));
    minBtn.addEventListener("click", close);
    endBtn.addEventListener("click", () => askEnd(true));
    keepBtn.addEventListener("click", () => askEnd(false));
    sureBtn.addEventListener("click", complete);
    saveBtn.addEventListener("click", download);
    leaveBtn.addEventListener("click", () => {
      const { n, s } = chat.info;
      again();
      form.elements.nickname.value = n || "";
      form.elements.subject.value = s || "";
      leave("unavailable");
    });
    function again() {
      if (chat) chat.stop();
      chat = null;
      store("h", null);
      reset();
      setPhase("new");
      leave();
      checkHours();
    }
    againBtn.addEventListener("click", again);
    panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        confirmBox.hidden ? close() : askEnd(false);
      }
    });
    input.addEventListener("input", typed);
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        sendText();
      }
    });
    document.addEventListener("visibilitychange", () => reading() && markRead());

    // -- start -------------------------------------------------------------------------------
    const saved = store("h");
    let info = {};
    try {
      info = JSON.parse(store("i")) || {};
    } catch (e) {
      /* none kept */
    }
    if (saved) adopt(saved, false, info);
    else {
      show("form");
      if (share) share.postMessage({ t: "hello" });
    }
    if (store("open") || wanted) open(wanted);
    pub.open = () => open();
    pub.close = close;
  }
})();

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
 * - English is built in; each other language is one JSON file beside this script
 *   (lang/<code>.json), downloaded only by a page in that language.
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
  const KEY = "chat-bff|" + base + "|"; // names this site's storage keys, channel and locks
  // sessionStorage: this tab's chat (survives reloads); localStorage: the customer's choices.
  // (Values are stored as strings: numbers come back as text.)
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
  // A running chat survives every tab closing for `ttl` (data-restore-minutes, default 10; 0:
  // per tab only): its record ({h: handle, i: info, x: expiry, n: heard, s: seen}) is kept in
  // localStorage, or with data-cookie-domain in a cookie each subdomain reads (cookie.js).
  const ttl = (ds.restoreMinutes ?? 10) * 6e4;
  let saved = (v) => {
    try {
      return v === undefined ? JSON.parse(prefs("r")) : prefs("r", v && JSON.stringify(v));
    } catch (e) {
      /* unreadable: as if none */
    }
  };
  const ENDED = new Set(["Idle", "Completed", "Disconnected"]);
  const backoff = (n) => Math.min(15000, 500 * 2 ** n) * (0.5 + Math.random() / 2);
  // 128 random bits as 32 characters of [0-9a-z] (8 per word: 1e11 + n always has 8 digits in
  // base 36), which the server takes as an Idempotency-Key (22+ URL-safe characters).
  const newKey = () => Array.from(crypto.getRandomValues(new Uint32Array(4)), (n) => (n + 1e11).toString(36)).join("");
  // The page follows the chat through DOM events on window ("chat-bff:started", ...) or
  // ChatBff.on("started", fn); `detail` never holds a message's text unless data-event-text.
  const emit = (name, detail = {}) => dispatchEvent(new CustomEvent("chat-bff:" + name, { detail }));
  pub.on = (name, fn) => addEventListener("chat-bff:" + name, (e) => fn(e.detail));

  /** GET `path`, or POST `body` to it (with an Idempotency-Key if given); the answer's JSON. */
  async function api(path, body, key, signal) {
    const headers = body ? { "Content-Type": "application/json" } : {};
    if (key) headers["Idempotency-Key"] = '"' + key + '"'; // a Structured Field string
    const res = await fetch(base + "/api/v2" + path, { method: body ? "POST" : "GET", signal, cache: "no-store", credentials: "omit", headers, body: body && JSON.stringify(body) });
    const data = await res.json().catch(() => null); // not JSON: judged by the status alone
    if (res.ok && data) return data;
    throw { status: res.status, retry: +res.headers.get("Retry-After") || 0, data: data || {} };
  }

  // -- one chat: its transcript and its connection ------------------------------------------
  const share = window.BroadcastChannel ? new BroadcastChannel(KEY) : null;
  const locks = share && navigator.locks;
  const tabId = newKey();
  let chat = null;
  let ui = null; // the view, once the strings are in

  /**
   * One chat: its transcript and its connection. The view reads what the returned object holds
   * (h, info, path, msgs, last, state, status, conn, leader, ended, completed); the connection's
   * own state stays in this closure, where the minifier can shorten its names.
   */
  function Chat(handle, info) {
    const self = {
      h: handle,
      info, // {s: subject, n: nickname, t: started at (ms), m: e-mail given, c: completed}
      path: "/chats/" + encodeURIComponent(handle),
      msgs: new Map(), // index -> transcript entry: what this tab has, for dedupe and replay
      last: 0,
      conn: "connecting",
      leader: !locks,
      completed: info.c, // the customer ended it (kept across reloads)
    };
    const abort = new AbortController();
    const signal = abort.signal;
    let heard = store("heard"); // highest index this tab has been told of (null: none, as 0)
    let dead = false;
    let es = null;
    let timer = 0;
    let failures = 0;
    let suspect = false;
    let polling = false;
    let release = null;

    const over = () => dead || self.ended;
    const close = () => {
      clearTimeout(timer);
      es?.close();
      es = null;
    };
    const later = (fn, ms) => {
      clearTimeout(timer);
      timer = setTimeout(() => over() || fn(), ms);
    };
    const lead = () => {
      self.leader = true;
      connect();
    };

    self.start = () => {
      if (!locks) return lead();
      locks.request(KEY + handle, { signal }, () => (over() ? null : new Promise((r) => ((release = r), lead())))).catch(() => {});
      share.postMessage({ t: "sync", h: handle, from: self.last, to: tabId });
    };

    self.stop = () => {
      dead = true;
      abort.abort();
      release?.();
      close();
    };

    /** Every event, from the stream, the long-poll or another tab, comes through here. */
    const take = (self.take = (kind, data, relayed) => {
      if (dead) return;
      let fresh = false;
      if (kind === "message") {
        if (!(data?.index > 0) || self.msgs.has(data.index)) return;
        self.msgs.set(data.index, data);
        self.last = Math.max(self.last, data.index);
        // New to this tab's session (not a replay after a reload or a takeover)?
        if ((fresh = data.index > heard)) store("heard", (heard = data.index));
      } else if (kind === "conn") {
        if (self.conn === data || self.ended) return;
        self.conn = data;
      } else if (kind === "end") {
        if (self.ended) return;
        self.ended = true;
        close();
        abort.abort();
      } else self[kind] = data;
      if (locks && self.leader && !relayed) share.postMessage({ t: "ev", h: handle, events: [[kind, data]] });
      if (chat === self && ui) ui[kind](data, fresh, self.leader);
    });

    /** What another tab needs to catch up: the events after index `from`, in order. */
    self.replay = (from) => [
      ...["state", "status"].filter((k) => self[k]).map((k) => [k, self[k]]),
      ...sorted(self)
        .filter((m) => m.index > from)
        .map((m) => ["message", m]),
      ["conn", self.conn],
      ...(self.ended ? [["end", {}]] : []),
    ];

    function connect() {
      if (over() || es || polling) return;
      if (!window.EventSource) return poll();
      const stream = (es = new EventSource(base + "/api/v2" + self.path + "/events" + (self.last ? "?lastEventId=" + self.last : "")));
      let live = false;
      const fail = () => {
        clearTimeout(watchdog);
        if (es !== stream) return;
        close();
        take("conn", "reconnecting");
        // A stream that was live is resumed within a second; one that never opened, after a
        // growing wait.
        if (live || ++failures < 3) return later(connect, backoff(live ? 1 : failures));
        // Streams keep failing. If plain requests work, it is SSE that is broken on the way
        // (some proxies do that): try once more, then long-poll.
        api(self.path).then(
          () => (suspect ? poll() : ((suspect = true), later(connect, 0))),
          (err) => (err.status === 404 ? take("end", {}) : later(connect, backoff(failures))),
        );
      };
      // A stream that opens but delivers nothing is as broken as one that fails (buffering proxy).
      const watchdog = setTimeout(fail, 15000);
      for (const kind of ["state", "message", "status", "end"])
        stream.addEventListener(kind, (e) => {
          let data;
          try {
            data = JSON.parse(e.data);
          } catch (err) {
            return;
          }
          if (es !== stream) return;
          if (kind === "state") {
            live = true;
            clearTimeout(watchdog);
            failures = 0;
            suspect = false;
            take("conn", "live");
          }
          take(kind, data); // `end` closes the stream: a reconnect would replay
        });
      stream.onerror = fail;
    }

    // The long-poll fallback (poll.js): fetched only by a browser that needs it.
    const poll = () => polling || ((polling = true), close(), part("poll").then((run) => run?.(self, take, over, (q) => api(self.path + q, null, null, signal), ENDED, backoff)));

    return self;
  }

  /** A chat's transcript entries in upstream order. */
  const sorted = (c) => [...c.msgs.values()].sort((a, b) => a.index - b.index);

  // -- the DOM: every piece of data goes in as text ------------------------------------------
  /** An element with attributes, `on<event>` listeners and children (strings become text
   * nodes); svg and path are SVG elements. */
  function h(tag, attrs, ...kids) {
    const el = /^(svg|path)$/.test(tag) ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (v !== false && v != null) el.setAttribute(k, v === true ? "" : v);
    }
    el.append(...kids.filter(Boolean));
    return el;
  }

  /** An icon: paths "d" or "class:d", separated by "|"; widget.css strokes `cb-line` ones. */
  const icon = (paths, cls) =>
    h(
      "svg",
      { viewBox: "0 0 24 24", "aria-hidden": "true", class: cls },
      ...paths.split("|").map((p) => {
        const [d, c] = p.split(":").reverse();
        return h("path", { d, class: c });
      }),
    );

  // The shadow root and its stylesheet load while the strings do (those not built in).
  const host = h("div", { id: "chat-bff-widget" });
  const root = host.attachShadow({ mode: "open" });
  const css = h("link", { rel: "stylesheet", href: ds.css || new URL("widget.css", script.src).href });
  const styled = new Promise((done) => (css.onload = css.onerror = done));
  root.append(css);
  const mount = () => document.body.append(host);
  document.body ? mount() : document.addEventListener("DOMContentLoaded", mount);

  // English is built in: a page in English needs no other file, and it is what a page gets
  // when its own language's file cannot be loaded. The other languages are one JSON file each
  // beside this script (lang/<code>.json), downloaded only by a page in that language.
  // (Strict JSON, so the tests can read it: tests/browser/test_widget_strings.py.)
  const EN = {
    "dir": "ltr",
    "title": "Chat with us",
    "open": "Open chat",
    "minimise": "Minimise chat",
    "intro": "Questions about an order or a product? Tell us who you are and someone from our team will be with you shortly.",
    "name": "Your name",
    "subject": "How can we help?",
    "optional": "optional",
    "email": "E-mail",
    "phone": "Phone",
    "order": "Order number",
    "start": "Start chat",
    "starting": "Starting…",
    "connecting": "Connecting…",
    "waiting": "Waiting for an agent…",
    "waitTitle": "Someone from our team will be with you shortly.",
    "waited": "Waiting for {t}",
    "browse": "You can keep browsing: this chat follows you from page to page.",
    "chatting": "Chatting with {name}",
    "ended": "This chat has ended.",
    "noAgent": "Sorry, no one from our team could take your chat this time.",
    "reconnecting": "Connection lost. Reconnecting…",
    "degraded": "Chat is slow right now. Messages may arrive late.",
    "log": "Conversation",
    "you": "You",
    "agent": "Agent",
    "typing": "{name} is typing…",
    "joined": "{name} joined the chat",
    "left": "{name} left the chat",
    "youLeft": "You left the chat",
    "message": "Message",
    "placeholder": "Write a message…",
    "send": "Send",
    "sound": "Sound for new messages",
    "end": "End chat",
    "endAsk": "End this chat?",
    "keep": "Keep chatting",
    "again": "Start a new chat",
    "download": "Download transcript",
    "notSent": "Not sent.",
    "retry": "Retry",
    "error": "Something went wrong. Please try again.",
    "busy": "Too many requests. Please try again in a moment.",
    "tooLong": "This message is too long.",
    "startFailed": "The chat could not start. Please try again in a moment.",
    "unread": "{n} new",
    "leave": "Leave a message"
  };
  // Optional parts, one file each beside this script (cookie.js, survey.js, invite.js), fetched
  // only by pages that turn them on. A part registers with ChatBff._<name>(make); make(arg) sets
  // it up (`arg`: what it needs of the widget) and returns what it offers (undefined on failure).
  const parts = {};
  const part = (name, arg) =>
    (parts[name] ||= new Promise((ok, fail) => {
      pub["_" + name] = ok;
      document.head.append(h("script", { src: new URL(name + ".js", script.src).href, onerror: fail }));
    }).then((make) => make(arg), () => {}));
  const booted = Promise.all([
    (lang === "en" ? Promise.resolve(EN) : fetch(new URL("lang/" + lang + ".json", script.src), { credentials: "omit" }).then((r) => (r.ok ? r.json() : Promise.reject()))).catch(() => ((locale = lang = "en"), EN)),
    ds.cookieDomain && part("cookie", [encodeURIComponent(KEY) + "=", ttl, ds.cookieDomain]).then((f) => (saved = f || saved)),
  ]).then(([T]) => boot(T));
  pub.invite = (text) => booted.then((kit) => part("invite", kit)).then((show) => show?.(text));

  function boot(T) {
    const title = ds.title || T.title;
    // Numbers, times and dates in the page's language (toLocaleString is Intl's formatting).
    const num = (n) => n.toLocaleString(locale);
    const clock = (v) => new Date(v).toLocaleString(locale, { timeStyle: "short" });
    const wrap = h("div", { class: "cb", lang, dir: T.dir, hidden: true, "data-phase": "new" });

    const color = (v) => (/^#([0-9a-f]{3}){1,2}$/i.test(v) ? v : null); // (undefined fails)
    const accent = color(ds.color);
    if (accent) {
      // Text on the accent: white or near-black, whichever reaches WCAG AA (4.5:1).
      const lum = (accent.length === 4 ? accent.replace(/\w/g, "$&$&") : accent).match(/\w\w/g).reduce((sum, x, i) => {
        const c = parseInt(x, 16) / 255;
        return sum + [0.2126, 0.7152, 0.0722][i] * (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
      }, 0);
      wrap.style.setProperty("--cb-accent", accent);
      const light = 1.05 / (lum + 0.05) < 4.5;
      wrap.style.setProperty("--cb-on-accent", color(ds.colorText) || (light ? "#111" : "#fff"));
      if (light) wrap.style.setProperty("--cb-focus", "#1b2230"); // a light accent is no focus ring
    }

    const badge = h("span", { class: "cb-badge", hidden: true });
    const launcher = h(
      "button",
      {
        type: "button",
        class: "cb-launcher",
        "aria-label": T.open,
        "aria-expanded": "false",
        "aria-controls": "cb-panel",
        onclick: () => toggle(!isOpen()),
      },
      icon("M6.5 4h11A3.5 3.5 0 0 1 21 7.5v7a3.5 3.5 0 0 1-3.5 3.5H11l-6 4v-4a3 3 0 0 1-2-3V7.5A3.5 3.5 0 0 1 6.5 4Z"),
      icon("M6 9l6 6 6-6", "cb-line"), // while the panel is open: it minimises
      badge,
    );
    const sub = h("span", { class: "cb-sub-text" });
    const soundBtn = h(
      "button",
      {
        type: "button",
        class: "cb-icon",
        "aria-label": T.sound,
        title: T.sound,
        onclick: () => (prefs("mute", prefs("mute") === "1" ? null : "1"), showMute()),
      },
      icon("M11 5 6 9H3v6h3l5 4Z|cb-on:M15.5 8.5a5 5 0 0 1 0 7M18.5 5.5a9 9 0 0 1 0 13|cb-off:M16 9l6 6m0-6-6 6", "cb-line"),
    );
    const endBtn = h("button", { type: "button", class: "cb-end", onclick: () => askEnd(true) }, T.end);
    const minBtn = h("button", { type: "button", class: "cb-icon cb-min", "aria-label": T.minimise, onclick: () => toggle(false) }, icon("M6 9l6 6 6-6", "cb-line"));
    const banner = h("p", { class: "cb-banner", role: "status", hidden: true });

    // The start form: nickname, subject, then the optional fields that go to userData. Outside
    // opening hours (or when no agent can be reached) the same form leaves a message instead
    // (offline.js).
    const field = (key, label, attrs, optional) =>
      h(
        "div",
        { class: key === "email" ? "cb-field cb-mail" : "cb-field" },
        h("label", { for: "cb-f-" + key }, label, optional && h("small", {}, " (" + T.optional + ")")),
        h(key === "subject" ? "textarea" : "input", { id: "cb-f-" + key, name: key, ...attrs }),
      );
    const extras = (ds.fields || "")
      .split(",")
      .map((f) => f.trim().split(":"))
      .filter(([key]) => /^[\w.-]{1,64}$/.test(key))
      .map(([key, label]) => {
        const type = { email: "email", phone: "tel" }[key];
        return field(key, label || T[key] || key, { type: type || "text", autocomplete: type || "off", maxlength: 1024, "data-extra": true }, true);
      });
    const intro = h("p", { class: "cb-intro" }, T.intro);
    const startBtn = h("button", { type: "submit", class: "cb-primary" }, T.start);
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

    // The conversation. The log is the live region; pending sends wait in the outbox after it.
    const log = h("ol", { class: "cb-log" });
    const outbox = h("ol", { class: "cb-outbox" });
    const typing = h("p", { class: "cb-typing", "aria-live": "polite" });
    const waited = h("p", { class: "cb-waited" });
    const waitCard = h(
      "div",
      { class: "cb-wait" },
      h("span", { class: "cb-live", "aria-hidden": "true" }),
      h("p", { class: "cb-wait-title" }, T.waitTitle),
      waited,
      h("p", {}, T.browse),
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
    const input = h("textarea", {
      rows: 1,
      maxlength: 4000,
      "aria-label": T.message,
      placeholder: T.placeholder,
      oninput: typed,
      onkeydown: (e) => e.key === "Enter" && !e.shiftKey && !e.isComposing && (e.preventDefault(), sendText()),
    });
    const composer = h(
      "form",
      { class: "cb-composer", onsubmit: (e) => (e.preventDefault(), sendText()) },
      input,
      h("button", { type: "submit", class: "cb-send", "aria-label": T.send }, icon("M3.3 5.3 21 12 3.3 18.7 5 13l8-1-8-1Z")),
    );
    const keepBtn = h("button", { type: "button", class: "cb-secondary", onclick: () => askEnd(false) }, T.keep);
    const sureBtn = h("button", { type: "button", class: "cb-primary", onclick: complete }, T.end);
    const confirmBox = h("div", { class: "cb-box", role: "group", "aria-labelledby": "cb-ask" }, h("p", { id: "cb-ask" }, T.endAsk), h("div", { class: "cb-row" }, keepBtn, sureBtn));
    const endText = h("p", { class: "cb-ended" });
    const leaveBtn = h("button", { type: "button", class: "cb-secondary", onclick: leaveInstead }, T.leave);
    const saveBtn = h("button", { type: "button", class: "cb-secondary", onclick: () => part("transcript", kit).then((save) => save?.()) }, T.download);
    const againBtn = h("button", { type: "button", class: "cb-primary", onclick: again }, T.again);
    const endBox = h("div", { class: "cb-box" }, endText, h("div", { class: "cb-row" }, saveBtn, leaveBtn), againBtn);
    const chatView = h("div", { class: "cb-chat", hidden: true }, scroller, chatError, composer, confirmBox, endBox);

    const panel = h(
      "section",
      {
        id: "cb-panel",
        class: "cb-panel",
        role: "dialog",
        "aria-labelledby": "cb-title",
        hidden: true,
        onkeydown: (e) => e.key === "Escape" && (e.stopPropagation(), wrap.hasAttribute("data-ask") ? askEnd(false) : toggle(false)),
      },
      h(
        "div",
        { class: "cb-head" },
        h("div", { class: "cb-titles" }, h("h2", { id: "cb-title" }, title), h("p", { class: "cb-sub" }, h("span", { class: "cb-dot" }), sub)),
        soundBtn,
        endBtn,
        minBtn,
      ),
      banner,
      form,
      chatView,
    );
    wrap.append(launcher, panel);
    root.append(wrap);
    styled.then(() => (wrap.hidden = false));

    // -- view state --------------------------------------------------------------------------
    let phase = "new";
    const hooks = []; // the optional parts' f(phase, an agent took part)
    let agentName = "";
    let pending = []; // own messages sent but not yet seen in the transcript: {text, key, el, sent}
    let unread = 0;
    let typingSent = false;
    let typingTimer = 0;
    let typingSafety = 0;
    let waitTimer = 0;
    let keys = {}; // Idempotency-Key by request body: a retry of the same submission reuses it

    const isOpen = () => !panel.hidden;
    const reading = () => isOpen() && !document.hidden;
    const views = [form, chatView]; // what the panel shows, one at a time (and offline.js's thanks)
    const show = (view) => views.forEach((el) => (el.hidden = el !== view));
    const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    const toBottom = () => (scroller.scrollTop = scroller.scrollHeight);
    // The platform may promise a transcript by e-mail; only true when the customer gave one.
    const mailless = (text) => chat && !chat.info.m && /mail|courriel|correo/i.test(text);

    function setPhase(p) {
      if (chat?.completed && p !== "ended") return;
      phase = p;
      wrap.dataset.phase = p;
      sub.textContent = { connecting: T.connecting, waiting: T.waiting, chatting: fmt(T.chatting, { name: agentName || T.agent }) }[p] || "";
      // What each phase shows is widget.css's: End and the sound toggle while a chat runs, the
      // composer once its state is known (a restored chat may have ended), the waiting card,
      // the ended view.
      const ended = p === "ended";
      const hadFocus = chatView.contains(root.activeElement);
      if (ended) askEnd(); // (no focus to move: the view goes)
      clearInterval(waitTimer);
      if (p === "waiting") (waitTimer = setInterval(tick, 1000)), tick();
      const agent = chat && (agentName || sorted(chat).some((m) => m.from?.type === "Agent"));
      if (ended) {
        // The wait ended without anyone: say so, and offer to leave a message instead.
        const none = !chat.completed && !agent;
        endText.textContent = none ? T.noAgent : T.ended;
        leaveBtn.hidden = !none;
        showTyping(false);
        stopTyping(true);
        if (hadFocus) againBtn.focus();
        if (!chat.info.e) (chat.info.e = 1), store("i", JSON.stringify(chat.info)), emit("ended");
        if (saved()?.h === chat.h) saved(null); // nothing left to restore
      }
      hooks.forEach((f) => f(p, agent));
      if (ended) toBottom(); // the last entries stay in sight above the ended view (and survey)
    }

    // The time waited, from 1 second on; nothing when the chat's start is unknown.
    function tick() {
      const t = chat?.info.t;
      const s = Math.max(1, Math.round((Date.now() - t) / 1000));
      const min = s >= 60;
      waited.textContent = t ? fmt(T.waited, { t: (min ? Math.floor(s / 60) : s).toLocaleString(locale, { style: "unit", unit: min ? "minute" : "second", unitDisplay: "long" }) }) : "";
    }

    function reset() {
      log.replaceChildren();
      outbox.replaceChildren();
      pending = [];
      agentName = "";
      unread = 0;
      showUnread();
      chatError.textContent = formError.textContent = "";
      askEnd();
      showTyping(false);
      showBanner();
      setPhase("connecting");
    }

    function showBanner() {
      const text = !chat || chat.ended ? "" : chat.conn === "reconnecting" ? T.reconnecting : chat.status?.upstream === "degraded" ? T.degraded : "";
      banner.textContent = text;
      banner.hidden = !text;
    }

    function showTyping(on, name) {
      clearTimeout(typingSafety);
      typing.hidden = !on;
      if (!on) return;
      const follow = nearBottom();
      typing.replaceChildren(h("span", { class: "cb-dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")), fmt(T.typing, { name: name || agentName || T.agent }));
      if (follow) toBottom();
      typingSafety = setTimeout(() => showTyping(false), 30000); // a lost TypingStopped
    }

    // The unread count: on the launcher, and in the page's title while the customer is away.
    let ourTitle = document.title;
    let pageTitle = ourTitle;
    function showUnread() {
      const n = num(unread);
      badge.textContent = n;
      badge.hidden = !unread;
      launcher.setAttribute("aria-label", isOpen() ? T.minimise : unread ? T.open + " (" + fmt(T.unread, { n }) + ")" : T.open);
      if (document.title !== ourTitle) pageTitle = document.title; // the page retitled itself
      document.title = ourTitle = unread ? "(" + n + ") " + pageTitle : pageTitle;
    }

    function markRead() {
      unread = 0;
      if (chat) store("seen", chat.last);
      showUnread();
    }

    function timeOf(value) {
      const d = new Date(value ?? NaN); // not new Date(null): that is 1970
      return !isNaN(d) && h("time", { datetime: d.toISOString() }, clock(d));
    }

    // http(s) URLs in agent text (less any trailing punctuation) become anchors; the rest is text.
    const linkify = (text) =>
      text.split(/(\bhttps?:\/\/[^\s<>"'`]*[^\s<>"'`.,;:!?)\]}])/i).map((part, i) => {
        try {
          return i % 2 ? h("a", { href: new URL(part).href, target: "_blank", rel: "noopener noreferrer" }, part) : part;
        } catch (e) {
          return part; // not a URL after all: stays text
        }
      });

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
      if (m.type === "Text") return [k === "Customer" ? T.you : name, String(m.text ?? "")];
      if (m.type === "ParticipantJoined") return k === "Agent" && [0, fmt(T.joined, { name })];
      if (m.type === "ParticipantLeft") return [0, k === "Customer" ? T.youLeft : fmt(T.left, { name })];
      return !/^Typing/.test(m.type) && m.text && !mailless(m.text) && [0, String(m.text)];
    }

    function bubble(m, who, text, me, cls) {
      // dir="auto": a message or a name in another script than the page's keeps its own
      // direction (its punctuation at the right end).
      const body = h("div", { class: "cb-bubble", dir: "auto" }, ...(me ? [text] : linkify(text)));
      return h("li", { class: "cb-msg " + (me ? "cb-me" : "cb-them") + (cls || "") }, h("span", { class: "cb-who", dir: "auto" }, who), body, timeOf(m.utcTime));
    }

    ui = {
      /** `fresh`: new to this tab (not a replay); `lead`: this tab holds the stream. */
      message(m, fresh, lead) {
        const e = entry(m);
        const { type: kind, nickname } = m.from || {};
        const them = kind !== "Customer";
        if (e) insert(e[0] ? bubble(m, e[0], e[1], !them) : h("li", { class: "cb-sys" }, e[1]), m.index);
        if (fresh && m.type === "Text") emit("message", { index: m.index, from: kind, ...(ds.eventText != null && { text: m.text }) });
        if (m.type === "Text" && !them) settle(e[1].trim());
        else if (m.type === "ParticipantJoined" && kind === "Agent") {
          agentName = nickname || T.agent;
          if (fresh) emit("agent-joined", { name: agentName });
          if (phase !== "ended") setPhase("chatting");
        } else if (them && /^(Text|ParticipantLeft|Typing)/.test(m.type)) {
          // Their message or their leaving ends their typing.
          showTyping(m.type === "TypingStarted", nickname);
          if (m.type === "Text" && kind === "Agent") arrived(m, fresh && lead);
        }
      },
      state(s) {
        const agent = s.participants?.find((p) => p?.type === "Agent");
        if (agent?.nickname) agentName = String(agent.nickname);
        if (ENDED.has(s.state)) setPhase("ended");
        else if (s.state === "Chatting" && agent) setPhase("chatting");
        else if (s.state === "WaitingForAgent" || phase === "connecting") setPhase("waiting");
        remember();
      },
      status: showBanner,
      conn(c) {
        showBanner();
        // Back online: a send that failed meanwhile goes again by itself, once, with its key.
        if (c === "live") pending.forEach((p) => p.note?.isConnected && !p.auto && ((p.auto = 1), deliver(p, chat)));
      },
      end() {
        setPhase("ended");
        showBanner();
      },
    };

    // An agent's message: unread unless the customer is looking; the leader tab also chimes,
    // and notifies while its page is hidden.
    function arrived(m, fresh) {
      if (reading()) store("seen", m.index);
      else if (m.index > store("seen")) (unread += 1), showUnread(); // (null, none seen, is 0)
      if (!fresh) return;
      if (prefs("mute") !== "1") chime();
      if (document.hidden && window.Notification?.permission === "granted") {
        try {
          const note = new Notification(title, { body: (m.from.nickname || T.agent) + ": " + m.text, tag: KEY, lang, dir: T.dir });
          note.onclick = () => (window.focus(), toggle(true), note.close());
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
        audio ||= new AudioContext();
        audio.resume().catch(() => {});
      } catch (e) {
        /* no audio here */
      }
    };
    function chime() {
      hear();
      try {
        const end = audio.currentTime + 0.4;
        const tone = new OscillatorNode(audio, { frequency: 880 });
        const gain = new GainNode(audio, { gain: 0.15 });
        gain.gain.exponentialRampToValueAtTime(0.001, end); // from 0.15 now
        tone.connect(gain).connect(audio.destination);
        tone.start();
        tone.stop(end);
      } catch (e) {
        /* no audio here */
      }
    }

    const showMute = () => soundBtn.setAttribute("aria-pressed", prefs("mute") !== "1");
    showMute();
    addEventListener("storage", showMute); // muted in another tab

    // System notifications are asked for once the customer has said something, never before.
    function askToNotify() {
      if (window.Notification?.permission === "default" && !prefs("asked")) {
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

    // The page's optional fields, for userData.
    const userData = () => {
      const found = {};
      form.querySelectorAll("[data-extra]").forEach((f) => f.value.trim() && (found[f.name] = f.value.trim()));
      return found;
    };

    async function submit(e) {
      e.preventDefault();
      if (!form.reportValidity()) return;
      if (kit.leaving) return offline((o) => o.send());
      const nickname = form.elements.nickname.value.trim();
      const extra = userData();
      const body = { operationName: "RequestChat", nickname, subject: form.elements.subject.value.trim() };
      if (Object.keys(extra).length) body.userData = extra;
      const key = (keys[JSON.stringify(body)] ||= newKey());
      busy(true);
      formError.textContent = "";
      try {
        askToNotify(); // the subject is the customer's first message
        hear();
        adopt((await api("/chats", body, key)).id, true, { s: body.subject, n: nickname, t: Date.now(), m: !!extra.email });
        input.focus();
        form.reset();
        keys = {};
      } catch (err) {
        const closed = err.status === 409 && err.data.statusMessage === "closed";
        if (closed || err.status >= 500) leave(closed ? "closed" : "unavailable");
        else formError.textContent = err.status === 429 ? T.busy : T.startFailed;
      } finally {
        busy(false);
      }
    }

    function busy(on) {
      startBtn.disabled = on;
      startBtn.textContent = on ? T.starting : T.start;
    }

    // Outside opening hours, or while no agent can be reached, the form leaves a message instead:
    // offline.js, fetched then, which keeps why in kit.leaving ("closed", "unavailable"; "": not).
    const offline = (then) => part("offline", kit).then((o) => o && then(o));
    const leave = (reason) => offline((o) => o.set(reason));

    /** The form, its first empty field focused (only if the widget has the focus). */
    function showForm() {
      formError.textContent = "";
      show(form);
      const empty = [...form.elements].find((f) => f.required && !f.value);
      if (root.activeElement) (empty || startBtn).focus(); // never take focus from the page
    }

    // Opening hours are asked for whenever the panel opens without a chat.
    async function checkHours() {
      const hours = (kit.hours = await api("/availability").catch(() => null)); // unknown: offer the chat
      if (chat || !isOpen() || form.hidden) return;
      if (hours?.open === false) kit.leaving || leave(hours.reason); // "closed" or "unavailable"
      else if (hours && kit.leaving === "closed") leave("");
    }

    const notify = (op) => chat && !chat.ended && api(chat.path, { operationName: op }).catch(() => {});

    // The customer's typing: start on the first keystroke, stop after 3 s without one.
    function typed() {
      grow();
      if (!chat || chat.ended) return;
      if (!input.value.trim()) return stopTyping();
      if (!typingSent) notify("SendStartTypingNotification");
      typingSent = true;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(stopTyping, 3000);
    }

    function stopTyping(silent) {
      clearTimeout(typingTimer);
      if (typingSent && !silent) notify("SendStopTypingNotification");
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
      const item = { text, key: newKey(), el: h("li", { class: "cb-msg cb-me cb-pending", "aria-hidden": "true" }, h("div", { class: "cb-bubble" }, text)) };
      pending.push(item);
      outbox.append(item.el);
      toBottom();
      deliver(item, chat);
    }

    /** Send (or send again, with the same Idempotency-Key) one of the customer's messages. */
    async function deliver(item, target) {
      item.el.classList.remove("cb-failed");
      item.el.setAttribute("aria-hidden", "true");
      item.note?.remove();
      try {
        await api(target.path, { operationName: "SendMessage", text: item.text }, item.key);
        item.sent = true;
      } catch (err) {
        if (chat !== target || !item.el.isConnected) return;
        if ([400, 409, 413].includes(err.status)) {
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
        item.el.append(
          (item.note = h(
            "p",
            { class: "cb-note", role: "alert" },
            (err.status === 429 ? T.busy : T.notSent) + " ",
            h("button", { type: "button", class: "cb-link", onclick: () => deliver(item, target) }, T.retry),
          )),
        );
        toBottom();
      }
    }

    /** Ask to confirm the end (`on`), or not (focused: false; undefined: focus stays). */
    function askEnd(on) {
      wrap.toggleAttribute("data-ask", !!on);
      if (on != null) (on ? keepBtn : input).focus();
    }

    async function complete() {
      if (!chat) return;
      const target = chat;
      sureBtn.disabled = true;
      stopTyping(true);
      try {
        await api(target.path, { operationName: "Complete" });
      } catch (err) {
        // 409: the chat was over already
        if (err.status !== 409) return (chatError.textContent = errorText(err));
      } finally {
        sureBtn.disabled = false;
      }
      if (chat !== target) return;
      target.completed = target.info.c = 1; // the stream's `end` follows with the last entries
      store("i", JSON.stringify(target.info));
      share?.postMessage({ t: "done", h: target.h });
      setPhase("ended");
      againBtn.focus();
    }

    const phone = matchMedia("(max-width: 480px)"); // where the panel is full-screen
    let heldOverflow = null; // the page's own overflow while the panel hides its scrolling

    /** Open the panel (its first control focused, unless `focus` is false) or close it. */
    function toggle(on, focus = on) {
      if (on && focus && panel.hidden) emit("opened"); // by the customer or the page, not a reload
      panel.hidden = !on;
      wrap.classList.toggle("cb-open", on);
      launcher.setAttribute("aria-expanded", on);
      store("open", on ? "1" : null);
      showUnread();
      // Behind the full-screen phone panel the page must not scroll.
      const s = document.documentElement.style;
      if (on && phone.matches && heldOverflow === null) (heldOverflow = s.overflow), (s.overflow = "hidden");
      else if (!on && heldOverflow !== null) (s.overflow = heldOverflow), (heldOverflow = null);
      if (!on) {
        if (chat) store("seen", chat.last);
        return launcher.focus();
      }
      if (reading()) markRead();
      toBottom();
      if (!chat) checkHours();
      if (focus) (!chat ? form.elements.nickname : phase === "ended" ? againBtn : input).focus();
    }

    function adopt(handle, fresh, info = {}) {
      chat?.stop();
      if (store("h") !== handle) store("seen", null), store("heard", null); // another chat's
      store("h", handle);
      store("i", JSON.stringify(info));
      chat = Chat(handle, info);
      reset();
      if (chat.info.s) insert(bubble({ utcTime: chat.info.t }, T.you, chat.info.s, true, " cb-subject"), 0);
      show(chatView);
      if (fresh) setPhase("waiting"), emit("started");
      chat.start();
      if (fresh && share) share.postMessage({ t: "chat", h: handle, i: info });
    }

    if (share) {
      share.onmessage = ({ data: m }) => {
        if (!m || typeof m !== "object") return;
        if (m.t === "hello") {
          if (chat?.leader && !chat.ended) share.postMessage({ t: "chat", h: chat.h, i: chat.info });
        } else if (m.t === "chat") {
          if (typeof m.h === "string" && (!chat || (chat.ended && chat.h !== m.h))) adopt(m.h, false, m.i);
        } else if (chat && m.h === chat.h) {
          // Events: the leader's, for every other tab, or a replay for the tab that asked.
          if (m.t === "ev" && (m.to ? m.to === tabId : !chat.leader)) m.events.forEach(([k, d]) => chat.take(k, d, true));
          else if (m.t === "sync" && chat.leader) share.postMessage({ t: "ev", h: chat.h, to: m.to, events: chat.replay(m.from) });
          else if (m.t === "done") chat.completed = true;
        }
      };
    }

    // After a wait without an agent: the same name and question, as a message left.
    function leaveInstead() {
      const { n, s } = chat.info;
      again();
      form.elements.nickname.value = n || "";
      form.elements.subject.value = s || "";
      leave("unavailable");
    }

    function again() {
      chat?.stop();
      chat = null;
      store("h", null);
      reset();
      setPhase("new");
      kit.leaving ? leave("") : showForm();
      checkHours();
    }

    document.addEventListener("visibilitychange", () => reading() && markRead());

    // The record that restores the chat once every tab has gone: kept while the chat is live
    // (not once it is known to be over), refreshed by every tab showing it.
    const remember = () => ttl > 0 && chat?.state && !ENDED.has(chat.state.state) && !chat.ended && !chat.completed && saved({ h: chat.h, i: chat.info, x: Date.now() + ttl, n: +store("heard"), s: +store("seen") });
    setInterval(remember, 1e4);
    addEventListener("pagehide", remember);

    // What the optional parts may use (the same release's, beside this file). `leaving` and
    // `hours` are offline.js's.
    const kit = { h, api, newKey, emit, store, ds, lang, locale, T, title, hooks, endText, launcher, wrap, root, entry, clock, sorted, form, field, views, show, showForm, userData, chat: () => chat, open: () => toggle(true), close: () => toggle(false), isOpen };

    // -- start -------------------------------------------------------------------------------
    // This tab's chat (a reload), else one restored: within its window, else forgotten.
    const kept = ttl > 0 && !store("h") && saved();
    if (kept) kept.x > Date.now() ? (store("h", kept.h), store("i", JSON.stringify(kept.i)), store("heard", kept.n), store("seen", kept.s)) : saved(null);
    let info;
    try {
      info = JSON.parse(store("i"));
    } catch (e) {
      /* none kept */
    }
    if (store("h")) adopt(store("h"), false, info || {});
    else {
      show(form);
      share?.postMessage({ t: "hello" });
    }
    if (store("open") || wanted) toggle(true, wanted);
    pub.open = () => toggle(true);
    pub.close = () => toggle(false);
    styled.then(() => emit("ready"));
    if (ds.survey != null) part("survey", kit);
    if (ds.inviteAfter) part("invite", kit);
    return kit;
  }
})();

/* chat-bff widget, optional part: proactive invitations. Loaded by widget.js only on pages with
 * data-invite-after="<seconds>", or when the page calls ChatBff.invite("text").
 *
 * A small bubble by the launcher ("Questions? We're here to help." or the page's text), shown
 * after the customer has spent data-invite-after seconds on the site (counted across the pages
 * of the tab while one is visible), or at once on ChatBff.invite(text). At most once per
 * session (the tab's), never while a chat runs or the panel is open, never outside opening
 * hours or while chat is unavailable (GET /api/v2/availability). It is announced politely to
 * screen readers, reached by Tab before the launcher, opens the chat on a click or Enter, and
 * is dismissed by its close button or Escape. Motionless under prefers-reduced-motion
 * (widget.css). The page hears `invite-shown` and `invite-accepted`. */
window.ChatBff._invite((k) => {
  const { h, store } = k;
  const S = {
    "en": { "text": "Questions? We're here to help.", "dismiss": "Dismiss" },
    "de": { "text": "Fragen? Wir helfen Ihnen gern.", "dismiss": "Schließen" },
    "fr": { "text": "Une question ? Nous sommes là pour vous aider.", "dismiss": "Fermer" },
    "es": { "text": "¿Tienes preguntas? Estamos aquí para ayudarte.", "dismiss": "Cerrar" },
    "ar": { "text": "لديك سؤال؟ نحن هنا لمساعدتك.", "dismiss": "إغلاق" }
  };
  const t = S[k.lang] || S.en;
  const after = +k.ds.inviteAfter; // seconds on the site (NaN: only ChatBff.invite)
  // The live region exists before anything is put in it, so the bubble is announced.
  const region = h("div", { class: "cb-invite", "aria-live": "polite" });
  k.launcher.before(region);
  let asking = false;

  const busy = () => {
    const chat = k.chat();
    return store("iv") || k.isOpen() || (chat && !chat.ended);
  };

  function hide() {
    const hadFocus = region.contains(region.getRootNode().activeElement);
    region.replaceChildren();
    if (hadFocus) k.launcher.focus();
  }

  async function show(text) {
    if (asking || busy()) return;
    asking = true;
    const hours = await k.api("/availability").catch(() => null);
    asking = false;
    if (!hours?.open || busy()) return;
    store("iv", "1"); // once per session, whatever happens next
    const accept = () => {
      hide();
      k.emit("invite-accepted");
      k.open();
    };
    region.replaceChildren(
      h(
        "div",
        { class: "cb-bubble-invite", onkeydown: (e) => e.key === "Escape" && hide() },
        h("button", { type: "button", class: "cb-invite-text", onclick: accept }, text || k.ds.inviteText || t.text),
        h("button", { type: "button", class: "cb-invite-x", "aria-label": t.dismiss, title: t.dismiss, onclick: hide }, h("span", { "aria-hidden": "true" }, "×")),
      ),
    );
    k.emit("invite-shown");
  }

  // The customer opened the chat or started one: the invitation has no more to say.
  addEventListener("chat-bff:opened", hide);
  addEventListener("chat-bff:started", hide);

  if (after >= 0) {
    let due = false; // asked (for hours) once per page
    setInterval(() => {
      if (document.hidden) return;
      const spent = +store("it") + 1; // seconds on the site in this tab's session
      store("it", spent);
      if (spent >= after && !due) (due = true), show();
    }, 1000);
  }
  return show;
});

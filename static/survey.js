/* chat-bff widget, optional part: data-survey. Loaded by widget.js only on pages with that
 * attribute. Once a chat an agent took part in has ended, the ended view asks how it went: a
 * rating from 1 to 5 (a radio group whose every choice is named in words, not stars alone) and
 * an optional comment (at most 1,000 characters), posted once to
 * POST /api/v2/chats/{handle}/survey with an Idempotency-Key (reused by a retry of the same
 * answer). chat-bff takes one survey per chat: a 409 means it has one already, which the
 * customer is told as thanks. The page hears `rated` with the rating (never the comment).
 * Everything the customer sees or writes goes in as text. */
window.ChatBff._survey((k) => {
  const { h, T } = k;
  // This part's own strings, in every language the widget speaks (the page's, else English).
  const S = {
    "en": {
      "ask": "How was your chat?",
      "scale": ["Very poor", "Poor", "Okay", "Good", "Excellent"],
      "comment": "Anything you'd like to add?",
      "send": "Send",
      "thanks": "Thank you for your feedback."
    },
    "de": {
      "ask": "Wie war Ihr Chat?",
      "scale": ["Sehr schlecht", "Schlecht", "Geht so", "Gut", "Sehr gut"],
      "comment": "Möchten Sie noch etwas hinzufügen?",
      "send": "Senden",
      "thanks": "Vielen Dank für Ihre Rückmeldung."
    },
    "fr": {
      "ask": "Comment s’est passé votre échange ?",
      "scale": ["Très mauvais", "Mauvais", "Moyen", "Bon", "Excellent"],
      "comment": "Quelque chose à ajouter ?",
      "send": "Envoyer",
      "thanks": "Merci pour votre avis."
    },
    "es": {
      "ask": "¿Qué tal ha ido el chat?",
      "scale": ["Muy mal", "Mal", "Regular", "Bien", "Muy bien"],
      "comment": "¿Quieres añadir algo?",
      "send": "Enviar",
      "thanks": "Gracias por tu opinión."
    },
    "ar": {
      "ask": "كيف كانت المحادثة؟",
      "scale": ["سيئة جدًا", "سيئة", "مقبولة", "جيدة", "ممتازة"],
      "comment": "هل تود إضافة شيء؟",
      "send": "إرسال",
      "thanks": "شكرًا على رأيك."
    }
  };
  const t = S[k.lang] || S.en;
  let shown = null; // the chat the survey (or its thanks) is shown for
  let box = null;

  function ask(chat) {
    shown = chat;
    let keys = {}; // Idempotency-Key by answer: a retry of the same answer reuses it
    const error = h("p", { class: "cb-error", role: "alert" });
    const send = h("button", { type: "submit", class: "cb-primary" }, t.send);
    const form = h(
      "form",
      { class: "cb-survey", onsubmit: submit },
      h(
        "fieldset",
        {},
        h("legend", {}, t.ask),
        h(
          "div",
          { class: "cb-scale" },
          ...t.scale.map((word, i) =>
            h(
              "label",
              {},
              h("input", { type: "radio", name: "rating", value: i + 1, required: true }),
              h("span", { "aria-hidden": "true" }, i + 1),
              h("span", { class: "cb-sr" }, i + 1 + " " + word),
            ),
          ),
        ),
        h("p", { class: "cb-ends", "aria-hidden": "true" }, h("span", {}, "1 " + t.scale[0]), h("span", {}, "5 " + t.scale[4])),
      ),
      h("label", { for: "cb-s-comment" }, t.comment, h("small", {}, " (" + T.optional + ")")),
      h("textarea", { id: "cb-s-comment", name: "comment", maxlength: 1000, rows: 2 }),
      error,
      send,
    );
    box = form;
    k.endText.after(form);

    async function submit(e) {
      e.preventDefault();
      if (!form.reportValidity()) return;
      const rating = +form.elements.rating.value;
      const comment = form.elements.comment.value.trim();
      const body = comment ? { rating, comment } : { rating };
      send.disabled = true;
      error.textContent = "";
      try {
        await k.api(chat.path + "/survey", body, (keys[JSON.stringify(body)] ||= k.newKey()));
      } catch (err) {
        // 409: this chat has its survey already (from another tab): as good as sent.
        if (err.status !== 409) return (error.textContent = err.status === 429 ? T.busy : T.error);
      } finally {
        send.disabled = false;
      }
      chat.info.r = 1; // remembered with the chat: not asked again after a reload
      if (k.chat() === chat) k.store("i", JSON.stringify(chat.info));
      const hadFocus = form.contains(form.getRootNode().activeElement);
      const thanks = h("p", { class: "cb-rated", tabindex: "-1" }, t.thanks);
      form.replaceWith(thanks);
      box = thanks;
      if (hadFocus) thanks.focus();
      k.emit("rated", { rating });
    }
  }

  // Asked in the ended view of a chat an agent took part in, once; gone with that chat.
  const follow = (phase, agent) => {
    const chat = k.chat();
    if (phase !== "ended" || chat !== shown) box?.remove(), (box = shown = null);
    if (phase === "ended" && agent && !shown && !chat.info.r) ask(chat);
  };
  k.hooks.push(follow);
  // This part may arrive after the ended view was shown: catch up with it.
  const chat = k.chat();
  if (chat) follow(k.wrap.dataset.phase, chat.state?.participants?.some((p) => p?.type === "Agent") || [...chat.msgs.values()].some((m) => m.from?.type === "Agent"));
});

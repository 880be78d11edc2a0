/* chat-bff widget, optional part: leaving a message. Fetched by widget.js when the chat is
 * closed (GET /api/v2/availability, or RequestChat answering 409 "closed") or no agent can be
 * reached (a 5xx, or a wait that ended without anyone).
 *
 * The start form becomes a leave-a-message form (`set(reason)`; `set("")` turns it back): the
 * intro says why, and when chat opens again (in the page's language and the customer's time
 * zone); an e-mail address becomes required and is asked for before the message (the page's
 * optional e-mail field, or one of ours shown only then); what the customer typed is kept.
 * `send()` posts it to POST /api/v2/offline-messages with an Idempotency-Key (reused while the
 * body is unchanged), then shows a thank-you naming the address the answer will go to, with a
 * way on. The reason is kept in kit.leaving; everything goes in as text. */
window.ChatBff._offline((k) => {
  const { h, T, form } = k;
  // This part's own strings, in every language the widget speaks.
  const S = {
    "en": {
      "closed": "We're closed right now.",
      "closedUntil": "We're closed right now and back {time}.",
      "unavailable": "Our chat is unavailable right now.",
      "leaveIntro": "Leave us a message and we'll reply by e-mail.",
      "yourMessage": "Your message",
      "sendMessage": "Send message",
      "sending": "Sending…",
      "check": "Please check your details and try again.",
      "thanks": "Thank you. We have your message and will reply to {email}.",
      "close": "Close"
    },
    "de": {
      "closed": "Wir sind gerade nicht erreichbar.",
      "closedUntil": "Wir sind gerade nicht erreichbar und ab {time} wieder da.",
      "unavailable": "Unser Chat ist gerade nicht verfügbar.",
      "leaveIntro": "Hinterlassen Sie uns eine Nachricht, wir antworten per E-Mail.",
      "yourMessage": "Ihre Nachricht",
      "sendMessage": "Nachricht senden",
      "sending": "Wird gesendet…",
      "check": "Bitte prüfen Sie Ihre Angaben und versuchen Sie es erneut.",
      "thanks": "Vielen Dank. Wir haben Ihre Nachricht erhalten und antworten an {email}.",
      "close": "Schließen"
    },
    "fr": {
      "closed": "Nous sommes fermés pour le moment.",
      "closedUntil": "Nous sommes fermés pour le moment et de retour le {time}.",
      "unavailable": "Notre chat est indisponible pour le moment.",
      "leaveIntro": "Laissez-nous un message, nous vous répondrons par e-mail.",
      "yourMessage": "Votre message",
      "sendMessage": "Envoyer le message",
      "sending": "Envoi…",
      "check": "Vérifiez vos informations et réessayez.",
      "thanks": "Merci. Nous avons bien reçu votre message et répondrons à {email}.",
      "close": "Fermer"
    },
    "es": {
      "closed": "Ahora mismo estamos cerrados.",
      "closedUntil": "Ahora mismo estamos cerrados y volvemos el {time}.",
      "unavailable": "Nuestro chat no está disponible en este momento.",
      "leaveIntro": "Déjanos un mensaje y te responderemos por correo electrónico.",
      "yourMessage": "Tu mensaje",
      "sendMessage": "Enviar mensaje",
      "sending": "Enviando…",
      "check": "Revisa tus datos e inténtalo de nuevo.",
      "thanks": "Gracias. Hemos recibido tu mensaje y responderemos a {email}.",
      "close": "Cerrar"
    },
    "ar": {
      "closed": "نحن مغلقون الآن.",
      "closedUntil": "نحن مغلقون الآن ونعود {time}.",
      "unavailable": "خدمة المحادثة غير متاحة الآن.",
      "leaveIntro": "اترك لنا رسالة وسنرد عليك بالبريد الإلكتروني.",
      "yourMessage": "رسالتك",
      "sendMessage": "إرسال الرسالة",
      "sending": "جارٍ الإرسال…",
      "check": "يرجى التحقق من بياناتك والمحاولة مرة أخرى.",
      "thanks": "شكرًا لك. وصلتنا رسالتك وسنرد على {email}.",
      "close": "إغلاق"
    }
  };
  const t = S[k.lang] || S.en;
  const fmt = (s, v) => s.replace(/\{(\w+)\}/g, (_, key) => v[key]);
  const subject = form.elements.subject;
  const intro = form.querySelector(".cb-intro");
  const error = form.querySelector(".cb-error");
  const button = form.querySelector("[type=submit]");
  const own = !form.elements.email;
  const mailField = own ? k.field("email", T.email, { type: "email", autocomplete: "email", maxlength: 254 }, true) : form.elements.email.parentNode;
  const place = own ? subject.parentNode.nextSibling : mailField.nextSibling; // in the start form
  mailField.hidden = own;
  const thanksText = h("p", { class: "cb-intro cb-thanks", tabindex: "-1" });
  const thanks = h("div", { class: "cb-done", hidden: true }, thanksText, h("button", { type: "button", class: "cb-primary", onclick: () => (set(k.leaving), k.close()) }, t.close));
  form.after(thanks);
  k.views.push(thanks);
  let keys = {}; // Idempotency-Key by body: a retry of the same message reuses it

  const busy = (on) => ((button.disabled = on), (button.textContent = on ? t.sending : t.sendMessage));

  /** Leave a message (`reason`: "closed" or "unavailable"), or start a chat again (""). */
  function set(reason) {
    k.leaving = reason || "";
    const next = reason === "closed" && k.hours?.nextOpen && new Date(k.hours.nextOpen);
    const when = next && !isNaN(next) && next.toLocaleString(k.locale, { weekday: "long", day: "numeric", month: "long", hour: "numeric", minute: "2-digit" });
    intro.textContent = !reason ? T.intro : (reason === "closed" ? (when ? fmt(t.closedUntil, { time: when }) : t.closed) : t.unavailable) + " " + t.leaveIntro;
    subject.previousSibling.textContent = reason ? t.yourMessage : T.subject;
    subject.maxLength = reason ? 4000 : 256;
    mailField.lastChild.required = !!reason;
    mailField.hidden = !reason && own;
    form.insertBefore(mailField, reason ? subject.parentNode : place); // asked for before the message
    form.classList.toggle("cb-leave", !!reason);
    reason ? busy(false) : (button.textContent = T.start);
    k.showForm();
  }

  async function send() {
    const value = (name) => form.elements[name].value.trim();
    // Its e-mail address goes in the body, not in userData, and its text is the "subject".
    const userData = k.userData();
    delete userData.email;
    const body = { nickname: value("nickname"), email: value("email"), text: value("subject") };
    if (Object.keys(userData).length) body.userData = userData;
    const key = (keys[JSON.stringify(body)] ||= k.newKey());
    busy(true);
    error.textContent = "";
    try {
      await k.api("/offline-messages", body, key);
      thanksText.textContent = fmt(t.thanks, body);
      k.show(thanks);
      thanksText.focus();
      form.reset();
      keys = {};
    } catch (err) {
      error.textContent = err.status === 400 ? t.check : err.status === 429 ? T.busy : T.error;
    } finally {
      busy(false);
    }
  }

  return { set, send };
});

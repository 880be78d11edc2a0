/* chat-bff widget, optional part: "Download transcript" in the ended view. Fetched by
 * widget.js on the first click. The transcript is a text file built in the browser from what
 * the tab has (the customer's opening question, then every entry with its time), downloaded as
 * a blob: nothing is sent anywhere. */
window.ChatBff._transcript((k) => () => {
  const chat = k.chat();
  const now = new Date();
  const lines = [k.title + " · " + now.toLocaleString(k.locale, { dateStyle: "long", timeStyle: "short" }), ""];
  if (chat.info.s) lines.push(k.T.you + ": " + chat.info.s);
  k.sorted(chat).forEach((m) => {
    const e = k.entry(m);
    if (e) lines.push((m.utcTime ? "[" + k.clock(m.utcTime) + "] " : "") + (e[0] ? e[0] + ": " : "· ") + e[1]);
  });
  const url = URL.createObjectURL(new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], { type: "text/plain;charset=utf-8" }));
  const a = k.h("a", { href: url, download: "chat-" + now.toISOString().slice(0, 10) + ".txt", hidden: true });
  k.root.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
});

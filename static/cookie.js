/* chat-bff widget, optional part: data-cookie-domain=".shop.example". A running chat's restore
 * record (see widget.js) in a first-party cookie on that domain instead of localStorage, so
 * every subdomain of the site (www., help.) resumes the same chat. Loaded by widget.js only on
 * pages with that attribute. The cookie holds the chat handle (a bearer credential for the
 * chat), its expiry, the chat's start and the indices seen: never what the customer wrote.
 * It is SameSite=Lax, Secure on https, and lives as long as the restore window. */
window.ChatBff._cookie(([name, ttl, domain]) => (v) => {
  try {
    if (v === undefined) return JSON.parse(decodeURIComponent(document.cookie.split("; ").find((c) => c.startsWith(name)).slice(name.length)));
    document.cookie = name + (v ? encodeURIComponent(JSON.stringify({ ...v, i: { t: v.i.t, m: v.i.m } })) : "") + ";path=/;samesite=lax;domain=" + domain + ";max-age=" + (v ? (ttl / 1e3) | 0 : 0) + (location.protocol == "https:" ? ";secure" : "");
  } catch (e) {
    /* none, or unreadable: as if none */
  }
});

// Demo page only: ?lang=fr shows the widget in French (it follows <html lang> without data-lang),
// and the hero's "Chat with us" button opens it.
(() => {
  const lang = new URLSearchParams(location.search).get("lang");
  if (["en", "de", "fr", "es", "ar"].includes(lang)) document.documentElement.lang = lang;
  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("open-chat").addEventListener("click", () => window.ChatBff && window.ChatBff.open());
  });
})();

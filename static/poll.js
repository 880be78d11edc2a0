/* chat-bff widget, optional part: the long-poll fallback. Fetched by widget.js only where
 * EventSource is missing, or where streams keep failing while plain requests work (proxies
 * that break SSE). The tab holding the chat reads the chat's state (at first, then every 30 s
 * or when someone came or went) and long-polls the messages after the last it has
 * (GET .../messages?index=N&wait=25), handing everything to the widget as the stream would;
 * errors back off (honouring Retry-After), a chat chat-bff no longer knows ends. */
window.ChatBff._poll(() => async (chat, take, over, get, ENDED, backoff) => {
  let stateAt = 0;
  let errors = 0;
  while (!over()) {
    try {
      let ended = false;
      if (Date.now() - stateAt > 30000) {
        const { chat: state } = await get("");
        stateAt = Date.now();
        take("state", state);
        ended = ENDED.has(state.state);
      }
      // The messages after the last one, waiting for one unless the chat is over.
      for (const m of (await get("/messages?index=" + (chat.last + 1) + (ended ? "" : "&wait=25"))).messages) {
        take("message", m);
        if (/^Participant/.test(m.type)) stateAt = 0; // someone came or went: re-read state
      }
      if (ended) take("end", {});
      errors = 0;
      take("conn", "live");
    } catch (err) {
      if (over()) break;
      if (err.status === 404) take("end", {});
      else {
        take("conn", "reconnecting");
        await new Promise((r) => setTimeout(r, err.retry * 1000 || backoff(++errors)));
      }
    }
  }
});

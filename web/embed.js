// The page inside an iframe: a postMessage API for the host page. Messages are objects tagged
// {pyjpip: 1}. The host sends commands and gets a reply for each:
//   {pyjpip: 1, id, command: "subscribe"}                      events start coming (to that origin)
//   {pyjpip: 1, id, command: "load", url}                       another viewer URL of this site
//   {pyjpip: 1, id, command: "window", center, width, viewport} window/level (null center: the object's)
//   {pyjpip: 1, id, command: "zoom", factor, viewport} / "fit" / {command: "layout", layout: "2x2"}
//   reply: {pyjpip: 1, id, ok: true} or {pyjpip: 1, id, ok: false, error}
// and, once subscribed, events: {pyjpip: 1, event: "state" | "picture" | "window" | "error", ...}.
//   {pyjpip: 1, id, command: "token", token, expires_at}       an access token for this site (session.js)
// Only the parent window is listened to, and only when its origin is this site's or one configured
// as an embedder (pyjpip serve --embed-origin; viewer-config.js): a message from any other origin is
// ignored, unanswered. Replies go to the sender's origin, events only to the origin that subscribed.

/**
 * Start answering the parent window; ``commands`` maps command names to functions of the message;
 * ``config`` (a promise of viewer-config.js settings) says which embedders are obeyed.
 */
export function listen(commands, config) {
  let subscriber = null;  // the origin events are posted to
  const embedded = window.parent !== window;
  if (embedded) {
    window.addEventListener("message", async (event) => {
      const message = event.data;
      if (event.source !== window.parent || !message || message.pyjpip !== 1 || !message.command) return;
      const { embedOrigins } = await config;
      if (event.origin !== location.origin && !embedOrigins.includes(event.origin)) {
        console.warn(`a message from ${String(event.origin).slice(0, 100)} was ignored: not an embedder of this viewer`);
        return;
      }
      const reply = (fields) => window.parent.postMessage({ pyjpip: 1, id: message.id, ...fields }, event.origin);
      try {
        if (message.command === "subscribe") subscriber = event.origin;
        else if (commands[message.command]) await commands[message.command](message);
        else throw new Error(`unknown command ${JSON.stringify(String(message.command)).slice(0, 80)}`);
        reply({ ok: true });
      } catch (error) {
        reply({ ok: false, error: String(error.message || error) });
      }
    });
  }
  return {
    emit(event, fields) {
      if (embedded && subscriber) window.parent.postMessage({ pyjpip: 1, event, ...fields }, subscriber);
    },
  };
}

// The page inside an iframe: a postMessage API for the host page. Messages are objects tagged
// {pyjpip: 1}. The host sends commands and gets a reply for each:
//   {pyjpip: 1, id, command: "subscribe"}                      events start coming (to that origin)
//   {pyjpip: 1, id, command: "load", url}                       another viewer URL of this site
//   {pyjpip: 1, id, command: "window", center, width, viewport} window/level (null center: the object's)
//   {pyjpip: 1, id, command: "zoom", factor, viewport} / "fit" / {command: "layout", layout: "2x2"}
//   reply: {pyjpip: 1, id, ok: true} or {pyjpip: 1, id, ok: false, error}
// and, once subscribed, events: {pyjpip: 1, event: "state" | "picture" | "window" | "error", ...}.
// Only the parent window is listened to; events go only to the origin that subscribed.

/** Start answering the parent window; ``commands`` maps command names to functions of the message. */
export function listen(commands) {
  let subscriber = null;  // the origin events are posted to
  const embedded = window.parent !== window;
  if (embedded) {
    window.addEventListener("message", async (event) => {
      const message = event.data;
      if (event.source !== window.parent || !message || message.pyjpip !== 1 || !message.command) return;
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

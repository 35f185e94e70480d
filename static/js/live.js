// The live-updates indicator: elements with data-live-indicator say whether the page's
// Server-Sent Events stream (htmx SSE extension) is connected. No inline scripts: the CSP.
(() => {
  const LABELS = { live: "Live", reconnecting: "Reconnecting…" };

  function show(state) {
    document.querySelectorAll("[data-live-indicator]").forEach((el) => {
      // A data attribute, not inline style, so the stylesheet decides how each state looks.
      el.dataset.liveState = state;
      el.textContent = LABELS[state];
      el.title = state === "live" ? "Updates appear as they happen" : "Updates are paused";
    });
  }

  // htmx fires these on the sse-connect element; they bubble up to the document.
  document.addEventListener("htmx:sseOpen", () => show("live"));
  document.addEventListener("htmx:sseError", () => show("reconnecting"));
})();

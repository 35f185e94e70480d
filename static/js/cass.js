// Small behaviours htmx does not cover. No inline scripts: the CSP forbids them.
document.addEventListener("htmx:afterSettle", (event) => {
  // After a boosted navigation, move focus to the new content for keyboard and screen-reader
  // users: to the field the page asks for (autofocus, as a full page load would), else to main.
  if (event.detail.boosted) {
    const main = document.getElementById("main");
    const field = main && main.querySelector("[autofocus]");
    if (field || main) (field || main).focus({ preventScroll: true });
  }
});

// Keyboard shortcuts: "/" search, "n" new ticket, "j"/"k" move in a list, "?" this help.
function typing(target) {
  return target.closest("input, textarea, select, [contenteditable]") !== null;
}

function moveInList(step) {
  const rows = [...document.querySelectorAll("[data-list-row]")];
  if (rows.length === 0) return;
  const current = rows.findIndex((row) => row.classList.contains("kb-current"));
  const next = Math.min(rows.length - 1, Math.max(0, current + step));
  rows.forEach((row) => row.classList.remove("kb-current"));
  rows[next].classList.add("kb-current");
  const link = rows[next].querySelector("a");
  (link || rows[next]).focus();
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
  const help = document.getElementById("shortcuts");
  if (event.key === "/") {
    const search = document.querySelector("[data-shortcut-search], input[type=search]");
    if (search) { event.preventDefault(); search.focus(); search.select(); }
  } else if (event.key === "n") {
    const link = document.querySelector("[data-shortcut-new]");
    if (link) { event.preventDefault(); link.click(); }
  } else if (event.key === "j" || event.key === "k") {
    event.preventDefault();
    moveInList(event.key === "j" ? 1 : -1);
  } else if (event.key === "?" && help) {
    event.preventDefault();
    if (help.open) help.close(); else help.showModal();
  }
});

document.addEventListener("click", (event) => {
  if (event.target.matches("[data-close-dialog]")) event.target.closest("dialog").close();
  if (event.target.matches("[data-close-move]")) event.target.closest(".move-form").remove();
});

// Board and list redraw themselves on live events; not while someone is filling in a move on
// the board or has ticked tickets for a bulk action (after the action, the list redraws). Asked
// before the request and again before its answer is swapped in: a redraw already on its way
// must not throw away a move opened or a box ticked meanwhile.
function holdsWork(config) {
  if (!config) return false;
  const elt = config.elt;
  if (elt.id === "board") return elt.querySelector(".move-form") !== null;
  if (elt.id !== "ticket-list") return false;
  const trigger = config.triggeringEvent;
  return (!trigger || trigger.type !== "tickets-changed")
    && elt.querySelector("input[name=ticket]:checked") !== null;
}

document.addEventListener("htmx:beforeRequest", (event) => {
  if (holdsWork(event.detail.requestConfig)) event.preventDefault();
});

document.addEventListener("htmx:beforeSwap", (event) => {
  if (holdsWork(event.detail.requestConfig)) event.detail.shouldSwap = false;
});

// Copy buttons: <button data-copy="#field"> copies the field's value (a secret shown once), and
// shows the element marked data-copied-for="#field", if any.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.querySelector(button.dataset.copy);
  if (!field) return;
  try {
    await navigator.clipboard.writeText(field.value);
  } catch {
    // No Clipboard API (a page not served over HTTPS or from localhost): copy the selection.
    field.select();
    document.execCommand("copy");
  }
  const note = document.querySelector(`[data-copied-for="${button.dataset.copy}"]`);
  if (note) note.hidden = false;
});

// Small behaviours htmx does not cover. No inline scripts: the CSP forbids them.
document.addEventListener("htmx:afterSettle", (event) => {
  // After a boosted navigation, move focus to the new content for keyboard and screen-reader users.
  if (event.detail.boosted) {
    const main = document.getElementById("main");
    if (main) main.focus({ preventScroll: true });
  }
});
